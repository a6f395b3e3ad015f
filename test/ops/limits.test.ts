/**
 * Hostile files at the production defaults: a real gzip bomb (1 GiB of zeros), absurd record
 * and block lengths, and symbolic links that would lead out of a spool or round in a loop.
 * Each is stopped with a TeitenError naming the file and offset, with memory staying flat, and
 * the complete records before the fault still counted.
 */
import { mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { DEFAULT_MAX_GZIP_RATIO, GZIP_RATIO_GRACE_BYTES, readCapture } from '../../ingest/capture.js'
import { expandPaths } from '../../pipeline/files.js'
import { ingestFiles } from '../../pipeline/ingest.js'
import type { EventBatch, EventSink, FileRecord } from '../../pipeline/sink.js'
import { SpoolWatcher } from '../../pipeline/watch.js'
import { generate, pcap, pcapng, tempDir, testEnricher, writeCapture } from './helpers.js'
import { BATCH_ROWS } from '../../pipeline/sink.js'

const work = tempDir('teiten-limits-')
afterAll(() => work.cleanup())

function memorySink(): EventSink & { rows: number; ledger: Map<string, FileRecord> } {
  const ledger = new Map<string, FileRecord>()
  const sink = {
    rows: 0,
    ledger,
    identityScheme: async () => 'xxh128' as const,
    batchRows: async () => BATCH_ROWS,
    lookupFile: async (id: string) => ledger.get(id),
    writeBatch: async (b: EventBatch) => {
      sink.rows += b.rows
    },
    finishFile: async (r: FileRecord) => {
      ledger.set(r.fileId, r)
    },
    close: async () => {},
  }
  return sink
}

/** 1 GiB of zeros as concatenated gzip members (zcat reads them as one stream), about 1 MB on disk. */
function gigabyteOfZeros(prefix: Buffer): Buffer {
  const member = gzipSync(Buffer.alloc(64 << 20), { level: 9 })
  return Buffer.concat([gzipSync(prefix), ...Array.from({ length: 16 }, () => member)])
}

async function readError(path: string): Promise<{ error: TeitenError; records: number }> {
  let records = 0
  try {
    await readCapture(path, () => {
      records++
    })
  } catch (err) {
    if (err instanceof TeitenError) return { error: err, records }
    throw err
  }
  throw new Error(`${path} was read without an error`)
}

describe('gzip bombs', () => {
  const header = pcap([]) // a valid pcap header; zeros after it are endless empty records

  it('stops 1 GiB of zeros behind a pcap header at the ratio limit, memory flat', async () => {
    const bomb = gigabyteOfZeros(header)
    expect(bomb.length).toBeLessThan(2 << 20)
    const path = writeCapture(join(work.path, 'bomb.pcap.gz'), bomb)
    const before = process.memoryUsage().arrayBuffers
    let peak = before
    let records = 0
    const error = await readCapture(path, () => {
      if (++records % 100_000 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers)
    }).catch((e: unknown) => e as TeitenError)
    expect(error).toBeInstanceOf(TeitenError)
    expect(error).toMatchObject({ code: 'CAPTURE_GZIP_BOMB', context: { file: path } })
    const offset = (error as TeitenError).offset!
    // Past the grace size, far below a gigabyte: at most the ratio times what was read.
    expect(offset).toBeGreaterThanOrEqual(GZIP_RATIO_GRACE_BYTES)
    expect(offset).toBeLessThanOrEqual(DEFAULT_MAX_GZIP_RATIO * bomb.length)
    expect(records).toBe(Math.floor((offset - 24) / 16))
    expect(peak - before).toBeLessThan(64 << 20)

    // Through the pipeline: the file fails, its empty records are dropped as truncated, nothing stored.
    const sink = memorySink()
    const summary = await ingestFiles([{ path, size: bomb.length, sensor: 's' }], {
      sink,
      enricher: testEnricher(),
      logger: silentLogger,
    })
    expect(summary.outcomes.map((o) => [o.status, o.error?.code, o.records, o.kept])).toEqual([
      ['failed', 'CAPTURE_GZIP_BOMB', records, 0],
    ])
    expect(summary.outcomes[0]!.dropped).toEqual({ truncated: records })
    expect([...sink.ledger.values()].map((r) => r.status)).toEqual(['failed'])
  })

  it('rejects 1 GiB of bare zeros at offset 0 without inflating it', async () => {
    const path = writeCapture(join(work.path, 'zeros.gz'), gigabyteOfZeros(Buffer.alloc(0)))
    const { error } = await readError(path)
    expect([error.code, error.file, error.offset]).toEqual(['CAPTURE_UNKNOWN_FORMAT', path, 0])
  })
})

describe('length fields at the defaults', () => {
  const good = generate({ seed: 90, packets: 50, noise: 0 })

  it.each([
    ['pcap caplen 0xffffffff', 'pcap', 'CAPTURE_CAPLEN_TOO_LARGE'],
    ['pcap caplen just over 256 KiB + 64 KiB', 'pcap-limit', 'CAPTURE_CAPLEN_TOO_LARGE'],
    ['pcapng block length 0xfffffffc', 'pcapng', 'CAPTURE_BAD_BLOCK_LENGTH'],
    ['pcapng block length not a multiple of 4', 'pcapng-odd', 'CAPTURE_BAD_BLOCK_LENGTH'],
    ['pcapng block length below 12', 'pcapng-short', 'CAPTURE_BAD_BLOCK_LENGTH'],
  ])('%s: fails at that record, after the ones before it', async (_what, kind, code) => {
    const isPcap = kind.startsWith('pcap') && !kind.startsWith('pcapng')
    const bytes = isPcap ? pcap(good.packets) : pcapng(good.packets)
    // Offset of the 11th record (or block, after SHB and IDB).
    let at = isPcap ? 24 : 28 + 20
    for (let i = 0; i < 10; i++) at += isPcap ? 16 + good.packets[i]!.data.length : bytes.readUInt32LE(at + 4)
    const field = isPcap ? at + 8 : at + 4
    const value: Record<string, number> = {
      pcap: 0xffffffff,
      'pcap-limit': 262_144 + 65_536 + 1,
      pcapng: 0xfffffffc,
      'pcapng-odd': 34,
      'pcapng-short': 8,
    }
    bytes.writeUInt32LE(value[kind]!, field)
    const path = writeCapture(join(work.path, `${kind}.cap`), bytes)
    const before = process.memoryUsage().arrayBuffers
    const { error, records } = await readError(path)
    expect([error.code, error.file, error.offset, records]).toEqual([code, path, at, 10])
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20)

    const sink = memorySink()
    const summary = await ingestFiles([{ path, size: bytes.length, sensor: 's' }], {
      sink,
      enricher: testEnricher(),
      logger: silentLogger,
    })
    expect(summary.outcomes.map((o) => [o.status, o.error?.code, o.records])).toEqual([['failed', code, 10]])
    expect(sink.rows).toBe(10)
  })
})

