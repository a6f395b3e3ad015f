import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import {
  buildFrame,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  parseIp,
} from '../../synth/frames.js'
import { PcapngWriter, PcapWriter } from '../../synth/writers.js'
import { tempDir } from '../helpers/tmp.js'
import { requireTshark, tsharkFrames } from './oracle.js'

const tmp = tempDir('teiten-synth-writers-')
afterAll(() => tmp.cleanup())

function frame(link: 'ethernet' | 'raw' | 'sll2' | 'null', n: number): Buffer {
  const buf = Buffer.alloc(256)
  const link2 =
    link === 'null'
      ? ({ kind: 'null', bigEndian: n % 2 === 0 } as const)
      : ({ kind: link } as { kind: 'ethernet' | 'raw' | 'sll2' })
  const layout = buildFrame(buf, 0, {
    link: link2,
    datagram: {
      ip: { v: 4, src: parseIp(`8.8.8.${n % 250}`), dst: parseIp('150.95.218.7') },
      l4: { kind: 'udp', sport: 40000 + (n % 20000), dport: 123, payload: Buffer.from([0x17, 0, 3, 0x2a, 0, 0, 0, 0]) },
    },
  })
  return Buffer.from(buf.subarray(0, layout.length))
}

/** Minimal classic-pcap reader (any magic), to check the writer without trusting ingest/. */
function readPcap(bytes: Buffer) {
  const m = bytes.readUInt32LE(0)
  const le = m === 0xa1b2c3d4 || m === 0xa1b23c4d
  const magic = le ? m : bytes.readUInt32BE(0)
  const u32 = (at: number) => (le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at))
  const nanos = magic === 0xa1b23c4d
  const records: Array<{ sec: number; nanos: number; caplen: number; origlen: number; data: Buffer }> = []
  for (let p = 24; p < bytes.length; ) {
    const caplen = u32(p + 8)
    records.push({
      sec: u32(p),
      nanos: nanos ? u32(p + 4) : u32(p + 4) * 1000,
      caplen,
      origlen: u32(p + 12),
      data: bytes.subarray(p + 16, p + 16 + caplen),
    })
    p += 16 + caplen
  }
  return {
    le,
    nanos,
    linkType: u32(20),
    snaplen: u32(16),
    version: [le ? bytes.readUInt16LE(4) : bytes.readUInt16BE(4)],
    records,
  }
}

describe('classic pcap writer', () => {
  it('writes all four magics with records that read back exactly', async () => {
    for (const nanos of [false, true]) {
      for (const bigEndian of [false, true]) {
        const path = join(tmp.path, `m-${nanos}-${bigEndian}.pcap`)
        const w = PcapWriter.open(path, { linkType: LINKTYPE_ETHERNET, nanos, bigEndian })
        const f = frame('ethernet', 1)
        w.writePacket(1380585600, 123_456_789, f, 0, f.length, f.length)
        w.writePacket(1380585601, 999_999_999, f, 0, 40, f.length)
        await w.close()
        const bytes = readFileSync(path)
        const expected = (nanos ? 'a1b23c4d' : 'a1b2c3d4').match(/../g) as string[]
        expect(bytes.subarray(0, 4).toString('hex')).toBe((bigEndian ? expected : [...expected].reverse()).join(''))
        const r = readPcap(bytes)
        expect(r.linkType).toBe(LINKTYPE_ETHERNET)
        expect(r.records.map((x) => [x.sec, x.nanos, x.caplen, x.origlen])).toEqual([
          [1380585600, nanos ? 123_456_789 : 123_456_000, f.length, f.length],
          [1380585601, nanos ? 999_999_999 : 999_999_000, 40, f.length],
        ])
        expect(r.records[0].data.equals(f)).toBe(true)
      }
    }
  })

  it('streams through a small buffer and through gzip without losing a byte', async () => {
    const plain = join(tmp.path, 'stream.pcap')
    const gz = join(tmp.path, 'stream.pcap.gz')
    const writers = [
      PcapWriter.open(plain, { linkType: LINKTYPE_RAW, bufferSize: 600_000 }),
      PcapWriter.open(gz, { linkType: LINKTYPE_RAW, gzip: true, gzipLevel: 1, bufferSize: 600_000 }),
    ]
    for (let i = 0; i < 30_000; i++) {
      const f = frame('raw', i)
      for (const w of writers) {
        w.writePacket(1380585600 + i, 0, f, 0, f.length, f.length)
        if (w.shouldFlush) await w.flush()
      }
    }
    for (const w of writers) await w.close()
    const a = readFileSync(plain)
    expect(gunzipSync(readFileSync(gz)).equals(a)).toBe(true)
    const r = readPcap(a)
    expect(r.records.length).toBe(30_000)
    expect(r.records[29_999].sec).toBe(1380585600 + 29_999)
  })
})

