import { join } from 'node:path'
import { constants, gzipSync, inflateRawSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { TeitenError } from '../../core/errors.js'
import { GZIP_RATIO_GRACE_BYTES, readCapture } from '../../ingest/capture.js'
import { block, epb, hex, idb, pcapFile, readAll, shb, spb, tempDir } from './helpers.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

/** Record sizes chosen to put headers and bodies across every kind of chunk boundary. */
const SIZES = [0, 1, 2, 3, 4, 5, 7, 13, 16, 17, 31, 60, 64, 100, 500, 1500, 3]

const PCAP = pcapFile(
  { nanos: true },
  SIZES.map((n, i) => ({ sec: 1_700_000_000 + i, frac: i * 7, data: Buffer.alloc(n, i + 1) })),
)

const PCAPNG = Buffer.concat([
  shb(true),
  idb(true, { linkType: 1 }),
  idb(true, { linkType: 101, tsresol: 9 }),
  ...SIZES.slice(0, 8).map((n, i) => epb(true, { iface: i & 1, ts: BigInt(i) * 1_000_001n, data: Buffer.alloc(n, i) })),
  block(5, Buffer.alloc(20), true),
  spb(true, Buffer.alloc(10, 0xee)),
  shb(false),
  idb(false, { linkType: 113, tsresol: 0x80 | 20 }),
  ...SIZES.slice(8).map((n, i) => epb(false, { ts: BigInt(i) << 19n, data: Buffer.alloc(n, i) })),
])

describe('chunk boundaries', () => {
  it.each([
    { name: 'pcap', bytes: PCAP },
    { name: 'pcapng', bytes: PCAPNG },
    { name: 'gzip pcapng', bytes: gzipSync(PCAPNG) },
  ])('$name: any chunk size gives the same frames as one big read', async ({ name, bytes }) => {
    const path = tmp.write(`${name}.cap`, bytes)
    const whole = await readAll(path)
    expect(whole.error).toBeUndefined()
    expect(whole.frames.length).toBeGreaterThan(10)
    for (const chunkBytes of [1, 2, 3, 5, 16, 17, 64, 1000]) {
      const chunked = await readAll(path, { chunkBytes })
      expect(chunked.error).toBeUndefined()
      expect(chunked.frames).toEqual(whole.frames)
      expect(chunked.stats).toEqual(whole.stats)
    }
  })

  it('delivers frames that straddle chunks as views of the right bytes', async () => {
    const { frames } = await readAll(tmp.write('straddle.pcap', PCAP), { chunkBytes: 1000 })
    expect(frames.map((f) => f.data)).toEqual(SIZES.map((n, i) => Buffer.alloc(n, i + 1).toString('hex')))
  })
})

describe('gzip', () => {
  it('reads gzip-compressed pcap and pcapng, detected by magic, with decompressed byte counts', async () => {
    for (const [name, plain] of [
      ['pcap', PCAP],
      ['pcapng', PCAPNG],
    ] as const) {
      const expected = await readAll(tmp.write(`${name}.plain`, plain))
      const got = await readAll(tmp.write(`${name}.no-gz-extension`, gzipSync(plain)))
      expect(got.error).toBeUndefined()
      expect(got.frames).toEqual(expected.frames)
      expect(got.stats).toEqual({ ...expected.stats, gzip: true })
      expect(got.stats?.bytes).toBe(plain.length)
    }
  })

  it('reads concatenated gzip members as one stream', async () => {
    const cut = 24 + 16 * 5 + 40 // mid-record
    const two = Buffer.concat([gzipSync(PCAP.subarray(0, cut)), gzipSync(PCAP.subarray(cut))])
    const got = await readAll(tmp.write('members.gz', two))
    expect(got.error).toBeUndefined()
    expect(got.frames).toHaveLength(SIZES.length)
  })

  it('reports a truncated gzip as corrupt at the decompressed offset, after the records it held', async () => {
    const gz = gzipSync(PCAP, { level: 1 })
    const cut = gz.subarray(0, gz.length - 20)
    // What a decoder can recover from the cut stream (10-byte gzip header, raw deflate after).
    const recoverable = inflateRawSync(cut.subarray(10), { finishFlush: constants.Z_SYNC_FLUSH }).length
    const complete = (await readAll(tmp.write('r.pcap', PCAP.subarray(0, recoverable)))).frames
    for (const chunkBytes of [undefined, 7]) {
      const { frames, error } = await readAll(tmp.write('trunc.gz', cut), { chunkBytes })
      expect(error?.code).toBe('CAPTURE_GZIP_CORRUPT')
      expect(error?.offset).toBe(recoverable)
      expect(frames).toEqual(complete)
      expect(frames.length).toBeGreaterThan(5)
    }
  })

  it('reports a bad CRC as corrupt', async () => {
    const gz = gzipSync(PCAP)
    gz.writeUInt32LE(gz.readUInt32LE(gz.length - 8) ^ 1, gz.length - 8)
    const { error } = await readAll(tmp.write('crc.gz', gz))
    expect(error?.code).toBe('CAPTURE_GZIP_CORRUPT')
    expect(error?.file).toBe(tmp.write('crc.gz', gz))
  })

  it('reports garbage inside the deflate stream as corrupt', async () => {
    const gz = Buffer.concat([gzipSync(Buffer.alloc(0)).subarray(0, 10), Buffer.alloc(64, 0xff)])
    const { error } = await readAll(tmp.write('garbage.gz', gz))
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_GZIP_CORRUPT', 0])
  })

  it('reports a bare gzip magic as corrupt at offset 0', async () => {
    const { error } = await readAll(tmp.write('magic.gz', hex`1f 8b`))
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_GZIP_CORRUPT', 0])
  })

  it('treats an empty gzip stream like an empty file', async () => {
    const { error } = await readAll(tmp.write('empty.gz', gzipSync(Buffer.alloc(0))))
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_TRUNCATED', 0])
  })

  it('detects the format inside gzip from the bytes', async () => {
    const { error } = await readAll(tmp.write('text.gz', gzipSync(Buffer.from('not a capture at all'))))
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_UNKNOWN_FORMAT', 0])
  })

  it('stops at maxGzipBytes with CAPTURE_GZIP_BOMB, after the records below the limit', async () => {
    const limit = 24 + 16 * 14 + 400
    const { frames, error } = await readAll(tmp.write('size-bomb.gz', gzipSync(PCAP)), {
      maxGzipBytes: limit,
      chunkBytes: 64,
    })
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_GZIP_BOMB', limit])
    // Records 0..13 end at 24 + 16*14 + sum(SIZES[0..13]) = 248 + 323 = 571 <= 648 < end of record 14 (1087).
    expect(frames).toHaveLength(14)
  })

  it('stops when the expansion ratio exceeds maxGzipRatio past the grace size', async () => {
    // 10 MiB of zero-filled records deflates about 1000:1.
    const records = Array.from({ length: 160 }, (_, i) => ({ sec: i, frac: 0, data: Buffer.alloc(65_536) }))
    const plain = pcapFile({}, records)
    const gz = gzipSync(plain)
    const { frames, error } = await readAll(tmp.write('ratio-bomb.gz', gz), { maxGzipRatio: 50 })
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_GZIP_BOMB', GZIP_RATIO_GRACE_BYTES])
    expect(frames).toHaveLength(Math.floor((GZIP_RATIO_GRACE_BYTES - 24) / (16 + 65_536)))
    // The same file is fine under the default ratio.
    const ok = await readAll(tmp.write('ratio-ok.gz', gz))
    expect([ok.error, ok.frames.length]).toEqual([undefined, 160])
  })
})

describe('readCapture options', () => {
  const path = tmp.write('options.pcap', PCAP)

  it('reports progress in file bytes, ending at the file size', async () => {
    const seen: number[] = []
    await readCapture(path, () => {}, { chunkBytes: 500, onProgress: (n) => seen.push(n) })
    expect(seen.length).toBeGreaterThan(2)
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(seen.at(-1)).toBe(PCAP.length)
  })

  it('reports gzip progress in compressed bytes', async () => {
    const gz = gzipSync(PCAPNG)
    const seen: number[] = []
    await readCapture(tmp.write('progress.gz', gz), () => {}, { chunkBytes: 100, onProgress: (n) => seen.push(n) })
    expect(seen.at(-1)).toBe(gz.length)
  })

  it('awaits afterChunk before reading on', async () => {
    const events: string[] = []
    await readCapture(path, () => events.push('f'), {
      chunkBytes: 500,
      afterChunk: async () => {
        events.push('wait')
        await new Promise((r) => setTimeout(r, 1))
      },
    })
    expect(events.filter((e) => e === 'f')).toHaveLength(SIZES.length)
    expect(events.filter((e) => e === 'wait').length).toBeGreaterThan(2)
  })

  it.each([false, true])('aborts with the signal reason (gzip=%s)', async (gzip) => {
    const file = gzip ? tmp.write('abort.gz', gzipSync(PCAP)) : path
    const ac = new AbortController()
    let frames = 0
    const reading = readCapture(
      file,
      () => {
        if (++frames === 3) ac.abort(new Error('stop now'))
      },
      { chunkBytes: 64, signal: ac.signal },
    )
    await expect(reading).rejects.toThrow('stop now')
    expect(frames).toBeLessThan(SIZES.length)
  })

  it('rethrows what onFrame throws, untouched', async () => {
    const boom = new Error('consumer failed')
    for (const file of [path, tmp.write('throw.gz', gzipSync(PCAP))]) {
      await expect(
        readCapture(file, () => {
          throw boom
        }),
      ).rejects.toBe(boom)
    }
  })

  it('parses the content it is handed (the hashing worker read it) instead of the file', async () => {
    const gz = gzipSync(PCAPNG)
    const fromFile = await readAll(tmp.write('handed.gz', gz))
    // The path is never opened: it does not exist.
    const gone = join(tmp.dir, 'gone.gz')
    const seen: number[] = []
    const handed = await readAll(gone, {
      content: { data: PCAPNG, gzip: true, fileBytes: gz.length },
      onProgress: (n) => seen.push(n),
    })
    expect(handed.error).toBeUndefined()
    expect(handed.frames).toEqual(fromFile.frames)
    expect(handed.stats).toEqual(fromFile.stats)
    expect(seen).toEqual([gz.length])
    const plain = await readAll(gone, { content: { data: PCAP, gzip: false, fileBytes: PCAP.length } })
    expect(plain.frames).toEqual((await readAll(path)).frames)
    expect(plain.stats?.gzip).toBe(false)
  })

  it('reads the file when the handed content is past its gzip limit', async () => {
    // Content decompressed under wider limits than this read's: the file decides, with its error.
    const file = tmp.write('limited.gz', gzipSync(PCAP))
    const read = await readAll(file, {
      content: { data: PCAPNG, gzip: true, fileBytes: 10 },
      maxGzipBytes: PCAP.length - 100,
    })
    expect(read.error?.code).toBe('CAPTURE_GZIP_BOMB')
    expect(read.frames.length).toBeGreaterThan(0)
    expect(read.frames.length).toBeLessThan(SIZES.length)
  })

  it('names the file and offset in the one-line error', async () => {
    const bad = tmp.write('line.pcap', PCAP.subarray(0, 30))
    const err = await readCapture(bad, () => {}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TeitenError)
    expect((err as TeitenError).toLine()).toMatch(/line\.pcap: offset 24: .*\[CAPTURE_TRUNCATED\]$/)
  })
})
