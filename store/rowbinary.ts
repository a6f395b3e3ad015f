import { BufferPool } from '../core/buffer-pool.js'
import { DecodedUdpPacket, type Enrichment, type UdpPacket } from '../core/event.js'

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
/** Bytes from the end of the sensor string to the country string (src .. ntp_impl): fixed. */
export const FIXED_BYTES_AFTER_SENSOR = 53

export const MAX_ROW_BYTES = 8 + 128 + 16 + 2 + 16 + 2 + 2 + 6 + 4 + 1 + 4 + 8 + 1 + 128 + 8

function encodeString(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length > 127) throw new RangeError(`string too long for the row encoder: ${value.slice(0, 40)}…`)
  return Buffer.concat([Buffer.from([bytes.length]), bytes])
}

const TWO_32 = 4294967296

/**
 * Writes tsSec * 1e9 + tsNanos as a little-endian Int64 at `o` using exact double arithmetic (no
 * BigInt per row). Only divisions by powers of two (exact) and floors: the `%` on doubles it used
 * before was 14% of the encode profile, and got some negative timestamps wrong by 2^32 ns.
 */
export function putTimestampNanos(v: DataView, o: number, tsSec: number, tsNanos: number): void {
  const secHigh = Math.floor(tsSec * (1 / 65536))
  const a = secHigh * 1e9 // |a| < 2^46 while |tsSec| < 2^32 * 2^16: exact
  const b = (tsSec - secHigh * 65536) * 1e9 + tsNanos // < 2^47: exact
  const aHigh = Math.floor(a * (1 / 65536))
  const t = (a - aHigh * 65536) * 65536 + b // ns = aHigh * 2^32 + t, 0 <= t < 2^48
  const tHigh = Math.floor(t * (1 / TWO_32))
  v.setUint32(o, t - tHigh * TWO_32, true)
  v.setUint32(o + 4, (aHigh + tHigh) | 0, true)
}

/**
 * Writes a non-negative integer below 2^53 as a little-endian UInt64. `value % 2^32` on a double
 * is a call to fmod: the line that wrote the record number was the encoder's costliest (203 of
 * `add`'s ~1,700 profile ticks over the 20M-packet bench capture).
 */
export function putUInt64(v: DataView, o: number, value: number): void {
  const high = Math.floor(value / TWO_32)
  v.setUint32(o, value - high * TWO_32, true)
  v.setUint32(o + 4, high, true)
}

/*
 * The row is written with plain stores through a DataView: Buffer#copy for the 16-byte
 * addresses and short strings, and Buffer#writeUInt16LE/32LE (argument checks on every call),
 * made `add` cost as much as decoding, classifying and looking up the country together: 0.6 s
 * of 1.1 s for the 2M-packet bench capture (node --cpu-prof: _copyActual, _copy,
 * writeU_Int32LE). Byte stores brought it to ~0.17 s; 32-bit DataView stores (the constant
 * sensor and file id as precomputed words) to ~0.08 s.
 */

/** A short string's RowBinary bytes (length byte first) as little-endian 32-bit words plus tail bytes. */
interface Words {
  bytes: Buffer
  words: Uint32Array
  tail: Uint8Array
}

function wordsOf(bytes: Buffer): Words {
  const n = bytes.length >>> 2
  const words = new Uint32Array(n)
  for (let i = 0; i < n; i++) words[i] = bytes.readUInt32LE(i * 4)
  return { bytes, words, tail: Uint8Array.from(bytes.subarray(n * 4)) }
}

function putWords(v: DataView, b: Uint8Array, o: number, w: Words): number {
  const words = w.words
  for (let i = 0; i < words.length; i++) {
    v.setUint32(o, words[i], true)
    o += 4
  }
  const tail = w.tail
  for (let i = 0; i < tail.length; i++) b[o++] = tail[i]
  return o
}

/**
 * 16 address bytes as four 32-bit moves (the bytes keep their order), read through a DataView of
 * the packet's address (AddressView): assembling each word from four byte loads, shifts and ORs
 * made the two addresses ~14% of `add` (profile ticks, 20M-packet bench capture). With the
 * timestamp stored as two words and the record number without fmod, one packet added 17M times
 * to the column encoder and taken in 262,144-row blocks took 1.08-1.30 s against 1.49-1.70 s
 * (four runs each; the takes ~0.2 s of either).
 */
export function putAddress(v: DataView, o: number, a: DataView<ArrayBufferLike>): void {
  v.setUint32(o, a.getUint32(0, true), true)
  v.setUint32(o + 4, a.getUint32(4, true), true)
  v.setUint32(o + 8, a.getUint32(8, true), true)
  v.setUint32(o + 12, a.getUint32(12, true), true)
}

/**
 * A DataView of the 16 address bytes an encoder was last given: decoders fill one packet object,
 * and its address buffers, for every row, so the view is made once per run, not once per row.
 */
export class AddressView {
  private bytes: Uint8Array | undefined
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(16))

  of(bytes: Uint8Array): DataView<ArrayBufferLike> {
    if (bytes !== this.bytes) {
      this.bytes = bytes
      this.view = new DataView(bytes.buffer, bytes.byteOffset, 16)
    }
    return this.view
  }
}

