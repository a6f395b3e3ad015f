/**
 * A capture and its gzip'd copy are one capture: identity is the hash of the decompressed
 * content (pipeline/identity.ts), on the group path (small files) and the multi-batch path, in
 * one run and across runs, whatever their names. A store written before 0.3 knows .gz files
 * under the hash of their bytes (ledger rows, pending group rows, batch tokens of a file cut
 * short by a crash): after the upgrade (migration 3) those are recognised, never counted again.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { expandPaths } from '../../pipeline/files.js'
import { FileIdentities, fileIdentity, IDENTITY_GZIP_LIMITS } from '../../pipeline/identity.js'
import { BATCH_ROWS, ingestFiles } from '../../pipeline/ingest.js'
import { type EventSink, groupToken } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { migrate } from '../../store/migrate.js'
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

const work = tempDir('teiten-gzid-')
let store: Store
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 32)

const small = generate({ seed: 301, packets: 900 })
const small2 = generate({ seed: 302, packets: 700, startSec: Date.UTC(2024, 0, 2) / 1000 })
const smallBytes = pcap(small.packets)
const small2Bytes = pcap(small2.packets)

beforeAll(async () => {
  store = await openStore({ dataDir: join(work.path, 'data'), logger: silentLogger, host: false })
}, 60_000)

afterAll(async () => {
  await store?.close()
  work.cleanup()
})

let dirNo = 0
function dir(): string {
  return join(work.path, `spool${dirNo++}`)
}

const ingest = async (paths: string[], sink: EventSink = new StoreSink(store)) =>
  ingestFiles(await expandPaths(paths), { sink, enricher: testEnricher(), logger: silentLogger })

async function ledgerRows(): Promise<{ file_id: string; raw_id: string; status: string }[]> {
  return store.query(
    'SELECT file_id, raw_id, toString(status) AS status FROM ingested_files FINAL ORDER BY file_id, raw_id',
  )
}

async function expectStored(truth: Truth): Promise<void> {
  expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
  const counts = await storedCounts(store)
  expect(counts.all).toEqual(truth.all)
  expect(counts.access).toEqual(truth.access)
}

/** A multi-member gzip stream: what `cat a.gz b.gz` makes, and zcat reads as one. */
function twoMembers(b: Buffer): Buffer {
  const cut = Math.floor(b.length / 3)
  return Buffer.concat([gzipSync(b.subarray(0, cut)), gzipSync(b.subarray(cut))])
}

