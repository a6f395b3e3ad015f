/**
 * The spool watcher against the real embedded ClickHouse, driven scan by scan with a fake clock
 * (no sleeping, no timing): which files it takes and when, what it reports, how it resumes, and
 * that the stored counts are exact after each step.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, renameSync, rmSync, unlinkSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { createMetrics } from '../../core/metrics.js'
import { fileIdentity, IDENTITY_GZIP_LIMITS } from '../../pipeline/identity.js'
import { ingestFiles } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
import { SpoolWatcher, type WatchOptions } from '../../pipeline/watch.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import {
  addTruth,
  emptyTruth,
  eventStats,
  generate,
  gzip,
  pcap,
  storedCounts,
  type Truth,
  tempDir,
  testEnricher,
  truncateAll,
  writeCapture,
} from './helpers.js'

const data = tempDir('teiten-watch-data-')
let store: Store
let sink: StoreSink
/** The store's batch size: made as `teiten ingest` makes stores, LARGE_BATCH_ROWS (schema v18). */
let batchRows: number

beforeAll(async () => {
  // Made as `teiten ingest --watch` makes it: files named by XXH3-128 (a grown file is checked in it).
  store = await openStore({ dataDir: data.path, logger: silentLogger, host: false, newStoreIdentity: 'xxh128' })
  sink = new StoreSink(store)
  batchRows = await sink.batchRows()
})
afterAll(async () => {
  await store?.close()
  data.cleanup()
})

let spool: ReturnType<typeof tempDir>
beforeEach(async () => {
  await truncateAll(store)
  spool?.cleanup()
  spool = tempDir('teiten-spool-')
  return () => spool.cleanup()
})

/** Records every log call, to check what the watcher reports. */
function recordingLogger() {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = []
  const make = (bindings: Record<string, unknown>) => {
    const log =
      (level: string) =>
      (obj: unknown, msg?: string): void => {
        lines.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg })
      }
    const logger = {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (b: Record<string, unknown>) => make({ ...bindings, ...b }),
    }
    return logger
  }
  return { logger: make({}), lines }
}

let clock = 1_700_000_000_000
const now = () => clock

function watcher(extra: Partial<WatchOptions> = {}) {
  const rec = recordingLogger()
  const w = new SpoolWatcher({
    root: spool.path,
    sink,
    enricher: testEnricher(),
    logger: rec.logger,
    settleMs: 30_000,
    pollIntervalMs: 50,
    statePath: join(data.path, 'watch-state.jsonl'),
    now,
    ...extra,
  })
  return { w, lines: rec.lines }
}

/** Writes a capture with a fixed mtime (seconds), so "newer" does not depend on write speed. */
function put(rel: string, bytes: Buffer, mtimeSec: number): string {
  const path = writeCapture(join(spool.path, rel), bytes)
  utimesSync(path, mtimeSec, mtimeSec)
  return path
}

async function expectStored(truth: Truth): Promise<void> {
  expect(await storedCounts(store)).toEqual({ access: truth.access, all: truth.all })
  expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
}

