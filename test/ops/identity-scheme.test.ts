/**
 * File ids in two schemes (pipeline/identity-core.ts IdentityScheme): XXH3-128 in a store that
 * `teiten ingest` found empty (schema v17), SHA-256 in a store that already named files so and
 * in one made by another command (a Kafka storage worker's sensors send SHA-256 ids). Whatever
 * the scheme, a file read again is known and its packets count once. Batch sizes follow the same
 * rule (schema v18): LARGE_BATCH_ROWS in a store `teiten ingest` found empty, BATCH_ROWS elsewhere.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { expandPaths } from '../../pipeline/files.js'
import { CONTENT_BUDGET_BYTES, FileIdentities, fileIdentity, IDENTITY_GZIP_LIMITS } from '../../pipeline/identity.js'
import { BATCH_ROWS, ingestFiles, LARGE_BATCH_ROWS } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { addTruth, emptyTruth, eventStats, generate, pcap, tempDir, testEnricher, writeCapture } from './helpers.js'

const work = tempDir('teiten-identity-scheme-')
afterAll(() => work.cleanup())

/** 3 MiB + 17 bytes: past the one-call size (1 MiB), hashed as a stream of 256 KiB reads. */
const streamed = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31 + 7) & 0xff))
const small = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 131 + (i >> 8)) & 0xff))

// XXH3-128 as `xxhsum -H2` (xxHash 0.8.1) prints it; the empty input's is the reference's own test vector.
const KNOWN: Array<[string, Buffer, string]> = [
  ['empty', Buffer.alloc(0), '99aa06d3014798d86001c324468d497f'],
  ['one byte "a"', Buffer.from('a'), 'a96faf705af16834e6c632b61e964e1f'],
  ['1,000 bytes (read in one call)', small, 'a142184d4927ca442ac5b3b66d7cf18f'],
  ['3 MiB + 17 bytes (read as a stream)', streamed, '8413aef4e4cda21fd60b25da5ed5af00'],
]

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex').slice(0, 32)

describe('XXH3-128 file ids', () => {
  it.each(KNOWN)('of %s are the reference implementation’s', async (name, bytes, expected) => {
    const path = join(work.path, 'known', `${name.replace(/\W+/g, '-')}.bin`)
    mkdirSync(join(work.path, 'known'), { recursive: true })
    writeFileSync(path, bytes)
    expect(await fileIdentity(path, IDENTITY_GZIP_LIMITS, 'xxh128')).toEqual({ id: expected, rawId: expected })
    expect((await fileIdentity(path)).id).toBe(sha(bytes)) // SHA-256 stays the default
  })

  it('name a gzip file by what it decompresses to, and keep the hash of its bytes as raw id', async () => {
    const path = join(work.path, 'known', 'streamed.bin.gz')
    writeFileSync(path, gzipSync(streamed))
    const ids = await fileIdentity(path, IDENTITY_GZIP_LIMITS, 'xxh128')
    expect(ids.id).toBe(KNOWN[3]![2])
    expect(ids.rawId).toMatch(/^[0-9a-f]{32}$/)
    expect(ids.rawId).not.toBe(ids.id)
  })

  it('are the same from the hashing worker, also when hashing began in the other scheme', async () => {
    const paths = KNOWN.map(([name]) => join(work.path, 'known', `${name.replace(/\W+/g, '-')}.bin`))
    const early = new FileIdentities(paths, 4, IDENTITY_GZIP_LIMITS, CONTENT_BUDGET_BYTES, 'sha256')
    early.startEarly()
    await early.peek(3).catch(() => undefined) // the worker is well under way in SHA-256
    try {
      // Not through peek: peek hands identities out, after which the scheme is fixed.
      const fresh = new FileIdentities(paths, 4, IDENTITY_GZIP_LIMITS, CONTENT_BUDGET_BYTES, 'sha256')
      fresh.startEarly()
      // The first file's SHA-256 id is computed (and not handed out) before the scheme changes.
      while (!fresh.ready(0)) await delay(5)
      fresh.useScheme('xxh128')
      for (let i = 0; i < paths.length; i++) expect((await fresh.get(i)).id).toBe(KNOWN[i]![2])
      expect(() => fresh.useScheme('sha256')).toThrow(RangeError)
      fresh.close()
      // Handed out in one scheme, an identity is never recomputed in another.
      expect(() => early.useScheme('xxh128')).toThrow(RangeError)
    } finally {
      early.close()
    }
  })
})

