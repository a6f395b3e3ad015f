/**
 * A full disk under the embedded ClickHouse: the data directory on a small tmpfs. ClickHouse
 * then fails in the middle of a batch (the raw rows may be written while the aggregates' views
 * are not); the run must stop with a clear error and exit 1, and once there is room again the
 * next run must make the raw table and every aggregate exact. Needs mount(8) and the right to
 * mount (root, as CI runs); elsewhere the test is skipped and says so.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { BATCH_ROWS } from '../../pipeline/ingest.js'
import { generate, pcap, runCli, tempDir, writeCapture } from './helpers.js'

const work = tempDir('teiten-diskfull-')
const mnt = join(work.path, 'mnt')
mkdirSync(mnt)
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]).status === 0
if (!mounted) console.warn('diskfull.test.ts: cannot mount a tmpfs here (not root?): the disk-full test is skipped')

afterAll(() => {
  if (mounted) spawnSync('umount', ['-l', mnt])
  work.cleanup()
})

it.skipIf(!mounted)('stops with a clear error when the disk fills, and the next run is exact', async () => {
  const g = generate({ seed: 95, packets: BATCH_ROWS * 3 + 100, noise: 0.01 })
  const spool = join(work.path, 'spool')
  writeCapture(join(spool, 's', 'big.pcap'), pcap(g.packets))
  const data = join(mnt, 'data')

  const full = await runCli(['ingest', spool, '--data', data, '--no-progress'])
  expect(full.code).toBe(1)
  const last = full.stderr.trim().split('\n').at(-1)!
  expect(last).toMatch(/^teiten: .*(space|ENOSPC).*\[STORE_INSERT_FAILED\]$/)

  expect(spawnSync('mount', ['-o', 'remount,size=400m', mnt]).status).toBe(0)
  const again = await runCli(['ingest', spool, '--data', data, '--no-progress'])
  expect(again.code, again.stderr).toBe(0)

  const sql =
    'SELECT (SELECT count() FROM events) AS events, (SELECT uniqExact(file_id, record) FROM events) AS distinct_rows, ' +
    '(SELECT sum(packets) FROM daily_agg) AS daily, (SELECT sum(packets) FROM hourly_agg) AS hourly, ' +
    '(SELECT sum(packets) FROM source_daily) AS sources'
  const counts = await runCli(['sql', sql, '--data', data, '--format', 'json'])
  expect(counts.code, counts.stderr).toBe(0)
  const [row] = JSON.parse(counts.stdout) as Record<string, number>[]
  const n = g.truth.kept
  expect(Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]))).toEqual({
    events: n,
    distinct_rows: n,
    daily: n,
    hourly: n,
    sources: n,
  })
})
