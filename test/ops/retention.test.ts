/**
 * `--retention-days N`: raw events older than N days expire (ClickHouse TTL, applied when parts
 * merge), while the aggregates behind `teiten daily` keep the whole history.
 */
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { applyRetention } from '../../store/migrate.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { addTruth, emptyTruth, generate, pcap, runCli, storedCounts, tempDir, writeCapture } from './helpers.js'

const work = tempDir('teiten-retention-')
let store: Store | undefined
afterAll(async () => {
  await store?.close()
  work.cleanup()
})

async function rawDays(s: Store): Promise<Record<string, number>> {
  const rows = await s.query<{ day: string; n: string }>(
    'SELECT toString(toDate(ts)) AS day, toString(count()) AS n FROM events GROUP BY day ORDER BY day',
  )
  return Object.fromEntries(rows.map((r) => [r.day, Number(r.n)]))
}

function byDay(counts: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, n] of Object.entries(counts)) {
    const day = key.slice(0, 10)
    out[day] = (out[day] ?? 0) + n
  }
  return out
}

it('expires old raw events on merge and keeps every day in daily_agg', async () => {
  const old = generate({ seed: 70, packets: 3000, startSec: Date.UTC(2013, 11, 1) / 1000, days: 2 })
  const older = generate({ seed: 72, packets: 1000, startSec: Date.UTC(2013, 10, 1) / 1000 })
  const dayMs = 86_400_000
  const recentStart = Math.floor((Date.now() - 3 * dayMs) / dayMs) * 86_400
  const recent = generate({ seed: 71, packets: 2000, startSec: recentStart, days: 2 })
  const truth = addTruth(addTruth(addTruth(emptyTruth(), old.truth), recent.truth), older.truth)
  const spool = join(work.path, 'spool')
  const data = join(work.path, 'data')
  writeCapture(join(spool, 's', 'old.pcap'), pcap(old.packets))
  writeCapture(join(spool, 's', 'recent.pcap'), pcap(recent.packets))

  // Without retention every day is kept raw.
  const first = await runCli(['ingest', spool, '--data', data, '--no-progress'])
  expect(first.code, first.stderr).toBe(0)
  const sql = 'SELECT toString(toDate(ts)) AS day, count() AS n FROM events GROUP BY day ORDER BY day'
  const before = await runCli(['sql', sql, '--data', data, '--format', 'json'])
  expect(before.code, before.stderr).toBe(0)
  const beforeDays = Object.fromEntries(
    (JSON.parse(before.stdout) as { day: string; n: number }[]).map((r) => [r.day, Number(r.n)]),
  )
  expect(beforeDays).toEqual({ ...byDay(old.truth.all), ...byDay(recent.truth.all) })

  // Retention switched on, with one more old capture arriving.
  writeCapture(join(spool, 's', 'older.pcap'), pcap(older.packets))
  const second = await runCli(['ingest', spool, '--data', data, '--retention-days', '30', '--no-progress'])
  expect(second.code, second.stderr).toBe(0)

  store = await openStore({ dataDir: data, logger: silentLogger, host: false })
  const ddl = async () => {
    const [row] = await store!.query<{ ddl: string }>(
      'SELECT create_table_query AS ddl FROM system.tables WHERE database = currentDatabase() AND name = {t:String}',
      { t: 'events' },
    )
    return row!.ddl
  }
  expect(await ddl()).toMatch(/TTL toDateTime\(ts\) \+ toIntervalDay\(30\)/)
  await store.command('OPTIMIZE TABLE events FINAL')
  expect(await rawDays(store)).toEqual(byDay(recent.truth.all))
  // The aggregates still hold every 2013 day, exactly (per day: the CLI's countries come from the real GeoIP).
  const kept = await storedCounts(store)
  expect({ access: byDay(kept.access), all: byDay(kept.all) }).toEqual({
    access: byDay(truth.access),
    all: byDay(truth.all),
  })

  // 0 removes the TTL.
  await applyRetention(store, 0)
  expect(await ddl()).not.toMatch(/TTL/)
})