describe('pcapng writer', () => {
  async function mixedFile(path: string, gzip: boolean) {
    const w = PcapngWriter.open(path, { gzip })
    w.startSection({
      bigEndian: false,
      interfaces: [
        { linkType: LINKTYPE_ETHERNET },
        { linkType: LINKTYPE_LINUX_SLL2, tsresol: { base: 10, exponent: 9 } },
      ],
      userAppl: 'test',
    })
    w.writeCustomBlock(32473, Buffer.from('custom'))
    w.writeBlock(0x00000abc, Buffer.from('unknown'))
    const e = frame('ethernet', 1)
    const s = frame('sll2', 2)
    w.writePacket(0, 1380585600, 123_456_789, e, 0, e.length, e.length)
    w.writePacket(1, 1380585601, 123_456_789, s, 0, s.length, s.length, { comment: 'hello', flags: 1 })
    w.writeSimplePacket(e, 0, e.length)
    w.writeInterfaceStatistics(1, 1380585601, 0, 2, 0)
    w.startSection({
      bigEndian: true,
      interfaces: [
        { linkType: LINKTYPE_RAW, tsresol: { base: 2, exponent: 30 } },
        { linkType: LINKTYPE_NULL, tsresol: { base: 2, exponent: 20 } },
      ],
    })
    w.writeNameResolution([{ address: parseIp('150.95.218.7'), names: ['dark.example'] }])
    const r = frame('raw', 3)
    const n = frame('null', 4)
    w.writePacket(0, 1388534399, 999_999_999, r, 0, r.length, r.length)
    w.writePacket(1, 1388534400, 500_000_000, n, 0, 30, n.length)
    await w.close()
    return { records: 5, customBlocks: 1 }
  }

  it('writes sections of both byte orders whose blocks are well framed', async () => {
    const path = join(tmp.path, 'mixed.pcapng')
    await mixedFile(path, false)
    const b = readFileSync(path)
    const types: string[] = []
    let le = true
    for (let p = 0; p < b.length; ) {
      const typeLe = b.readUInt32LE(p)
      if (typeLe === 0x0a0d0d0a) le = b.readUInt32LE(p + 8) === 0x1a2b3c4d
      const u32 = (at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at))
      const len = u32(p + 4)
      expect(len % 4).toBe(0)
      expect(u32(p + len - 4)).toBe(len)
      types.push(u32(p).toString(16))
      p += len
    }
    expect(types).toEqual(['a0d0d0a', '1', '1', 'bad', 'abc', '6', '6', '3', '5', 'a0d0d0a', '1', '1', '4', '6', '6'])
  })

  it('encodes timestamps exactly in every if_tsresol, up to 2^-32 and 10^-9', async () => {
    const resolutions = [
      { base: 10, exponent: 0 },
      { base: 10, exponent: 3 },
      { base: 10, exponent: 6 },
      { base: 10, exponent: 9 },
      { base: 2, exponent: 0 },
      { base: 2, exponent: 20 },
      { base: 2, exponent: 24 },
      { base: 2, exponent: 30 },
      { base: 2, exponent: 32 },
    ] as const
    const path = join(tmp.path, 'tsresol.pcapng')
    const w = PcapngWriter.open(path)
    w.startSection({ bigEndian: true, interfaces: resolutions.map((tsresol) => ({ linkType: LINKTYPE_RAW, tsresol })) })
    const f = frame('raw', 0)
    const stamps: Array<[number, number]> = [
      [0, 0],
      [1388534399, 999_999_999],
      [1380585600, 1],
      [4294967295, 999_999_999],
    ]
    for (let i = 0; i < 200; i++) stamps.push([1_380_000_000 + i * 7919, (i * 104_729_857) % 1_000_000_000])
    for (const [sec, ns] of stamps) {
      for (let id = 0; id < resolutions.length; id++) w.writePacket(id, sec, ns, f, 0, f.length, f.length)
    }
    await w.close()
    const b = readFileSync(path)
    let p = b.readUInt32BE(4) // past the SHB
    for (let k = 0; k < resolutions.length; k++) p += b.readUInt32BE(p + 4) // past the IDBs
    for (const [sec, ns] of stamps) {
      resolutions.forEach((r, id) => {
        expect(b.readUInt32BE(p)).toBe(6)
        expect(b.readUInt32BE(p + 8)).toBe(id)
        const units = (BigInt(b.readUInt32BE(p + 12)) << 32n) | BigInt(b.readUInt32BE(p + 16))
        const per = r.base === 10 ? 10n ** BigInt(r.exponent) : 1n << BigInt(r.exponent)
        expect(units).toBe(BigInt(sec) * per + (BigInt(ns) * per) / 1_000_000_000n)
        p += b.readUInt32BE(p + 4)
      })
    }
    expect(p).toBe(b.length)
  })

  it('is read by tshark with the timestamps of every resolution and byte order', async () => {
    requireTshark()
    for (const gzip of [false, true]) {
      const path = join(tmp.path, `mixed-${gzip}.pcapng${gzip ? '.gz' : ''}`)
      await mixedFile(path, gzip)
      const frames = (await tsharkFrames(path)).filter((f) => f.protocols[0] !== 'data')
      expect(frames.map((f) => [f.sec, f.protocols[0], f.dstPort])).toEqual([
        [1380585600, 'eth', 123],
        [1380585601, 'sll', 123],
        [null, 'eth', 123],
        [1388534399, 'raw', 123],
        [1388534400, 'null', 123],
      ])
    }
  })

  it('is read by tshark in every classic pcap magic', async () => {
    requireTshark()
    for (const nanos of [false, true]) {
      for (const bigEndian of [false, true]) {
        const path = join(tmp.path, `tshark-${nanos}-${bigEndian}.pcap`)
        const w = PcapWriter.open(path, { linkType: LINKTYPE_NULL, nanos, bigEndian })
        for (let i = 0; i < 4; i++) {
          const f = frame('null', i)
          w.writePacket(1380585600 + i * 43_200, 999_999, f, 0, f.length, f.length)
        }
        await w.close()
        const frames = await tsharkFrames(path)
        expect(frames.map((f) => [f.sec, f.protocols.join(':'), f.srcPort])).toEqual(
          [0, 1, 2, 3].map((i) => [1380585600 + i * 43_200, 'null:ip:udp:ntp', 40000 + i]),
        )
      }
    }
  })
})
