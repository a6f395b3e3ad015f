/**
 * Differential test: the same generated captures through tshark and through readCapture +
 * decodeFrame must agree, frame by frame, on which frames are UDP/123 at the top level and on
 * every field we extract. Requires the Debian package `tshark` (fails, never skips, without it).
 */
import { spawnSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readCapture } from '../../ingest/capture.js'
import { createUdpPacket, DecodeStatus, decodeFrameStatus } from '../../ingest/decode.js'
import {
  epb,
  ether,
  hex,
  idb,
  ipv4,
  ipv6,
  loopback,
  ntpClient,
  ntpMonlist,
  type PcapRecord,
  pcapFile,
  shb,
  sll,
  sll2,
  tempDir,
  udp,
} from './helpers.js'

const tmp = tempDir('teiten-tshark-')
afterAll(() => tmp.cleanup())

const TSHARK_FIELDS = [
  'frame.number',
  'frame.time_epoch',
  'frame.protocols',
  'frame.len',
  'ip.src',
  'ip.dst',
  'ipv6.src',
  'ipv6.dst',
  'ip.ttl',
  'ipv6.hlim',
  'ip.len',
  'ipv6.plen',
  'udp.srcport',
  'udp.dstport',
  'udp.length',
  'udp.payload',
] as const

type Row = Record<(typeof TSHARK_FIELDS)[number], string>

function tsharkAvailable(): void {
  const probe = spawnSync('tshark', ['--version'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) {
    throw new Error('tshark is required by the ingest differential test: apt-get install tshark')
  }
}

function tshark(path: string): Row[] {
  const args = ['-n', '-r', path, '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-T', 'fields']
  args.push('-E', 'occurrence=f', '-E', 'separator=/t')
  for (const f of TSHARK_FIELDS) args.push('-e', f)
  const run = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (run.status !== 0) throw new Error(`tshark failed on ${path}: ${run.stderr}`)
  return run.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const cols = line.split('\t')
      return Object.fromEntries(TSHARK_FIELDS.map((f, i) => [f, cols[i] ?? ''])) as Row
    })
}

/** tshark's view of "UDP/123 at the top level": the first IP layer is followed (past IPv6 extension headers) by UDP. */
function tsharkSaysOurs(row: Row): boolean {
  const layers = row['frame.protocols'].split(':')
  let i = layers.findIndex((l) => l === 'ip' || l === 'ipv6')
  if (i < 0) return false
  i++
  while (i < layers.length && (layers[i]!.startsWith('ipv6.') || layers[i] === 'ah')) i++
  if (layers[i] !== 'udp') return false
  return row['udp.srcport'] === '123' || row['udp.dstport'] === '123'
}

/** RFC 5952 text, as tshark prints it; the WHATWG URL serializer compresses the same way. */
function v6text(b: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1)
}

interface Ours {
  number: number
  ours: boolean
  time: string
  fields?: Record<string, string>
}

async function decodeAll(path: string): Promise<Ours[]> {
  const out = createUdpPacket()
  const rows: Ours[] = []
  await readCapture(path, (frame) => {
    const ok = decodeFrameStatus(frame, out) === DecodeStatus.OK
    const row: Ours = {
      number: rows.length + 1,
      ours: ok,
      time: `${frame.tsSec}.${String(frame.tsNanos).padStart(9, '0')}`,
    }
    if (ok) {
      const v4 = out.ipVersion === 4
      row.fields = {
        'frame.len': String(out.wireLength),
        src: v4 ? [...out.src.subarray(12)].join('.') : v6text(out.src),
        dst: v4 ? [...out.dst.subarray(12)].join('.') : v6text(out.dst),
        ttl: String(out.ttl),
        ipLength: String(out.ipLength),
        'udp.srcport': String(out.srcPort),
        'udp.dstport': String(out.dstPort),
        'udp.length': out.udpLength === 0 ? '' : String(out.udpLength),
        'udp.payload': out.payload.toString('hex'),
      }
    }
    rows.push(row)
  })
  return rows
}

