/**
 * A big file whose identity is still being hashed when the reader gets to it is read meanwhile
 * (pipeline/ingest.ts, early reads): its batches are held under a stand-in id until the id is
 * known and the ledger says the file is new, then sent with the id written in place. Whatever
 * the timing, the store must hold what a plain read stores, once, under the file's id; a file
 * that turns out to be stored already, or whose read stops before its id is known, leaves
 * nothing behind, in the tables or the counters.
 *
 * The hashing is real (the worker); the test decides when its answer reaches the reader.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { createMetrics } from '../../core/metrics.js'
import { expandPaths } from '../../pipeline/files.js'
import { FileIdentities, type FileIds, fileIdentity } from '../../pipeline/identity.js'
import { BATCH_ROWS, type IngestOptions, ingestFiles } from '../../pipeline/ingest.js'
import type { EventBatch, EventSink } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import {
  addTruth,
  emptyTruth,
  eventStats,
  generate,
  pcap,
  storedCounts,
  type Truth,
  tempDir,
  testEnricher,
  truncateAll,
  writeCapture,
} from './helpers.js'

const work = tempDir('teiten-early-')
let store: Store

beforeAll(async () => {
  store = await openStore({ dataDir: join(work.path, 'data'), logger: silentLogger, host: false })
}, 60_000)

afterAll(async () => {
  await store?.close()
  work.cleanup()
})

/**
 * The worker's identities, handed to the reader only once `open` is called (or failing then,
 * with `fail`): until then the reader finds the files it is told about still being hashed.
 */
class WithheldIdentities extends FileIdentities {
  private opened!: () => void
  private readonly gate = new Promise<void>((resolve) => {
    this.opened = resolve
  })
  constructor(
    paths: string[],
    private readonly withheld: Set<number>,
    private readonly fail = false,
  ) {
    super(paths, 4)
    this.startEarly()
  }
  open(): void {
    this.opened()
  }
  override hashing(i: number): boolean {
    return this.withheld.has(i) || super.hashing(i)
  }
  override get(i: number): Promise<FileIds> {
    const ids = super.get(i)
    if (!this.withheld.has(i)) return ids
    return ids.then(async (known) => {
      await this.gate
      if (this.fail) throw new TeitenError('CAPTURE_READ_FAILED', 'the disk went away', { file: `file ${i}` })
      return known
    })
  }
}

/** StoreSink, noting when each batch is written relative to the identities' gate. */
function watchedSink(): EventSink & { batchesBeforeOpen: number; batches: EventBatch[]; gateOpen: boolean } {
  const inner = new StoreSink(store)
  const sink = Object.assign(Object.create(inner) as StoreSink, {
    batchesBeforeOpen: 0,
    batches: [] as EventBatch[],
    gateOpen: false,
    async writeBatch(b: EventBatch) {
      if (!sink.gateOpen) sink.batchesBeforeOpen++
      sink.batches.push({ ...b, body: Buffer.alloc(0) })
      return inner.writeBatch(b)
    },
  })
  return sink
}

let seed = 700
function capture(packets: number, name: string): { path: string; truth: Truth } {
  const g = generate({ seed: seed++, packets, noise: 0.02, startSec: Date.UTC(2024, 0, 1 + (seed % 20)) / 1000 })
  return { path: writeCapture(join(work.path, `spool${seed}`, 's', name), pcap(g.packets)), truth: g.truth }
}

async function ledger(): Promise<{ file_id: string; kept: string }[]> {
  return store.query('SELECT file_id, toString(kept) AS kept FROM ingested_files FINAL ORDER BY file_id')
}

async function fileIdsStored(): Promise<string[]> {
  return (await store.query<{ f: string }>('SELECT DISTINCT file_id AS f FROM events ORDER BY f')).map((r) => r.f)
}

async function expectStoredOnce(truth: Truth): Promise<void> {
  expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
  const counts = await storedCounts(store)
  expect(counts.all).toEqual(truth.all)
  expect(counts.access).toEqual(truth.access)
  const [hourly] = await store.query<{ n: string }>('SELECT toString(sum(packets)) AS n FROM hourly_agg')
  expect(Number(hourly!.n)).toBe(truth.kept)
}

