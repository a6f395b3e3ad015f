import { describe, expect, it } from 'vitest'
import type { Frame, UdpPacket } from '../../core/event.js'
import {
  createUdpPacket,
  DECODE_STATUS_NAMES,
  DecodeStatus,
  decodeFrame,
  decodeFrameStatus,
} from '../../ingest/decode.js'
import { ether, hex, ipv4, ipv6, loopback, ntpClient, ntpMonlist, sll, sll2, udp } from './helpers.js'

/** Formats a 16-byte address: IPv4-mapped as ::ffff:a.b.c.d, else eight uncompressed groups. */
function addr(b: Buffer): string {
  if (b.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'))) {
    return `::ffff:${[...b.subarray(12)].join('.')}`
  }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return groups.join(':')
}

function frame(linkType: number, data: Buffer, originalLength = data.length): Frame {
  return {
    linkType,
    tsSec: 1_700_000_000,
    tsNanos: 123_456_789,
    capturedLength: data.length,
    originalLength,
    data,
    fileOffset: 0,
  }
}

interface Expected {
  src: string
  dst: string
  srcPort: number
  dstPort: number
  ttl: number
  ipVersion: 4 | 6
  ipLength: number
  udpLength: number
  payload: string
}

function summary(p: UdpPacket): Expected {
  return {
    src: addr(p.src),
    dst: addr(p.dst),
    srcPort: p.srcPort,
    dstPort: p.dstPort,
    ttl: p.ttl,
    ipVersion: p.ipVersion,
    ipLength: p.ipLength,
    udpLength: p.udpLength,
    payload: p.payload.toString('hex'),
  }
}

const V4 = { src: '192.0.2.1', dst: '198.51.100.7' }
const V6 = { src: '2001:db8::1', dst: '2001:db8::7b' }
const V6_SRC = '2001:db8:0:0:0:0:0:1'
const V6_DST = '2001:db8:0:0:0:0:0:7b'
const MONLIST = ntpMonlist()
const TO_NTP = udp({ sport: 40000, dport: 123, payload: MONLIST })
const V4_TO_NTP = ipv4(V4, TO_NTP)
const V6_TO_NTP = ipv6(V6, TO_NTP)

/** The 4-in-mapped and v6 results of the common datagrams, adjusted per case. */
const OK_V4: Expected = {
  src: '::ffff:192.0.2.1',
  dst: '::ffff:198.51.100.7',
  srcPort: 40000,
  dstPort: 123,
  ttl: 64,
  ipVersion: 4,
  ipLength: 20 + 8 + 8,
  udpLength: 16,
  payload: MONLIST.toString('hex'),
}
const OK_V6: Expected = { ...OK_V4, src: V6_SRC, dst: V6_DST, ipVersion: 6, ipLength: 40 + 16 }

interface Case {
  name: string
  linkType: number
  data: Buffer
  status: DecodeStatus
  expected?: Partial<Expected>
}

const ETHERNET_IPV4_ANNOTATED = hex`
  02 00 00 00 00 01  02 00 00 00 00 02   # destination, source MAC
  08 00                                  # EtherType IPv4
  45 00 00 24                            # v4, IHL 5, TOS 0, total length 36
  12 34 40 00                            # id, DF, fragment offset 0
  37 11 00 00                            # TTL 55, protocol 17 (UDP), checksum (unchecked)
  c0 00 02 01                            # source 192.0.2.1
  c6 33 64 07                            # destination 198.51.100.7
  9c 40 00 7b 00 10 00 00                # UDP 40000 -> 123, length 16, checksum 0
  17 00 03 2a 00 00 00 00                # NTP mode 7 monlist request
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   # Ethernet padding to 60
`