describe('file identity of gzip captures', () => {
  it('is the hash of the decompressed capture; the raw-bytes hash is kept beside it', async () => {
    const d = dir()
    const plain = writeCapture(join(d, 'a.pcap'), smallBytes)
    const gz = writeCapture(join(d, 'a.pcap.gz'), gzip(smallBytes))
    const multi = writeCapture(join(d, 'a-multi.gz'), twoMembers(smallBytes))
    const big = pcap(generate({ seed: 303, packets: 30_000 }).packets) // > 1 MiB: the streaming path
    expect(big.length).toBeGreaterThan(1 << 20)
    const bigPlain = writeCapture(join(d, 'big.pcap'), big)
    const bigGz = writeCapture(join(d, 'big.pcap.gz'), gzipSync(big, { level: 0 })) // stored: > 1 MiB too
    // Several of the streaming path's 4 MiB reads (the next one runs while this one is hashed)
    // and a tail that ends none of them: a chunk hashed twice, skipped or cut shows here.
    const chunks = randomBytes(2 * (4 << 20) + 12_345)
    const chunksPlain = writeCapture(join(d, 'chunks.pcap'), chunks)
    const chunksGz = writeCapture(join(d, 'chunks.pcap.gz'), gzipSync(chunks, { level: 0 }))
    for (const [path, content] of [
      [plain, smallBytes],
      [gz, smallBytes],
      [multi, smallBytes],
      [bigPlain, big],
      [bigGz, big],
      [chunksPlain, chunks],
      [chunksGz, chunks],
    ] as const) {
      const ids = await fileIdentity(path)
      expect(ids.id).toBe(sha(content))
      expect(ids.rawId).toBe(sha(readBytes(path)))
    }
  })

  it('of a gzip file that does not decompress (cut short, corrupt, a bomb) is its raw-bytes hash', async () => {
    const d = dir()
    const gz = gzip(smallBytes)
    const cut = writeCapture(join(d, 'cut.pcap.gz'), gz.subarray(0, gz.length - 20))
    const corrupt = Buffer.from(gz)
    corrupt.fill(0xff, 20, 60)
    const bad = writeCapture(join(d, 'corrupt.pcap.gz'), corrupt)
    const bigCut = gzipSync(pcap(generate({ seed: 304, packets: 30_000 }).packets), { level: 0 })
    const cutBig = writeCapture(join(d, 'cut-big.pcap.gz'), bigCut.subarray(0, bigCut.length - 100))
    for (const path of [cut, bad, cutBig]) {
      const ids = await fileIdentity(path)
      expect(ids).toEqual({ id: sha(readBytes(path)), rawId: sha(readBytes(path)) })
      expect(await fileIdentity(path)).toEqual(ids) // deterministic
    }
    // The reader's bomb bounds apply: past the size or the ratio, the bytes are the identity.
    const zeros = writeCapture(join(d, 'zeros.gz'), gzipSync(Buffer.alloc(4 << 20)))
    const raw = sha(readBytes(zeros))
    expect((await fileIdentity(zeros)).id).toBe(sha(Buffer.alloc(4 << 20)))
    expect(await fileIdentity(zeros, { ...IDENTITY_GZIP_LIMITS, maxBytes: 1 << 20 })).toEqual({ id: raw, rawId: raw })
    expect(await fileIdentity(zeros, { ...IDENTITY_GZIP_LIMITS, graceBytes: 1 << 16, smallBytes: 0 })).toEqual({
      id: raw,
      rawId: raw,
    })
  })

  it('is the same on the hashing worker as on the main thread', async () => {
    const d = dir()
    const paths = [
      writeCapture(join(d, 'a.pcap'), smallBytes),
      writeCapture(join(d, 'a.pcap.gz'), gzip(smallBytes)),
      writeCapture(join(d, 'b.gz'), twoMembers(small2Bytes)),
      writeCapture(join(d, 'cut.gz'), gzip(small2Bytes).subarray(0, 100)),
      writeCapture(join(d, 'big.gz'), gzipSync(pcap(generate({ seed: 305, packets: 30_000 }).packets), { level: 0 })),
    ]
    const ids = new FileIdentities(paths, 2)
    try {
      for (let i = 0; i < paths.length; i++) expect(await ids.get(i)).toEqual(await fileIdentity(paths[i]!))
    } finally {
      ids.close()
    }
    // Started early (the CLI, before it opens the store): one file goes to the worker too.
    for (const path of [paths[1]!, join(d, 'missing.pcap')]) {
      const early = new FileIdentities([path])
      early.startEarly()
      try {
        if (path.endsWith('missing.pcap'))
          await expect(early.get(0)).rejects.toMatchObject({ code: 'CAPTURE_READ_FAILED' })
        else expect(await early.get(0)).toEqual(await fileIdentity(path))
      } finally {
        early.close()
      }
    }
    const gone = new FileIdentities([join(d, 'missing.pcap'), paths[0]!])
    try {
      await expect(gone.get(0)).rejects.toMatchObject({ code: 'CAPTURE_READ_FAILED' })
      expect((await gone.get(1)).id).toBe(sha(smallBytes))
    } finally {
      gone.close()
    }
  })
})