describe('the scheme of a store', () => {
  const captures = (dir: string, seeds: number[]) =>
    seeds.map((seed, k) => {
      const g = generate({ seed, packets: 1_500 + 40_000 * k, startSec: Date.UTC(2024, 0, 1 + k) / 1000 })
      return { path: writeCapture(join(work.path, dir, 's', `f${seed}.pcap`), pcap(g.packets)), truth: g.truth }
    })

  const ingest = async (store: Store, paths: string[]) =>
    ingestFiles(await expandPaths(paths), {
      sink: new StoreSink(store),
      enricher: testEnricher(),
      logger: silentLogger,
    })

  const ledgerIds = async (store: Store) =>
    (await store.query<{ f: string }>('SELECT file_id AS f FROM ingested_files FINAL ORDER BY f')).map((r) => r.f)

  it('is XXH3-128 when teiten ingest finds it empty, and a file read again is skipped', async () => {
    const store = await openStore({
      dataDir: join(work.path, 'made-by-ingest'),
      logger: silentLogger,
      host: false,
      newStoreIdentity: 'xxh128',
    })
    try {
      expect(await new StoreSink(store).identityScheme()).toBe('xxh128')
      expect(await new StoreSink(store).batchRows()).toBe(LARGE_BATCH_ROWS)
      const files = captures('spool-xxh', [501, 502])
      const first = await ingest(
        store,
        files.map((f) => f.path),
      )
      expect(first.filesIngested).toBe(2)
      const expected = await Promise.all(
        files.map(async (f) => (await fileIdentity(f.path, IDENTITY_GZIP_LIMITS, 'xxh128')).id),
      )
      expect(await ledgerIds(store)).toEqual([...expected].sort())
      const again = await ingest(
        store,
        files.map((f) => f.path),
      )
      expect([again.filesIngested, again.filesSkipped]).toEqual([0, 2])
      const truth = files.reduce((t, f) => addTruth(t, f.truth), emptyTruth())
      expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
    } finally {
      await store.close()
    }
  }, 120_000)

  it('stays SHA-256 for a store that held files before, and for one another command made', async () => {
    const dataDir = join(work.path, 'older')
    const files = captures('spool-sha', [601, 602])
    // Made by another command (no preference): SHA-256 from the start, as every store before v17.
    let store = await openStore({ dataDir, logger: silentLogger, host: false })
    await ingest(store, [files[0]!.path])
    // As a store of a version before v17 would be: data, and v17 not yet decided.
    await store.command('ALTER TABLE schema_migrations DELETE WHERE version = 17 SETTINGS mutations_sync = 2')
    await store.close()
    store = await openStore({ dataDir, logger: silentLogger, host: false, newStoreIdentity: 'xxh128' })
    try {
      expect(await new StoreSink(store).identityScheme()).toBe('sha256')
      expect(await new StoreSink(store).batchRows()).toBe(BATCH_ROWS)
      const run = await ingest(
        store,
        files.map((f) => f.path),
      )
      expect([run.filesIngested, run.filesSkipped]).toEqual([1, 1])
      const expected = await Promise.all(files.map(async (f) => (await fileIdentity(f.path)).id))
      expect(await ledgerIds(store)).toEqual([...expected].sort())
      const truth = files.reduce((t, f) => addTruth(t, f.truth), emptyTruth())
      expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
    } finally {
      await store.close()
    }
  }, 120_000)
})

describe('the batch size of a store', () => {
  /** The rows of each batch the pipeline hands the store, in order. */
  const batchesOf = async (store: Store, path: string) => {
    const inner = new StoreSink(store)
    const rows: number[] = []
    const sink: EventSink = {
      acceptsNative: inner.acceptsNative,
      identityScheme: () => inner.identityScheme(),
      batchRows: () => inner.batchRows(),
      lookupFile: (id) => inner.lookupFile(id),
      writeBatch: (b) => {
        rows.push(b.rows)
        return inner.writeBatch(b)
      },
      finishFile: (r) => inner.finishFile(r),
      close: async () => {},
    }
    await ingestFiles(await expandPaths([path]), { sink, enricher: testEnricher(), logger: silentLogger })
    return rows
  }
  const g = generate({ seed: 707, packets: LARGE_BATCH_ROWS + 2_000, noise: 0 })
  const capture = () => writeCapture(join(work.path, 'batch-size', 'f.pcap'), pcap(g.packets))
  const older = generate({ seed: 703, packets: 1_500, startSec: Date.UTC(2024, 1, 1) / 1000 })

  it.each([
    ['made empty by teiten ingest', { newStoreIdentity: 'xxh128' as const }, false, [LARGE_BATCH_ROWS, 2_000]],
    ['made by another command', {}, false, [BATCH_ROWS, LARGE_BATCH_ROWS + 2_000 - BATCH_ROWS]],
    // A store of schema v17 holding data: a file a crash cut under BATCH_ROWS must be cut there again.
    [
      'holding data when v18 came',
      { newStoreIdentity: 'xxh128' as const },
      true,
      [BATCH_ROWS, LARGE_BATCH_ROWS + 2_000 - BATCH_ROWS],
    ],
  ])(
    'cuts files as a store %s is decided to',
    async (name, options, heldData, expected) => {
      expect(g.truth.kept).toBe(LARGE_BATCH_ROWS + 2_000)
      const dataDir = join(work.path, 'batch-size', name.replaceAll(' ', '-'))
      let store = await openStore({ dataDir, logger: silentLogger, host: false, ...options })
      if (heldData) {
        const path = writeCapture(join(work.path, 'batch-size', 'older.pcap'), pcap(older.packets))
        await ingestFiles(await expandPaths([path]), {
          sink: new StoreSink(store),
          enricher: testEnricher(),
          logger: silentLogger,
        })
        await store.command('ALTER TABLE schema_migrations DELETE WHERE version = 18 SETTINGS mutations_sync = 2')
        await store.close()
        store = await openStore({ dataDir, logger: silentLogger, host: false, ...options })
      }
      try {
        expect(await batchesOf(store, capture())).toEqual(expected)
        const truth = heldData ? addTruth(addTruth(emptyTruth(), g.truth), older.truth) : g.truth
        expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
      } finally {
        await store.close()
      }
    },
    120_000,
  )
})
