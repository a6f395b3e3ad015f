import { afterAll, describe, expect, it } from 'vitest'
import type { Frame } from '../../core/event.js'
import { readCapture } from '../../ingest/capture.js'
import { hex, pcapFile, pcapHeader, pcapRecord, readAll, tempDir } from './helpers.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const RECORD_DATA = hex`de ad be ef`

/** One file per magic: the header and a record, annotated; all four decode to the same frame. */
const magicCases = [
  {
    name: 'little-endian microseconds (d4 c3 b2 a1)',
    bytes: hex`
      d4 c3 b2 a1   # magic: µs, little-endian
      02 00 04 00   # version 2.4
      00 00 00 00   # reserved1 (thiszone)
      00 00 00 00   # reserved2 (sigfigs)
      00 00 04 00   # snaplen 262144
      01 00 00 00   # LINKTYPE_ETHERNET
      00 f1 53 65   # record: ts 1700000000 s
      40 e2 01 00   #         123456 µs
      04 00 00 00   #         caplen 4
      3c 00 00 00   #         origlen 60
      de ad be ef   #         data`,
    tsNanos: 123_456_000,
  },
  {
    name: 'big-endian microseconds (a1 b2 c3 d4)',
    bytes: hex`
      a1 b2 c3 d4   # magic: µs, big-endian
      00 02 00 04   # version 2.4
      00 00 00 00 00 00 00 00
      00 04 00 00   # snaplen 262144
      00 00 00 01   # LINKTYPE_ETHERNET
      65 53 f1 00   # record: ts 1700000000 s
      00 01 e2 40   #         123456 µs
      00 00 00 04   #         caplen 4
      00 00 00 3c   #         origlen 60
      de ad be ef`,
    tsNanos: 123_456_000,
  },
  {
    name: 'little-endian nanoseconds (4d 3c b2 a1)',
    bytes: hex`
      4d 3c b2 a1   # magic: ns, little-endian
      02 00 04 00
      00 00 00 00 00 00 00 00
      00 00 04 00
      01 00 00 00
      00 f1 53 65   # record: ts 1700000000 s
      15 cd 5b 07   #         123456789 ns
      04 00 00 00
      3c 00 00 00
      de ad be ef`,
    tsNanos: 123_456_789,
  },
  {
    name: 'big-endian nanoseconds (a1 b2 3c 4d)',
    bytes: hex`
      a1 b2 3c 4d   # magic: ns, big-endian
      00 02 00 04
      00 00 00 00 00 00 00 00
      00 04 00 00
      00 00 00 01
      65 53 f1 00   # record: ts 1700000000 s
      07 5b cd 15   #         123456789 ns
      00 00 00 04
      00 00 00 3c
      de ad be ef`,
    tsNanos: 123_456_789,
  },
]

describe('classic pcap', () => {
  it.each(magicCases)('reads $name', async ({ name, bytes, tsNanos }) => {
    const { frames, stats, error } = await readAll(tmp.write(`${name.slice(0, 10)}.pcap`, bytes))
    expect(error).toBeUndefined()
    expect(frames).toEqual([
      {
        linkType: 1,
        tsSec: 1_700_000_000,
        tsNanos,
        capturedLength: 4,
        originalLength: 60,
        fileOffset: 24,
        data: 'deadbeef',
      },
    ])
    expect(stats).toEqual({
      format: 'pcap',
      gzip: false,
      records: 1,
      bytes: 44,
      linkTypes: [1],
      caplenExceedsOriginal: 0,
      skippedBlocks: 0,
      sections: 1,
    })
  })

  it('delivers records in order with their offsets', async () => {
    const records = [0, 1, 60, 1500, 3].map((n, i) => ({ sec: 100 + i, frac: i, data: Buffer.alloc(n, i) }))
    const { frames, stats } = await readAll(tmp.write('order.pcap', pcapFile({}, records)))
    expect(frames.map((f) => [f.tsSec, f.capturedLength, f.fileOffset])).toEqual([
      [100, 0, 24],
      [101, 1, 40],
      [102, 60, 57],
      [103, 1500, 133],
      [104, 3, 1649],
    ])
    expect(stats?.bytes).toBe(1668)
  })

  it('masks the FCS bits out of the link type field', async () => {
    const bytes = pcapFile({ linkType: 0x1400_0001 }, [{ sec: 1, frac: 0, data: RECORD_DATA }])
    const { frames, stats } = await readAll(tmp.write('fcs.pcap', bytes))
    expect(frames[0]?.linkType).toBe(1)
    expect(stats?.linkTypes).toEqual([1])
  })

  it('counts caplen > origlen and still delivers the record', async () => {
    const bytes = pcapFile({}, [{ sec: 1, frac: 0, data: RECORD_DATA, orig: 2 }])
    const { frames, stats } = await readAll(tmp.write('caplen-gt-orig.pcap', bytes))
    expect(frames).toHaveLength(1)
    expect(stats?.caplenExceedsOriginal).toBe(1)
  })

  it.each([
    { nanos: false, frac: 2_500_000, tsSec: 12, tsNanos: 500_000_000 },
    { nanos: true, frac: 3_000_000_001, tsSec: 13, tsNanos: 1 },
  ])('carries a sub-second field of a second or more (nanos=$nanos)', async ({ nanos, frac, tsSec, tsNanos }) => {
    const bytes = pcapFile({ nanos }, [{ sec: 10, frac, data: RECORD_DATA }])
    const { frames } = await readAll(tmp.write(`carry-${nanos}.pcap`, bytes))
    expect([frames[0]?.tsSec, frames[0]?.tsNanos]).toEqual([tsSec, tsNanos])
  })

  it('accepts a file header with no records as an empty capture', async () => {
    const { frames, stats, error } = await readAll(tmp.write('header-only.pcap', pcapHeader({ linkType: 101 })))
    expect(error).toBeUndefined()
    expect(frames).toEqual([])
    expect(stats).toMatchObject({ format: 'pcap', records: 0, bytes: 24, linkTypes: [101] })
  })

  it('reuses one Frame object for the whole file', async () => {
    const bytes = pcapFile(
      {},
      [1, 2, 3].map((n) => ({ sec: n, frac: 0, data: Buffer.alloc(n) })),
    )
    const seen = new Set<Frame>()
    await readCapture(tmp.write('reuse.pcap', bytes), (f) => seen.add(f))
    expect(seen.size).toBe(1)
  })
})

