import { DecodedUdpPacket, type UdpPacket } from '../core/event.js'
import { u16be } from './bytes.js'
import { DecodeStatus } from './decode-status.js'

/*
 * UDP header, RFC 768:
 *    0      7 8     15 16    23 24    31
 *   +--------+--------+--------+--------+
 *   |     Source      |   Destination   |
 *   |      Port       |      Port       |
 *   +--------+--------+--------+--------+
 *   |                 |                 |
 *   |     Length      |    Checksum     |
 *   +--------+--------+--------+--------+
 *   |
 *   |          data octets ...
 *   +---------------- ...
 * Length covers header + data (>= 8).
 */

const NTP_PORT = 123
const HEADER = 8
const EMPTY = Buffer.alloc(0)

/**
 * Decodes the UDP header at `off`; `end` is where the datagram's bytes stop (captured bytes cut
 * by the IP length, so link-layer padding or an FCS never reads as payload).
 *
 * Snaplen-cut headers: the ports are what make a datagram ours, so 4 bytes are required
 * (TRUNCATED below that). With 4 or 5 bytes present udpLength is 0 (unknown) and the payload
 * empty; with 6 or more udpLength is the header's value. The payload is the bytes present up to
 * the UDP length, possibly fewer than udpLength - 8 (still counted). A UDP length below 8 is
 * contradictory (or an IPv6 jumbogram's 0): the packet counts, with an empty payload.
 */
/** Returns DecodeStatus.OK or a negated DecodeStatus. */
export function decodeUdp(data: Buffer, off: number, end: number, out: UdpPacket): number {
  if (off + 4 > end) return -DecodeStatus.TRUNCATED
  const srcPort = u16be(data, off)
  const dstPort = u16be(data, off + 2)
  if (srcPort !== NTP_PORT && dstPort !== NTP_PORT) return -DecodeStatus.NOT_PORT_123
  out.srcPort = srcPort
  out.dstPort = dstPort
  if (off + 6 > end) {
    out.udpLength = 0
    setPayload(out, data, 0, 0)
    return DecodeStatus.OK
  }
  const udpLength = u16be(data, off + 4)
  out.udpLength = udpLength
  const start = off + HEADER
  let stop = off + udpLength
  if (stop > end) stop = end
  if (udpLength < HEADER || start >= stop) setPayload(out, data, 0, 0)
  else setPayload(out, data, start, stop - start)
  return DecodeStatus.OK
}

/** The decoders' own packets get the payload's location; any other UdpPacket a view. */
function setPayload(out: UdpPacket, data: Buffer, start: number, length: number): void {
  if (out instanceof DecodedUdpPacket) {
    out.bytes = data
    out.payloadStart = start
    out.payloadLength = length
  } else {
    out.payload = length === 0 ? EMPTY : data.subarray(start, start + length)
  }
}