describe('the hashing worker hands the reader what it hashed', () => {
  const files = () => {
    const d = dir()
    return [
      writeCapture(join(d, 'a.pcap'), smallBytes),
      writeCapture(join(d, 'b.pcap.gz'), gzip(small2Bytes)),
      writeCapture(join(d, 'cut.gz'), gzip(small2Bytes).subarray(0, 100)),
      writeCapture(join(d, 'big.gz'), gzipSync(pcap(generate({ seed: 305, packets: 30_000 }).packets), { level: 0 })),
    ]
  }

  it('small files as decompressed, once; nothing for a corrupt or big file', async () => {
    const paths = files()
    const ids = new FileIdentities(paths, 8)
    try {
      await ids.get(0)
      expect(ids.content(0)).toEqual({ data: smallBytes, gzip: false, fileBytes: smallBytes.length })
      expect(ids.content(0)).toBeUndefined()
      await ids.get(1)
      expect(ids.content(1)).toEqual({ data: small2Bytes, gzip: true, fileBytes: readFileSync(paths[1]!).length })
      for (const i of [2, 3]) {
        await ids.get(i)
        expect(ids.content(i)).toBeUndefined()
      }
    } finally {
      ids.close()
    }
  })

  it('hands over each small file exactly, read one after the other into the same buffer: several gzip members, a larger file before a smaller one, a plain file between', async () => {
    const d = dir()
    const larger = pcap(generate({ seed: 307, packets: 3000 }).packets)
    const contents = [larger, small2Bytes, smallBytes, larger.subarray(0, 5000), small2Bytes]
    const paths = [
      // Its trailer gives the last member's size only: the one-chunk guess is wrong.
      writeCapture(join(d, '0-members.pcap.gz'), twoMembers(larger)),
      writeCapture(join(d, '1-small.pcap.gz'), gzip(small2Bytes)),
      writeCapture(join(d, '2-plain.pcap'), smallBytes),
      writeCapture(join(d, '3-cut-capture.gz'), gzip(larger.subarray(0, 5000))),
      writeCapture(join(d, '4-members.gz'), twoMembers(small2Bytes)),
    ]
    const ids = new FileIdentities(paths, 8)
    try {
      for (const [i, path] of paths.entries()) {
        const got = await ids.get(i)
        expect(got).toEqual(await fileIdentity(path))
        expect(got.id).toBe(sha(contents[i]!))
        expect(ids.content(i)?.data, path).toEqual(contents[i])
      }
    } finally {
      ids.close()
    }
  })

  it('holds no more than its budget, and drops what the reader passed by', async () => {
    const d = dir()
    // A gzip file decompressing past one 256 KiB gunzip chunk: its output buffer is handed over
    // whole (transferred, not copied), the case where the budget must count it before the move.
    const first = pcap(generate({ seed: 306, packets: 4000 }).packets)
    expect(first.length).toBeGreaterThan(256 << 10)
    const paths = [
      writeCapture(join(d, 'first.pcap.gz'), gzip(first)),
      writeCapture(join(d, 'b.gz'), gzip(small2Bytes)),
    ]
    // Room for the first file's content only: the second is hashed before the reader takes any.
    const ids = new FileIdentities(paths, 8, IDENTITY_GZIP_LIMITS, first.length)
    try {
      await ids.get(1)
      expect(ids.content(1)).toBeUndefined()
      expect(ids.content(0)).toBeUndefined() // file 0 was skipped: its content went with it
    } finally {
      ids.close()
    }
    const wide = new FileIdentities(paths, 8)
    try {
      await wide.get(1)
      expect(wide.content(1)?.data).toEqual(small2Bytes)
    } finally {
      wide.close()
    }
  })
})

describe('the reader gives back what the hashing worker handed over', () => {
  it('frees each content once it is read, and only what the worker handed over; counts stay exact', async () => {
    await truncateAll(store)
    const d = dir()
    const paths = [writeCapture(join(d, 'a.pcap'), smallBytes), writeCapture(join(d, 'b.pcap.gz'), gzip(small2Bytes))]
    const ids = new FileIdentities(paths, 8)
    const taken: Buffer[] = []
    const content = ids.content.bind(ids)
    ids.content = (i: number) => {
      const c = content(i)
      if (c) taken.push(c.data)
      return c
    }
    try {
      const summary = await ingestFiles(await expandPaths(paths), {
        sink: new StoreSink(store),
        enricher: testEnricher(),
        logger: silentLogger,
        identities: ids,
      })
      expect(summary.outcomes.map((o) => o.status)).toEqual(['ingested', 'ingested'])
      expect(taken).toHaveLength(2)
      // Freed: the memory went back at once, the views read as empty.
      for (const data of taken) expect(data.length).toBe(0)
      const truth = emptyTruth()
      addTruth(truth, small.truth)
      addTruth(truth, small2.truth)
      await expectStored(truth)
    } finally {
      ids.close()
    }
    const again = new FileIdentities(paths, 8)
    try {
      await again.get(1)
      const held = again.content(1)
      expect(held?.data).toEqual(small2Bytes)
      again.release(held)
      expect(held?.data.length).toBe(0)
      again.release(held) // twice: nothing more to free
      // A buffer the worker did not hand over is not this object's to free.
      const own = { data: Buffer.from(smallBytes), gzip: false, fileBytes: smallBytes.length }
      again.release(own)
      expect(own.data).toEqual(smallBytes)
    } finally {
      again.close()
    }
  })
})