const EMPTY = Buffer.alloc(0)

export class EventRowEncoder {
  private buffer: Buffer
  private view: DataView
  private offset = 0
  private count = 0
  private sensor: Words = wordsOf(encodeString(''))
  private fileId: Words = wordsOf(encodeString(''))
  private readonly countryCache = new Map<string, Buffer>()
  private readonly srcView = new AddressView()
  private readonly dstView = new AddressView()
  private readonly initialBytes: number
  private nextBytes: number
  /** Taken bodies come back through recycle() once the sink is done with them (core/buffer-pool.ts). */
  private readonly pool = new BufferPool(1)

  constructor(initialBytes = 1 << 20) {
    this.initialBytes = Math.max(MAX_ROW_BYTES, initialBytes)
    this.nextBytes = this.initialBytes
    this.buffer = this.pool.take(this.initialBytes)
    this.view = viewOf(this.buffer)
  }

  setFile(sensor: string, fileId: string): void {
    this.sensor = wordsOf(encodeString(sensor))
    this.fileId = wordsOf(encodeString(fileId))
  }

  get rows(): number {
    return this.count
  }

  get bytes(): number {
    return this.offset
  }

  private grow(extra: number): void {
    if (this.buffer.length === 0) {
      // The first row after take(): the body taken is usually back in the pool by now.
      this.buffer = this.pool.take(Math.max(this.nextBytes, extra))
      this.view = viewOf(this.buffer)
      return
    }
    const next = this.pool.take(Math.max(this.buffer.length * 2, this.offset + extra))
    this.buffer.copy(next, 0, 0, this.offset)
    this.buffer = next
    this.view = viewOf(next)
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
    if (this.offset + MAX_ROW_BYTES > this.buffer.length) this.grow(MAX_ROW_BYTES)
    const b = this.buffer
    const v = this.view
    let o = this.offset
    putTimestampNanos(v, o, p.tsSec, p.tsNanos)
    o = putWords(v, b, o + 8, this.sensor)
    putAddress(v, o, this.srcView.of(p.src))
    v.setUint16(o + 16, p.srcPort, true)
    putAddress(v, o + 18, this.dstView.of(p.dst))
    v.setUint16(o + 34, p.dstPort, true)
    b[o + 36] = p.ipVersion
    b[o + 37] = p.ttl
    v.setUint16(o + 38, Math.min(p.ipLength, 65535), true)
    v.setUint16(o + 40, Math.min(p.udpLength, 65535), true)
    v.setUint16(o + 42, Math.min(p instanceof DecodedUdpPacket ? p.payloadLength : p.payload.length, 65535), true)
    v.setUint32(o + 44, p.wireLength >>> 0, true)
    b[o + 48] = e.classId + 1
    b[o + 49] = e.ntpVersion
    b[o + 50] = e.ntpMode
    b[o + 51] = e.ntpCode
    b[o + 52] = e.ntpImpl
    o += FIXED_BYTES_AFTER_SENSOR
    const country = e.country
    const c0 = country.charCodeAt(0)
    const c1 = country.charCodeAt(1)
    // ISO alpha-2 or '--' (core/event.ts): two ASCII bytes, written without a lookup.
    if (country.length === 2 && c0 < 0x80 && c1 < 0x80) {
      b[o] = 2
      b[o + 1] = c0
      b[o + 2] = c1
      o += 3
    } else {
      const bytes = this.countryBytes(country)
      for (let i = 0; i < bytes.length; i++) b[o++] = bytes[i]
    }
    b[o++] = e.bogon ? 1 : 0
    o = putWords(v, b, o, this.fileId)
    putUInt64(v, o, record)
    this.offset = o + 8
    this.count++
  }

  /**
   * A body take() returned, for a later batch to be written into: only once nothing reads it
   * any more (its sink is done with it: pipeline/ingest.ts `lend`). Any view of it will do.
   */
  recycle(body: Buffer): void {
    this.pool.give(body)
  }

  /** Forgets the rows after the first `rows` rows, which end at byte `offset` (a file read only in part). */
  rollback(offset: number, rows: number): void {
    if (offset > this.offset || rows > this.count) throw new RangeError('rollback past the end')
    this.offset = offset
    this.count = rows
  }

  /**
   * The rows so far, and where the rows after the first `rows` start in it (`offset`, the value
   * `bytes` had then): RowBinary rows split anywhere between rows. (EventColumnEncoder's blocks
   * split by row count; the pipeline passes both marks.)
   */
  takeSplit(_rows: number, offset: number): { body: Buffer; at: number } {
    if (offset > this.offset) throw new RangeError('split past the end')
    return { body: this.take(), at: offset }
  }

  /**
   * The encoded rows so far; the encoder starts the next batch in a new buffer (the batch is
   * handed over, not copied: it may still be in flight to the store while the next is written).
   */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.offset)
    // The next buffer is taken when the next row comes: by then the store sink has made its own
    // block of this body and handed it back, so one buffer serves every batch.
    this.nextBytes = Math.max(this.initialBytes, this.offset + MAX_ROW_BYTES)
    this.buffer = EMPTY
    this.view = viewOf(EMPTY)
    this.offset = 0
    this.count = 0
    return out
  }
}

function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength)
}
