/**
 * Frame builders for synthetic captures. Every builder writes into a caller's Buffer at an
 * offset and returns how many bytes it wrote (or a layout), so a generator can build frames
 * into one reusable scratch buffer. Frames are built declaratively (link + IP + transport
 * spec) once per template; `patchFrame` then rewrites addresses, ports, IP id and TTL of a
 * built frame in place and repairs its checksums incrementally, which is what makes
 * generating tens of millions of packets cheap.
 *
 * Wire formats follow: RFC 791 (IPv4), RFC 8200 (IPv6 and its extension headers), RFC 768
 * (UDP), RFC 9293 (TCP), RFC 792 / RFC 4443 (ICMP errors), RFC 2003 (IP-in-IP), RFC 2784
 * (GRE), RFC 4213 (6in4), IEEE 802.1Q / 802.1ad (VLAN, QinQ), and the tcpdump.org LINKTYPE
 * descriptions of NULL, RAW, LINUX_SLL and LINUX_SLL2. NTP payloads follow RFC 5905 (modes 0-5),
 * RFC 9327 (mode 6) and ntpd's ntp_request.h (mode 7).
 */
import { TeitenError } from '../core/errors.js'

export const LINKTYPE_NULL = 0
export const LINKTYPE_ETHERNET = 1
export const LINKTYPE_RAW = 101
export const LINKTYPE_LINUX_SLL = 113
export const LINKTYPE_LINUX_SLL2 = 276

export const ETHERTYPE_IPV4 = 0x0800
export const ETHERTYPE_IPV6 = 0x86dd
export const ETHERTYPE_VLAN = 0x8100
export const ETHERTYPE_QINQ = 0x88a8

export const IPPROTO_HOPOPTS = 0
export const IPPROTO_ICMP = 1
export const IPPROTO_IPIP = 4
export const IPPROTO_TCP = 6
export const IPPROTO_UDP = 17
export const IPPROTO_IPV6 = 41
export const IPPROTO_ROUTING = 43
export const IPPROTO_FRAGMENT = 44
export const IPPROTO_GRE = 47
export const IPPROTO_ICMPV6 = 58
export const IPPROTO_DSTOPTS = 60

/** BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs by OS. */
export const AF_INET = 2
export const AF_INET6_NETBSD = 24
export const AF_INET6_FREEBSD = 28
export const AF_INET6_DARWIN = 30

/** The smallest Ethernet frame without FCS; shorter frames arrive padded. */
export const ETHERNET_MIN_FRAME = 60

// ---------------------------------------------------------------------------------------------
// Addresses

/** 4- or 16-byte address from its text form. Throws BAD_PARAMETER on anything else. */
export function parseIp(text: string): Buffer {
  if (text.includes(':')) return parseIpv6(text)
  const parts = text.split('.')
  if (parts.length !== 4) throw new TeitenError('BAD_PARAMETER', `not an IP address: ${text}`)
  const out = Buffer.alloc(4)
  for (let i = 0; i < 4; i++) {
    const n = Number(parts[i])
    if (!/^\d{1,3}$/.test(parts[i]) || n > 255) throw new TeitenError('BAD_PARAMETER', `not an IP address: ${text}`)
    out[i] = n
  }
  return out
}

function parseIpv6(text: string): Buffer {
  const bad = () => new TeitenError('BAD_PARAMETER', `not an IPv6 address: ${text}`)
  const halves = text.split('::')
  if (halves.length > 2) throw bad()
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'))
  const head = groups(halves[0])
  const tail = halves.length === 2 ? groups(halves[1]) : []
  // A trailing dotted quad counts as two groups.
  const expand = (list: string[]): number[] => {
    const out: number[] = []
    for (const g of list) {
      if (g.includes('.')) {
        const v4 = parseIp(g)
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3])
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad()
        out.push(Number.parseInt(g, 16))
      }
    }
    return out
  }
  const h = expand(head)
  const t = expand(tail)
  const missing = 8 - h.length - t.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) throw bad()
  const all = [...h, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...t]
  const out = Buffer.alloc(16)
  for (let i = 0; i < 8; i++) out.writeUInt16BE(all[i], i * 2)
  return out
}