const ETHERNET_IPV6_HBH_ANNOTATED = hex`
  02 00 00 00 00 01  02 00 00 00 00 02   # destination, source MAC
  86 dd                                  # EtherType IPv6
  60 00 00 00                            # version 6, traffic class, flow label
  00 18 00 3f                            # payload length 24, next header 0 (hop-by-hop), hop limit 63
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # source 2001:db8::1
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 7b   # destination 2001:db8::7b
  11 00 01 04 00 00 00 00                # hop-by-hop: next 17 (UDP), length 0 (8 bytes), PadN
  00 7b 9c 40 00 10 00 00                # UDP 123 -> 40000, length 16
  17 00 03 2a 00 00 00 00                # payload
`

const cases: Case[] = [
  // ---- link layers
  {
    name: 'Ethernet IPv4 to port 123 (annotated), Ethernet padding is not payload',
    linkType: 1,
    data: ETHERNET_IPV4_ANNOTATED,
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ttl: 55 },
  },
  {
    name: 'Ethernet IPv6 with a hop-by-hop header (annotated), from port 123',
    linkType: 1,
    data: ETHERNET_IPV6_HBH_ANNOTATED,
    status: DecodeStatus.OK,
    expected: { ...OK_V6, srcPort: 123, dstPort: 40000, ttl: 63, ipLength: 64 },
  },
  {
    name: 'Ethernet with one 802.1Q tag',
    linkType: 1,
    data: ether(0x0800, V4_TO_NTP, [[0x8100, 100]]),
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'Ethernet with 802.1ad + 802.1Q (QinQ)',
    linkType: 1,
    data: ether(0x86dd, V6_TO_NTP, [
      [0x88a8, 10],
      [0x8100, 20],
    ]),
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'Ethernet with old-style 0x9100 QinQ + 802.1Q',
    linkType: 1,
    data: ether(0x0800, V4_TO_NTP, [
      [0x9100, 10],
      [0x8100, 20],
    ]),
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'Ethernet with more than 8 stacked tags is malformed',
    linkType: 1,
    data: ether(
      0x0800,
      V4_TO_NTP,
      Array.from({ length: 9 }, (): [number, number] => [0x8100, 1]),
    ),
    status: DecodeStatus.MALFORMED,
  },
  { name: 'Ethernet ARP is not IP', linkType: 1, data: ether(0x0806, Buffer.alloc(28)), status: DecodeStatus.NOT_IP },
  {
    name: 'Ethernet cut before the EtherType is truncated',
    linkType: 1,
    data: hex`02 00 00 00 00 01 02 00 00 00 00 02 08`,
    status: DecodeStatus.TRUNCATED,
  },
  { name: 'raw IP (101) carrying IPv4', linkType: 101, data: V4_TO_NTP, status: DecodeStatus.OK, expected: OK_V4 },
  { name: 'raw IP (101) carrying IPv6', linkType: 101, data: V6_TO_NTP, status: DecodeStatus.OK, expected: OK_V6 },
  { name: 'DLT_RAW 12 in old files', linkType: 12, data: V4_TO_NTP, status: DecodeStatus.OK, expected: OK_V4 },
  {
    name: 'DLT_RAW 14 (OpenBSD) in old files',
    linkType: 14,
    data: V6_TO_NTP,
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'raw IP with version nibble 5 is not IP',
    linkType: 101,
    data: hex`50 00 00 00`,
    status: DecodeStatus.NOT_IP,
  },
  { name: 'LINKTYPE_IPV4 (228)', linkType: 228, data: V4_TO_NTP, status: DecodeStatus.OK, expected: OK_V4 },
  { name: 'LINKTYPE_IPV6 (229)', linkType: 229, data: V6_TO_NTP, status: DecodeStatus.OK, expected: OK_V6 },
  {
    name: 'LINKTYPE_IPV4 holding an IPv6 header is malformed',
    linkType: 228,
    data: V6_TO_NTP,
    status: DecodeStatus.MALFORMED,
  },
  {
    name: 'Linux cooked SLL (113) IPv4',
    linkType: 113,
    data: hex`
      00 00            # packet type: to us
      00 01            # ARPHRD_ETHER
      00 06            # address length
      02 00 00 00 00 02 00 00   # address, padded to 8
      08 00            # protocol IPv4
      ${V4_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'Linux cooked SLL IPv6',
    linkType: 113,
    data: sll(0x86dd, V6_TO_NTP),
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'Linux cooked SLL with an un-offloaded 802.1Q tag',
    linkType: 113,
    data: sll(0x8100, Buffer.concat([hex`00 64 08 00`, V4_TO_NTP])),
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'Linux cooked SLL2 (276) IPv4',
    linkType: 276,
    data: hex`
      08 00            # protocol IPv4
      00 00            # reserved
      00 00 00 02      # interface index
      00 01            # ARPHRD_ETHER
      00               # packet type: to us
      06               # address length
      02 00 00 00 00 02 00 00   # address, padded to 8
      ${V4_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'Linux cooked SLL2 IPv6',
    linkType: 276,
    data: sll2(0x86dd, V6_TO_NTP),
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  { name: 'SLL2 shorter than its header', linkType: 276, data: hex`08 00 00 00`, status: DecodeStatus.TRUNCATED },
  {
    name: 'BSD NULL (0) AF_INET from a little-endian host',
    linkType: 0,
    data: hex`02 00 00 00 ${V4_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'BSD NULL AF_INET from a big-endian host',
    linkType: 0,
    data: hex`00 00 00 02 ${V4_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'BSD NULL AF_INET6 = 24 (NetBSD/OpenBSD), little-endian',
    linkType: 0,
    data: loopback(24, V6_TO_NTP, true),
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'BSD NULL AF_INET6 = 28 (FreeBSD), big-endian',
    linkType: 0,
    data: loopback(28, V6_TO_NTP, false),
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'BSD NULL AF_INET6 = 30 (Darwin), little-endian',
    linkType: 0,
    data: hex`1e 00 00 00 ${V6_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V6,
  },
  {
    name: 'BSD NULL with another family',
    linkType: 0,
    data: loopback(7, V4_TO_NTP, true),
    status: DecodeStatus.NOT_IP,
  },
  {
    name: 'OpenBSD LOOP (108) AF_INET, network order',
    linkType: 108,
    data: hex`00 00 00 02 ${V4_TO_NTP}`,
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'LOOP does not guess the byte order',
    linkType: 108,
    data: hex`02 00 00 00 ${V4_TO_NTP}`,
    status: DecodeStatus.NOT_IP,
  },
  {
    name: 'an unsupported link type (802.11, 105)',
    linkType: 105,
    data: V4_TO_NTP,
    status: DecodeStatus.LINK_UNSUPPORTED,
  },

  // ---- IPv4
  {
    name: 'IPv4 with 4 bytes of options (IHL 6)',
    linkType: 101,
    data: ipv4({ ...V4, options: hex`94 04 00 00` /* router alert */ }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ipLength: 24 + 16 },
  },
  {
    name: 'IPv4 with 40 bytes of options (IHL 15)',
    linkType: 101,
    data: ipv4({ ...V4, options: Buffer.alloc(40, 1) /* 40 NOPs */ }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ipLength: 60 + 16 },
  },
  {
    name: 'IPv4 first fragment (MF set, offset 0) carries the UDP header',
    linkType: 101,
    data: ipv4({ ...V4, moreFragments: true }, TO_NTP),
    status: DecodeStatus.OK,
    expected: OK_V4,
  },
  {
    name: 'IPv4 later fragment is ignored even if it looks like port 123',
    linkType: 101,
    data: ipv4({ ...V4, fragOffset: 185 }, TO_NTP),
    status: DecodeStatus.LATER_FRAGMENT,
  },
  {
    name: 'IPv4 last fragment (MF clear, offset > 0) is ignored',
    linkType: 101,
    data: ipv4({ ...V4, fragOffset: 1 }, TO_NTP),
    status: DecodeStatus.LATER_FRAGMENT,
  },
  {
    name: 'ICMP port unreachable quoting a UDP/123 datagram is not traffic',
    linkType: 101,
    data: ipv4(
      { src: '198.51.100.7', dst: '192.0.2.1', proto: 1 },
      Buffer.concat([hex`03 03 00 00 00 00 00 00`, V4_TO_NTP]),
    ),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'IP-in-IP is not decapsulated',
    linkType: 101,
    data: ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 4 }, V4_TO_NTP),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'GRE is not decapsulated',
    linkType: 101,
    data: ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 47 }, Buffer.concat([hex`00 00 08 00`, V4_TO_NTP])),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: '6in4 is not decapsulated',
    linkType: 101,
    data: ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 41 }, V6_TO_NTP),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'Teredo (UDP 3544 carrying IPv6/UDP/123) is not decapsulated',
    linkType: 101,
    data: ipv4(V4, udp({ sport: 3544, dport: 50000, payload: V6_TO_NTP })),
    status: DecodeStatus.NOT_PORT_123,
  },
  {
    name: 'UDP between other ports',
    linkType: 101,
    data: ipv4(V4, udp({ sport: 53, dport: 5353 })),
    status: DecodeStatus.NOT_PORT_123,
  },
  {
    name: 'TCP to port 123 is not UDP',
    linkType: 101,
    data: ipv4({ ...V4, proto: 6 }, TO_NTP),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'IPv4 with IHL 4 is malformed',
    linkType: 228,
    data: Buffer.concat([hex`44`, V4_TO_NTP.subarray(1)]),
    status: DecodeStatus.MALFORMED,
  },
  {
    name: 'IPv4 with Total Length below its header is malformed',
    linkType: 101,
    data: ipv4({ ...V4, totalLength: 19 }, TO_NTP),
    status: DecodeStatus.MALFORMED,
  },
  {
    name: 'IPv4 header cut by snaplen',
    linkType: 101,
    data: V4_TO_NTP.subarray(0, 19),
    status: DecodeStatus.TRUNCATED,
  },
  {
    name: 'IPv4 options cut by snaplen',
    linkType: 101,
    data: ipv4({ ...V4, options: Buffer.alloc(8, 1) }, TO_NTP).subarray(0, 24),
    status: DecodeStatus.TRUNCATED,
  },

  // ---- IPv6
  {
    name: 'IPv6 with hop-by-hop, destination options and routing headers',
    linkType: 101,
    data: ipv6({ ...V6, ext: [{ type: 0 }, { type: 60 }, { type: 43 }] }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V6, ipLength: 40 + 16 + 16 + 24 + 16 },
  },
  {
    name: 'IPv6 first fragment (offset 0, M set) carries the UDP header',
    linkType: 101,
    data: ipv6({ ...V6, ext: [{ type: 44, moreFragments: true }] }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V6, ipLength: 40 + 8 + 16 },
  },
  {
    name: 'IPv6 later fragment is ignored',
    linkType: 101,
    data: ipv6({ ...V6, ext: [{ type: 0 }, { type: 44, fragOffset: 100 }] }, TO_NTP),
    status: DecodeStatus.LATER_FRAGMENT,
  },
  {
    name: 'IPv6 with an authentication header',
    linkType: 101,
    data: ipv6({ ...V6, ext: [{ type: 51 }] }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V6, ipLength: 40 + 24 + 16 },
  },
  {
    name: 'IPv6 ESP hides its payload',
    linkType: 101,
    data: ipv6({ ...V6, proto: 50 }, Buffer.alloc(32)),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'ICMPv6 error quoting a UDP/123 datagram is not traffic',
    linkType: 101,
    data: ipv6({ ...V6, proto: 58 }, Buffer.concat([hex`01 04 00 00 00 00 00 00`, V6_TO_NTP])),
    status: DecodeStatus.NOT_UDP,
  },
  {
    name: 'IPv6 with more than 8 extension headers is malformed',
    linkType: 101,
    data: ipv6({ ...V6, ext: Array.from({ length: 9 }, () => ({ type: 60 })) }, TO_NTP),
    status: DecodeStatus.MALFORMED,
  },
  {
    name: 'IPv6 extension header running past the payload length is malformed',
    linkType: 101,
    data: ipv6({ ...V6, ext: [{ type: 0 }], payloadLength: 8 }, TO_NTP),
    status: DecodeStatus.MALFORMED,
  },
  {
    name: 'IPv6 header cut by snaplen',
    linkType: 101,
    data: V6_TO_NTP.subarray(0, 39),
    status: DecodeStatus.TRUNCATED,
  },

  // ---- UDP lengths
  {
    name: 'payload cut by snaplen still counts, with the bytes present',
    linkType: 101,
    data: ipv4(V4, udp({ sport: 40000, dport: 123, payload: ntpClient(9) })).subarray(0, 28 + 10),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ipLength: 28 + 48, udpLength: 56, payload: ntpClient(9).subarray(0, 10).toString('hex') },
  },
  {
    name: 'UDP header cut after the ports: counts, udpLength 0, empty payload',
    linkType: 101,
    data: V4_TO_NTP.subarray(0, 24),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, udpLength: 0, payload: '' },
  },
  {
    name: 'UDP header cut after the length field: udpLength known, empty payload',
    linkType: 101,
    data: V4_TO_NTP.subarray(0, 26),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, udpLength: 16, payload: '' },
  },
  {
    name: 'UDP header cut inside the ports is truncated',
    linkType: 101,
    data: V4_TO_NTP.subarray(0, 23),
    status: DecodeStatus.TRUNCATED,
  },
  {
    name: 'the UDP length bounds the payload when the IP length is longer',
    linkType: 101,
    data: ipv4(V4, Buffer.concat([udp({ sport: 40000, dport: 123, payload: MONLIST }), hex`ee ee ee ee`])),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ipLength: 40 },
  },
  {
    name: 'the IP length bounds the payload when the UDP length is longer',
    linkType: 101,
    data: ipv4({ ...V4, totalLength: 32 }, TO_NTP),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, ipLength: 32, payload: '1700032a' },
  },
  {
    name: 'a UDP length below 8 gives an empty payload',
    linkType: 101,
    data: ipv4(V4, udp({ sport: 123, dport: 123, payload: MONLIST, length: 4 })),
    status: DecodeStatus.OK,
    expected: { ...OK_V4, srcPort: 123, udpLength: 4, payload: '' },
  },
]

describe('decodeFrame', () => {
  it.each(cases)('$name', ({ linkType, data, status, expected }) => {
    const out = createUdpPacket()
    const got = decodeFrameStatus(frame(linkType, data), out)
    expect(DECODE_STATUS_NAMES[got]).toBe(DECODE_STATUS_NAMES[status])
    expect(decodeFrame(frame(linkType, data), out)).toBe(status === DecodeStatus.OK)
    if (expected) expect(summary(out)).toEqual({ ...OK_V4, ...expected })
  })

  it('copies time and wire length from the frame', () => {
    const out = createUdpPacket()
    expect(decodeFrame(frame(101, V4_TO_NTP, 1514), out)).toBe(true)
    expect([out.tsSec, out.tsNanos, out.wireLength]).toEqual([1_700_000_000, 123_456_789, 1514])
  })

  it('reuses the address buffers and rewrites the IPv4-mapped prefix after an IPv6 packet', () => {
    const out = createUdpPacket()
    const { src, dst } = out
    expect(decodeFrame(frame(101, V6_TO_NTP), out)).toBe(true)
    expect(addr(out.src)).toBe(V6_SRC)
    expect(decodeFrame(frame(101, V4_TO_NTP), out)).toBe(true)
    expect(out.src).toBe(src)
    expect(out.dst).toBe(dst)
    expect([addr(out.src), addr(out.dst)]).toEqual(['::ffff:192.0.2.1', '::ffff:198.51.100.7'])
  })

  it('leaves the addresses of the last match alone when a frame is rejected', () => {
    const out = createUdpPacket()
    decodeFrame(frame(101, V4_TO_NTP), out)
    expect(decodeFrame(frame(101, ipv4({ src: '10.9.9.9', dst: '10.8.8.8' }, udp({ sport: 1, dport: 2 }))), out)).toBe(
      false,
    )
    expect(addr(out.src)).toBe('::ffff:192.0.2.1')
  })
})
