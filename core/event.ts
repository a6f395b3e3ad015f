/**
 * The contract between stages: what the decoders fill in, what enrich adds, what the store
 * and the Kafka stream carry. The decoder reuses one `UdpPacket` per file (no per-packet
 * allocation on the hot path); a stage that keeps a packet past its callback must copy it.
 */

/** Exactly one class per packet; the order is the ClickHouse Enum8 order (value = index + 1). */
export const NTP_CLASSES = [
  'monlist',
  'mode7_other',
  'mode6_readvar',
  'mode6_other',
  'client',
  'response',
  'other_ntp',
  'non_ntp',
] as const
export type NtpClass = (typeof NTP_CLASSES)[number]
/** Numeric class id used on the hot path: index into NTP_CLASSES. */
export type NtpClassId = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7

export const CLASS_ID: Readonly<Record<NtpClass, NtpClassId>> = Object.freeze(
  Object.fromEntries(NTP_CLASSES.map((c, i) => [c, i])) as Record<NtpClass, NtpClassId>,
)

/** One captured link-layer record, as the capture readers hand it on (reused object). */
export interface Frame {
  /** LINKTYPE_* of the record (pcap header, or the pcapng interface it names). */
  linkType: number
  /** Capture time, UTC: whole seconds since the epoch and the nanoseconds within it. */
  tsSec: number
  tsNanos: number
  /** Bytes present in the capture (caplen) and on the wire (origlen). */
  capturedLength: number
  originalLength: number
  /** View of the captured bytes; valid only during the callback. */
  data: Buffer
  /** Byte offset of the record's header in the (decompressed) capture stream. */
  fileOffset: number
}

/** A UDP datagram with port 123 on either side, decoded from a Frame (reused object). */
export interface UdpPacket {
  tsSec: number
  tsNanos: number
  ipVersion: 4 | 6
  /** 16-byte addresses; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one column type fits both. */
  src: Buffer
  dst: Buffer
  srcPort: number
  dstPort: number
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number
  /** IP total length as claimed by the header (IPv6: payload length + 40). */
  ipLength: number
  /** UDP length field as claimed by the header. */
  udpLength: number
  /** UDP payload bytes present in the capture, delimited by the UDP length (no Ethernet padding). */
  payload: Buffer
  /** Length on the wire of the whole frame. */
  wireLength: number
}

/** What enrich adds to a packet: classification, NTP header fields and GeoIP/bogon facts. */
export interface Enrichment {
  classId: NtpClassId
  /** NTP version number (byte 0 bits 3-5) and mode (bits 0-2); 0 when the payload is empty. */
  ntpVersion: number
  ntpMode: number
  /** mode 7: request code (byte 3); mode 6: opcode (byte 1 & 0x1f); else 0. */
  ntpCode: number
  /** mode 7: implementation number (byte 2); else 0. */
  ntpImpl: number
  /** ISO 3166-1 alpha-2 in capitals, or '--' when unknown or bogon. */
  country: string
  bogon: boolean
}

/** A packet is an "access" (Figure 2's measure) when its destination port is 123. */
export function isAccess(p: Pick<UdpPacket, 'dstPort'>): boolean {
  return p.dstPort === 123
}

export const UNKNOWN_COUNTRY = '--'