describe('spool watcher', () => {
  it('takes a file once a newer one is beside it or it has settled, never while it grows', async () => {
    const a = generate({ seed: 1, packets: 3000 })
    const b = generate({ seed: 2, packets: 2000, startSec: Date.UTC(2024, 0, 2) / 1000 })
    const aBytes = pcap(a.packets)
    const half = 24 + a.packets.slice(0, 1500).reduce((n, p) => n + 16 + p.data.length, 0)
    const aPath = put('sensor-1/a.pcap', aBytes.subarray(0, half), 1000)
    const { w } = watcher()

    expect(await w.tick()).toEqual([]) // first sight: nothing is complete yet
    appendFileSync(aPath, aBytes.subarray(half))
    utimesSync(aPath, 1001, 1001)
    expect(await w.tick()).toEqual([]) // it grew
    expect(await w.tick()).toEqual([]) // stable, but newest in its folder and not settled
    put('sensor-1/b.pcap', pcap(b.packets), 2000)
    expect(await w.tick()).toEqual([aPath]) // a newer file appeared: a is complete
    await expectStored(a.truth)
    expect(await w.tick()).toEqual([]) // b is stable but newest and not settled
    clock += 30_000
    expect(await w.tick()).toEqual([join(spool.path, 'sensor-1/b.pcap')])
    await expectStored(addTruth(addTruth(emptyTruth(), a.truth), b.truth))
    expect(w.counts).toMatchObject({ ingested: 2, skipped: 0, failed: 0 })
    const sensors = await store.query<{ sensor: string; n: string }>(
      'SELECT sensor, toString(count()) AS n FROM events GROUP BY sensor',
    )
    expect(sensors).toEqual([{ sensor: 'sensor-1', n: String(a.truth.kept + b.truth.kept) }])
  })

  it('resumes after a restart from the state file without hashing, and the ledger stays the truth', async () => {
    const a = generate({ seed: 3, packets: 1000 })
    const b = generate({ seed: 4, packets: 1000 })
    put('s/a.pcap', pcap(a.packets), 1000)
    put('s/b.pcap', pcap(b.packets), 1001)
    const first = watcher({ settleMs: 0 })
    await first.w.tick()
    expect((await first.w.tick()).length).toBe(2)
    const truth = addTruth(addTruth(emptyTruth(), a.truth), b.truth)
    await expectStored(truth)

    const again = watcher({ settleMs: 0 })
    await again.w.tick()
    await again.w.tick()
    expect(again.w.counts).toMatchObject({ ingested: 0, skipped: 2, skippedFromState: 2 })
    await expectStored(truth)

    // Without the state file: hashed again, and the ledger says "already ingested".
    unlinkSync(join(data.path, 'watch-state.jsonl'))
    const cold = watcher({ settleMs: 0 })
    await cold.w.tick()
    await cold.w.tick()
    expect(cold.w.counts).toMatchObject({ ingested: 0, skipped: 2, skippedFromState: 0 })
    await expectStored(truth)

    // A state file that vouches for files the store does not have does not hide them.
    await truncateAll(store)
    const stale = watcher({ settleMs: 0 })
    await stale.w.tick()
    await stale.w.tick()
    expect(stale.w.counts).toMatchObject({ ingested: 2, skippedFromState: 0 })
    await expectStored(truth)

    // A damaged state file (a line cut by a crash) costs hashing, nothing else.
    appendFileSync(join(data.path, 'watch-state.jsonl'), '{"p":"s/a.pcap","g":"12')
    const damaged = watcher({ settleMs: 0 })
    await damaged.w.tick()
    await damaged.w.tick()
    expect(damaged.w.counts).toMatchObject({ ingested: 0, skipped: 2, skippedFromState: 2 })
  })

  it('treats a file replaced under the same name as new data, and identical bytes as old', async () => {
    const a = generate({ seed: 5, packets: 800 })
    const c = generate({ seed: 6, packets: 900, startSec: Date.UTC(2024, 0, 3) / 1000 })
    const path = put('s/cap.pcap', pcap(a.packets), 1000)
    const { w } = watcher({ settleMs: 0 })
    await w.tick()
    expect(await w.tick()).toEqual([path])

    put('s/cap.pcap', pcap(a.packets), 1005) // rewritten, same bytes
    await w.tick()
    expect(await w.tick()).toEqual([path])
    expect(w.counts).toMatchObject({ ingested: 1, skipped: 1 })
    await expectStored(a.truth)

    put('s/cap.pcap', pcap(c.packets), 1010) // same name, other content
    await w.tick()
    expect(await w.tick()).toEqual([path])
    expect(w.counts).toMatchObject({ ingested: 2, skipped: 1 })
    await expectStored(addTruth(addTruth(emptyTruth(), a.truth), c.truth))
  })

  it('reports renamed, deleted and unreadable files with a reason, and loses none of them', async () => {
    const x = generate({ seed: 7, packets: 500 })
    const z = generate({ seed: 8, packets: 500 })
    const u = generate({ seed: 9, packets: 500 })
    const metrics = createMetrics({ defaultMetrics: false })
    const { w, lines } = watcher({ metrics })
    const xPath = put('s/x.pcap', pcap(x.packets), 1000)
    const zPath = put('s/z.pcap', pcap(z.packets), 1001)
    await w.tick()
    renameSync(xPath, join(spool.path, 's/y.pcap'))
    unlinkSync(zPath)
    await w.tick()
    const reports = lines
      .filter((l) => l.obj.reason)
      .map((l) => ({ file: l.obj.file, reason: l.obj.reason, to: l.obj.to }))
    expect(reports).toEqual([
      { file: xPath, reason: 'renamed', to: join(spool.path, 's/y.pcap') },
      { file: zPath, reason: 'deleted', to: undefined },
    ])
    clock += 30_000
    await w.tick()
    expect(w.counts.ingested).toBe(1) // y.pcap, the renamed x
    await expectStored(x.truth)

    // Unreadable: the file turns into something that cannot be read between hashing and reading
    // (root reads any file whatever its mode; as another user, chmod 000 is checked too).
    const uBytes = pcap(u.packets)
    const uPath = put('s/u.pcap', uBytes, 2000)
    const uId = (await fileIdentity(uPath, IDENTITY_GZIP_LIMITS, await sink.identityScheme())).id
    let swapped = false
    const swapping: EventSink = {
      identityScheme: () => sink.identityScheme(),
      batchRows: () => sink.batchRows(),
      lookupFile: async (id) => {
        if (id === uId && !swapped) {
          swapped = true
          unlinkSync(uPath)
          mkdirSync(uPath)
        }
        return sink.lookupFile(id)
      },
      writeBatch: (b) => sink.writeBatch(b),
      finishFile: (r) => sink.finishFile(r),
      close: async () => {},
    }
    const flaky = watcher({ sink: swapping, metrics, settleMs: 0 })
    await flaky.w.tick()
    await flaky.w.tick()
    expect(flaky.lines.filter((l) => l.obj.reason).map((l) => [l.obj.file, l.obj.reason, l.level])).toEqual([
      [uPath, 'unreadable', 'error'],
    ])
    // Nothing was recorded for it: once readable again it is ingested.
    rmSync(uPath, { recursive: true })
    put('s/u.pcap', uBytes, 2001)
    await flaky.w.tick()
    await flaky.w.tick()
    expect(flaky.w.counts.ingested).toBe(1)
    await expectStored(addTruth(addTruth(emptyTruth(), x.truth), u.truth))

    if (process.getuid?.() !== 0) {
      const v = generate({ seed: 10, packets: 100 })
      const vPath = put('s/v.pcap', pcap(v.packets), 3000)
      chmodSync(vPath, 0)
      const plain = watcher({ settleMs: 0 })
      await plain.w.tick()
      await plain.w.tick()
      expect(plain.w.counts.reported.unreadable).toBe(1)
      chmodSync(vPath, 0o644)
      await plain.w.tick()
      await plain.w.tick()
      expect(plain.w.counts.ingested).toBe(1)
    }
    const text = await metrics.registry.metrics()
    expect(text).toMatch(/teiten_watch_files_reported_total\{reason="renamed"\} 1/)
    expect(text).toMatch(/teiten_watch_files_reported_total\{reason="deleted"\} 1/)
    expect(text).toMatch(/teiten_watch_files_reported_total\{reason="unreadable"\} 1/)
  })

  it('reports a file that grew after it was taken and does not count its first part twice', async () => {
    const head = generate({ seed: 11, packets: 1200 })
    const tail = generate({ seed: 12, packets: 800, startSec: Date.UTC(2024, 0, 2) / 1000 })
    const whole = pcap([...head.packets, ...tail.packets])
    const cut = pcap(head.packets).length
    const gPath = put('s/g.pcap', whole.subarray(0, cut), 1000)
    const { w, lines } = watcher({ settleMs: 1000 })
    await w.tick()
    clock += 1000
    expect(await w.tick()).toEqual([gPath])
    await expectStored(head.truth)
    appendFileSync(gPath, whole.subarray(cut))
    await w.tick()
    clock += 1000
    await w.tick()
    expect(lines.filter((l) => l.obj.reason).map((l) => [l.obj.file, l.obj.reason])).toEqual([
      [gPath, 'grew_after_ingest'],
    ])
    await expectStored(head.truth)

    // After a restart it is not taken again either.
    const again = watcher({ settleMs: 0 })
    await again.w.tick()
    await again.w.tick()
    expect(again.w.counts).toMatchObject({ ingested: 0, skippedFromState: 1 })
    await expectStored(head.truth)
  })

  it('reports a file that changed while it was read, and then that it grew', async () => {
    // Over 2 MiB, so the read of the bytes appended during the first chunk comes after them.
    const head = generate({ seed: 17, packets: 30_000 })
    const tail = generate({ seed: 18, packets: 300, startSec: Date.UTC(2024, 0, 2) / 1000 })
    const path = put('s/w.pcap', pcap(head.packets), 1000)
    const more = pcap(tail.packets).subarray(24)
    const base = testEnricher()
    const appending = {
      enrich: (p: Parameters<typeof base.enrich>[0], o: Parameters<typeof base.enrich>[1]) => {
        base.enrich(p, o)
        if (base.lookups === 10) appendFileSync(path, more) // the sensor writes on while we read
      },
    }
    const { w, lines } = watcher({ settleMs: 0, enricher: appending })
    await w.tick()
    expect(await w.tick()).toEqual([path])
    await w.tick()
    await w.tick()
    expect(lines.filter((l) => l.obj.reason).map((l) => [l.obj.file, l.obj.reason])).toEqual([
      [path, 'changed_while_reading'],
      [path, 'grew_after_ingest'],
    ])
    // Read on to its end: everything is stored, once.
    await expectStored(addTruth(addTruth(emptyTruth(), head.truth), tail.truth))
  })

  it('follows tcpdump -z gzip: a compressed copy is not counted again, its newness proves nothing', async () => {
    const a = generate({ seed: 14, packets: 1500 })
    const b = generate({ seed: 15, packets: 1500, startSec: Date.UTC(2024, 0, 2) / 1000 })
    const c = generate({ seed: 16, packets: 500, startSec: Date.UTC(2024, 0, 3) / 1000 })
    const aBytes = pcap(a.packets)
    const bBytes = pcap(b.packets)
    const half = pcap(b.packets.slice(0, 700)).length
    const aPath = put('s/a.pcap', aBytes, 1000)
    const bPath = put('s/b.pcap', bBytes.subarray(0, half), 1060) // being written
    const { w, lines } = watcher({ settleMs: 30_000 })
    await w.tick()
    expect(await w.tick()).toEqual([aPath])
    // Rotation: gzip compresses a.pcap into a.pcap.gz (newer than b.pcap) and removes a.pcap.
    put('s/a.pcap.gz', gzip(aBytes), 1070)
    await w.tick()
    unlinkSync(aPath)
    expect(await w.tick()).toEqual([]) // b.pcap is still the newest plain file: not taken
    clock += 30_000
    appendFileSync(bPath, bBytes.subarray(half, half + 500)) // tcpdump keeps writing b.pcap
    expect(await w.tick()).toEqual([join(spool.path, 's/a.pcap.gz')]) // settled, and a copy: skipped
    appendFileSync(bPath, bBytes.subarray(half + 500))
    utimesSync(bPath, 1120, 1120)
    const cPath = put('s/c.pcap', pcap(c.packets), 1121)
    await w.tick()
    expect(await w.tick()).toEqual([bPath])
    // b.pcap compressed and removed before the watcher saw its .gz complete.
    unlinkSync(bPath)
    put('s/b.pcap.gz', gzip(bBytes), 1122)
    await w.tick()
    clock += 30_000
    expect(await w.tick()).toEqual([cPath, join(spool.path, 's/b.pcap.gz')])
    expect(w.counts).toMatchObject({ ingested: 3, skipped: 2 })
    expect(lines.filter((l) => l.obj.reason)).toEqual([])
    expect(lines.filter((l) => l.msg?.startsWith('compressed copy')).map((l) => l.obj.file)).toEqual([
      join(spool.path, 's/a.pcap.gz'),
      join(spool.path, 's/b.pcap.gz'),
    ])
    await expectStored(addTruth(addTruth(addTruth(emptyTruth(), a.truth), b.truth), c.truth))
  })

  it('on stop finishes the file in hand; on abort stops at a chunk boundary with no ledger entry', async () => {
    // Big enough for two batches per file.
    const a = generate({ seed: 12, packets: batchRows + 20_000, noise: 0 })
    const b = generate({ seed: 13, packets: 5000 })
    put('s/a.pcap', pcap(a.packets), 1000)
    put('s/b.pcap', pcap(b.packets), 1001)
    const stop = new AbortController()
    const enricher = testEnricher()
    const stopping = {
      enrich: (p: Parameters<typeof enricher.enrich>[0], o: Parameters<typeof enricher.enrich>[1]) => {
        enricher.enrich(p, o)
        if (enricher.lookups === 10_000) stop.abort()
      },
    }
    const { w } = watcher({ settleMs: 0, enricher: stopping, stop: stop.signal })
    await w.tick()
    expect(await w.tick()).toEqual([join(spool.path, 's/a.pcap')]) // a finished, b left for later
    await expectStored(a.truth)

    await truncateAll(store)
    const abort = new AbortController()
    const enricher2 = testEnricher()
    const aborting = {
      enrich: (p: Parameters<typeof enricher.enrich>[0], o: Parameters<typeof enricher.enrich>[1]) => {
        enricher2.enrich(p, o)
        if (enricher2.lookups === batchRows + 10_000) abort.abort()
      },
    }
    const hard = watcher({ settleMs: 0, enricher: aborting, abort: abort.signal, statePath: undefined })
    await hard.w.tick()
    expect(await hard.w.tick()).toEqual([])
    // The first batch is stored; the partial second one is not, and neither is a ledger entry.
    expect(await eventStats(store)).toEqual({ events: batchRows, duplicates: 0 })
    const [{ n }] = await store.query<{ n: string }>('SELECT toString(count()) AS n FROM ingested_files')
    expect(n).toBe('0')

    const rerun = watcher({ settleMs: 0, statePath: undefined })
    await rerun.w.tick()
    expect((await rerun.w.tick()).length).toBe(2)
    await expectStored(addTruth(addTruth(emptyTruth(), a.truth), b.truth))
  })
})