describe('the ledger read at the start of a run', () => {
  /** A store sink that counts its ledger lookups (ledgerIds: whether it offers the snapshot). */
  function counting(ledgerIds: boolean) {
    const inner = new StoreSink(store)
    const asked: string[][] = []
    const sink: EventSink = {
      identityScheme: () => inner.identityScheme(),
      batchRows: () => inner.batchRows(),
      lookupFile: (id) => inner.lookupFile(id),
      lookupFiles: (ids) => {
        asked.push(ids)
        return inner.lookupFiles(ids)
      },
      groupMembers: (g) => inner.groupMembers(g),
      legacyPartial: (ids) => inner.legacyPartial(ids),
      writeBatch: (b) => inner.writeBatch(b),
      finishFile: (r) => inner.finishFile(r),
      writeGroup: (g) => inner.writeGroup(g),
      finishFiles: (r) => inner.finishFiles(r),
      close: async () => {},
    }
    if (ledgerIds) sink.ledgerIds = (limit) => inner.ledgerIds(limit)
    return { sink, asked }
  }

  const spool = (n: number, seed: number) => {
    const d = dir()
    let truth = emptyTruth()
    for (let i = 0; i < n; i++) {
      const g = generate({ seed: seed + i, packets: 50 + i, startSec: Date.UTC(2024, 1, 1 + (i % 5)) / 1000 })
      const bytes = pcap(g.packets)
      writeCapture(
        join(d, 's', `f${String(i).padStart(2, '0')}.pcap${i % 2 ? '.gz' : ''}`),
        i % 2 ? gzip(bytes) : bytes,
      )
      truth = addTruth(truth, g.truth)
    }
    return { d, truth }
  }

  it('spares the lookups of new files and still skips every file already stored', async () => {
    await truncateAll(store)
    const first = spool(20, 700)
    const one = counting(true)
    expect((await ingest([first.d], one.sink)).filesIngested).toBe(20)
    expect(one.asked).toEqual([])
    // The next run: every file is in the ledger, looked up, skipped.
    const again = counting(true)
    const r = await ingest([first.d], again.sink)
    expect([r.filesIngested, r.filesSkipped]).toEqual([0, 20])
    // One lookup for all of them: the first waits for the identities of the files after it.
    expect(again.asked.length).toBe(1)
    expect(again.asked[0]!.length).toBe(30) // 20 ids, and the raw-bytes ids of the 10 gzip files
    // Old files with new ones: only the old are looked up.
    const second = spool(20, 800)
    const mixed = counting(true)
    const m = await ingest([first.d, second.d], mixed.sink)
    expect([m.filesIngested, m.filesSkipped]).toEqual([20, 20])
    const old = new Set((await ledgerRows()).flatMap((x) => [x.file_id, x.raw_id]))
    expect(mixed.asked.flat().filter((id) => !old.has(id))).toEqual([])
    expect(mixed.asked.length).toBe(1)
    await expectStored(addTruth(first.truth, second.truth))
  })

  it('is not read past its size limit: every file is looked up instead', async () => {
    await truncateAll(store)
    const { d, truth } = spool(20, 900)
    await ingest([d])
    const { ledgerIds } = await import('../../store/ledger.js')
    expect(await ledgerIds(store, 29)).toBeUndefined() // 20 files, 10 of them gzip: 30 ids
    expect((await ledgerIds(store, 30))?.size).toBe(30)
    const without = counting(false)
    const r = await ingest([d], without.sink)
    expect([r.filesIngested, r.filesSkipped]).toEqual([0, 20])
    expect(without.asked.flat().length).toBeGreaterThanOrEqual(20)
    await expectStored(truth)
  })
})

const readBytes = (path: string): Buffer => readFileSync(path)

