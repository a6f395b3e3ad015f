import { u16be, u32be } from './bytes.js'
import { DecodeStatus } from './decode-status.js'

/*
 * Link layers, down to the first byte of the IP header.
 *
 * LINKTYPE_ETHERNET (1), IEEE 802.3 as captured (no preamble; FCS, if any, is trailing junk the
 * IP and UDP lengths exclude):
 *    0                   6                  12             14
 *   +-------------------+-------------------+--------------+-----------
 *   | Destination (6)   | Source (6)        | EtherType(2) | payload ...
 *   +-------------------+-------------------+--------------+-----------
 * An 802.1Q (TPID 0x8100) or 802.1ad / old QinQ (0x88A8, 0x9100) tag sits where the EtherType
 * was and pushes it 4 bytes on; tags stack:
 *   | TPID (2) | PCP(3) DEI(1) VID(12) | EtherType or next TPID (2) |
 *
 * LINKTYPE_LINUX_SLL (113), 16 bytes:
 *   | Packet type (2) | ARPHRD (2) | Addr len (2) | Address (8) | Protocol (2) |
 * LINKTYPE_LINUX_SLL2 (276), 20 bytes:
 *   | Protocol (2) | Reserved (2) | Ifindex (4) | ARPHRD (2) | Pkt type (1) | Addr len (1) | Address (8) |
 *
 * LINKTYPE_NULL (0): 4-byte address family in the byte order of the machine that captured;
 * LINKTYPE_LOOP (108): the same in network byte order. AF_INET is 2 everywhere; AF_INET6 is
 * 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (Darwin).
 *
 * LINKTYPE_RAW (101; DLT_RAW 12 and 14 found in old files): IPv4 or IPv6 by the version nibble.
 * LINKTYPE_IPV4 (228), LINKTYPE_IPV6 (229): the version is given.
 */

export const LINKTYPE_NULL = 0
export const LINKTYPE_ETHERNET = 1
export const LINKTYPE_DLT_RAW12 = 12
export const LINKTYPE_DLT_RAW14 = 14
export const LINKTYPE_RAW = 101
export const LINKTYPE_LOOP = 108
export const LINKTYPE_LINUX_SLL = 113
export const LINKTYPE_IPV4 = 228
export const LINKTYPE_IPV6 = 229
export const LINKTYPE_LINUX_SLL2 = 276

const ETHERTYPE_IPV4 = 0x0800
const ETHERTYPE_IPV6 = 0x86dd
const TPID_8021Q = 0x8100
const TPID_8021AD = 0x88a8
const TPID_QINQ_OLD = 0x9100
/** More tags than this is not a real frame; bounding the walk bounds the work per frame. */
const MAX_VLAN_TAGS = 8

const AF_INET = 2
const AF_INET6_BSD = 24
const AF_INET6_FREEBSD = 28
const AF_INET6_DARWIN = 30

/** Packs the IP header offset and version (4 or 6) into one non-negative integer. */
function l3(offset: number, version: 4 | 6): number {
  return (offset << 3) | version
}

export function l3Offset(packed: number): number {
  return packed >>> 3
}

export function l3Version(packed: number): number {
  return packed & 7
}

/**
 * Finds the IP header of the frame in `data[start, end)`: returns a packed (offset from
 * `start`, version) or a negated DecodeStatus. Offsets are only promised to be within the
 * captured bytes where checked; the IP decoders bounds-check their own header.
 */
export function linkLayer(data: Uint8Array, start: number, end: number, linkType: number): number {
  const len = end - start
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      return etherTypeChain(data, start, 12, len)
    case LINKTYPE_RAW:
    case LINKTYPE_DLT_RAW12:
    case LINKTYPE_DLT_RAW14:
      return byVersionNibble(data, start, 0, len)
    case LINKTYPE_IPV4:
      return l3(0, 4)
    case LINKTYPE_IPV6:
      return l3(0, 6)
    case LINKTYPE_LINUX_SLL:
      // The protocol field is where an Ethernet header has its EtherType (14 vs 12): an
      // un-offloaded VLAN tag follows it the same way.
      return etherTypeChain(data, start, 14, len)
    case LINKTYPE_LINUX_SLL2:
      if (len < 20) return -DecodeStatus.TRUNCATED
      return etherType(u16be(data, start), 20)
    case LINKTYPE_NULL: {
      if (len < 4) return -DecodeStatus.TRUNCATED
      // Families are small numbers: if the first two bytes are zero it was a big-endian machine.
      const family =
        data[start] === 0 && data[start + 1] === 0 ? u16be(data, start + 2) : data[start] | (data[start + 1] << 8)
      return addressFamily(family)
    }
    case LINKTYPE_LOOP:
      if (len < 4) return -DecodeStatus.TRUNCATED
      return addressFamily(u32be(data, start))
    default:
      return -DecodeStatus.LINK_UNSUPPORTED
  }
}

function etherTypeChain(data: Uint8Array, start: number, p: number, len: number): number {
  for (let tags = 0; tags <= MAX_VLAN_TAGS; tags++) {
    if (p + 2 > len) return -DecodeStatus.TRUNCATED
    const type = u16be(data, start + p)
    if (type !== TPID_8021Q && type !== TPID_8021AD && type !== TPID_QINQ_OLD) return etherType(type, p + 2)
    p += 4
  }
  return -DecodeStatus.MALFORMED
}

function etherType(type: number, offset: number): number {
  if (type === ETHERTYPE_IPV4) return l3(offset, 4)
  if (type === ETHERTYPE_IPV6) return l3(offset, 6)
  return -DecodeStatus.NOT_IP
}

function byVersionNibble(data: Uint8Array, start: number, offset: number, len: number): number {
  if (offset >= len) return -DecodeStatus.TRUNCATED
  const version = data[start + offset] >> 4
  if (version === 4) return l3(offset, 4)
  if (version === 6) return l3(offset, 6)
  return -DecodeStatus.NOT_IP
}

function addressFamily(family: number): number {
  if (family === AF_INET) return l3(4, 4)
  if (family === AF_INET6_BSD || family === AF_INET6_FREEBSD || family === AF_INET6_DARWIN) return l3(4, 6)
  return -DecodeStatus.NOT_IP
}