/** The batches a plain read of `kept` rows sends: [file id, batch number, rows]. */
function batchesOf(id: string, kept: number): [string, number, number][] {
  const out: [string, number, number][] = []
  for (let no = 0; no * BATCH_ROWS < kept; no++) out.push([id, no, Math.min(BATCH_ROWS, kept - no * BATCH_ROWS)])
  return out
}

const run = async (paths: string[], options: Partial<IngestOptions> = {}) =>
  ingestFiles(await expandPaths(paths), {
    sink: new StoreSink(store),
    enricher: testEnricher(),
    logger: silentLogger,
    ...options,
  })

describe('a file read while its identity is hashed', () => {
  it('holds its batches until the id is known, then stores them once under that id', async () => {
    await truncateAll(store)
    const big = capture(BATCH_ROWS * 2 + 30_000, 'big.pcap')
    const id = (await fileIdentity(big.path)).id
    const identities = new WithheldIdentities([big.path], new Set([0]))
    const sink = watchedSink()
    // Opened once most of the file is read: two batches are held by then, the third is
    // encoded under the real id.
    const bytes = (await expandPaths([big.path]))[0]!.size
    const summary = await run([big.path], {
      sink,
      identities,
      earlyRead: { minBytes: 1, batches: 10 },
      onProgress: (_f, at) => {
        if (at < bytes * 0.85 || sink.gateOpen) return
        sink.gateOpen = true
        identities.open()
      },
    })
    expect(sink.batchesBeforeOpen).toBe(0)
    expect(sink.batches.map((b) => [b.fileId, b.batchNo, b.rows])).toEqual(batchesOf(id, big.truth.kept))
    expect([summary.filesIngested, summary.records, summary.kept]).toEqual([1, big.truth.records, big.truth.kept])
    expect(summary.outcomes[0]!.fileId).toBe(id)
    expect(await fileIdsStored()).toEqual([id])
    expect(await ledger()).toEqual([{ file_id: id, kept: String(big.truth.kept) }])
    await expectStoredOnce(big.truth)
  }, 120_000)

  it('waits with the batches it may hold, and counts the packets once, when the id comes late', async () => {
    await truncateAll(store)
    const big = capture(BATCH_ROWS * 2 + 30_000, 'late.pcap')
    const identities = new WithheldIdentities([big.path], new Set([0]))
    const sink = watchedSink()
    const metrics = createMetrics()
    const opening = setTimeout(() => {
      sink.gateOpen = true
      identities.open()
    }, 1_500)
    const summary = await run([big.path], { sink, identities, metrics, earlyRead: { minBytes: 1, batches: 1 } })
    clearTimeout(opening)
    expect(sink.batchesBeforeOpen).toBe(0)
    const id = (await fileIdentity(big.path)).id
    expect(sink.batches.map((b) => [b.fileId, b.batchNo, b.rows])).toEqual(batchesOf(id, big.truth.kept))
    expect(summary.kept).toBe(big.truth.kept)
    expect((await metrics.packetsRead.get()).values[0]!.value).toBe(big.truth.records)
    await expectStoredOnce(big.truth)
  }, 120_000)

  it('gives a small file its id in the encoder, where it waits for a group insert', async () => {
    await truncateAll(store)
    const a = capture(20_000, 'a.pcap')
    const b = capture(30_000, 'b.pcap')
    const c = capture(25_000, 'c.pcap')
    const paths = [a.path, b.path, c.path]
    const ids = await Promise.all(paths.map(async (p) => (await fileIdentity(p)).id))
    // b is read while a's rows wait in the encoder; its id comes after it was read whole.
    const identities = new WithheldIdentities(paths, new Set([1]))
    const sink = watchedSink()
    setTimeout(() => identities.open(), 800)
    const summary = await run(paths, { sink, identities, earlyRead: { minBytes: 1, batches: 4 } })
    expect(summary.filesIngested).toBe(3)
    expect(sink.batches).toEqual([]) // three small files: group inserts only
    expect(await fileIdsStored()).toEqual([...ids].sort())
    const perFile = await store.query<{ f: string; n: string }>(
      'SELECT file_id AS f, toString(count()) AS n FROM events GROUP BY f ORDER BY f',
    )
    const expected = [a, b, c].map((x, k) => ({ f: ids[k]!, n: String(x.truth.kept) }))
    expect(perFile).toEqual(expected.sort((x, y) => x.f.localeCompare(y.f)))
    await expectStoredOnce(addTruth(addTruth(addTruth(emptyTruth(), a.truth), b.truth), c.truth))
  }, 120_000)
})

