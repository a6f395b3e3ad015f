/**
 * Fuzz seeds: small valid captures covering what the decoders know (classic pcap in both byte
 * orders and both resolutions, pcapng with several interfaces, sections and block kinds, every
 * supported link type, IPv4 options and fragments, IPv6 extension headers, VLAN tags, snaplen
 * cuts), each with the offsets of its length fields so mutations can aim at them.
 */
import {
  block,
  epb,
  ether,
  idb,
  ipv4,
  ipv6,
  loopback,
  ntpClient,
  ntpMonlist,
  pb,
  pcapHeader,
  pcapRecord,
  shb,
  sll,
  sll2,
  spb,
  udp,
} from '../ingest/helpers.js'
import { generate, pcapng } from '../ops/helpers.js'
import type { Seed } from './mutate.js'

interface Pkt {
  data: Buffer
  /** Bytes before the IP header. */
  l3: number
  /** Captured length, when the record is cut. */
  caplen?: number
}

const v4 = (payload: Buffer, o: Partial<Parameters<typeof ipv4>[0]> = {}) =>
  ipv4({ src: '1.2.3.4', dst: '203.0.113.9', ...o }, payload)
const v6 = (payload: Buffer, o: Partial<Parameters<typeof ipv6>[0]> = {}) =>
  ipv6({ src: '2001:200::1', dst: '2001:db8::9', ...o }, payload)
const ntp = (dport = 123) => udp({ sport: 40000, dport, payload: ntpMonlist() })
const client = () => udp({ sport: 40001, dport: 123, payload: ntpClient(7) })

/** IP-level length fields of a packet whose IP header starts at `l3`. */
function ipLengths(data: Buffer, l3: number, base: number): number[] {
  const v = data[l3]! >> 4
  if (v === 4) {
    const ihl = (data[l3]! & 0x0f) * 4
    return [base + l3 + 2, base + l3 + ihl + 4]
  }
  if (v === 6) return [base + l3 + 4]
  return []
}

function pcapSeed(name: string, o: { le: boolean; nanos?: boolean; linkType: number }, pkts: Pkt[]): Seed {
  const parts = [pcapHeader({ le: o.le, nanos: o.nanos, linkType: o.linkType })]
  const lengths32 = [16]
  const lengths16: number[] = []
  let at = 24
  pkts.forEach((p, i) => {
    const caplen = p.caplen ?? p.data.length
    parts.push(
      pcapRecord(
        { sec: 1_700_000_000 + i, frac: i * 1000, data: p.data.subarray(0, caplen), orig: p.data.length },
        o.le,
      ),
    )
    lengths32.push(at + 8, at + 12)
    lengths16.push(...ipLengths(p.data, p.l3, at + 16).filter((x) => x < at + 16 + caplen))
    at += 16 + caplen
  })
  return { name, bytes: Buffer.concat(parts), lengths32, lengths16, le: o.le }
}

/** Length fields of every block of a pcapng byte string (walks the valid structure). */
function pcapngSeed(name: string, bytes: Buffer, le: boolean): Seed {
  const lengths32: number[] = []
  const lengths16: number[] = []
  let at = 0
  while (at + 12 <= bytes.length) {
    const type = le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at)
    const len = le ? bytes.readUInt32LE(at + 4) : bytes.readUInt32BE(at + 4)
    lengths32.push(at + 4, at + len - 4)
    if (type === 6 || type === 2) lengths32.push(at + 20, at + 24)
    if (type === 3) lengths32.push(at + 8)
    if (type === 1) lengths32.push(at + 12)
    if (type === 6 || type === 2) lengths16.push(at + 28 + 14 + 2, at + 28 + 14 + 20 + 4)
    at += len
  }
  return { name, bytes, lengths32, lengths16, le }
}