describe('symbolic links', () => {
  const root = join(work.path, 'links')
  const spool = join(root, 'spool')
  const outside = join(root, 'outside')
  const inside = writeCapture(join(spool, 'sensor', 'a.pcap'), pcap(generate({ seed: 91, packets: 20 }).packets))
  writeCapture(join(outside, 'secret.pcap'), pcap(generate({ seed: 92, packets: 20 }).packets))
  mkdirSync(join(spool, 'sensor', 'deeper'), { recursive: true })
  symlinkSync(spool, join(spool, 'sensor', 'deeper', 'loop')) // a loop back to the top
  symlinkSync(join(spool, 'sensor'), join(spool, 'sensor', 'self')) // and one to its own folder
  symlinkSync(outside, join(spool, 'elsewhere')) // a folder outside the spool
  symlinkSync(join(outside, 'secret.pcap'), join(spool, 'sensor', 'b.pcap')) // a file outside

  it('expandPaths walks only what is inside, and follows a link only when it was named', async () => {
    expect((await expandPaths([spool])).map((f) => f.path)).toEqual([inside])
    expect((await expandPaths([join(spool, 'sensor', 'deeper', 'loop')])).map((f) => f.path)).toEqual([
      join(spool, 'sensor', 'deeper', 'loop', 'sensor', 'a.pcap'),
    ])
    const named = join(spool, 'sensor', 'b.pcap')
    expect((await expandPaths([named])).map((f) => f.path)).toEqual([named])
  })

  it('the spool watcher never takes a file through a link', async () => {
    const sink = memorySink()
    const w = new SpoolWatcher({
      root: spool,
      sink,
      enricher: testEnricher(),
      logger: silentLogger,
      settleMs: 0,
      pollIntervalMs: 50,
    })
    await w.tick()
    expect(await w.tick()).toEqual([inside])
    expect(await w.tick()).toEqual([])
    expect([...sink.ledger.values()].map((r) => r.path)).toEqual([inside])
  })
})