describe('ingest after storage failures (real ClickHouse errors)', () => {
  /** Sends a cut RowBinary body on the Nth batch: ClickHouse itself rejects the insert. */
  function breakingSink(n: number): EventSink & { batches: number } {
    const s = {
      batches: 0,
      identityScheme: () => sink.identityScheme(),
      batchRows: () => sink.batchRows(),
      lookupFile: (id: string) => sink.lookupFile(id),
      finishFile: (r: Parameters<EventSink['finishFile']>[0]) => sink.finishFile(r),
      close: async () => {},
      writeBatch: async (batch: Parameters<EventSink['writeBatch']>[0]) => {
        s.batches++
        if (s.batches === n) {
          return sink.writeBatch({ ...batch, body: batch.body.subarray(0, batch.body.length - 7) })
        }
        return sink.writeBatch(batch)
      },
    }
    return s
  }

  // Batches: f0 has 0, 1, 2 (partial); f1 has 0, 1 (5 rows). Up to two are in flight at once.
  let files: ReturnType<typeof generate>[] | undefined
  it.each([2, 4])('a failed insert on batch %i fails the run; the next run stores every row once', async (n) => {
    files ??= [
      generate({ seed: 20, packets: batchRows * 2 + 1000, noise: 0 }),
      generate({ seed: 30, packets: batchRows + 5, noise: 0, startSec: Date.UTC(2024, 0, 5) / 1000 }),
    ]
    const paths = files.map((f, i) => writeCapture(join(spool.path, `s/f${i}.pcap`), pcap(f.packets)))
    const captures = paths.map((path) => ({ path, size: 0, sensor: 's' }))
    const broken = breakingSink(n)
    const err = await ingestFiles(captures, { sink: broken, enricher: testEnricher(), logger: silentLogger }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(TeitenError)
    expect((err as TeitenError).code).toBe('STORE_INSERT_FAILED')
    const summary = await ingestFiles(captures, { sink, enricher: testEnricher(), logger: silentLogger })
    expect(summary.filesFailed).toBe(0)
    await expectStored(addTruth(addTruth(emptyTruth(), files[0]!.truth), files[1]!.truth))
    expect(existsSync(join(data.path, 'tmp'))).toBe(true)
  })

  it('an abort in the middle of a file leaves it for the next run (ingestFiles, as the CLI uses it)', async () => {
    const f = generate({ seed: 40, packets: batchRows * 2 + 123, noise: 0 })
    const path = writeCapture(join(spool.path, 's/f.pcap'), pcap(f.packets))
    const controller = new AbortController()
    const base = testEnricher()
    const enricher = {
      enrich: (p: Parameters<typeof base.enrich>[0], o: Parameters<typeof base.enrich>[1]) => {
        base.enrich(p, o)
        if (base.lookups === batchRows + 100) controller.abort()
      },
    }
    const cut = await ingestFiles([{ path, size: 0, sensor: 's' }], {
      sink,
      enricher,
      logger: silentLogger,
      signal: controller.signal,
    })
    expect(cut.outcomes).toEqual([])
    const again = await ingestFiles([{ path, size: 0, sensor: 's' }], {
      sink,
      enricher: testEnricher(),
      logger: silentLogger,
    })
    expect(again.filesIngested).toBe(1)
    await expectStored(f.truth)
  })
})