describe('a capture and its gzip twin count once', () => {
  it('in one run (group path), whatever the order and names', async () => {
    await truncateAll(store)
    const d = dir()
    writeCapture(join(d, 's', 'a.pcap'), smallBytes)
    writeCapture(join(d, 's', 'a.pcap.gz'), gzip(smallBytes))
    writeCapture(join(d, 's', '0-renamed.cap.gz'), twoMembers(smallBytes)) // read first
    writeCapture(join(d, 's', 'b.pcap.gz'), gzip(small2Bytes))
    const r = await ingest([d])
    expect(r.filesIngested).toBe(2)
    expect(r.filesSkipped).toBe(2)
    await expectStored(addTruth(addTruth(emptyTruth(), small.truth), small2.truth))
    expect((await ledgerRows()).map((x) => x.file_id).sort()).toEqual([sha(smallBytes), sha(small2Bytes)].sort())
  })

  it.each([
    ['the .gz first', ['a.pcap.gz'], ['a.pcap']],
    ['the plain file first', ['a.pcap'], ['a.pcap.gz']],
    ['renamed copies', ['a.pcap.gz'], ['other-name.cap', 'x.gz']],
  ])('across runs: %s', async (_name, first, second) => {
    await truncateAll(store)
    const d = dir()
    const put = (name: string) => {
      const bytes = name.endsWith('.gz') ? gzip(smallBytes) : smallBytes
      return writeCapture(join(d, 's', name), bytes)
    }
    const one = await ingest(first.map(put))
    expect(one.filesIngested).toBe(1)
    const two = await ingest(second.map(put))
    expect(two.filesIngested).toBe(0)
    expect(two.filesSkipped).toBe(second.length)
    await expectStored(small.truth)
  })

  it('on the multi-batch path, in one run and across runs', async () => {
    const big = generate({ seed: 306, packets: BATCH_ROWS + 12_000, noise: 0.02 })
    const bytes = pcap(big.packets)
    const d = dir()
    const plain = writeCapture(join(d, 's', 'big.pcap'), bytes)
    const gz = writeCapture(join(d, 's', 'big.pcap.gz'), gzip(bytes))
    await truncateAll(store)
    const both = await ingest([gz, plain])
    expect([both.filesIngested, both.filesSkipped]).toEqual([1, 1])
    await expectStored(big.truth)
    await truncateAll(store)
    expect((await ingest([plain])).filesIngested).toBe(1)
    expect((await ingest([gz])).filesSkipped).toBe(1)
    await expectStored(big.truth)
  }, 120_000)
})

