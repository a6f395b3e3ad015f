import type { Frame, UdpPacket } from '../core/event.js'
import { DecodeStatus } from './decode-status.js'
import { copyIpv4Addresses, decodeIpv4 } from './ipv4.js'
import { copyIpv6Addresses, decodeIpv6 } from './ipv6.js'
import { l3Offset, l3Version, linkLayer } from './link.js'
import { decodeUdp } from './udp.js'

export { DECODE_STATUS_NAMES, DecodeStatus } from './decode-status.js'

/** One reusable UdpPacket: its 16-byte address buffers are allocated here, once. */
export function createUdpPacket(): UdpPacket {
  return {
    tsSec: 0,
    tsNanos: 0,
    ipVersion: 4,
    src: Buffer.alloc(16),
    dst: Buffer.alloc(16),
    srcPort: 0,
    dstPort: 0,
    ttl: 0,
    ipLength: 0,
    udpLength: 0,
    payload: Buffer.alloc(0),
    wireLength: 0,
  }
}

/**
 * Decodes link -> IP -> UDP and reports why a frame is not an NTP-port datagram. On OK, `out` is
 * fully filled (payload is a view into frame.data, valid as long as it); on any other status its
 * contents are unspecified. Addresses are copied only once the ports matched.
 */
export function decodeFrameStatus(frame: Frame, out: UdpPacket): DecodeStatus {
  const data = frame.data
  const packed = linkLayer(data, frame.linkType)
  if (packed < 0) return -packed as DecodeStatus
  const ipOff = l3Offset(packed)
  const v4 = l3Version(packed) === 4
  const udpOff = v4 ? decodeIpv4(data, ipOff, out) : decodeIpv6(data, ipOff, out)
  if (udpOff < 0) return -udpOff as DecodeStatus
  const ipEnd = ipOff + out.ipLength
  const status = decodeUdp(data, udpOff, Math.min(ipEnd, data.length), out)
  if (status < 0) return -status as DecodeStatus
  if (v4) copyIpv4Addresses(data, ipOff, out)
  else copyIpv6Addresses(data, ipOff, out)
  out.tsSec = frame.tsSec
  out.tsNanos = frame.tsNanos
  out.wireLength = frame.originalLength
  return DecodeStatus.OK
}

/** True when `frame` is a UDP datagram from or to port 123; then `out` holds it. */
export function decodeFrame(frame: Frame, out: UdpPacket): boolean {
  return decodeFrameStatus(frame, out) === DecodeStatus.OK
}
