import type { UdpPacket } from '../core/event.js'
import { u16be } from './bytes.js'
import { DecodeStatus } from './decode-status.js'

/*
 * IPv4 header, RFC 791 section 3.1:
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |Type of Service|          Total Length         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|      Fragment Offset    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                       Source Address                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination Address                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options                    |    Padding    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * IHL counts 32-bit words (>= 5). Flags: 0, DF, MF.
 */

const PROTO_UDP = 17
const MIN_HEADER = 20

/**
 * Validates the IPv4 header at `off` and returns the offset of the UDP header, or a negated
 * DecodeStatus. Only a datagram's first fragment (offset 0, MF set or not) carries the UDP
 * header; later fragments are not traffic we can attribute to a port. Anything but UDP at the top
 * level is rejected, so a UDP header quoted in an ICMP error or carried in a tunnel never counts.
 * Sets out.ipVersion, ttl and ipLength (the header's Total Length). `end` is where the captured
 * bytes of the frame stop in `data`.
 */
export function decodeIpv4(data: Uint8Array, off: number, end: number, out: UdpPacket): number {
  const len = end
  if (off + MIN_HEADER > len) return -DecodeStatus.TRUNCATED
  const vihl = data[off]
  if (vihl >> 4 !== 4) return -DecodeStatus.MALFORMED
  const headerLength = (vihl & 0x0f) << 2
  if (headerLength < MIN_HEADER) return -DecodeStatus.MALFORMED
  const totalLength = u16be(data, off + 2)
  if (totalLength < headerLength) return -DecodeStatus.MALFORMED
  if ((u16be(data, off + 6) & 0x1fff) !== 0) return -DecodeStatus.LATER_FRAGMENT
  if (data[off + 9] !== PROTO_UDP) return -DecodeStatus.NOT_UDP
  if (off + headerLength > len) return -DecodeStatus.TRUNCATED
  out.ipVersion = 4
  out.ttl = data[off + 8]
  out.ipLength = totalLength
  return off + headerLength
}

/** Stores both addresses IPv4-mapped (::ffff:a.b.c.d), so v4 and v6 share one 16-byte column. */
export function copyIpv4Addresses(data: Uint8Array, off: number, out: UdpPacket): void {
  const src = out.src
  const dst = out.dst
  for (let i = 0; i < 10; i++) {
    src[i] = 0
    dst[i] = 0
  }
  src[10] = 0xff
  src[11] = 0xff
  dst[10] = 0xff
  dst[11] = 0xff
  for (let i = 0; i < 4; i++) {
    src[12 + i] = data[off + 12 + i]
    dst[12 + i] = data[off + 16 + i]
  }
}
