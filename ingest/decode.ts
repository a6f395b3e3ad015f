import { CaptureFrame, DecodedUdpPacket, type Frame, type UdpPacket } from '../core/event.js'
import { DecodeStatus } from './decode-status.js'
import { copyIpv4Addresses, decodeIpv4 } from './ipv4.js'
import { copyIpv6Addresses, decodeIpv6 } from './ipv6.js'
import { l3Offset, l3Version, linkLayer } from './link.js'
import { decodeUdp } from './udp.js'

export { DECODE_STATUS_NAMES, DecodeStatus } from './decode-status.js'

/** One reusable UdpPacket: its 16-byte address buffers are allocated here, once. */
export function createUdpPacket(): DecodedUdpPacket {
  return new DecodedUdpPacket()
}

/**
 * Decodes link -> IP -> UDP and reports why a frame is not an NTP-port datagram. On OK, `out` is
 * fully filled (payload is a view into frame.data, valid as long as it); on any other status its
 * contents are unspecified. Addresses are copied only once the ports matched.
 */
export function decodeFrameStatus(frame: Frame, out: UdpPacket): DecodeStatus {
  // The readers' frames are read where they lie in the chunk (no view per record).
  if (frame instanceof CaptureFrame) {
    const start = frame.dataStart
    return decodeBytes(frame.bytes, start, start + frame.capturedLength, frame, out)
  }
  const data = frame.data
  return decodeBytes(data, 0, data.length, frame, out)
}

function decodeBytes(data: Buffer, start: number, end: number, frame: Frame, out: UdpPacket): DecodeStatus {
  const packed = linkLayer(data, start, end, frame.linkType)
  if (packed < 0) return -packed as DecodeStatus
  const ipOff = start + l3Offset(packed)
  const v4 = l3Version(packed) === 4
  const udpOff = v4 ? decodeIpv4(data, ipOff, end, out) : decodeIpv6(data, ipOff, end, out)
  if (udpOff < 0) return -udpOff as DecodeStatus
  const ipEnd = ipOff + out.ipLength
  const status = decodeUdp(data, udpOff, Math.min(ipEnd, end), out)
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