function theirs(row: Row): Record<string, string> {
  const v4 = row['ip.src'] !== ''
  return {
    'frame.len': row['frame.len'],
    src: v4 ? row['ip.src'] : row['ipv6.src'],
    dst: v4 ? row['ip.dst'] : row['ipv6.dst'],
    ttl: v4 ? row['ip.ttl'] : row['ipv6.hlim'],
    ipLength: v4 ? row['ip.len'] : String(Number(row['ipv6.plen']) + 40),
    'udp.srcport': row['udp.srcport'],
    'udp.dstport': row['udp.dstport'],
    'udp.length': row['udp.length'],
    'udp.payload': row['udp.payload'],
  }
}

async function compare(path: string, expectedOurs: number): Promise<void> {
  const ours = await decodeAll(path)
  const rows = tshark(path)
  expect(rows.length).toBe(ours.length)
  const mismatches: string[] = []
  rows.forEach((row, i) => {
    const mine = ours[i]!
    const theyCount = tsharkSaysOurs(row)
    if (row['frame.time_epoch'] !== mine.time) {
      mismatches.push(`frame ${i + 1}: time ${mine.time} vs tshark ${row['frame.time_epoch']}`)
    }
    if (theyCount !== mine.ours) {
      mismatches.push(`frame ${i + 1}: ours=${mine.ours} tshark=${theyCount} (${row['frame.protocols']})`)
    } else if (mine.fields) {
      const t = theirs(row)
      for (const [k, v] of Object.entries(mine.fields)) {
        if (t[k] !== v) mismatches.push(`frame ${i + 1}: ${k} ${v} vs tshark ${t[k]}`)
      }
    }
  })
  expect(mismatches).toEqual([])
  expect(ours.filter((o) => o.ours)).toHaveLength(expectedOurs)
}

// ---------------------------------------------------------------------------------------------
// The traffic: each IP datagram, then wrapped in the link layers under test.

const A4 = { src: '192.0.2.1', dst: '198.51.100.7' }
const A6 = { src: '2001:db8::1', dst: '2001:db8:0:1::7b' }
const REQ = udp({ sport: 40000, dport: 123, payload: ntpClient(1) })
const RESP = udp({ sport: 123, dport: 40000, payload: ntpClient(2) })
const MONLIST = udp({ sport: 123, dport: 123, payload: ntpMonlist() })

/** [IP datagram, counts as ours]. */
const DATAGRAMS: [Buffer, boolean][] = [
  [ipv4(A4, REQ), true],
  [ipv4({ ...A4, ttl: 243 }, RESP), true],
  [ipv4(A4, MONLIST), true],
  [ipv4({ ...A4, options: hex`94 04 00 00` }, REQ), true],
  [ipv4({ ...A4, moreFragments: true }, REQ), true],
  [ipv4({ ...A4, fragOffset: 64 }, REQ), false],
  [
    ipv4(
      { src: '198.51.100.7', dst: '192.0.2.1', proto: 1 },
      Buffer.concat([hex`03 03 00 00 00 00 00 00`, ipv4(A4, REQ)]),
    ),
    false,
  ],
  [ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 4 }, ipv4(A4, REQ)), false],
  [
    ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 47 }, Buffer.concat([hex`00 00 08 00`, ipv4(A4, REQ)])),
    false,
  ],
  [ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 41 }, ipv6(A6, REQ)), false],
  [ipv4(A4, udp({ sport: 3544, dport: 50000, payload: ipv6(A6, REQ) })), false],
  [ipv4(A4, udp({ sport: 53, dport: 33000, payload: Buffer.alloc(20) })), false],
  [ipv4({ ...A4, proto: 6 }, REQ), false],
  [ipv6({ ...A6, hopLimit: 7 }, REQ), true],
  [ipv6(A6, RESP), true],
  [ipv6({ ...A6, ext: [{ type: 0 }, { type: 60 }, { type: 43 }] }, REQ), true],
  [ipv6({ ...A6, ext: [{ type: 44, moreFragments: true }] }, REQ), true],
  [ipv6({ ...A6, ext: [{ type: 44, fragOffset: 10 }] }, REQ), false],
  [ipv6({ ...A6, ext: [{ type: 51 }] }, MONLIST), true],
  [ipv6({ ...A6, proto: 58 }, Buffer.concat([hex`01 04 00 00 00 00 00 00`, ipv6(A6, REQ)])), false],
]
const OURS = DATAGRAMS.filter(([, ours]) => ours).length

