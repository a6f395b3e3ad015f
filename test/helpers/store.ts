import { afterAll, beforeAll } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
import { dailySql, parseDailyQuery, READ_SETTINGS } from '../../store/queries.js'
import type { Store } from '../../store/store.js'
import { tempDir } from './tmp.js'

/**
 * One embedded store in a temporary directory for a whole test file: opened before its first
 * test, closed and removed after its last. `onOpen` gets the store (the file keeps its own
 * variable, so its tests read as before).
 */
export function embeddedStoreForFile(onOpen: (store: Store) => void): { path: string } {
  const dir = tempDir()
  let opened: Store | undefined
  beforeAll(async () => {
    opened = await openStore({ dataDir: dir.path, logger: silentLogger, host: false })
    onOpen(opened)
  })
  afterAll(async () => {
    await opened?.close()
    dir.cleanup()
  })
  return dir
}

/** A daily query answered from `daily_agg`'s states alone: what every faster path must equal. */
export async function dailyFromStates(store: Store, q: Record<string, unknown>) {
  const { sql, params } = dailySql(parseDailyQuery(q))
  return (await store.query<Record<string, unknown>>(sql, params, READ_SETTINGS)).map((r) => ({
    ...r,
    packets: Number(r.packets),
    sources: Number(r.sources),
  }))
}