export function buildSeeds(): Seed[] {
  const seeds: Seed[] = []
  const eth = (l3: Buffer, tags: [number, number][] = []) => ({
    data: ether(l3[0]! >> 4 === 6 ? 0x86dd : 0x0800, l3, tags),
    l3: 14 + 4 * tags.length,
  })

  // What the sensors write: Ethernet, mixed traffic (the ops generator).
  const mixed = generate({ seed: 7, packets: 24, noise: 0.3 })
  seeds.push(
    pcapSeed(
      'pcap-mixed',
      { le: true, linkType: 1 },
      mixed.packets.map((p) => ({ data: p.data, l3: 14 })),
    ),
  )
  seeds.push(pcapngSeed('pcapng-mixed', pcapng(mixed.packets), true))

  const variety: Pkt[] = [
    eth(v4(ntp())),
    eth(v4(client())),
    eth(v4(ntp(), { options: Buffer.from([1, 1, 1, 0]) })),
    eth(v4(ntp(), { moreFragments: true })),
    eth(v4(Buffer.alloc(24, 7), { fragOffset: 3 })),
    eth(v4(udp({ sport: 123, dport: 5555, payload: ntpClient() }))),
    eth(v6(ntp())),
    eth(v6(ntp(), { ext: [{ type: 0 }, { type: 60 }, { type: 44, moreFragments: true }] })),
    eth(v6(client(), { ext: [{ type: 43 }, { type: 51 }] })),
    eth(v4(ntp()), [[0x8100, 10]]),
    eth(v6(ntp()), [
      [0x88a8, 1],
      [0x8100, 2],
    ]),
    { ...eth(v4(client())), caplen: 14 + 20 + 6 }, // snaplen cut before the UDP ports end
    { ...eth(v4(client())), caplen: 14 + 20 + 8 + 4 },
    eth(v4(Buffer.alloc(20), { proto: 6 })),
  ]
  seeds.push(pcapSeed('pcap-be-nanos-variety', { le: false, nanos: true, linkType: 1 }, variety))
  seeds.push(pcapSeed('pcap-le-variety', { le: true, linkType: 1 }, variety))
  seeds.push(
    pcapSeed('pcap-raw', { le: true, linkType: 101 }, [
      { data: v4(ntp()), l3: 0 },
      { data: v6(client()), l3: 0 },
    ]),
  )
  seeds.push(
    pcapSeed('pcap-sll', { le: true, linkType: 113 }, [
      { data: sll(0x0800, v4(ntp())), l3: 16 },
      { data: sll(0x86dd, v6(ntp())), l3: 16 },
    ]),
  )
  seeds.push(
    pcapSeed('pcap-sll2', { le: false, linkType: 276 }, [
      { data: sll2(0x0800, v4(client())), l3: 20 },
      { data: sll2(0x86dd, v6(ntp())), l3: 20 },
    ]),
  )
  seeds.push(
    pcapSeed('pcap-null', { le: true, linkType: 0 }, [
      { data: loopback(2, v4(ntp()), true), l3: 4 },
      { data: loopback(30, v6(ntp()), true), l3: 4 },
    ]),
  )

  // pcapng: two interfaces of different link types and resolutions, every packet block kind,
  // blocks teiten skips, then a second section in the other byte order.
  for (const le of [true, false]) {
    const first = [
      shb(le),
      idb(le, { linkType: 1, snaplen: 65535 }),
      idb(le, { linkType: 101, tsresol: 9 }),
      epb(le, { iface: 0, ts: 1_700_000_000_000_000n, data: eth(v4(ntp())).data }),
      epb(le, { iface: 1, ts: 1_700_000_000_000_000_000n, data: v6(client()) }),
      spb(le, eth(v4(client())).data),
      pb(le, { iface: 0, ts: 1_700_000_001_000_000n, data: eth(v6(ntp())).data }),
      block(4, Buffer.from([0x01, 0x00, 0x08, 0x00, 203, 0, 113, 9, 0x61, 0x00, 0x00, 0x00, 0, 0, 0, 0]), le), // NRB
      block(5, Buffer.alloc(12), le), // ISB
      block(0x40000bad, Buffer.alloc(8), le), // custom, not to be copied
      epb(le, { iface: 0, ts: 1_700_000_002_000_000n, data: eth(v4(ntp())).data, caplen: 30 }),
    ]
    const second = [shb(!le), idb(!le, { linkType: 113 }), epb(!le, { iface: 0, ts: 1n, data: sll(0x0800, v4(ntp())) })]
    const bytes = Buffer.concat(first)
    const seed = pcapngSeed(`pcapng-${le ? 'le' : 'be'}`, bytes, le)
    const tail = pcapngSeed('x', Buffer.concat(second), !le)
    seeds.push({
      ...seed,
      bytes: Buffer.concat([bytes, tail.bytes]),
      lengths32: [...seed.lengths32, ...tail.lengths32.map((x) => x + bytes.length)],
    })
  }
  // Empty but valid captures: headers only.
  seeds.push({ name: 'pcap-empty', bytes: pcapHeader(), lengths32: [16], lengths16: [], le: true })
  seeds.push(pcapngSeed('pcapng-headers', Buffer.concat([shb(true), idb(true)]), true))
  return seeds
}
