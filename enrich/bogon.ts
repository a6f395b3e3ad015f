/**
 * Bogon test for a packet's source address: space that cannot be a genuine source on the public
 * Internet, so a darknet sensor seeing it is looking at spoofing, leakage or misconfiguration,
 * and no GeoIP answer for it means anything.
 *
 * Policy: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, updated by RFC
 * 8190), https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry: an entry is bogon when its
 * "Globally Reachable" column is False, and the entries the registry marks True inside such a
 * block are carved back out. Added to that: multicast (never a valid source: RFC 1112 / RFC
 * 4291 section 2.7) and, for IPv6, everything outside 2000::/3 global unicast (RFC 4291 section
 * 2.4; IANA IPv6 Address Space registry). Where an address embeds an IPv4 source, it is judged
 * by that IPv4 address (see isBogon6). This is not a "full bogons" list of unallocated space:
 * that changes monthly and needs a feed.
 */
import { TeitenError } from '../core/errors.js'

// [network, mask] as unsigned 32-bit numbers; only consulted for the first octets flagged 2 in
// FIRST_OCTET, so a lookup is one array read for most addresses and a few compares for the rest.
const V4_BLOCKS: ReadonlyArray<readonly [number, number]> = [
  [0x00000000, 0xff000000], // 0.0.0.0/8        "This network", RFC 791 §3.2
  [0x0a000000, 0xff000000], // 10.0.0.0/8       Private-Use, RFC 1918
  [0x64400000, 0xffc00000], // 100.64.0.0/10    Shared Address Space (CGN), RFC 6598
  [0x7f000000, 0xff000000], // 127.0.0.0/8      Loopback, RFC 1122 §3.2.1.3
  [0xa9fe0000, 0xffff0000], // 169.254.0.0/16   Link Local, RFC 3927
  [0xac100000, 0xfff00000], // 172.16.0.0/12    Private-Use, RFC 1918
  [0xc0000000, 0xffffff00], // 192.0.0.0/24     IETF Protocol Assignments, RFC 6890 §2.1 (see carve-outs)
  [0xc0000200, 0xffffff00], // 192.0.2.0/24     Documentation (TEST-NET-1), RFC 5737
  [0xc0586300, 0xffffff00], // 192.88.99.0/24   6to4 Relay Anycast, deprecated by RFC 7526
  [0xc0a80000, 0xffff0000], // 192.168.0.0/16   Private-Use, RFC 1918
  [0xc6120000, 0xfffe0000], // 198.18.0.0/15    Benchmarking, RFC 2544
  [0xc6336400, 0xffffff00], // 198.51.100.0/24  Documentation (TEST-NET-2), RFC 5737
  [0xcb007100, 0xffffff00], // 203.0.113.0/24   Documentation (TEST-NET-3), RFC 5737
  [0xe0000000, 0xf0000000], // 224.0.0.0/4      Multicast, RFC 5771: never a source
  [0xf0000000, 0xf0000000], // 240.0.0.0/4      Reserved, RFC 1112 §4 (holds 255.255.255.255/32 Limited Broadcast, RFC 919)
]

/**
 * Registry entries inside 192.0.0.0/24 whose Globally Reachable is True: anycast service
 * addresses, which real hosts do use.
 */
const V4_GLOBAL_EXCEPTIONS: ReadonlySet<number> = new Set([
  0xc0000009, // 192.0.0.9/32   Port Control Protocol Anycast, RFC 7723
  0xc000000a, // 192.0.0.10/32  Traversal Using Relays around NAT Anycast, RFC 8155
])

/** Per first octet: 0 never bogon, 1 always bogon, 2 look at V4_BLOCKS. */
const FIRST_OCTET = buildFirstOctetTable()

function buildFirstOctetTable(): Uint8Array {
  const table = new Uint8Array(256)
  for (const [net, mask] of V4_BLOCKS) {
    const first = net >>> 24
    const prefixLength = Math.clz32(~mask)
    // A block of /8 or wider covers whole first octets; anything narrower needs the compare.
    if (prefixLength <= 8) {
      const count = 1 << (8 - prefixLength)
      for (let o = first; o < first + count; o++) table[o] = 1
    } else if (table[first] !== 1) {
      table[first] = 2
    }
  }
  return table
}

/** Bogon test for an IPv4 address given as an unsigned 32-bit number (a.b.c.d = a<<24|...). */
export function isBogon4(addr: number): boolean {
  const kind = FIRST_OCTET[addr >>> 24]
  if (kind !== 2) return kind === 1
  for (let i = 0; i < V4_BLOCKS.length; i++) {
    const block = V4_BLOCKS[i]
    if ((addr & block[1]) >>> 0 === block[0]) return !V4_GLOBAL_EXCEPTIONS.has(addr >>> 0)
  }
  return false
}

