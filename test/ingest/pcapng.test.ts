import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import type { Frame } from '../../core/event.js'
import { Timebase } from '../../ingest/timestamp.js'
import { block, epb, hex, idb, option, pb, readAll, shb, spb, tempDir } from './helpers.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

/** Reference conversion with BigInt: (ticks / units-per-second) as whole seconds + floor(ns). */
function reference(ticks: bigint, tsresol: number, offset = 0n): [number, number] {
  const units = tsresol & 0x80 ? 1n << BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol)
  return [Number(ticks / units + offset), Number(((ticks % units) * 1_000_000_000n) / units)]
}

const LE_FILE = hex`
  0a 0d 0d 0a   # SHB block type
  1c 00 00 00   # total length 28
  4d 3c 2b 1a   # byte-order magic, read little-endian
  01 00 00 00   # version 1.0
  ff ff ff ff ff ff ff ff   # section length unknown
  1c 00 00 00   # total length 28
  01 00 00 00   # IDB
  20 00 00 00   # total length 32
  01 00 00 00   # LINKTYPE_ETHERNET, reserved
  00 00 04 00   # snaplen 262144
  09 00 01 00   # option if_tsresol, length 1
  09 00 00 00   # 10^-9, padding
  00 00 00 00   # opt_endofopt
  20 00 00 00   # total length 32
  06 00 00 00   # EPB
  24 00 00 00   # total length 36
  00 00 00 00   # interface 0
  fe 9c 97 17   # timestamp high: 1700000000123456789 ns = 0x17979cfe3d85cd15
  15 cd 85 3d   # timestamp low
  03 00 00 00   # caplen 3
  3c 00 00 00   # origlen 60
  aa bb cc 00   # data + 1 byte padding
  24 00 00 00   # total length 36`

