import type { UdpPacket } from '../core/event.js'
import { u16be } from './bytes.js'
import { DecodeStatus } from './decode-status.js'

/*
 * IPv6 header, RFC 8200 section 3:
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version| Traffic Class |           Flow Label                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                  Source Address (128 bits)                    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |               Destination Address (128 bits)                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Extension headers (RFC 8200 section 4), chained by Next Header:
 *   Hop-by-Hop Options (0), Routing (43), Destination Options (60):
 *   |  Next Header  |  Hdr Ext Len  |  ... (Hdr Ext Len + 1) * 8 bytes in all
 *   Fragment (44), 8 bytes:
 *   |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
 *   |                         Identification                        |
 *   Authentication Header (51, RFC 4302 section 2): its length counts 32-bit words minus 2:
 *   |  Next Header  |  Payload Len  |          Reserved             |
 */

const HEADER = 40
const NH_HOP_BY_HOP = 0
const NH_ROUTING = 43
const NH_FRAGMENT = 44
const NH_AH = 51
const NH_DEST_OPTS = 60
const NH_UDP = 17
/** Real packets carry a handful of extension headers; bounding the walk bounds the work. */
const MAX_EXTENSION_HEADERS = 8

/**
 * Validates the IPv6 header at `off`, walks the extension header chain and returns the offset of
 * the UDP header, or a negated DecodeStatus. As for IPv4, only a first fragment (Fragment Offset 0)
 * carries the UDP header, and only UDP at the end of the chain counts (no ICMPv6 payloads, no
 * tunnels). Sets out.ipVersion, ttl (hop limit) and ipLength (payload length + 40). `end` is
 * where the captured bytes of the frame stop in `data`.
 */
export function decodeIpv6(data: Uint8Array, off: number, end: number, out: UdpPacket): number {
  const len = end
  if (off + HEADER > len) return -DecodeStatus.TRUNCATED
  if (data[off] >> 4 !== 6) return -DecodeStatus.MALFORMED
  const ipEnd = off + HEADER + u16be(data, off + 4)
  let next = data[off + 6]
  let p = off + HEADER
  for (let i = 0; i <= MAX_EXTENSION_HEADERS; i++) {
    if (next === NH_UDP) {
      out.ipVersion = 6
      out.ttl = data[off + 7]
      out.ipLength = ipEnd - off
      return p
    }
    let extLength: number
    if (next === NH_HOP_BY_HOP || next === NH_ROUTING || next === NH_DEST_OPTS) {
      if (p + 2 > len) return -DecodeStatus.TRUNCATED
      extLength = (data[p + 1] + 1) << 3
    } else if (next === NH_FRAGMENT) {
      if (p + 4 > len) return -DecodeStatus.TRUNCATED
      if (u16be(data, p + 2) >> 3 !== 0) return -DecodeStatus.LATER_FRAGMENT
      extLength = 8
    } else if (next === NH_AH) {
      if (p + 2 > len) return -DecodeStatus.TRUNCATED
      extLength = (data[p + 1] + 2) << 2
    } else {
      return -DecodeStatus.NOT_UDP
    }
    next = data[p]
    p += extLength
    if (p > ipEnd) return -DecodeStatus.MALFORMED
  }
  return -DecodeStatus.MALFORMED
}

export function copyIpv6Addresses(data: Uint8Array, off: number, out: UdpPacket): void {
  const src = out.src
  const dst = out.dst
  for (let i = 0; i < 16; i++) {
    src[i] = data[off + 8 + i]
    dst[i] = data[off + 24 + i]
  }
}