describe('a store written before 0.3 (raw-bytes ids of .gz files)', () => {
  /** A sink that writes what a version before 0.3 wrote: ids (rows, tokens, ledger) are raw-bytes hashes. */
  function oldVersionSink(
    map: Map<string, string>,
    crash: { afterBatches?: number; atLedger?: boolean } = {},
  ): EventSink {
    const crashAfterBatches = crash.afterBatches ?? Number.POSITIVE_INFINITY
    const inner = new StoreSink(store)
    const swap = (body: Buffer) => {
      let out = body
      for (const [from, to] of map) out = replaceAll(out, Buffer.from(from), Buffer.from(to))
      return out
    }
    const old = (id: string) => map.get(id) ?? id
    let batches = 0
    return {
      identityScheme: () => inner.identityScheme(),
      batchRows: () => inner.batchRows(),
      lookupFile: (id) => inner.lookupFile(id),
      lookupFiles: (ids) => inner.lookupFiles(ids),
      groupMembers: (g) => inner.groupMembers(g),
      async writeBatch(b) {
        if (batches++ >= crashAfterBatches) throw new Error('crash in the middle of the file')
        await inner.writeBatch({ ...b, fileId: old(b.fileId), body: swap(b.body) })
      },
      async writeGroup(g) {
        const members = g.members.map(({ rawId: _r, ...m }) => ({ ...m, fileId: old(m.fileId) }))
        await inner.writeGroup({
          ...g,
          members,
          token: groupToken(members.map((m) => m.fileId)),
          body: swap(g.body),
        })
      },
      async finishFile(r) {
        if (crash.atLedger) throw new Error('crash before the ledger row')
        const { rawId: _r, ...rest } = r
        await inner.finishFile({ ...rest, fileId: old(r.fileId) })
      },
      async finishFiles() {
        throw new Error('crash before the ledger rows')
      },
      close: async () => {},
    }
  }

  /** The upgrade: migration 3 runs on a store that has the data above. */
  async function upgrade(): Promise<void> {
    await store.command('ALTER TABLE schema_migrations DELETE WHERE version >= 3 SETTINGS mutations_sync = 2')
    await store.command('TRUNCATE TABLE legacy_partial_files')
    await migrate(store)
  }

  it('recognises a .gz it recorded: skipped, and its plain twin after it too', async () => {
    await truncateAll(store)
    const d = dir()
    const gz = writeCapture(join(d, 's', 'a.pcap.gz'), gzip(smallBytes))
    const plain = writeCapture(join(d, 's', 'a.pcap'), smallBytes)
    const raw = sha(readBytes(gz))
    expect((await ingest([gz], oldVersionSink(new Map([[sha(smallBytes), raw]])))).filesIngested).toBe(1)
    await upgrade()
    expect(await ledgerRows()).toEqual([{ file_id: raw, raw_id: '', status: 'complete' }])
    const again = await ingest([gz])
    expect([again.filesIngested, again.filesSkipped]).toEqual([0, 1])
    const twin = await ingest([plain])
    expect([twin.filesIngested, twin.filesSkipped]).toEqual([0, 1])
    await expectStored(small.truth)
  })

  it('recognises a .gz whose plain twin it ingested', async () => {
    await truncateAll(store)
    const d = dir()
    // Before 0.3 a plain file's id was already the hash of its bytes: nothing to rename.
    expect((await ingest([writeCapture(join(d, 's', 'a.pcap'), smallBytes)])).filesIngested).toBe(1)
    await upgrade()
    const r = await ingest([writeCapture(join(d, 's', 'a.pcap.gz'), gzip(smallBytes))])
    expect([r.filesIngested, r.filesSkipped]).toEqual([0, 1])
    await expectStored(small.truth)
  })

  it('completes a .gz it stored in part before a crash, under its old batch tokens', async () => {
    await truncateAll(store)
    const big = generate({ seed: 307, packets: BATCH_ROWS + 15_000, noise: 0.02 })
    const bytes = pcap(big.packets)
    const d = dir()
    const gz = writeCapture(join(d, 's', 'big.pcap.gz'), gzip(bytes))
    const plain = writeCapture(join(d, 's', 'big.pcap'), bytes)
    const raw = sha(readBytes(gz))
    const sink = oldVersionSink(new Map([[sha(bytes), raw]]), { afterBatches: 1 })
    await expect(ingest([gz], sink)).rejects.toThrow(/crash/)
    expect(await eventStats(store)).toEqual({ events: BATCH_ROWS, duplicates: 0 })
    expect(await ledgerRows()).toEqual([])
    await upgrade()
    const r = await ingest([gz])
    expect([r.filesIngested, r.filesFailed]).toEqual([1, 0])
    await expectStored(big.truth)
    expect(await ledgerRows()).toEqual([{ file_id: sha(bytes), raw_id: raw, status: 'complete' }])
    expect((await ingest([plain, gz])).filesSkipped).toBe(2)
    await expectStored(big.truth)
  }, 120_000)

  it('completes a group insert it left pending, with a .gz among the members', async () => {
    await truncateAll(store)
    const d = dir()
    const gz = writeCapture(join(d, 's', 'a.pcap.gz'), gzip(smallBytes))
    const other = writeCapture(join(d, 's', 'b.pcap'), small2Bytes)
    const raw = sha(readBytes(gz))
    const sink = oldVersionSink(new Map([[sha(smallBytes), raw]]), { atLedger: true })
    await expect(ingest([gz, other], sink)).rejects.toThrow(/crash/)
    expect((await ledgerRows()).map((x) => [x.file_id, x.status])).toEqual(
      [
        [raw, 'pending'],
        [sha(small2Bytes), 'pending'],
      ].sort(),
    )
    await upgrade()
    // Only the .gz given: the other member is found where the ledger saw it.
    const r = await ingest([gz])
    expect(r.filesFailed).toBe(0)
    const truth = addTruth(addTruth(emptyTruth(), small.truth), small2.truth)
    await expectStored(truth)
    const plain = writeCapture(join(d, 's', 'a.pcap'), smallBytes)
    expect((await ingest([gz, other, plain])).filesSkipped).toBe(3)
    await expectStored(truth)
  })
})

function replaceAll(haystack: Buffer, from: Buffer, to: Buffer): Buffer {
  const out = Buffer.from(haystack)
  let at = out.indexOf(from)
  while (at >= 0) {
    to.copy(out, at)
    at = out.indexOf(from, at + from.length)
  }
  return out
}