/** Text form of a 4- or 16-byte address (IPv6 per RFC 5952: lower case, longest zero run as ::). */
export function formatIp(bytes: Uint8Array, offset = 0, length = bytes.length - offset): string {
  if (length === 4) return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`
  if (length !== 16) throw new TeitenError('BAD_PARAMETER', `address of ${length} bytes`)
  const g: number[] = []
  for (let i = 0; i < 8; i++) g.push((bytes[offset + 2 * i] << 8) | bytes[offset + 2 * i + 1])
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i > 1) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (list: number[]) => list.map((x) => x.toString(16)).join(':')
  if (bestStart < 0) return hex(g)
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071)

/** Adds the big-endian 16-bit words of buf[offset, offset+length) to acc (odd tail padded). */
export function sum16(buf: Uint8Array, offset: number, length: number, acc = 0): number {
  let s = acc
  const end = offset + length
  let i = offset
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1]
  if (i < end) s += buf[i] << 8
  return s
}

/** Folds a sum of 16-bit words to 16 bits (end-around carry). */
export function fold16(sum: number): number {
  let s = sum
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000)
  return s
}

function finishChecksum(sum: number): number {
  return ~fold16(sum) & 0xffff
}

// ---------------------------------------------------------------------------------------------
// NTP payloads

/** The 8-byte monlist probe of the 2013-14 reflection kits: mode 7, VN 2, impl 3, MON_GETLIST_1. */
export function writeMonlistKitProbe(buf: Buffer, offset: number): number {
  buf[offset] = 0x17
  buf[offset + 1] = 0x00
  buf[offset + 2] = 0x03
  buf[offset + 3] = 0x2a
  buf.fill(0, offset + 4, offset + 8)
  return 8
}

/** nmap's ntp-monlist probe: the same request header padded with zeros to 48 bytes. */
export function writeNmapMonlistProbe(buf: Buffer, offset: number): number {
  writeMonlistKitProbe(buf, offset)
  buf.fill(0, offset + 8, offset + 48)
  return 48
}

/** Fills item or padding bytes; a function so callers can plug their deterministic PRNG in. */
export type ByteFill = (buf: Buffer, offset: number, length: number) => void

export const zeroFill: ByteFill = (buf, offset, length) => {
  buf.fill(0, offset, offset + length)
}

export interface Mode7Options {
  /** NTP version number (bits 3-5 of byte 0); ntpdc and the kits send 2. */
  vn?: number
  response?: boolean
  /** More-data bit of byte 0 (set on all but the last packet of a multi-packet response). */
  more?: boolean
  /** Authenticated bit and sequence number (byte 1). */
  auth?: boolean
  sequence?: number
  /** Implementation number (byte 2): 0 universal, 2 XNTPD_OLD, 3 XNTPD. */
  impl: number
  /** Request code (byte 3): 42 MON_GETLIST_1, 20 MON_GETLIST, 0 PEER_LIST, 4 SYS_INFO, ... */
  code: number
  /** Error code (high nibble of bytes 4-5), responses only. */
  err?: number
  nitems?: number
  itemSize?: number
  /** Total payload length; the space after the 8-byte header and the items is filled. */
  length?: number
  fill?: ByteFill
}

/** ntpd's REQ_LEN_NOMAC: what ntpdc sends for a request without authentication. */
export const NTPDC_REQUEST_LENGTH = 192
/** sizeof(struct info_monitor_1), the item of a MON_GETLIST_1 response. */
export const MONLIST_ITEM_SIZE = 72

/** A mode 7 (ntpdc private) packet: 8-byte header, then items or request data. */
export function writeMode7(buf: Buffer, offset: number, o: Mode7Options): number {
  const vn = o.vn ?? 2
  const nitems = o.nitems ?? 0
  const itemSize = o.itemSize ?? 0
  const length = o.length ?? 8 + nitems * itemSize
  if (length < 4) throw new TeitenError('BAD_PARAMETER', 'mode 7 packet shorter than 4 bytes')
  buf[offset] = (o.response ? 0x80 : 0) | (o.more ? 0x40 : 0) | ((vn & 7) << 3) | 7
  buf[offset + 1] = (o.auth ? 0x80 : 0) | ((o.sequence ?? 0) & 0x7f)
  buf[offset + 2] = o.impl & 0xff
  buf[offset + 3] = o.code & 0xff
  if (length >= 8) {
    buf.writeUInt16BE((((o.err ?? 0) & 0xf) << 12) | (nitems & 0xfff), offset + 4)
    buf.writeUInt16BE(itemSize & 0xfff, offset + 6)
    ;(o.fill ?? zeroFill)(buf, offset + 8, length - 8)
  } else {
    buf.fill(0, offset + 4, offset + length)
  }
  return length
}

/** A MON_GETLIST_1 response: up to 6 info_monitor_1 items (440 bytes, a 468-byte IPv4 packet). */
export function writeMonlistResponse(
  buf: Buffer,
  offset: number,
  nitems: number,
  fill: ByteFill,
  opts: { more?: boolean; vn?: number; impl?: number } = {},
): number {
  const length = writeMode7(buf, offset, {
    vn: opts.vn ?? 2,
    response: true,
    more: opts.more ?? false,
    impl: opts.impl ?? 3,
    code: 42,
    nitems,
    itemSize: MONLIST_ITEM_SIZE,
    fill,
  })
  // Make the items look like ntpd's: counts, an IPv4 address, port 123, mode and version.
  for (let i = 0; i < nitems; i++) {
    const item = offset + 8 + i * MONLIST_ITEM_SIZE
    buf.writeUInt32BE(0, item + 24) // flags
    buf.writeUInt16BE(123, item + 28) // port
    buf[item + 30] = 3 // mode
    buf[item + 31] = 4 // version
    buf.writeUInt32BE(0, item + 32) // v6_flag
  }
  return length
}

export interface Mode6Options {
  vn?: number
  response?: boolean
  error?: boolean
  more?: boolean
  /** Opcode (byte 1 low 5 bits): 1 READSTAT, 2 READVAR, 10 READ_MRU, 12 REQ_NONCE, ... */
  opcode: number
  sequence?: number
  status?: number
  associd?: number
  dataOffset?: number
  /** Data area; padded with zeros to a multiple of 4 as ntpq does. */
  data?: Uint8Array | string
}

/** A mode 6 (ntpq control) packet: 12-byte header plus data padded to 32 bits. */
export function writeMode6(buf: Buffer, offset: number, o: Mode6Options): number {
  const vn = o.vn ?? 2
  const data = typeof o.data === 'string' ? Buffer.from(o.data, 'latin1') : (o.data ?? new Uint8Array(0))
  buf[offset] = ((vn & 7) << 3) | 6
  buf[offset + 1] = (o.response ? 0x80 : 0) | (o.error ? 0x40 : 0) | (o.more ? 0x20 : 0) | (o.opcode & 0x1f)
  buf.writeUInt16BE((o.sequence ?? 1) & 0xffff, offset + 2)
  buf.writeUInt16BE((o.status ?? 0) & 0xffff, offset + 4)
  buf.writeUInt16BE((o.associd ?? 0) & 0xffff, offset + 6)
  buf.writeUInt16BE((o.dataOffset ?? 0) & 0xffff, offset + 8)
  buf.writeUInt16BE(data.length, offset + 10)
  buf.set(data, offset + 12)
  const padded = (data.length + 3) & ~3
  buf.fill(0, offset + 12 + data.length, offset + 12 + padded)
  return 12 + padded
}

/** NTP timestamp: seconds since 1900 and a 32-bit binary fraction. */
export interface NtpTimestamp {
  seconds: number
  fraction: number
}

export const NTP_UNIX_OFFSET = 2208988800

export interface NtpPacketOptions {
  li?: number
  vn: number
  mode: number
  stratum?: number
  poll?: number
  precision?: number
  rootDelay?: number
  rootDispersion?: number
  /** Reference id: a 4-character code (stratum 0/1, kiss codes) or a 32-bit number. */
  refId?: string | number
  reference?: NtpTimestamp
  origin?: NtpTimestamp
  receive?: NtpTimestamp
  transmit?: NtpTimestamp
  /** Bytes after the 48-byte header: extension fields and/or key id + MAC, filled by `fill`. */
  trailer?: number
  fill?: ByteFill
}

/** An RFC 5905 packet (modes 0-5): the 48-byte header, optionally followed by a trailer. */
export function writeNtpPacket(buf: Buffer, offset: number, o: NtpPacketOptions): number {
  buf[offset] = (((o.li ?? 0) & 3) << 6) | ((o.vn & 7) << 3) | (o.mode & 7)
  buf[offset + 1] = (o.stratum ?? 0) & 0xff
  buf[offset + 2] = (o.poll ?? 0) & 0xff
  buf.writeInt8(Math.max(-128, Math.min(127, o.precision ?? 0)), offset + 3)
  buf.writeUInt32BE((o.rootDelay ?? 0) >>> 0, offset + 4)
  buf.writeUInt32BE((o.rootDispersion ?? 0) >>> 0, offset + 8)
  if (typeof o.refId === 'string') {
    buf.fill(0, offset + 12, offset + 16)
    buf.write(o.refId.slice(0, 4), offset + 12, 'latin1')
  } else {
    buf.writeUInt32BE((o.refId ?? 0) >>> 0, offset + 12)
  }
  const ts = (t: NtpTimestamp | undefined, at: number) => {
    buf.writeUInt32BE((t?.seconds ?? 0) >>> 0, offset + at)
    buf.writeUInt32BE((t?.fraction ?? 0) >>> 0, offset + at + 4)
  }
  ts(o.reference, 16)
  ts(o.origin, 24)
  ts(o.receive, 32)
  ts(o.transmit, 40)
  const trailer = o.trailer ?? 0
  if (trailer > 0) (o.fill ?? zeroFill)(buf, offset + 48, trailer)
  return 48 + trailer
}

/** Copies arbitrary payload bytes (junk, other protocols). */
export function writeBytes(buf: Buffer, offset: number, bytes: Uint8Array): number {
  buf.set(bytes, offset)
  return bytes.length
}

// ---------------------------------------------------------------------------------------------
// Frame specs

export type PaddingStyle = 'none' | 'zero' | 'junk'

export type LinkSpec =
  | {
      kind: 'ethernet'
      /** VLAN ids, outermost first: one tag is 802.1Q, two are QinQ (outer TPID 0x88a8). */
      vlans?: readonly number[]
      /** How frames shorter than 60 bytes are padded (received frames carry the padding). */
      padding?: PaddingStyle
      src?: Uint8Array
      dst?: Uint8Array
    }
  | { kind: 'raw' }
  | { kind: 'sll'; packetType?: number; padding?: PaddingStyle }
  | { kind: 'sll2'; ifIndex?: number; packetType?: number; padding?: PaddingStyle }
  /** The 4-byte family is in the capturing host's byte order, which need not be the file's. */
  | { kind: 'null'; bigEndian: boolean; af6?: number }

export interface Ipv4Spec {
  v: 4
  src: Uint8Array
  dst: Uint8Array
  ttl?: number
  id?: number
  tos?: number
  dontFragment?: boolean
  /** IP options, a multiple of 4 bytes, at most 40. */
  options?: Uint8Array
}

export type Ipv6ExtSpec =
  | { kind: 'hop-by-hop'; size?: number }
  | { kind: 'dest-opts'; size?: number }
  /** Type 0 routing header with segments left 0 (already at its final destination). */
  | { kind: 'routing'; addresses?: readonly Uint8Array[] }
  | { kind: 'fragment'; id: number; offset8: number; more: boolean }

export interface Ipv6Spec {
  v: 6
  src: Uint8Array
  dst: Uint8Array
  hopLimit?: number
  trafficClass?: number
  flowLabel?: number
  ext?: readonly Ipv6ExtSpec[]
}

export type IpSpec = Ipv4Spec | Ipv6Spec

export interface DatagramSpec {
  ip: IpSpec
  l4: L4Spec
}

export type L4Spec =
  | { kind: 'udp'; sport: number; dport: number; payload: Uint8Array; zeroChecksum?: boolean }
  | {
      kind: 'tcp'
      sport: number
      dport: number
      flags: number
      seq: number
      ack?: number
      window?: number
      options?: Uint8Array
      payload?: Uint8Array
    }
  /** ICMP destination unreachable (v4 type 3, v6 type 1) quoting the start of a datagram. */
  | { kind: 'icmp-unreachable'; code?: number; quote: DatagramSpec; quoteBytes?: number }
  /** ICMP time exceeded (v4 type 11, v6 type 3) quoting the start of a datagram. */
  | { kind: 'icmp-time-exceeded'; quote: DatagramSpec; quoteBytes?: number }
  | { kind: 'icmp-echo'; id: number; sequence: number; data?: Uint8Array }
  /** IP-in-IP (protocol 4) or 6in4 (protocol 41), chosen by the inner datagram's version. */
  | { kind: 'ip-in-ip'; inner: DatagramSpec }
  | { kind: 'gre'; inner: DatagramSpec }
  | { kind: 'raw'; protocol: number; data: Uint8Array }

export interface FrameSpec {
  link: LinkSpec
  datagram: DatagramSpec
}

export const TCP_FIN = 0x01
export const TCP_SYN = 0x02
export const TCP_RST = 0x04
export const TCP_PSH = 0x08
export const TCP_ACK = 0x10

// ---------------------------------------------------------------------------------------------
// Layout: where the patchable fields of a built frame are

/** A checksum that patchFrame must repair: base is the folded sum of everything it covers except `dyn`. */
export interface ChecksumFixup {
  at: number
  base: number
  /** [offset, length] pairs (frame-relative) whose current bytes are added at patch time. */
  dyn: number[]
  /** UDP transmits a computed 0 as 0xffff (0 means "no checksum"). */
  udp: boolean
}

export interface FrameLayout {
  /** Bytes on the wire (origlen), padding included. */
  length: number
  linkType: number
  /** Offset of the top-level IP header. */
  l3Offset: number
  ipVersion: 4 | 6
  srcOffset: number
  dstOffset: number
  addrLength: 4 | 16
  /** IPv4 TTL or IPv6 hop limit. */
  ttlOffset: number
  /** IPv4 identification (2 bytes) or IPv6 fragment id (4 bytes); -1 when absent. */
  idOffset: number
  idLength: number
  /** Top-level transport ports; -1 when the frame has none (later fragments, ICMP, tunnels). */
  sportOffset: number
  dportOffset: number
  checksums: ChecksumFixup[]
}

function emptyLayout(): FrameLayout {
  return {
    length: 0,
    linkType: 0,
    l3Offset: 0,
    ipVersion: 4,
    srcOffset: -1,
    dstOffset: -1,
    addrLength: 4,
    ttlOffset: -1,
    idOffset: -1,
    idLength: 0,
    sportOffset: -1,
    dportOffset: -1,
    checksums: [],
  }
}

// ---------------------------------------------------------------------------------------------
// Link layer

export function linkTypeOf(link: LinkSpec): number {
  switch (link.kind) {
    case 'ethernet':
      return LINKTYPE_ETHERNET
    case 'raw':
      return LINKTYPE_RAW
    case 'sll':
      return LINKTYPE_LINUX_SLL
    case 'sll2':
      return LINKTYPE_LINUX_SLL2
    case 'null':
      return LINKTYPE_NULL
  }
}

const DEFAULT_SRC_MAC = Uint8Array.from([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e])
const DEFAULT_DST_MAC = Uint8Array.from([0x00, 0x25, 0x90, 0xaa, 0xbb, 0xcc])

/** Writes the link-layer header for an IPv4 or IPv6 datagram; returns its length. */
export function writeLinkHeader(buf: Buffer, offset: number, link: LinkSpec, ipVersion: 4 | 6): number {
  const ethertype = ipVersion === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6
  switch (link.kind) {
    case 'ethernet': {
      buf.set(link.dst ?? DEFAULT_DST_MAC, offset)
      buf.set(link.src ?? DEFAULT_SRC_MAC, offset + 6)
      let p = offset + 12
      const vlans = link.vlans ?? []
      for (let i = 0; i < vlans.length; i++) {
        const tpid = vlans.length > 1 && i === 0 ? ETHERTYPE_QINQ : ETHERTYPE_VLAN
        buf.writeUInt16BE(tpid, p)
        buf.writeUInt16BE(vlans[i] & 0x0fff, p + 2)
        p += 4
      }
      buf.writeUInt16BE(ethertype, p)
      return p + 2 - offset
    }
    case 'raw':
      return 0
    case 'sll': {
      buf.writeUInt16BE(link.packetType ?? 0, offset) // 0: addressed to us
      buf.writeUInt16BE(1, offset + 2) // ARPHRD_ETHER
      buf.writeUInt16BE(6, offset + 4)
      buf.set(DEFAULT_SRC_MAC, offset + 6)
      buf.fill(0, offset + 12, offset + 14)
      buf.writeUInt16BE(ethertype, offset + 14)
      return 16
    }
    case 'sll2': {
      buf.writeUInt16BE(ethertype, offset)
      buf.writeUInt16BE(0, offset + 2)
      buf.writeUInt32BE(link.ifIndex ?? 2, offset + 4)
      buf.writeUInt16BE(1, offset + 8) // ARPHRD_ETHER
      buf[offset + 10] = link.packetType ?? 0
      buf[offset + 11] = 6
      buf.set(DEFAULT_SRC_MAC, offset + 12)
      buf.fill(0, offset + 18, offset + 20)
      return 20
    }
    case 'null': {
      const family = ipVersion === 4 ? AF_INET : (link.af6 ?? AF_INET6_FREEBSD)
      if (link.bigEndian) buf.writeUInt32BE(family, offset)
      else buf.writeUInt32LE(family, offset)
      return 4
    }
  }
}

function paddingOf(link: LinkSpec): PaddingStyle {
  if (link.kind === 'ethernet') return link.padding ?? 'zero'
  if (link.kind === 'sll' || link.kind === 'sll2') return link.padding ?? 'none'
  return 'none'
}

/**
 * Pads a frame that was an Ethernet frame on the wire up to the 60-byte minimum. For cooked
 * (SLL) captures the Ethernet header is gone but the padding stays, hence `linkHeaderLength`.
 */
function writePadding(
  buf: Buffer,
  frameStart: number,
  end: number,
  style: PaddingStyle,
  linkHeaderLength: number,
  isEthernet: boolean,
): number {
  if (style === 'none') return end
  const l3 = end - frameStart - linkHeaderLength
  const target = isEthernet
    ? frameStart + ETHERNET_MIN_FRAME
    : frameStart + linkHeaderLength + (ETHERNET_MIN_FRAME - 14)
  if (end >= target || l3 < 0) return end
  for (let i = end; i < target; i++) buf[i] = style === 'zero' ? 0 : 0xa5 ^ ((i - end) * 29)
  return target
}

// ---------------------------------------------------------------------------------------------
// Datagrams

const EMPTY = new Uint8Array(0)

function ipv6ExtLength(e: Ipv6ExtSpec): number {
  switch (e.kind) {
    case 'hop-by-hop':
    case 'dest-opts':
      return e.size ?? 8
    case 'routing':
      return 8 + 16 * (e.addresses?.length ?? 1)
    case 'fragment':
      return 8
  }
}

function ipHeaderLength(ip: IpSpec): number {
  if (ip.v === 4) return 20 + (ip.options?.length ?? 0)
  let n = 40
  for (const e of ip.ext ?? []) n += ipv6ExtLength(e)
  return n
}

function quoteLength(q: DatagramSpec, max: number | undefined): number {
  const full = datagramLength(q)
  return Math.min(full, max ?? full)
}

/** Length in bytes of the transport part (everything after the IP header chain). */
export function l4Length(l4: L4Spec): number {
  switch (l4.kind) {
    case 'udp':
      return 8 + l4.payload.length
    case 'tcp':
      return 20 + (l4.options?.length ?? 0) + (l4.payload?.length ?? 0)
    case 'icmp-unreachable':
    case 'icmp-time-exceeded':
      return 8 + quoteLength(l4.quote, l4.quoteBytes)
    case 'icmp-echo':
      return 8 + (l4.data?.length ?? 0)
    case 'ip-in-ip':
      return datagramLength(l4.inner)
    case 'gre':
      return 4 + datagramLength(l4.inner)
    case 'raw':
      return l4.data.length
  }
}

/** Length in bytes of a whole IP datagram. */
export function datagramLength(d: DatagramSpec): number {
  return ipHeaderLength(d.ip) + l4Length(d.l4)
}

function protocolOf(l4: L4Spec, ipVersion: 4 | 6): number {
  switch (l4.kind) {
    case 'udp':
      return IPPROTO_UDP
    case 'tcp':
      return IPPROTO_TCP
    case 'icmp-unreachable':
    case 'icmp-time-exceeded':
    case 'icmp-echo':
      return ipVersion === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6
    case 'ip-in-ip':
      return l4.inner.ip.v === 4 ? IPPROTO_IPIP : IPPROTO_IPV6
    case 'gre':
      return IPPROTO_GRE
    case 'raw':
      return l4.protocol
  }
}

const EXT_PROTO: Record<Ipv6ExtSpec['kind'], number> = {
  'hop-by-hop': IPPROTO_HOPOPTS,
  'dest-opts': IPPROTO_DSTOPTS,
  routing: IPPROTO_ROUTING,
  fragment: IPPROTO_FRAGMENT,
}

interface IpHeaderInfo {
  headerLength: number
  srcOffset: number
  dstOffset: number
  ttlOffset: number
  idOffset: number
  idLength: number
  /** IPv4 header checksum offset, or -1. */
  checksumOffset: number
}

/**
 * Writes an IPv4 header or an IPv6 header with its extension chain. `payloadLength` is the
 * length of what follows the header chain; fragment fields come from `frag` (IPv4) or from a
 * fragment extension header (IPv6).
 */
function writeIpHeader(
  buf: Buffer,
  offset: number,
  ip: IpSpec,
  protocol: number,
  payloadLength: number,
  frag?: { offset8: number; more: boolean },
): IpHeaderInfo {
  if (ip.v === 4) {
    const options = ip.options ?? EMPTY
    if (options.length % 4 !== 0 || options.length > 40) {
      throw new TeitenError('BAD_PARAMETER', 'IPv4 options must be a multiple of 4 bytes, at most 40')
    }
    const hl = 20 + options.length
    buf[offset] = 0x40 | (hl >>> 2)
    buf[offset + 1] = ip.tos ?? 0
    buf.writeUInt16BE(hl + payloadLength, offset + 2)
    buf.writeUInt16BE((ip.id ?? 0) & 0xffff, offset + 4)
    const flags = (ip.dontFragment ? 0x4000 : 0) | (frag?.more ? 0x2000 : 0) | ((frag?.offset8 ?? 0) & 0x1fff)
    buf.writeUInt16BE(flags, offset + 6)
    buf[offset + 8] = ip.ttl ?? 64
    buf[offset + 9] = protocol
    buf.writeUInt16BE(0, offset + 10)
    buf.set(ip.src, offset + 12)
    buf.set(ip.dst, offset + 16)
    buf.set(options, offset + 20)
    buf.writeUInt16BE(finishChecksum(sum16(buf, offset, hl)), offset + 10)
    return {
      headerLength: hl,
      srcOffset: offset + 12,
      dstOffset: offset + 16,
      ttlOffset: offset + 8,
      idOffset: offset + 4,
      idLength: 2,
      checksumOffset: offset + 10,
    }
  }
  const ext = ip.ext ?? []
  let extTotal = 0
  for (const e of ext) extTotal += ipv6ExtLength(e)
  buf.writeUInt32BE((0x6 << 28) | (((ip.trafficClass ?? 0) & 0xff) << 20) | ((ip.flowLabel ?? 0) & 0xfffff), offset)
  buf.writeUInt16BE(extTotal + payloadLength, offset + 4)
  buf[offset + 6] = ext.length > 0 ? EXT_PROTO[ext[0].kind] : protocol
  buf[offset + 7] = ip.hopLimit ?? 64
  buf.set(ip.src, offset + 8)
  buf.set(ip.dst, offset + 24)
  let p = offset + 40
  let idOffset = -1
  for (let i = 0; i < ext.length; i++) {
    const e = ext[i]
    const next = i + 1 < ext.length ? EXT_PROTO[ext[i + 1].kind] : protocol
    const len = ipv6ExtLength(e)
    buf.fill(0, p, p + len)
    buf[p] = next
    switch (e.kind) {
      case 'hop-by-hop':
      case 'dest-opts': {
        if (len % 8 !== 0 || len < 8) throw new TeitenError('BAD_PARAMETER', 'IPv6 option header size')
        buf[p + 1] = len / 8 - 1
        // One PadN option covering the rest of the header (RFC 8200 section 4.2).
        buf[p + 2] = 1
        buf[p + 3] = len - 4
        break
      }
      case 'routing': {
        const addresses = e.addresses ?? [ip.dst]
        buf[p + 1] = addresses.length * 2
        buf[p + 2] = 0 // type 0
        buf[p + 3] = 0 // segments left: already at the final destination
        addresses.forEach((a, k) => {
          buf.set(a, p + 8 + 16 * k)
        })
        break
      }
      case 'fragment': {
        const f = frag ?? e
        buf.writeUInt16BE(((f.offset8 & 0x1fff) << 3) | (f.more ? 1 : 0), p + 2)
        buf.writeUInt32BE(e.id >>> 0, p + 4)
        idOffset = p + 4
        break
      }
    }
    p += len
  }
  return {
    headerLength: 40 + extTotal,
    srcOffset: offset + 8,
    dstOffset: offset + 24,
    ttlOffset: offset + 7,
    idOffset,
    idLength: idOffset >= 0 ? 4 : 0,
    checksumOffset: -1,
  }
}

/** Ones' complement sum of the UDP/TCP/ICMPv6 pseudo-header. */
function pseudoSum(buf: Buffer, h: IpHeaderInfo, ipVersion: 4 | 6, protocol: number, length: number): number {
  const alen = ipVersion === 4 ? 4 : 16
  let s = sum16(buf, h.srcOffset, alen)
  s = sum16(buf, h.dstOffset, alen, s)
  if (ipVersion === 4) return s + protocol + length
  return s + Math.floor(length / 0x10000) + (length & 0xffff) + protocol
}

interface DatagramInfo {
  length: number
  ip: IpHeaderInfo
  sportOffset: number
  dportOffset: number
  /** Transport checksum (UDP/TCP/ICMPv6 over a pseudo-header) or -1. */
  l4ChecksumOffset: number
  l4ChecksumUdp: boolean
  l4UsesPseudo: boolean
}

/**
 * Writes a whole IP datagram (header chain and transport, recursively for tunnels and ICMP
 * quotes) with correct lengths and checksums. Returns where the patchable fields are.
 */
export function writeDatagram(buf: Buffer, offset: number, d: DatagramSpec): DatagramInfo {
  const l4 = d.l4
  const v = d.ip.v
  const protocol = protocolOf(l4, v)
  const l4len = l4Length(l4)
  const h = writeIpHeader(buf, offset, d.ip, protocol, l4len)
  const t = offset + h.headerLength
  const info: DatagramInfo = {
    length: h.headerLength + l4len,
    ip: h,
    sportOffset: -1,
    dportOffset: -1,
    l4ChecksumOffset: -1,
    l4ChecksumUdp: false,
    l4UsesPseudo: false,
  }
  switch (l4.kind) {
    case 'udp': {
      buf.writeUInt16BE(l4.sport, t)
      buf.writeUInt16BE(l4.dport, t + 2)
      buf.writeUInt16BE(l4len, t + 4)
      buf.writeUInt16BE(0, t + 6)
      buf.set(l4.payload, t + 8)
      info.sportOffset = t
      info.dportOffset = t + 2
      if (!(l4.zeroChecksum && v === 4)) {
        let ck = finishChecksum(sum16(buf, t, l4len, pseudoSum(buf, h, v, IPPROTO_UDP, l4len)))
        if (ck === 0) ck = 0xffff
        buf.writeUInt16BE(ck, t + 6)
        info.l4ChecksumOffset = t + 6
        info.l4ChecksumUdp = true
        info.l4UsesPseudo = true
      }
      break
    }
    case 'tcp': {
      const options = l4.options ?? EMPTY
      if (options.length % 4 !== 0) throw new TeitenError('BAD_PARAMETER', 'TCP options must be a multiple of 4 bytes')
      const hl = 20 + options.length
      buf.writeUInt16BE(l4.sport, t)
      buf.writeUInt16BE(l4.dport, t + 2)
      buf.writeUInt32BE(l4.seq >>> 0, t + 4)
      buf.writeUInt32BE((l4.ack ?? 0) >>> 0, t + 8)
      buf.writeUInt16BE(((hl / 4) << 12) | (l4.flags & 0x1ff), t + 12)
      buf.writeUInt16BE(l4.window ?? 65535, t + 14)
      buf.writeUInt32BE(0, t + 16) // checksum, urgent pointer
      buf.set(options, t + 20)
      if (l4.payload) buf.set(l4.payload, t + hl)
      buf.writeUInt16BE(finishChecksum(sum16(buf, t, l4len, pseudoSum(buf, h, v, IPPROTO_TCP, l4len))), t + 16)
      info.sportOffset = t
      info.dportOffset = t + 2
      info.l4ChecksumOffset = t + 16
      info.l4UsesPseudo = true
      break
    }
    case 'icmp-unreachable':
    case 'icmp-time-exceeded':
    case 'icmp-echo': {
      if (l4.kind === 'icmp-echo') {
        buf[t] = v === 4 ? 8 : 128
        buf[t + 1] = 0
        buf.writeUInt16BE(l4.id & 0xffff, t + 4)
        buf.writeUInt16BE(l4.sequence & 0xffff, t + 6)
        if (l4.data) buf.set(l4.data, t + 8)
      } else {
        if (l4.kind === 'icmp-unreachable') {
          buf[t] = v === 4 ? 3 : 1
          buf[t + 1] = l4.code ?? (v === 4 ? 3 : 4) // port unreachable
        } else {
          buf[t] = v === 4 ? 11 : 3
          buf[t + 1] = 0
        }
        buf.writeUInt32BE(0, t + 4)
        // The quote is the start of the offending datagram; its own header still claims the
        // full length, as a router's quote does.
        const scratch = Buffer.alloc(datagramLength(l4.quote))
        writeDatagram(scratch, 0, l4.quote)
        scratch.copy(buf, t + 8, 0, l4len - 8)
      }
      buf.writeUInt16BE(0, t + 2)
      const s = v === 4 ? sum16(buf, t, l4len) : sum16(buf, t, l4len, pseudoSum(buf, h, v, IPPROTO_ICMPV6, l4len))
      buf.writeUInt16BE(finishChecksum(s), t + 2)
      info.l4ChecksumOffset = t + 2
      info.l4UsesPseudo = v === 6
      break
    }
    case 'ip-in-ip':
      writeDatagram(buf, t, l4.inner)
      break
    case 'gre':
      buf.writeUInt16BE(0, t) // no checksum, key or sequence; version 0
      buf.writeUInt16BE(l4.inner.ip.v === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, t + 2)
      writeDatagram(buf, t + 4, l4.inner)
      break
    case 'raw':
      buf.set(l4.data, t)
      break
  }
  return info
}

function addrLen(v: 4 | 6): 4 | 16 {
  return v === 4 ? 4 : 16
}

/** Records the checksums a patch must repair, given the fields a patch may rewrite. */
function recordFixups(buf: Buffer, layout: FrameLayout, d: DatagramInfo): void {
  const alen = layout.addrLength
  if (d.ip.checksumOffset >= 0) {
    const ipOff = layout.l3Offset
    const dyn = [ipOff + 4, 2, ipOff + 8, 2, d.ip.srcOffset, alen, d.ip.dstOffset, alen]
    layout.checksums.push(makeFixup(buf, d.ip.checksumOffset, dyn, false))
  }
  if (d.l4ChecksumOffset >= 0 && d.l4UsesPseudo) {
    const dyn = [d.ip.srcOffset, alen, d.ip.dstOffset, alen]
    if (d.sportOffset >= 0) dyn.push(d.sportOffset, 2, d.dportOffset, 2)
    layout.checksums.push(makeFixup(buf, d.l4ChecksumOffset, dyn, d.l4ChecksumUdp))
  }
}

/**
 * base = (sum the checksum covers) - (sum of the dynamic fields), in ones' complement
 * arithmetic, recovered from the checksum already written: S = ~stored.
 */
function makeFixup(buf: Buffer, at: number, dyn: number[], udp: boolean): ChecksumFixup {
  const stored = buf.readUInt16BE(at)
  const covered = ~stored & 0xffff
  let d = 0
  for (let i = 0; i < dyn.length; i += 2) d = sum16(buf, dyn[i], dyn[i + 1], d)
  return { at, base: fold16(covered + (0xffff - fold16(d))), dyn, udp }
}

/**
 * Builds a whole frame (link header, datagram, link padding) at buf[offset]. The layout's
 * offsets are relative to the frame start, so the frame can be copied anywhere and patched.
 */
export function buildFrame(buf: Buffer, offset: number, spec: FrameSpec): FrameLayout {
  const v = spec.datagram.ip.v
  const lh = writeLinkHeader(buf, offset, spec.link, v)
  const d = writeDatagram(buf, offset + lh, spec.datagram)
  const end = writePadding(buf, offset, offset + lh + d.length, paddingOf(spec.link), lh, spec.link.kind === 'ethernet')
  const layout = emptyLayout()
  layout.length = end - offset
  layout.linkType = linkTypeOf(spec.link)
  layout.l3Offset = offset + lh
  layout.ipVersion = v
  layout.addrLength = addrLen(v)
  layout.srcOffset = d.ip.srcOffset
  layout.dstOffset = d.ip.dstOffset
  layout.ttlOffset = d.ip.ttlOffset
  layout.idOffset = d.ip.idOffset
  layout.idLength = d.ip.idLength
  layout.sportOffset = d.sportOffset
  layout.dportOffset = d.dportOffset
  recordFixups(buf, layout, d)
  return relativize(layout, offset)
}

function relativize(layout: FrameLayout, frameStart: number): FrameLayout {
  const rel = (x: number) => (x >= 0 ? x - frameStart : x)
  return {
    ...layout,
    l3Offset: rel(layout.l3Offset),
    srcOffset: rel(layout.srcOffset),
    dstOffset: rel(layout.dstOffset),
    ttlOffset: rel(layout.ttlOffset),
    idOffset: rel(layout.idOffset),
    sportOffset: rel(layout.sportOffset),
    dportOffset: rel(layout.dportOffset),
    checksums: layout.checksums.map((c) => ({
      ...c,
      at: c.at - frameStart,
      dyn: c.dyn.map((x, i) => (i % 2 === 0 ? x - frameStart : x)),
    })),
  }
}

/** One frame of a fragmented datagram. */
export interface BuiltFrame {
  bytes: Buffer
  layout: FrameLayout
}

/**
 * Fragments a datagram the way a router does: the first fragment carries the transport header
 * and the first `fragmentBytes` bytes after the IP header chain (a multiple of 8), the others
 * carry the rest without any transport header. IPv4 uses the MF flag and fragment offset;
 * IPv6 appends a fragment extension header after the spec's chain (the spec must not have
 * one). Transport checksums are computed over the whole datagram, as the sender did.
 */
export function buildFragments(
  link: LinkSpec,
  d: DatagramSpec,
  fragmentBytes: number,
  fragmentId: number,
): BuiltFrame[] {
  if (fragmentBytes % 8 !== 0 || fragmentBytes < 8) {
    throw new TeitenError('BAD_PARAMETER', 'fragment size must be a positive multiple of 8')
  }
  const v = d.ip.v
  // The whole datagram, to get the transport bytes and checksum as sent.
  const full = Buffer.alloc(datagramLength(d) + 64)
  const info = writeDatagram(full, 0, d)
  const transport = full.subarray(info.ip.headerLength, info.length)
  const protocol = protocolOf(d.l4, v)
  const frames: BuiltFrame[] = []
  const scratch = Buffer.alloc(transport.length + 256)
  for (let start = 0; start < transport.length; start += fragmentBytes) {
    const chunk = transport.subarray(start, Math.min(transport.length, start + fragmentBytes))
    const more = start + chunk.length < transport.length
    const frag = { offset8: start / 8, more }
    let ip: IpSpec = d.ip
    if (v === 6) {
      if ((d.ip as Ipv6Spec).ext?.some((e) => e.kind === 'fragment')) {
        throw new TeitenError('BAD_PARAMETER', 'datagram to fragment already has a fragment header')
      }
      const ext: Ipv6ExtSpec[] = [...((d.ip as Ipv6Spec).ext ?? []), { kind: 'fragment', id: fragmentId, ...frag }]
      ip = { ...(d.ip as Ipv6Spec), ext }
    } else {
      ip = { ...(d.ip as Ipv4Spec), id: fragmentId & 0xffff, dontFragment: false }
    }
    const lh = writeLinkHeader(scratch, 0, link, v)
    const h = writeIpHeader(scratch, lh, ip, protocol, chunk.length, v === 4 ? frag : undefined)
    chunk.copy(scratch, lh + h.headerLength)
    const end = writePadding(
      scratch,
      0,
      lh + h.headerLength + chunk.length,
      paddingOf(link),
      lh,
      link.kind === 'ethernet',
    )
    const layout = emptyLayout()
    layout.length = end
    layout.linkType = linkTypeOf(link)
    layout.l3Offset = lh
    layout.ipVersion = v
    layout.addrLength = addrLen(v)
    layout.srcOffset = h.srcOffset
    layout.dstOffset = h.dstOffset
    layout.ttlOffset = h.ttlOffset
    layout.idOffset = h.idOffset
    layout.idLength = h.idLength
    const first = start === 0
    const tInfo: DatagramInfo = {
      length: h.headerLength + chunk.length,
      ip: h,
      sportOffset: first && info.sportOffset >= 0 ? lh + h.headerLength : -1,
      dportOffset: first && info.dportOffset >= 0 ? lh + h.headerLength + 2 : -1,
      l4ChecksumOffset:
        first && info.l4ChecksumOffset >= 0 ? lh + h.headerLength + (info.l4ChecksumOffset - info.ip.headerLength) : -1,
      l4ChecksumUdp: info.l4ChecksumUdp,
      l4UsesPseudo: info.l4UsesPseudo,
    }
    layout.sportOffset = tInfo.sportOffset
    layout.dportOffset = tInfo.dportOffset
    // The first fragment's transport checksum covers bytes of later fragments too; makeFixup
    // only needs the stored value and the dynamic fields, which are all in this frame.
    recordFixups(scratch, layout, tInfo)
    frames.push({ bytes: Buffer.from(scratch.subarray(0, end)), layout })
  }
  return frames
}

// ---------------------------------------------------------------------------------------------
// Patching

/**
 * Rewrites the top-level addresses, ports, IP id and TTL of a built frame at buf[offset] and
 * repairs every checksum that covers them. Pass -1 for a port, id or ttl to leave it as built.
 * No allocation: this runs once per generated packet.
 */
export function patchFrame(
  buf: Buffer,
  offset: number,
  layout: FrameLayout,
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  id: number,
  ttl: number,
): void {
  buf.set(src, offset + layout.srcOffset)
  buf.set(dst, offset + layout.dstOffset)
  if (sport >= 0 && layout.sportOffset >= 0) buf.writeUInt16BE(sport, offset + layout.sportOffset)
  if (dport >= 0 && layout.dportOffset >= 0) buf.writeUInt16BE(dport, offset + layout.dportOffset)
  if (id >= 0 && layout.idOffset >= 0) {
    if (layout.idLength === 2) buf.writeUInt16BE(id & 0xffff, offset + layout.idOffset)
    else buf.writeUInt32BE(id >>> 0, offset + layout.idOffset)
  }
  if (ttl >= 0) buf[offset + layout.ttlOffset] = ttl
  const cks = layout.checksums
  for (let c = 0; c < cks.length; c++) {
    const ck = cks[c]
    let s = ck.base
    const dyn = ck.dyn
    for (let i = 0; i < dyn.length; i += 2) s = sum16(buf, offset + dyn[i], dyn[i + 1], s)
    let v = ~fold16(s) & 0xffff
    if (v === 0 && ck.udp) v = 0xffff
    buf.writeUInt16BE(v, offset + ck.at)
  }
}

/** Verifies every checksum a layout knows about (for tests): true when all are consistent. */
export function checksumsValid(buf: Buffer, offset: number, layout: FrameLayout): boolean {
  for (const ck of layout.checksums) {
    let s = ck.base
    for (let i = 0; i < ck.dyn.length; i += 2) s = sum16(buf, offset + ck.dyn[i], ck.dyn[i + 1], s)
    let v = ~fold16(s) & 0xffff
    if (v === 0 && ck.udp) v = 0xffff
    if (buf.readUInt16BE(offset + ck.at) !== v) return false
  }
  return true
}
