/**
 * Batch buffers are used again (core/buffer-pool.ts): the encoder's RowBinary bodies once the
 * sink is done with them (its write settled, or the store sink made its own block and said so),
 * the store's Native blocks once staged or inserted. A buffer
 * written over while something still reads it would corrupt a batch silently, so these tests
 * hold the writes back and check every body against what was handed over.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BufferPool } from '../../core/buffer-pool.js'
import { silentLogger } from '../../core/logger.js'
import { expandPaths } from '../../pipeline/files.js'
import { BATCH_ROWS, ingestFiles } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import { eventStats, generate, pcap, storedCounts, tempDir, testEnricher, writeCapture } from '../ops/helpers.js'

const work = tempDir('teiten-reuse-')
afterAll(() => work.cleanup())

describe('BufferPool', () => {
  it('hands a buffer given back to the next take that fits, and holds at most `keep`', () => {
    const pool = new BufferPool(1)
    const a = pool.take(100)
    const b = pool.take(60)
    expect([a.length, b.length]).toEqual([100, 60])
    // New buffers are as large as the largest asked so far and an eighth more: b's can take 112 bytes later.
    expect(b.buffer.byteLength).toBe(112)
    expect(b.buffer).not.toBe(a.buffer)
    pool.give(a.subarray(10, 20))
    pool.give(b)
    expect(pool.held).toBe(1)
    const c = pool.take(80)
    expect(c.buffer).toBe(a.buffer)
    expect([c.byteOffset - a.byteOffset, c.length]).toEqual([0, 80])
    // Nothing held: a new buffer, never c's while c is out.
    const d = pool.take(80)
    expect(d.buffer).not.toBe(c.buffer)
    pool.give(c)
    pool.give(c)
    expect(pool.held).toBe(1)
  })

  it('keeps no buffer smaller than the largest asked: a later, larger batch does not miss it', () => {
    const pool = new BufferPool(2)
    const small = pool.take(10)
    pool.take(50)
    pool.give(small)
    expect(pool.held).toBe(0)
    const big = pool.take(50)
    pool.give(big)
    expect(pool.take(40).buffer).toBe(big.buffer)
  })

  it('serves batches that grow a little from the buffers it holds', () => {
    const pool = new BufferPool(1)
    const first = pool.take(1000)
    const buffers = new Set([first.buffer])
    pool.give(first)
    // Each batch a little larger than any before (a spool's group inserts): one buffer for all.
    for (let bytes = 1010; bytes <= 1120; bytes += 10) {
      const b = pool.take(bytes)
      buffers.add(b.buffer)
      pool.give(b)
    }
    expect(buffers.size).toBe(1)
    const larger = pool.take(1200)
    expect(larger.buffer).not.toBe(first.buffer)
  })
})

/**
 * Ingests a generated capture of `packets` through the sink `wrap` makes of the store sink, and
 * checks the store holds it exactly. Returns after the checks; the store is closed.
 */
async function ingestThrough(
  name: string,
  seed: number,
  packets: number,
  wrap: (inner: StoreSink) => Pick<EventSink, 'writeBatch'>,
): Promise<void> {
  const g = generate({ seed, packets, noise: 0.01 })
  const path = join(work.path, 'spool', 's', `${name}.pcap`)
  writeCapture(path, pcap(g.packets))
  const store = await openStore({ dataDir: join(work.path, `data-${name}`), logger: silentLogger, host: false })
  try {
    const inner = new StoreSink(store)
    const sink: EventSink = {
      identityScheme: () => inner.identityScheme(),
      batchRows: () => inner.batchRows(),
      lookupFile: (id) => inner.lookupFile(id),
      writeBatch: wrap(inner).writeBatch,
      finishFile: (record) => inner.finishFile(record),
      close: async () => {},
    }
    const summary = await ingestFiles(await expandPaths([path]), {
      sink,
      enricher: testEnricher(),
      logger: silentLogger,
    })
    expect(summary.filesIngested).toBe(1)
    expect(await eventStats(store)).toEqual({ events: g.truth.kept, duplicates: 0 })
    const counts = await storedCounts(store)
    expect(counts.all).toEqual(g.truth.all)
  } finally {
    await store.close()
  }
}

it('writes a batch body over only after its write settled: a slow sink sees every body as it was handed over, and the store counts exactly', async () => {
  const digest = (body: Buffer) => createHash('sha256').update(body).digest('hex')
  const seen: { batchNo: number; buffer: ArrayBufferLike; handed: string; settled?: string }[] = []
  // Five batches: with three writes held, a later batch is written into the first one's buffer.
  await ingestThrough('five-batches', 7, BATCH_ROWS * 4 + 20_000, (inner) => ({
    async writeBatch(batch) {
      const entry = { batchNo: batch.batchNo, buffer: batch.body.buffer, handed: digest(batch.body) }
      seen.push(entry)
      // Held while the reader runs ahead and the writes before it finish.
      await new Promise((resolve) => setTimeout(resolve, 300))
      // This sink reads the body after the store is done with it: the store's onBodyRead
      // is not this sink's to pass on.
      await inner.writeBatch({ ...batch, onBodyRead: undefined })
      Object.assign(entry, { settled: digest(batch.body) })
    },
  }))
  expect(seen.map((s) => s.batchNo)).toEqual([0, 1, 2, 3, 4])
  for (const s of seen) expect(s.settled, `batch ${s.batchNo}`).toBe(s.handed)
  // Buffers were reused, so the check above had something to catch.
  expect(new Set(seen.map((s) => s.buffer)).size).toBeLessThan(seen.length)
}, 120_000)

it('hands a batch body back as soon as the store sink has its own block: later batches are written into it while the inserts run, and the store counts exactly', async () => {
  const seen: { batchNo: number; buffer: ArrayBufferLike; readBeforeSettled?: boolean }[] = []
  await ingestThrough('early-release', 11, BATCH_ROWS * 3 + 30_000, (inner) => ({
    async writeBatch(batch) {
      const entry: (typeof seen)[number] = { batchNo: batch.batchNo, buffer: batch.body.buffer }
      seen.push(entry)
      let read = false
      const written = inner.writeBatch({
        ...batch,
        onBodyRead: () => {
          read = true
          batch.onBodyRead?.()
        },
      })
      entry.readBeforeSettled = read
      await written
    },
  }))
  expect(seen.map((s) => s.batchNo)).toEqual([0, 1, 2, 3])
  // The store read each body before its write returned, not when its insert was done ...
  for (const s of seen) expect(s.readBeforeSettled, `batch ${s.batchNo}`).toBe(true)
  // ... so one buffer served every batch, though their inserts overlapped.
  expect(new Set(seen.map((s) => s.buffer)).size).toBe(1)
}, 120_000)
