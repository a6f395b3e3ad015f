import { afterAll, beforeAll } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
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
