/**
 * Crash safety with the real CLI and the real embedded ClickHouse: `teiten ingest` killed with
 * SIGKILL at seeded random moments (one-shot and --watch), then run to the end, must leave
 * exactly what one uninterrupted run leaves; a storage failure in the middle of a watch must end
 * the process with a clear error and a non-zero exit, and the run after it must count every
 * packet once. No assertion depends on timing: kill moments only decide how much was done.
 * TEITEN_CRASH_SEED picks other kill moments; TEITEN_CRASH_DEBUG=1 prints what each kill left.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { BATCH_ROWS } from '../../pipeline/ingest.js'
import { openStore } from '../../store/open.js'
import {
  addTruth,
  emptyTruth,
  eventStats,
  generate,
  gzip,
  logLines,
  pcap,
  pcapng,
  rng,
  runCli,
  startCli,
  tempDir,
  writeCapture,
} from './helpers.js'

const SEED = Number(process.env.TEITEN_CRASH_SEED ?? 20240101)
const work = tempDir('teiten-crash-')
afterAll(() => work.cleanup())

async function daily(data: string): Promise<unknown> {
  const r = await runCli(['daily', '--data', data, '--by', 'day,sensor,country,class', '--all', '--format', 'json'])
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('SIGKILL at random points', () => {
  it(`leaves, after a re-run, exactly what an uninterrupted run stores (seed ${SEED})`, async () => {
    const spool = join(work.path, 'spool')
    // Five batches in all, across pcap, gzip'd pcap and pcapng, two sensors, three days.
    const a = generate({ seed: 1, packets: BATCH_ROWS * 2 + 5000, noise: 0.02, days: 2 })
    const b = generate({ seed: 2, packets: BATCH_ROWS + 3000, noise: 0.02, startSec: Date.UTC(2024, 0, 2) / 1000 })
    const c = generate({ seed: 3, packets: 20_000, startSec: Date.UTC(2024, 0, 3) / 1000 })
    writeCapture(join(spool, 'tokyo', 'a.pcap'), pcap(a.packets))
    writeCapture(join(spool, 'tokyo', 'b.pcap.gz'), gzip(pcap(b.packets)))
    writeCapture(join(spool, 'osaka', 'c.pcapng'), pcapng(c.packets))
    const truth = addTruth(addTruth(addTruth(emptyTruth(), a.truth), b.truth), c.truth)

    const reference = join(work.path, 'reference')
    const t0 = performance.now()
    const ref = await runCli(['ingest', spool, '--data', reference, '--no-progress'])
    const fullMs = performance.now() - t0
    expect(ref.code).toBe(0)
    const expected = await daily(reference)

    const data = join(work.path, 'crashed')
    const config = join(work.path, 'poll.yaml')
    writeFileSync(config, 'watch: { pollIntervalMs: 50, settleMs: 0 }\n')
    const random = rng(SEED)
    const kills: { mode: string; afterMs: number; code: number | null; signal: string | null }[] = []
    // SIGKILL anywhere; a double SIGTERM (stop at once) in a watch; SIGINT of a one-shot run.
    const modes = ['once-kill', 'watch-kill', 'watch-term-twice', 'once-kill', 'once-int', 'watch-kill'] as const
    for (const mode of modes) {
      const watch = mode.startsWith('watch')
      const args = watch
        ? ['ingest', '--watch', spool, '--data', data, '--config', config]
        : ['ingest', spool, '--data', data, '--no-progress']
      const afterMs = Math.round(random() * fullMs)
      const run = startCli(args)
      await sleep(afterMs)
      if (mode.endsWith('kill')) run.child.kill('SIGKILL')
      else if (mode === 'once-int') run.child.kill('SIGINT')
      else {
        run.child.kill('SIGTERM')
        run.child.kill('SIGTERM')
      }
      const r = await run.done
      kills.push({ mode, afterMs, code: r.code, signal: r.signal })
      if (process.env.TEITEN_CRASH_DEBUG) {
        // What each kill left behind (events stored, files in the ledger), to see that kills land mid-file.
        const sql = 'SELECT count() AS events, (SELECT count() FROM ingested_files) AS ledger FROM events'
        const q = await runCli(['sql', sql, '--data', data, '--format', 'csv'])
        console.log(kills.at(-1), q.stdout.trim().split('\n').at(-1), q.stderr)
      }
      // Killed, finished, stopped (exit 0) or interrupted (130); never failed.
      if (r.signal === null) expect([0, 130], r.stderr).toContain(r.code)
      else expect(r.signal).toBe(mode.endsWith('kill') ? 'SIGKILL' : r.signal)
    }

    expect(kills.some((k) => k.signal === 'SIGKILL')).toBe(true)
    const final = await runCli(['ingest', spool, '--data', data, '--no-progress'])
    expect(final.code, final.stderr).toBe(0)
    expect(await daily(data), JSON.stringify(kills)).toEqual(expected)

    const store = await openStore({ dataDir: data, logger: silentLogger, host: false })
    try {
      expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
      const ledger = await store.query<{ n: string }>(
        "SELECT toString(count()) AS n FROM ingested_files FINAL WHERE status = 'complete'",
      )
      expect(ledger).toEqual([{ n: '3' }])
    } finally {
      await store.close()
    }
  }, 240_000) // eight CLI runs and two full ingests: 30-45 s alone, past 60 s beside the whole suite on 2 cores
})

describe('storage failure during a watch', () => {
  it('ends with a clear error and exit 1; the next run stores every packet once', async () => {
    const spool = join(work.path, 'fail-spool')
    const data = join(work.path, 'fail-data')
    const config = join(work.path, 'fail.yaml')
    writeFileSync(config, 'watch: { pollIntervalMs: 50, settleMs: 0 }\n')
    const a = generate({ seed: 60, packets: 3000 })
    const b = generate({ seed: 61, packets: 3000, startSec: Date.UTC(2024, 0, 9) / 1000 })
    writeCapture(join(spool, 's', 'a.pcap'), pcap(a.packets))
    const args = ['ingest', '--watch', spool, '--data', data, '--config', config]

    const run = startCli(args)
    await run.waitFor(/"file ingested"/)
    // Inserts stage their rows in DATA/tmp: make that a file, and every insert fails.
    const tmp = join(data, 'tmp')
    rmSync(tmp, { recursive: true, force: true })
    writeFileSync(tmp, 'not a directory')
    writeCapture(join(spool, 's', '.b.pcap.part'), pcap(b.packets)) // dotfiles are not taken
    renameSync(join(spool, 's', '.b.pcap.part'), join(spool, 's', 'b.pcap'))
    const failed = await run.done
    expect(failed.code).toBe(1)
    const last = failed.stderr.trim().split('\n').at(-1)!
    expect(last).toMatch(/^teiten: .*\[STORE_INSERT_FAILED\]$/)
    expect(logLines(failed.stderr).filter((l) => l.msg === 'file ingested')).toHaveLength(1)

    rmSync(tmp)
    mkdirSync(tmp)
    const again = startCli(args)
    await again.waitFor(/"file ingested"/)
    again.child.kill('SIGTERM')
    const ok = await again.done
    expect(ok.code).toBe(0)
    expect(
      logLines(ok.stderr)
        .filter((l) => l.msg === 'file ingested')
        .map((l) => l.file),
    ).toEqual([join(spool, 's', 'b.pcap')])
    const rows = (await daily(data)) as { packets: number }[]
    expect(rows.reduce((n, r) => n + Number(r.packets), 0)).toBe(a.truth.kept + b.truth.kept)
  })
})