const GOOD = pcapFile({}, [
  { sec: 1, frac: 0, data: RECORD_DATA },
  { sec: 2, frac: 0, data: RECORD_DATA },
])
// Two good records end at 24 + 2 * 20 = 64.
const AFTER_TWO = 64

const errorCases = [
  { name: 'a 0-byte file', bytes: Buffer.alloc(0), code: 'CAPTURE_TRUNCATED', offset: 0, delivered: 0 },
  { name: 'foreign bytes', bytes: Buffer.from('hello world'), code: 'CAPTURE_UNKNOWN_FORMAT', offset: 0, delivered: 0 },
  { name: 'a 2-byte foreign file', bytes: hex`ab cd`, code: 'CAPTURE_UNKNOWN_FORMAT', offset: 0, delivered: 0 },
  { name: 'a file cut inside the magic', bytes: hex`d4 c3 b2`, code: 'CAPTURE_TRUNCATED', offset: 0, delivered: 0 },
  {
    name: 'a file cut inside the file header',
    bytes: GOOD.subarray(0, 20),
    code: 'CAPTURE_TRUNCATED',
    offset: 0,
    delivered: 0,
  },
  {
    name: 'an unsupported major version',
    bytes: pcapHeader({ major: 3 }),
    code: 'CAPTURE_BAD_HEADER',
    offset: 0,
    delivered: 0,
  },
  {
    name: 'a file cut inside a record header',
    bytes: Buffer.concat([GOOD, hex`01 00 00 00 00 00`]),
    code: 'CAPTURE_TRUNCATED',
    offset: AFTER_TWO,
    delivered: 2,
  },
  {
    name: 'a file cut inside record data',
    bytes: Buffer.concat([GOOD, pcapRecord({ sec: 3, frac: 0, data: Buffer.alloc(100) }).subarray(0, 16 + 99)]),
    code: 'CAPTURE_TRUNCATED',
    offset: AFTER_TWO,
    delivered: 2,
  },
  {
    name: 'a huge caplen',
    bytes: Buffer.concat([
      GOOD,
      hex`
        03 00 00 00  00 00 00 00   # ts
        ff ff ff 7f                # caplen 2^31 - 1
        ff ff ff 7f                # origlen`,
      Buffer.alloc(64),
    ]),
    code: 'CAPTURE_CAPLEN_TOO_LARGE',
    offset: AFTER_TWO,
    delivered: 2,
  },
]

describe('classic pcap errors', () => {
  it.each(errorCases)('$name: $code at offset $offset after the good records', async (c) => {
    for (const chunkBytes of [undefined, 1, 5]) {
      const { frames, error } = await readAll(tmp.write('err.pcap', c.bytes), { chunkBytes })
      expect(error?.code).toBe(c.code)
      expect(error?.offset).toBe(c.offset)
      expect(error?.file).toBe(tmp.write('err.pcap', c.bytes))
      expect(frames).toHaveLength(c.delivered)
    }
  })

  it('applies maxRecordBytes to caplen', async () => {
    const bytes = pcapFile({}, [
      { sec: 1, frac: 0, data: Buffer.alloc(100) },
      { sec: 2, frac: 0, data: Buffer.alloc(101) },
    ])
    const { frames, error } = await readAll(tmp.write('max.pcap', bytes), { maxRecordBytes: 100 })
    expect(frames).toHaveLength(1)
    expect([error?.code, error?.offset]).toEqual(['CAPTURE_CAPLEN_TOO_LARGE', 24 + 116])
  })

  it('reports a missing file as CAPTURE_READ_FAILED', async () => {
    const { error } = await readAll(`${tmp.dir}/does-not-exist.pcap`)
    expect(error?.code).toBe('CAPTURE_READ_FAILED')
  })
})