describe('pcapng', () => {
  it('reads an annotated little-endian file with a nanosecond interface, exactly', async () => {
    const { frames, stats, error } = await readAll(tmp.write('le.pcapng', LE_FILE))
    expect(error).toBeUndefined()
    expect(frames).toEqual([
      {
        linkType: 1,
        tsSec: 1_700_000_000,
        tsNanos: 123_456_789,
        capturedLength: 3,
        originalLength: 60,
        fileOffset: 60,
        data: 'aabbcc',
      },
    ])
    expect(stats).toEqual({
      format: 'pcapng',
      gzip: false,
      records: 1,
      bytes: 96,
      linkTypes: [1],
      caplenExceedsOriginal: 0,
      skippedBlocks: 0,
      sections: 1,
    })
  })

  it('reads sections of mixed byte order, each with its own interfaces', async () => {
    const data = (n: number) => Buffer.alloc(n, n)
    const parts = [
      shb(true),
      idb(true, { linkType: 1 }),
      epb(true, { ts: 1_700_000_000_000_001n, data: data(5) }),
      shb(false),
      idb(false, { linkType: 101, tsresol: 9 }),
      idb(false, { linkType: 113, tsresol: 3 }),
      epb(false, { iface: 1, ts: 1_700_000_000_123n, data: data(6) }),
      epb(false, { iface: 0, ts: 1_700_000_000_999_999_999n, data: data(7) }),
      shb(true),
      idb(true, { linkType: 276 }),
      epb(true, { ts: 2_000_000n, data: data(8) }),
    ]
    const { frames, stats, error } = await readAll(tmp.write('sections.pcapng', Buffer.concat(parts)))
    expect(error).toBeUndefined()
    expect(frames.map((f) => [f.linkType, f.tsSec, f.tsNanos, f.capturedLength])).toEqual([
      [1, 1_700_000_000, 1_000, 5],
      [113, 1_700_000_000, 123_000_000, 6],
      [101, 1_700_000_000, 999_999_999, 7],
      [276, 2, 0, 8],
    ])
    expect(stats).toMatchObject({ sections: 3, records: 4, linkTypes: [1, 101, 113, 276] })
  })

  const resolutions = [
    { tsresol: undefined, name: 'default 10^-6', ticks: 1_700_000_000_654_321n },
    { tsresol: 9, name: '10^-9 beyond 2^53', ticks: 18_446_744_073_709_551_615n },
    { tsresol: 3, name: '10^-3', ticks: 1_700_000_000_789n },
    { tsresol: 0, name: '10^0 (seconds)', ticks: 1_700_000_000n },
    { tsresol: 0x80 | 20, name: '2^-20', ticks: (1_700_000_000n << 20n) | 0xfffffn },
    { tsresol: 0x80 | 32, name: '2^-32', ticks: (1_700_000_000n << 32n) | 0x80000001n },
    { tsresol: 0x80 | 10, name: '2^-10', ticks: (1_700_000_000n << 10n) | 0x3ffn },
    { tsresol: 12, name: '10^-12 (BigInt fallback)', ticks: 1_700_000_000_123_456_789_012n & 0xffff_ffff_ffff_ffffn },
    { tsresol: 0x80 | 40, name: '2^-40 (BigInt fallback)', ticks: (1_000_000n << 40n) | 0x12345n },
  ]

  it('converts every interface with its own if_tsresol, exactly', async () => {
    const parts = [shb(true), ...resolutions.map((r) => idb(true, { tsresol: r.tsresol }))]
    resolutions.forEach((r, i) => {
      parts.push(epb(true, { iface: i, ts: r.ticks, data: hex`00` }))
    })
    const { frames, error } = await readAll(tmp.write('tsresol.pcapng', Buffer.concat(parts)))
    expect(error).toBeUndefined()
    expect(frames.map((f, i) => [resolutions[i]?.name, f.tsSec, f.tsNanos])).toEqual(
      resolutions.map((r) => [r.name, ...reference(r.ticks, r.tsresol ?? 6)]),
    )
  })

  it('adds if_tsoffset seconds (negative too)', async () => {
    const parts = [
      shb(false),
      idb(false, { tsresol: 9, tsoffset: 1_600_000_000n }),
      idb(false, { tsoffset: -100n }),
      epb(false, { iface: 0, ts: 100_000_000_005n, data: hex`00` }),
      epb(false, { iface: 1, ts: 1_000_000_000n, data: hex`00` }),
    ]
    const { frames } = await readAll(tmp.write('tsoffset.pcapng', Buffer.concat(parts)))
    expect(frames.map((f) => [f.tsSec, f.tsNanos])).toEqual([
      [1_600_000_100, 5],
      [900, 0],
    ])
  })

  it('gives a Simple Packet Block the previous packet timestamp, interface 0 and the snaplen cut', async () => {
    const parts = [
      shb(true),
      idb(true, { linkType: 101, snaplen: 4 }),
      spb(true, hex`01 02 03 04`, 1500), // before any timestamped packet: time 0
      epb(true, { ts: 1_700_000_000_500_000n, data: hex`aa` }),
      spb(true, hex`01 02 03 04`, 3), // origlen 3 < room for 4
    ]
    const { frames, stats } = await readAll(tmp.write('spb.pcapng', Buffer.concat(parts)))
    expect(frames.map((f) => [f.linkType, f.tsSec, f.tsNanos, f.capturedLength, f.originalLength, f.data])).toEqual([
      [101, 0, 0, 4, 1500, '01020304'],
      [101, 1_700_000_000, 500_000_000, 1, 1, 'aa'],
      [101, 1_700_000_000, 500_000_000, 3, 3, '010203'],
    ])
    expect(stats?.records).toBe(3)
  })

  it('reads the obsolete Packet Block', async () => {
    const parts = [
      shb(true),
      idb(true),
      idb(true, { linkType: 101 }),
      pb(true, { iface: 1, ts: 5_000_001n, data: hex`ab cd` }),
    ]
    const { frames } = await readAll(tmp.write('pb.pcapng', Buffer.concat(parts)))
    expect(frames.map((f) => [f.linkType, f.tsSec, f.tsNanos, f.data])).toEqual([[101, 5, 1000, 'abcd']])
  })

  it('skips blocks it has no use for, by their length', async () => {
    const parts = [
      shb(true, Buffer.concat([option(4, Buffer.from('teiten test'), true), hex`00 00 00 00`])),
      idb(true),
      block(4, hex`01 00 08 00 c0 00 02 01 6e 74 70 00 00 00 00 00`, true), // Name Resolution Block
      epb(true, { ts: 1n, data: hex`01` }),
      block(5, Buffer.alloc(20), true), // Interface Statistics Block
      block(10, Buffer.alloc(8), true), // Decryption Secrets Block
      block(0x40000bad, Buffer.alloc(12), true), // custom block
      block(0x12345678, Buffer.alloc(0), true), // unknown
      epb(true, { ts: 2n, data: hex`02` }),
    ]
    const { frames, stats } = await readAll(tmp.write('skip.pcapng', Buffer.concat(parts)))
    expect(frames.map((f) => f.data)).toEqual(['01', '02'])
    expect(stats?.skippedBlocks).toBe(5)
  })

  it('counts caplen > origlen without failing', async () => {
    const parts = [shb(true), idb(true), epb(true, { ts: 1n, data: hex`01 02 03`, orig: 1 })]
    const { frames, stats } = await readAll(tmp.write('capgt.pcapng', Buffer.concat(parts)))
    expect(frames).toHaveLength(1)
    expect(stats?.caplenExceedsOriginal).toBe(1)
  })

  it('accepts a section with no interfaces and no packets', async () => {
    const { frames, stats, error } = await readAll(tmp.write('shb-only.pcapng', shb(false)))
    expect([frames.length, error]).toEqual([0, undefined])
    expect(stats).toMatchObject({ format: 'pcapng', sections: 1, records: 0, bytes: 28 })
  })
})

