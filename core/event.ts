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

const EMPTY_BUFFER = Buffer.alloc(0)

/**
 * The Frame the capture readers fill: the record is kept as a location in the read buffer
 * (`bytes`, `dataStart`, `capturedLength`) and `data` is cut from it only when someone asks.
 * Cutting a view per record (a Buffer object each) was ~11% of decode+enrich on the 2M-packet
 * bench capture (node --cpu-prof: `subarray` + `FastBuffer`); the decoders read `bytes`
 * directly when they get one of these.
 */
export class CaptureFrame implements Frame {
  linkType = 0
  tsSec = 0
  tsNanos = 0
  capturedLength = 0
  originalLength = 0
  fileOffset = 0
  /** The read buffer (chunk or stash) holding the record; valid only during the callback. */
  bytes: Buffer = EMPTY_BUFFER
  /** Index of the record's first captured byte in `bytes`. */
  dataStart = 0
  private view: Buffer | null = null

  get data(): Buffer {
    if (this.view === null) this.view = this.bytes.subarray(this.dataStart, this.dataStart + this.capturedLength)
    return this.view
  }

  set data(value: Buffer) {
    this.bytes = value
    this.dataStart = 0
    this.capturedLength = value.length
    this.view = value
  }

  /** Points the frame at a record; the readers call this instead of cutting a view. */
  at(bytes: Buffer, start: number, capturedLength: number): void {
    this.bytes = bytes
    this.dataStart = start
    this.capturedLength = capturedLength
    this.view = null
  }
}

/**
 * The UdpPacket the decoders fill (ingest/decode.ts createUdpPacket): the payload is kept as a
 * location (`bytes`, `payloadStart`, `payloadLength`), made a Buffer view only when `payload` is
 * read. enrich and the row encoder use the location, so the hot path cuts no view per packet.
 */
export class DecodedUdpPacket implements UdpPacket {
  tsSec = 0
  tsNanos = 0
  ipVersion: 4 | 6 = 4
  src: Buffer = Buffer.alloc(16)
  dst: Buffer = Buffer.alloc(16)
  srcPort = 0
  dstPort = 0
  ttl = 0
  ipLength = 0
  udpLength = 0
  wireLength = 0
  /** Buffer holding the payload (the frame's bytes); valid as long as the frame is. */
  bytes: Buffer = EMPTY_BUFFER
  payloadStart = 0
  payloadLength = 0

  get payload(): Buffer {
    return this.payloadLength === 0
      ? EMPTY_BUFFER
      : this.bytes.subarray(this.payloadStart, this.payloadStart + this.payloadLength)
  }

  set payload(value: Buffer) {
    this.bytes = value
    this.payloadStart = 0
    this.payloadLength = value.length
  }
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
