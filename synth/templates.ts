/**
 * Frame templates: every distinct frame shape the corpus uses (payload variant x IP version x
 * network variant x link variant, and the noise kinds) is built once, on first use, with the
 * frame builders; each generated packet is then a template patched in place with its own
 * addresses, ports, IP id and TTL (frames.patchFrame), which keeps generation at a few hundred
 * nanoseconds per packet.
 */
import { NTP_CLASSES } from '../core/event.js'
import {
  buildFragments,
  buildFrame,
  type DatagramSpec,
  type FrameLayout,
  type IpSpec,
  type Ipv4Spec,
  type Ipv6ExtSpec,
  type Ipv6Spec,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  type L4Spec,
  type LinkSpec,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from './frames.js'
import type { PayloadVariant } from './payloads.js'
import type { Prefix } from './population.js'
import { cumulative, Rng } from './rng.js'

// ---------------------------------------------------------------------------------------------
// Link variants: what one capture interface's frames look like

export const LINK_VARIANTS: readonly LinkSpec[] = [
  { kind: 'ethernet' }, // 0: received frames, zero padding
  { kind: 'ethernet', padding: 'junk' }, // 1: a NIC that leaks memory into the padding
  { kind: 'ethernet', padding: 'none' }, // 2: no padding
  { kind: 'ethernet', vlans: [101] }, // 3: 802.1Q
  { kind: 'ethernet', vlans: [20, 301] }, // 4: QinQ (802.1ad outer, 802.1Q inner)
  { kind: 'raw' }, // 5
  { kind: 'sll' }, // 6
  { kind: 'sll', padding: 'zero' }, // 7: cooked capture of a padded Ethernet frame
  { kind: 'sll2' }, // 8
  { kind: 'sll2', padding: 'junk' }, // 9
  { kind: 'null', bigEndian: false, af6: 28 }, // 10: FreeBSD on x86
  { kind: 'null', bigEndian: true, af6: 24 }, // 11: NetBSD on a big-endian host
  { kind: 'null', bigEndian: false, af6: 30 }, // 12: macOS
]

/** What a file's interface is declared as; each maps to a weighted set of link variants. */
export type LinkChoice = 'ethernet' | 'raw' | 'sll' | 'sll2' | 'null-le' | 'null-be'

export interface LinkChoiceInfo {
  linkType: number
  variants: readonly number[]
  cumulative: Float64Array
}

export const LINK_CHOICES: Readonly<Record<LinkChoice, LinkChoiceInfo>> = {
  ethernet: { linkType: LINKTYPE_ETHERNET, variants: [0, 1, 2, 3, 4], cumulative: cumulative([55, 10, 10, 18, 7]) },
  raw: { linkType: LINKTYPE_RAW, variants: [5], cumulative: cumulative([1]) },
  sll: { linkType: LINKTYPE_LINUX_SLL, variants: [6, 7], cumulative: cumulative([70, 30]) },
  sll2: { linkType: LINKTYPE_LINUX_SLL2, variants: [8, 9], cumulative: cumulative([70, 30]) },
  'null-le': { linkType: LINKTYPE_NULL, variants: [10, 12], cumulative: cumulative([60, 40]) },
  'null-be': { linkType: LINKTYPE_NULL, variants: [11], cumulative: cumulative([1]) },
}

// ---------------------------------------------------------------------------------------------
// Network variants of kept datagrams

export const NET_V4 = ['plain-df', 'plain', 'options', 'fragmented', 'snaplen-cut', 'udp-checksum-0'] as const
export const NET_V6 = [
  'plain',
  'hop-by-hop',
  'dest-opts',
  'ext-chain',
  'fragmented',
  'atomic-fragment',
  'snaplen-cut',
] as const
export const NET_V4_CUM = cumulative([70, 10, 3, 5, 5, 3])
export const NET_V6_CUM = cumulative([70, 6, 5, 5, 5, 3, 4])
const NET_COUNT = Math.max(NET_V4.length, NET_V6.length)

const IPV4_OPTIONS: readonly Uint8Array[] = [
  Uint8Array.of(0x94, 0x04, 0x00, 0x00), // router alert
  Uint8Array.of(0x01, 0x01, 0x01, 0x00), // NOPs, end of list
  Uint8Array.of(0x07, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00), // record route, one empty slot
]

// ---------------------------------------------------------------------------------------------
// Noise kinds (records the pipeline must drop)

export type DropCategory = 'fragment' | 'icmp' | 'tunnel' | 'tcp' | 'udp_other' | 'other'
export const DROP_CATEGORIES: readonly DropCategory[] = ['fragment', 'icmp', 'tunnel', 'tcp', 'udp_other', 'other']

export interface NoiseKind {
  name: string
  category: DropCategory
  weight: number
  /** IPv6 allowed (the kind is drawn for an IPv6 noise source only when true). */
  v6: boolean
  /** Source port per packet: a fixed value, or -1 for random ephemeral. */
  sport: number
  dport: number
}

export const NOISE_KINDS: readonly NoiseKind[] = [
  { name: 'tcp-syn', category: 'tcp', weight: 26, v6: true, sport: -1, dport: 0 },
  { name: 'tcp-syn-123', category: 'tcp', weight: 4, v6: true, sport: -1, dport: 123 },
  { name: 'tcp-synack-80', category: 'tcp', weight: 5, v6: false, sport: 80, dport: -1 },
  { name: 'tcp-rst-123', category: 'tcp', weight: 3, v6: false, sport: 123, dport: -1 },
  { name: 'udp-dns', category: 'udp_other', weight: 8, v6: true, sport: -1, dport: 53 },
  { name: 'udp-dns-backscatter', category: 'udp_other', weight: 3, v6: false, sport: 53, dport: -1 },
  { name: 'udp-snmp', category: 'udp_other', weight: 5, v6: false, sport: -1, dport: 161 },
  { name: 'udp-ssdp', category: 'udp_other', weight: 5, v6: false, sport: -1, dport: 1900 },
  { name: 'udp-netbios', category: 'udp_other', weight: 3, v6: false, sport: 137, dport: 137 },
  { name: 'udp-sip', category: 'udp_other', weight: 3, v6: true, sport: 5060, dport: 5060 },
  { name: 'udp-random', category: 'udp_other', weight: 5, v6: true, sport: -1, dport: 0 },
  { name: 'udp-1230', category: 'udp_other', weight: 1, v6: false, sport: 1230, dport: 1231 },
  { name: 'icmp-unreach-ntp', category: 'icmp', weight: 8, v6: true, sport: -1, dport: -1 },
  { name: 'icmp-unreach-ntp-short', category: 'icmp', weight: 2, v6: false, sport: -1, dport: -1 },
  { name: 'icmp-timex-ntp', category: 'icmp', weight: 2, v6: true, sport: -1, dport: -1 },
  { name: 'icmp-echo', category: 'icmp', weight: 5, v6: true, sport: -1, dport: -1 },
  { name: 'tunnel-ipip', category: 'tunnel', weight: 2, v6: false, sport: -1, dport: -1 },
  { name: 'tunnel-gre', category: 'tunnel', weight: 2, v6: false, sport: -1, dport: -1 },
  { name: 'tunnel-6in4', category: 'tunnel', weight: 2, v6: false, sport: -1, dport: -1 },
  { name: 'tunnel-4in6', category: 'tunnel', weight: 1, v6: true, sport: -1, dport: -1 },
  { name: 'ip-proto-253', category: 'other', weight: 1, v6: true, sport: -1, dport: -1 },
]
export const NOISE_CUM_V4 = cumulative(NOISE_KINDS.map((k) => k.weight))
export const NOISE_CUM_V6 = cumulative(NOISE_KINDS.map((k) => (k.v6 ? k.weight : 0)))

// ---------------------------------------------------------------------------------------------
// Templates

export interface TemplateFrame {
  bytes: Buffer
  /** Bytes captured (< bytes.length for snaplen-cut records). */
  caplen: number
  layout: FrameLayout
  /** For the truth: the frame is a kept UDP/123 datagram (whole, or its first fragment). */
  kept: boolean
  category: DropCategory | null
}

export interface Template {
  frames: TemplateFrame[]
  /** Class id of the payload (kept templates) or -1. */
  classId: number
  /** Noise: fixed ports, or -1 for a random ephemeral one. */
  sport: number
  dport: number
}

const CLASS_INDEX = new Map<string, number>(NTP_CLASSES.map((c, i) => [c, i]))

const V4_PLACEHOLDER = Buffer.alloc(4)
const V6_PLACEHOLDER = Buffer.alloc(16)

export class TemplateStore {
  private kept: Array<Template | undefined> = []
  private noise: Array<Template | undefined> = []
  private counts: Array<number | undefined> = []
  private readonly scratch = Buffer.alloc(1 << 16)
  built = 0

  constructor(
    private readonly seed: number,
    private readonly catalog: readonly PayloadVariant[],
    private readonly sensorPrefixes: ReadonlyArray<{ v4: Prefix; v6: Prefix }>,
  ) {}

  /** The template of a kept datagram (net is an index into NET_V4 or NET_V6). */
  keptTemplate(variant: number, v6: boolean, net: number, linkVariant: number): Template {
    const datagramKey = (variant * 2 + (v6 ? 1 : 0)) * NET_COUNT + net
    const key = datagramKey * LINK_VARIANTS.length + linkVariant
    let t = this.kept[key]
    if (t === undefined) {
      t = this.buildKept(variant, v6, net, linkVariant, datagramKey)
      this.kept[key] = t
      this.built++
    }
    return t
  }

  noiseTemplate(kind: number, v6: boolean, linkVariant: number, sensor: number): Template {
    const key = ((kind * 2 + (v6 ? 1 : 0)) * LINK_VARIANTS.length + linkVariant) * 8 + sensor
    let t = this.noise[key]
    if (t === undefined) {
      t = this.buildNoise(kind, v6, linkVariant, sensor, key)
      this.noise[key] = t
      this.built++
    }
    return t
  }

  private frame(link: LinkSpec, datagram: DatagramSpec, kept: boolean, category: DropCategory | null): TemplateFrame {
    const layout = buildFrame(this.scratch, 0, { link, datagram })
    return {
      bytes: Buffer.from(this.scratch.subarray(0, layout.length)),
      caplen: layout.length,
      layout,
      kept,
      category,
    }
  }

  /**
   * Records a datagram becomes (more than 1 when fragmented), without building anything for a
   * link: fragmenting and cutting depend on the datagram only, never on the file's link type.
   */
  frameCount(variant: number, v6: boolean, net: number): number {
    const datagramKey = (variant * 2 + (v6 ? 1 : 0)) * NET_COUNT + net
    let n = this.counts[datagramKey]
    if (n === undefined) {
      n = this.keptTemplate(variant, v6, net, 5).frames.length
      this.counts[datagramKey] = n
    }
    return n
  }

  private buildKept(variant: number, v6: boolean, net: number, linkVariant: number, datagramKey: number): Template {
    // Seeded by the datagram alone, so every link variant gets the same fragments and cuts.
    const rng = Rng.derive(this.seed, `kept:${datagramKey}`)
    const p = this.catalog[variant]
    const link = LINK_VARIANTS[linkVariant]
    const payload = p.bytes
    const udp: L4Spec = { kind: 'udp', sport: 0, dport: 0, payload }
    const classId = CLASS_INDEX.get(p.cls) ?? -1
    const netName = v6 ? NET_V6[net] : NET_V4[net]
    const whole = (ip: IpSpec, l4: L4Spec = udp): Template => ({
      frames: [this.frame(link, { ip, l4 }, true, null)],
      classId,
      sport: -1,
      dport: -1,
    })
    const ip4: Ipv4Spec = { v: 4, src: V4_PLACEHOLDER, dst: V4_PLACEHOLDER, dontFragment: true }
    const ip6: Ipv6Spec = { v: 6, src: V6_PLACEHOLDER, dst: V6_PLACEHOLDER, flowLabel: rng.int(1 << 20) }
    const ip: IpSpec = v6 ? ip6 : ip4
    switch (netName) {
      case 'plain-df':
        return whole(ip)
      case 'plain':
        return whole(v6 ? ip6 : { ...ip4, dontFragment: false, tos: rng.pick([0, 0x10, 0x28]) })
      case 'options':
        return whole({ ...ip4, options: rng.pick(IPV4_OPTIONS) })
      case 'udp-checksum-0':
        return whole(ip, { ...udp, zeroChecksum: true })
      case 'hop-by-hop':
        return whole({ ...ip6, ext: [{ kind: 'hop-by-hop' }] })
      case 'dest-opts':
        return whole({ ...ip6, ext: [{ kind: 'dest-opts', size: 16 }] })
      case 'ext-chain':
        return whole({ ...ip6, ext: [{ kind: 'hop-by-hop' }, { kind: 'dest-opts' }, { kind: 'routing' }] })
      case 'atomic-fragment':
        return whole({ ...ip6, ext: [{ kind: 'fragment', id: rng.u32(), offset8: 0, more: false }] })
      case 'fragmented': {
        const sizes = [64, 128, 256].filter((f) => f < 8 + payload.length && fragmentStable(p, f))
        if (sizes.length === 0) return whole(ip)
        const ext: Ipv6ExtSpec[] = v6 && rng.chance(0.5) ? [{ kind: 'hop-by-hop' }] : []
        const fip: IpSpec = v6 ? { ...ip6, ext } : { ...ip4, dontFragment: false }
        const built = buildFragments(link, { ip: fip, l4: udp }, rng.pick(sizes), rng.u32())
        return {
          frames: built.map((f, i) => ({
            bytes: f.bytes,
            caplen: f.bytes.length,
            layout: f.layout,
            kept: i === 0,
            category: i === 0 ? null : 'fragment',
          })),
          classId,
          sport: -1,
          dport: -1,
        }
      }
      case 'snaplen-cut': {
        const present = cutLength(p, rng)
        const t = whole(ip)
        if (present >= 0) {
          const f = t.frames[0]
          const headers = f.layout.length - paddingLength(f) - payload.length
          f.caplen = headers + present
        }
        return t
      }
    }
    return whole(ip)
  }

  private buildNoise(kind: number, v6: boolean, linkVariant: number, sensor: number, key: number): Template {
    const rng = Rng.derive(this.seed, `noise:${key}`)
    const k = NOISE_KINDS[kind]
    const link = LINK_VARIANTS[linkVariant]
    const prefixes = this.sensorPrefixes[sensor] ?? this.sensorPrefixes[0]
    const darkV4 = Buffer.from(prefixes.v4.bytes)
    darkV4[3] |= 1 + rng.int(200)
    const darkV6 = Buffer.from(prefixes.v6.bytes)
    darkV6[15] = 1 + rng.int(250)
    const placeholder = v6 ? V6_PLACEHOLDER : V4_PLACEHOLDER
    const ip: IpSpec = v6
      ? { v: 6, src: placeholder, dst: placeholder }
      : { v: 4, src: placeholder, dst: placeholder, dontFragment: rng.chance(0.5) }
    const victim4 = Buffer.from([203, 178, 128 + rng.int(64), 1 + rng.int(250)])
    const victim6 = Buffer.from('2001020000000000000000000000007b', 'hex')
    victim6[14] = rng.int(256)
    const ntpProbe = Buffer.from([0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0])
    const quoted = (qv6: boolean): DatagramSpec => ({
      // What the darknet address supposedly sent: a spoofed NTP request to port 123.
      ip: qv6 ? { v: 6, src: darkV6, dst: victim6 } : { v: 4, src: darkV4, dst: victim4, ttl: 1 + rng.int(60) },
      l4: { kind: 'udp', sport: rng.range(1024, 65535), dport: 123, payload: ntpProbe },
    })
    const innerNtp = (iv6: boolean): DatagramSpec => ({
      ip: iv6
        ? { v: 6, src: Buffer.from('2a0102e0000000000000000000001234', 'hex'), dst: darkV6 }
        : { v: 4, src: Buffer.from([91, 121, 8, 1 + rng.int(250)]), dst: darkV4 },
      l4: { kind: 'udp', sport: rng.range(1024, 65535), dport: 123, payload: ntpProbe },
    })
    const synOptions = Uint8Array.of(0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07)
    const tcpDports = [23, 22, 80, 443, 445, 3389, 8080, 1433, 5900, 2323]
    const randomBytes = (n: number) => {
      const b = Buffer.alloc(n)
      rng.fill(b, 0, n)
      return b
    }
    let l4: L4Spec
    const sport = k.sport
    let dport = k.dport
    switch (k.name) {
      case 'tcp-syn':
        dport = rng.pick(tcpDports)
        l4 = { kind: 'tcp', sport: 0, dport, flags: TCP_SYN, seq: rng.u32(), options: synOptions }
        break
      case 'tcp-syn-123':
        l4 = { kind: 'tcp', sport: 0, dport: 123, flags: TCP_SYN, seq: rng.u32(), window: 1024 }
        break
      case 'tcp-synack-80':
        l4 = { kind: 'tcp', sport: 80, dport: 0, flags: TCP_SYN | TCP_ACK, seq: rng.u32(), ack: rng.u32() }
        break
      case 'tcp-rst-123':
        l4 = { kind: 'tcp', sport: 123, dport: 0, flags: TCP_RST | TCP_ACK, seq: 0, ack: rng.u32(), window: 0 }
        break
      case 'udp-dns': {
        const q = Buffer.from('abcd0100000100000000000003777777076578616d706c6503636f6d0000ff0001', 'hex')
        l4 = { kind: 'udp', sport: 0, dport: 53, payload: q }
        break
      }
      case 'udp-dns-backscatter':
        l4 = { kind: 'udp', sport: 53, dport: 0, payload: randomBytes(rng.range(40, 300)) }
        break
      case 'udp-snmp':
        l4 = {
          kind: 'udp',
          sport: 0,
          dport: 161,
          payload: Buffer.from(
            '302602010104067075626c6963a0190204' + '1234567802010002010030' + '0b300906052b060102010500',
            'hex',
          ),
        }
        break
      case 'udp-ssdp':
        l4 = {
          kind: 'udp',
          sport: 0,
          dport: 1900,
          payload: Buffer.from(
            'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n',
          ),
        }
        break
      case 'udp-netbios':
        l4 = {
          kind: 'udp',
          sport: 137,
          dport: 137,
          payload: Buffer.from(
            'e5d80000000100000000000020434b4141414141414141414141414141414141414141414141414141414141410000210001',
            'hex',
          ),
        }
        break
      case 'udp-sip':
        l4 = {
          kind: 'udp',
          sport: 5060,
          dport: 5060,
          payload: Buffer.from('OPTIONS sip:100@1.1.1.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.1.1.1:5060\r\n\r\n'),
        }
        break
      case 'udp-random':
        dport = rng.range(1024, 65535)
        l4 = { kind: 'udp', sport: 0, dport, payload: randomBytes(rng.range(0, 64)) }
        break
      case 'udp-1230':
        l4 = { kind: 'udp', sport: 1230, dport: 1231, payload: Buffer.from([0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0]) }
        break
      case 'icmp-unreach-ntp':
        l4 = { kind: 'icmp-unreachable', quote: quoted(v6) }
        break
      case 'icmp-unreach-ntp-short':
        l4 = { kind: 'icmp-unreachable', quote: quoted(false), quoteBytes: 28, code: rng.pick([3, 10, 13]) }
        break
      case 'icmp-timex-ntp':
        l4 = { kind: 'icmp-time-exceeded', quote: quoted(v6) }
        break
      case 'icmp-echo':
        l4 = {
          kind: 'icmp-echo',
          id: rng.int(65536),
          sequence: rng.int(65536),
          data: randomBytes(rng.pick([0, 8, 56])),
        }
        break
      case 'tunnel-ipip':
        l4 = { kind: 'ip-in-ip', inner: innerNtp(false) }
        break
      case 'tunnel-gre':
        l4 = { kind: 'gre', inner: innerNtp(rng.chance(0.3)) }
        break
      case 'tunnel-6in4':
        l4 = { kind: 'ip-in-ip', inner: innerNtp(true) }
        break
      case 'tunnel-4in6':
        l4 = { kind: 'ip-in-ip', inner: innerNtp(false) }
        break
      default:
        l4 = { kind: 'raw', protocol: 253, data: randomBytes(rng.range(4, 40)) }
    }
    // Noise datagrams are never cut or fragmented, so they can also go in Simple Packet Blocks.
    return { frames: [this.frame(link, { ip, l4 }, false, k.category)], classId: -1, sport, dport }
  }
}

function paddingLength(f: TemplateFrame): number {
  const l = f.layout
  const l3 = f.bytes
  // Total length from the IP header tells where the datagram ends.
  const ipLen = l.ipVersion === 4 ? l3.readUInt16BE(l.l3Offset + 2) : 40 + l3.readUInt16BE(l.l3Offset + 4)
  return l.length - l.l3Offset - ipLen
}

/**
 * Payload bytes to keep when cutting a record short, such that the class is the same whether
 * a classifier reads the UDP length or only the bytes present; -1 when no such cut exists.
 */
function cutLength(p: PayloadVariant, rng: Rng): number {
  const n = p.bytes.length
  if (p.cut === 'head4') {
    const options = [4, 8, 20, 40, 54, 86].filter((x) => x < n)
    return options.length > 0 ? rng.pick(options) : -1
  }
  if (p.cut === 'ntp48') {
    const options: number[] = []
    for (let x = 48; x < n; x += 4) options.push(x)
    return options.length > 0 ? rng.pick(options) : -1
  }
  return -1
}

/** Whether a first fragment of `fragmentBytes` (UDP header included) keeps the class. */
function fragmentStable(p: PayloadVariant, fragmentBytes: number): boolean {
  const present = fragmentBytes - 8
  if (p.cut === 'head4') return present >= 4
  if (p.cut === 'ntp48') return present >= 48 && present % 4 === 0
  return false
}