/**
 * Bogon test for a 16-byte address as teiten stores it (core/event.ts: IPv4 is IPv4-mapped,
 * ::ffff:a.b.c.d, and is judged as IPv4).
 */
export function isBogon(addr16: Buffer): boolean {
  if (addr16.length < 16) {
    throw new TeitenError('BAD_PARAMETER', `isBogon needs a 16-byte address, got ${addr16.length} bytes`)
  }
  // Plain byte reads: cheaper than Buffer#readUInt32BE's own argument checks, and the length
  // is already known to be enough.
  const w3 = ((addr16[12] << 24) | (addr16[13] << 16) | (addr16[14] << 8) | addr16[15]) >>> 0
  const w2 = ((addr16[8] << 24) | (addr16[9] << 16) | (addr16[10] << 8) | addr16[11]) >>> 0
  const w1 = ((addr16[4] << 24) | (addr16[5] << 16) | (addr16[6] << 8) | addr16[7]) >>> 0
  const w0 = ((addr16[0] << 24) | (addr16[1] << 16) | (addr16[2] << 8) | addr16[3]) >>> 0
  return isBogon6(w0, w1, w2, w3)
}

/**
 * IPv6 by its four 32-bit words. Decisions beyond the registry's plain True/False:
 * - ::ffff:0:0/96 (IPv4-mapped, RFC 4291 §2.5.5.2) is how teiten stores IPv4: judged as IPv4.
 * - 64:ff9b::/96 (NAT64 well-known prefix, RFC 6052; registry: Globally Reachable True) may
 *   only embed global IPv4 (RFC 6052 §3.1): judged by the embedded IPv4 address.
 * - 2002::/16 (6to4, RFC 3056; registry: N/A) carries the sender's own IPv4 in bits 16-47:
 *   judged by it, as RFC 3964 §5.3.1 asks relays to do.
 * - 2001::/32 (Teredo, RFC 4380; registry: N/A) carries the client's external IPv4, inverted,
 *   in bits 96-127: judged by it.
 * - Everything else outside 2000::/3 is bogon, including ::/96 IPv4-compatible (deprecated by
 *   RFC 4291 §2.5.5.1), 64:ff9b:1::/48 (RFC 8215, local-use NAT64), 100::/64 (discard-only,
 *   RFC 6666), fc00::/7 (ULA, RFC 4193), fe80::/10 (link-local), fec0::/10 (RFC 3879) and
 *   ff00::/8 (multicast).
 */
function isBogon6(w0: number, w1: number, w2: number, w3: number): boolean {
  if (w0 === 0 && w1 === 0 && w2 === 0x0000ffff) return isBogon4(w3)
  if (w0 === 0x0064ff9b && w1 === 0 && w2 === 0) return isBogon4(w3)
  // Outside 2000::/3 global unicast (IANA IPv6 Address Space registry).
  if (w0 >>> 29 !== 1) return true

  if (w0 >>> 16 === 0x2002) return isBogon4(((w0 << 16) | (w1 >>> 16)) >>> 0)
  // 2001::/23 IETF Protocol Assignments (RFC 2928): Globally Reachable False, with sub-blocks.
  if (w0 >>> 9 === 0x20010000 >>> 9) {
    if (w0 === 0x20010000) return isBogon4(~w3 >>> 0) // Teredo
    // 2001:1::1/128 PCP Anycast (RFC 7723), ::2 TURN Anycast (RFC 8155), ::3 DNS-SD SRP
    // Anycast (RFC 9665): Globally Reachable True.
    if (w0 === 0x20010001 && w1 === 0 && w2 === 0 && w3 >= 1 && w3 <= 3) return false
    if (w0 === 0x20010003) return false // 2001:3::/32 AMT, RFC 7450
    if (w0 === 0x20010004 && w1 >>> 16 === 0x0112) return false // 2001:4:112::/48 AS112-v6, RFC 7535
    if ((w0 & 0xfffffff0) >>> 0 === 0x20010020) return false // 2001:20::/28 ORCHIDv2, RFC 7343
    if ((w0 & 0xfffffff0) >>> 0 === 0x20010030) return false // 2001:30::/28 DRIP DETs, RFC 9374
    // 2001:2::/48 Benchmarking (RFC 5180), 2001:10::/28 deprecated ORCHID (RFC 4843), and the
    // unassigned rest of the /23.
    return true
  }
  if (w0 === 0x20010db8) return true // 2001:db8::/32 Documentation, RFC 3849
  if (w0 >>> 12 === 0x3fff0) return true // 3fff::/20 Documentation, RFC 9637
  if (w0 >>> 16 === 0x5f00) return true // 5f00::/16 Segment Routing SIDs, RFC 9602
  return false
}