describe('pcapng errors', () => {
  const head = Buffer.concat([shb(true), idb(true), epb(true, { ts: 1n, data: hex`01` })])
  const at = head.length // 28 + 20 + 36 = 84
  const bad = (...tail: Buffer[]) => Buffer.concat([head, ...tail])
  const cases = [
    {
      name: 'block total length not a multiple of 4',
      bytes: bad(hex`06 00 00 00  22 00 00 00`, Buffer.alloc(40)),
      code: 'CAPTURE_BAD_BLOCK_LENGTH',
    },
    {
      name: 'block total length below 12',
      bytes: bad(hex`06 00 00 00  08 00 00 00`, Buffer.alloc(40)),
      code: 'CAPTURE_BAD_BLOCK_LENGTH',
    },
    {
      name: 'block total length beyond maxRecordBytes',
      bytes: bad(hex`06 00 00 00  00 00 00 40`, Buffer.alloc(40)),
      code: 'CAPTURE_BAD_BLOCK_LENGTH',
    },
    {
      name: 'trailing total length differing from the leading one',
      bytes: bad(block(6, Buffer.alloc(24), true, { trailingLength: 44 })),
      code: 'CAPTURE_BAD_BLOCK_LENGTH',
    },
    {
      name: 'an EPB shorter than its fixed fields',
      bytes: bad(block(6, Buffer.alloc(8), true)),
      code: 'CAPTURE_BAD_BLOCK_LENGTH',
    },
    {
      name: 'an EPB naming an interface that was not described',
      bytes: bad(epb(true, { iface: 1, ts: 1n, data: hex`01` })),
      code: 'CAPTURE_UNKNOWN_INTERFACE',
    },
    {
      name: 'an interface of the previous section',
      bytes: bad(shb(false), epb(false, { iface: 0, ts: 1n, data: hex`01` })),
      code: 'CAPTURE_UNKNOWN_INTERFACE',
      offset: at + 28,
    },
    {
      name: 'an EPB caplen larger than its block',
      bytes: bad(epb(true, { ts: 1n, data: hex`01 02 03 04`, caplen: 5 })),
      code: 'CAPTURE_BAD_RECORD',
    },
    {
      name: 'a section header with a bad byte-order magic',
      bytes: bad(hex`0a 0d 0d 0a  1c 00 00 00  1a 2b 3c 4e`, Buffer.alloc(16)),
      code: 'CAPTURE_BAD_HEADER',
    },
    {
      name: 'a section of major version 2',
      bytes: bad(shb(true, undefined, 2)),
      code: 'CAPTURE_BAD_HEADER',
    },
    {
      name: 'an interface option running past its block',
      bytes: bad(block(1, hex`01 00 00 00  00 00 00 00  09 00 08 00  06 00 00 00`, true)),
      code: 'CAPTURE_BAD_HEADER',
    },
    {
      name: 'a file cut inside a block header',
      bytes: bad(hex`06 00 00 00 24 00`),
      code: 'CAPTURE_TRUNCATED',
    },
    {
      name: 'a file cut inside a block body',
      bytes: bad(epb(true, { ts: 2n, data: hex`02` }).subarray(0, 35)),
      code: 'CAPTURE_TRUNCATED',
    },
    {
      name: 'a file cut inside a section header before its byte-order magic',
      bytes: bad(hex`0a 0d 0d 0a 1c 00 00 00 4d 3c`),
      code: 'CAPTURE_TRUNCATED',
    },
  ]

  it.each(cases)('$name: $code at the block offset, after the good packet', async (c) => {
    for (const chunkBytes of [undefined, 1, 7]) {
      const { frames, error } = await readAll(tmp.write('err.pcapng', c.bytes), { chunkBytes })
      expect(error?.code).toBe(c.code)
      expect(error?.offset).toBe(c.offset ?? at)
      expect(frames.map((f) => f.data)).toEqual(['01'])
    }
  })

  it('has the annotated offsets right: the faulty block starts at byte 84', () => {
    expect(at).toBe(84)
  })
})

describe('Timebase', () => {
  const frame: Frame = {
    linkType: 0,
    tsSec: 0,
    tsNanos: 0,
    capturedLength: 0,
    originalLength: 0,
    data: Buffer.alloc(0),
    fileOffset: 0,
  }
  const tsresol = fc.oneof(
    fc.integer({ min: 0, max: 9 }),
    fc.integer({ min: 0, max: 32 }).map((k) => 0x80 | k),
    fc.integer({ min: 10, max: 20 }),
    fc.integer({ min: 33, max: 63 }).map((k) => 0x80 | k),
  )

  it('matches a BigInt reference for any 64-bit timestamp and resolution', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), tsresol, (ticks, r) => {
        const [sec, ns] = reference(ticks, r)
        // Beyond 2^53 seconds (only with whole-second ticks) a double cannot hold the answer.
        fc.pre(Number.isSafeInteger(sec))
        new Timebase(r).apply(Number(ticks >> 32n), Number(ticks & 0xffffffffn), frame)
        expect([frame.tsSec, frame.tsNanos]).toEqual([sec, ns])
      }),
      { numRuns: 5000 },
    )
  })
})
