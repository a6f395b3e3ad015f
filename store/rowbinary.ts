import type { Enrichment, UdpPacket } from '../core/event.js'

/**
 * Encodes events as ClickHouse RowBinary in the column order of EVENT_COLUMNS (schema.ts).
 * The same bytes are the body of a Kafka message, so a sink stores a message without
 * re-encoding it. One growable buffer per batch; strings that are constant per file
 * (sensor, file id) are encoded once.
 *
 *   ts           Int64 LE  nanoseconds since the epoch (DateTime64(9))
 *   sensor       varint length + UTF-8
 *   src          16 bytes, network order (IPv6; IPv4 as ::ffff:a.b.c.d)
 *   src_port     UInt16 LE
 *   dst          16 bytes
 *   dst_port     UInt16 LE
 *   ip_version, ttl                       UInt8, UInt8
 *   ip_len, udp_len, payload_len          UInt16 LE (saturated)
 *   wire_len     UInt32 LE
 *   class        Int8 (Enum8, class id + 1)
 *   ntp_version, ntp_mode, ntp_code, ntp_impl   UInt8 each
 *   country      varint length + ASCII
 *   bogon        UInt8 0/1
 *   file_id      varint length + ASCII
 *   record       UInt64 LE  index of the record in its capture file
 */
export const MAX_ROW_BYTES = 8 + 128 + 16 + 2 + 16 + 2 + 2 + 6 + 4 + 1 + 4 + 8 + 1 + 128 + 8

function encodeString(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length > 127) throw new RangeError(`string too long for the row encoder: ${value.slice(0, 40)}…`)
  return Buffer.concat([Buffer.from([bytes.length]), bytes])
}

const TWO_32 = 4294967296

/** Writes tsSec * 1e9 + tsNanos as a little-endian Int64 using exact double arithmetic (no BigInt per row). */
export function writeTimestampNanos(buf: Buffer, offset: number, tsSec: number, tsNanos: number): void {
  const secHigh = Math.floor(tsSec / 65536)
  const secLow = tsSec - secHigh * 65536
  const a = secHigh * 1e9 // < 2^46: exact
  const b = secLow * 1e9 + tsNanos // < 2^47: exact
  const aLow16 = a % 65536
  const aHigh = (a - aLow16) / 65536
  const t = aLow16 * 65536 + b
  const low = t % TWO_32
  const high = aHigh + (t - low) / TWO_32
  buf.writeUInt32LE(low, offset)
  buf.writeInt32LE(high | 0, offset + 4)
}

export class EventRowEncoder {
  private buffer: Buffer
  private offset = 0
  private count = 0
  private sensorBytes: Buffer = encodeString('')
  private fileIdBytes: Buffer = encodeString('')
  private readonly countryCache = new Map<string, Buffer>()

  constructor(initialBytes = 1 << 20) {
    this.buffer = Buffer.allocUnsafe(initialBytes)
  }

  setFile(sensor: string, fileId: string): void {
    this.sensorBytes = encodeString(sensor)
    this.fileIdBytes = encodeString(fileId)
  }

  get rows(): number {
    return this.count
  }

  get bytes(): number {
    return this.offset
  }

  private ensure(extra: number): void {
    if (this.offset + extra <= this.buffer.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + extra))
    this.buffer.copy(next, 0, 0, this.offset)
    this.buffer = next
  }

  private countryBytes(country: string): Buffer {
    let bytes = this.countryCache.get(country)
    if (bytes === undefined) {
      bytes = encodeString(country)
      this.countryCache.set(country, bytes)
    }
    return bytes
  }

  add(p: UdpPacket, e: Enrichment, record: number): void {
    this.ensure(MAX_ROW_BYTES)
    const b = this.buffer
    let o = this.offset
    writeTimestampNanos(b, o, p.tsSec, p.tsNanos)
    o += 8
    o += this.sensorBytes.copy(b, o)
    o += p.src.copy(b, o, 0, 16)
    b.writeUInt16LE(p.srcPort, o)
    o += 2
    o += p.dst.copy(b, o, 0, 16)
    b.writeUInt16LE(p.dstPort, o)
    o += 2
    b[o++] = p.ipVersion
    b[o++] = p.ttl
    b.writeUInt16LE(Math.min(p.ipLength, 65535), o)
    b.writeUInt16LE(Math.min(p.udpLength, 65535), o + 2)
    b.writeUInt16LE(Math.min(p.payload.length, 65535), o + 4)
    b.writeUInt32LE(p.wireLength >>> 0, o + 6)
    o += 10
    b[o++] = e.classId + 1
    b[o++] = e.ntpVersion
    b[o++] = e.ntpMode
    b[o++] = e.ntpCode
    b[o++] = e.ntpImpl
    o += this.countryBytes(e.country).copy(b, o)
    b[o++] = e.bogon ? 1 : 0
    o += this.fileIdBytes.copy(b, o)
    b.writeUInt32LE(record % TWO_32, o)
    b.writeUInt32LE(Math.floor(record / TWO_32), o + 4)
    o += 8
    this.offset = o
    this.count++
  }

  /** The encoded rows so far, copied out; the encoder is reset for the next batch. */
  take(): Buffer {
    const out = Buffer.from(this.buffer.subarray(0, this.offset))
    this.offset = 0
    this.count = 0
    return out
  }
}
