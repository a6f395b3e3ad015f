/**
 * Why a frame was (not) turned into a UdpPacket. Every decoder layer returns either a
 * non-negative offset or the negated status, so the hot path carries no objects.
 */
export const DecodeStatus = {
  /** A UDP datagram with port 123 on either side; the UdpPacket is filled. */
  OK: 0,
  /** The link type is not one teiten decodes. */
  LINK_UNSUPPORTED: 1,
  /** The link layer carries something other than IPv4/IPv6 (ARP, LLC, ...). */
  NOT_IP: 2,
  /** IP, but the top-level protocol is not UDP (ICMP errors quoting UDP, tunnels, ESP, ...). */
  NOT_UDP: 3,
  /** A fragment other than the first: it has no UDP header. */
  LATER_FRAGMENT: 4,
  /** UDP, but neither port is 123. */
  NOT_PORT_123: 5,
  /** The capture cut the frame (snaplen) before the UDP ports. */
  TRUNCATED: 6,
  /** Headers contradict themselves (version, header length, lengths). */
  MALFORMED: 7,
} as const

export type DecodeStatus = (typeof DecodeStatus)[keyof typeof DecodeStatus]

/** Names indexed by status, for counters and logs. */
export const DECODE_STATUS_NAMES = [
  'ok',
  'link_unsupported',
  'not_ip',
  'not_udp',
  'later_fragment',
  'not_port_123',
  'truncated',
  'malformed',
] as const