function ethernetFrames(): Buffer[] {
  const frames = DATAGRAMS.map(([d], i) => {
    const type = d[0]! >> 4 === 4 ? 0x0800 : 0x86dd
    if (i % 3 === 1) return ether(type, d, [[0x8100, 42]])
    if (i % 5 === 2)
      return ether(type, d, [
        [0x88a8, 7],
        [0x8100, 42],
      ])
    return ether(type, d)
  })
  // Ethernet padding: a short datagram in a minimum-size frame.
  const short = ether(0x0800, ipv4(A4, MONLIST))
  frames.push(Buffer.concat([short, Buffer.alloc(60 - short.length)]))
  frames.push(ether(0x0806, Buffer.alloc(28)))
  return frames
}

describe('differential against tshark', () => {
  beforeAll(() => tsharkAvailable())

  it('classic pcap, Ethernet with VLAN tags, microseconds, little-endian, snaplen cuts', async () => {
    const frames = ethernetFrames()
    const records: PcapRecord[] = frames.map((data, i) => ({
      sec: 1_700_000_000 + i,
      frac: (i * 37_001) % 1_000_000,
      data,
    }))
    // Cut by snaplen: inside the payload, and right after the UDP ports.
    const full = ether(0x0800, ipv4(A4, REQ))
    records.push({ sec: 1_700_000_100, frac: 1, data: full.subarray(0, 60), orig: full.length })
    records.push({ sec: 1_700_000_101, frac: 2, data: full.subarray(0, 38), orig: full.length })
    await compare(tmp.write('ether.pcap', pcapFile({ le: true, linkType: 1 }, records)), OURS + 1 + 2)
  })

  it('classic pcap, raw IP, nanoseconds, big-endian', async () => {
    const records = DATAGRAMS.map(([data], i) => ({ sec: 1_600_000_000 + i, frac: 999_999_999 - i, data }))
    await compare(tmp.write('raw.pcap', pcapFile({ le: false, nanos: true, linkType: 101 }, records)), OURS)
  })

  it('pcapng: two sections of opposite byte order, interfaces of several link types and resolutions, gzip', async () => {
    const le = true
    const be = false
    const parts: Buffer[] = [
      shb(le),
      idb(le, { linkType: 1 }),
      idb(le, { linkType: 113, tsresol: 9 }),
      idb(le, { linkType: 276, tsresol: 0x80 | 20 }),
      idb(le, { linkType: 0, tsresol: 3 }),
    ]
    let t = 1_700_000_000_000_000n
    DATAGRAMS.forEach(([d], i) => {
      const v4 = d[0]! >> 4 === 4
      const type = v4 ? 0x0800 : 0x86dd
      const iface = i % 4
      const data = [ether(type, d), sll(type, d), sll2(type, d), loopback(v4 ? 2 : 30, d, true)][iface]!
      const units = [1_000_000n, 1_000_000_000n, 1n << 20n, 1_000n][iface]!
      t += 1_234_567n
      parts.push(epb(le, { iface, ts: (t * units) / 1_000_000n + BigInt(i), data }))
    })
    parts.push(shb(be), idb(be, { linkType: 101, tsresol: 9 }), idb(be, { linkType: 108 }))
    DATAGRAMS.forEach(([d], i) => {
      const v4 = d[0]! >> 4 === 4
      const data = i % 2 === 0 ? d : Buffer.concat([hex`00 00 00`, Buffer.from([v4 ? 2 : 28]), d])
      parts.push(epb(be, { iface: i % 2, ts: 1_800_000_000_123_456_789n + BigInt(i) * 1_000_000_007n, data }))
    })
    // No Simple Packet Blocks here: ours inherit the previous timestamp where tshark shows none
    // (pcapng.test.ts covers them).
    const plain = Buffer.concat(parts)
    await compare(tmp.write('mixed.pcapng', plain), 2 * OURS)
    await compare(tmp.write('mixed.pcapng.gz', gzipSync(plain)), 2 * OURS)
  })
})