describe('an early read that must not count', () => {
  /** A capture stored by a run of its own, and a renamed copy of it in `dir`. */
  const storedAndCopied = async (dir: string) => {
    await truncateAll(store)
    const big = capture(BATCH_ROWS + 9_000, 'first.pcap')
    await run([big.path])
    const copy = writeCapture(join(work.path, dir, 's', 'renamed.pcap'), readFileSync(big.path))
    return { big, copy }
  }

  it('drops what it read when the file is already stored, and counts nothing of it', async () => {
    const { big, copy } = await storedAndCopied('copy')
    const identities = new WithheldIdentities([copy], new Set([0]))
    const sink = watchedSink()
    const metrics = createMetrics()
    setTimeout(() => identities.open(), 1_000)
    const summary = await run([copy], { sink, identities, metrics, earlyRead: { minBytes: 1, batches: 1 } })
    expect([summary.filesIngested, summary.filesSkipped]).toEqual([0, 1])
    expect(summary.countries).toBe(0)
    expect(sink.batches).toEqual([])
    expect((await metrics.packetsRead.get()).values[0]?.value ?? 0).toBe(0)
    await expectStoredOnce(big.truth)
    expect((await ledger()).length).toBe(1)
  }, 120_000)

  it('counts the countries of a later file that the dropped read met first', async () => {
    const { big, copy } = await storedAndCopied('copy-then-new')
    const fresh = capture(3_000, 'fresh.pcap')
    const identities = new WithheldIdentities([copy, fresh.path], new Set([0]))
    setTimeout(() => identities.open(), 1_000)
    const summary = await run([copy, fresh.path], { identities, earlyRead: { minBytes: 1, batches: 1 } })
    expect([summary.filesIngested, summary.filesSkipped]).toEqual([1, 1])
    const [row] = await store.query<{ n: string }>(
      'SELECT toString(uniqExact(country)) AS n FROM events WHERE file_id = {id:String}',
      { id: (await fileIdentity(fresh.path)).id },
    )
    expect(Number(row!.n)).toBeGreaterThan(1)
    expect(summary.countries).toBe(Number(row!.n))
    await expectStoredOnce(addTruth(addTruth(emptyTruth(), big.truth), fresh.truth))
  }, 120_000)

  it('stores nothing when the run is stopped before the id is known, and the next run stores it once', async () => {
    await truncateAll(store)
    const big = capture(BATCH_ROWS * 2 + 1_000, 'stopped.pcap')
    const identities = new WithheldIdentities([big.path], new Set([0]))
    const stop = new AbortController()
    const sink = watchedSink()
    const bytes = (await expandPaths([big.path]))[0]!.size
    const summary = await run([big.path], {
      sink,
      identities,
      signal: stop.signal,
      earlyRead: { minBytes: 1, batches: 10 },
      onProgress: (_f, at) => {
        if (at > bytes / 2) stop.abort()
      },
    })
    identities.open()
    expect(summary.outcomes).toEqual([])
    expect(sink.batches).toEqual([])
    expect(await eventStats(store)).toEqual({ events: 0, duplicates: 0 })
    expect(await ledger()).toEqual([])
    const again = await run([big.path])
    expect(again.filesIngested).toBe(1)
    await expectStoredOnce(big.truth)
  }, 120_000)

  it('stores nothing of a file whose identity fails, which is reported failed', async () => {
    await truncateAll(store)
    const big = capture(BATCH_ROWS + 2_000, 'gone.pcap')
    const identities = new WithheldIdentities([big.path], new Set([0]), true)
    const sink = watchedSink()
    setTimeout(() => identities.open(), 500)
    const summary = await run([big.path], { sink, identities, earlyRead: { minBytes: 1, batches: 1 } })
    expect(summary.filesFailed).toBe(1)
    expect(summary.outcomes[0]!.error?.code).toBe('CAPTURE_READ_FAILED')
    expect(sink.batches).toEqual([])
    expect(await eventStats(store)).toEqual({ events: 0, duplicates: 0 })
    expect(await ledger()).toEqual([])
  }, 120_000)
})
