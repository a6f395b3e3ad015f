import type { BufferPool } from '../core/buffer-pool.js'
import { TeitenError } from '../core/errors.js'
import { FIXED_BYTES_AFTER_SENSOR } from './rowbinary.js'
import { EVENT_COLUMNS } from './schema.js'

/**
 * Events rows in RowBinary (store/rowbinary.ts: what the pipeline encodes and Kafka carries)
 * rewritten as one ClickHouse Native block, the engine's own columnar layout, for the insert.
 *
 * Why: ClickHouse parses RowBinary value by value through each column's serialization, and
 * turns the String columns into LowCardinality by hashing every row's string; a Native block is
 * read column by column with one copy each, dictionaries included. The 66 insert bodies of the
 * 20M-packet bench capture, replayed into the engine with `events` alone: 8.0-8.3 -> 5.3-6.1 s,
 * 10.5-11.0 -> 7.8-8.9 CPU s; with the three materialized views 17.0 -> 15.2 s, 26.2 -> 24.7
 * CPU s; bodies 1.9 -> 1.2 GB. The rewrite is two passes over the rows (1.4-1.9 s of JavaScript
 * for those 17M events): the ingest pipeline writes its blocks as columns from the start instead
 * (store/native-encoder.ts, byte for byte the same blocks), and this rewrite serves RowBinary
 * from elsewhere (the Kafka sink's messages, a caller of insertRowBinary).
 *
 * Native block (no block info: the file and HTTP forms, client revision 0):
 *
 *   varuint columns, varuint rows
 *   per column: varuint + name, varuint + type, then the column's bulk data:
 *     fixed width (DateTime64(9) Int64, IPv6 16 bytes, UInt8/16/32/64, Enum8, Bool):
 *       rows values, little-endian, back to back (the same bytes RowBinary has per row)
 *     LowCardinality(String):
 *       UInt64 1                      key version: shared dictionaries with additional keys
 *       UInt64 flags                  index width (0 UInt8, 1 UInt16, 2 UInt32)
 *                                     | 1 << 9 (has additional keys) | 1 << 10 (update dictionary)
 *       UInt64 keys, keys as String   varuint length + bytes each; key 0 is '' (the default)
 *       UInt64 rows, rows indexes     of the given width
 */

const KEY_VERSION_SHARED_WITH_ADDITIONAL_KEYS = 1n
const HAS_ADDITIONAL_KEYS = 1 << 9
const NEED_UPDATE_DICTIONARY = 1 << 10

/** The encoder writes strings of at most 127 bytes: their RowBinary length is one byte. */
const MAX_STRING = 127

// Row layout (rowbinary.ts): ts 8 | sensor 1+n | 53 fixed bytes | country 1+n | bogon 1 | file id 1+n | record 8
/** Bytes per value of each column (0: LowCardinality, written apart). */
export const COLUMN_WIDTHS = [8, 0, 16, 2, 16, 2, 1, 1, 2, 2, 2, 4, 1, 1, 1, 1, 1, 0, 1, 0, 8] as const
const SENSOR = 1
const COUNTRY = 17
const FILE_ID = 19
if (
  COLUMN_WIDTHS.length !== EVENT_COLUMNS.length ||
  EVENT_COLUMNS[SENSOR]![0] !== 'sensor' ||
  EVENT_COLUMNS[COUNTRY]![0] !== 'country' ||
  EVENT_COLUMNS[FILE_ID]![0] !== 'file_id' ||
  EVENT_COLUMNS[20]![0] !== 'record'
) {
  throw new Error('store/native.ts: the row layout no longer matches EVENT_COLUMNS')
}

function badBody(message: string, row: number, offset: number): TeitenError {
  return new TeitenError('STORE_INSERT_FAILED', `events body: ${message}`, { row, offset })
}

/**
 * A LowCardinality column's dictionary for one block: the distinct strings in the order they
 * first occur, '' first (ClickHouse's own order, so the block is byte for byte what it writes).
 * A string of up to two bytes (a country code) is looked up by its bytes in a table; a longer
 * one that repeats the previous row's (one file's sensor and id) costs a comparison; any other
 * one Map lookup.
 */
class BlockDictionary {
  readonly keys: Buffer[] = [Buffer.alloc(0)]
  private readonly index = new Map<string, number>([['', 0]])
  private lastStart = -1
  private lastLength = -1
  private lastIndex = 0
  /** Strings of up to two bytes by their bytes: index + 1, 0 when not seen (made on first use). */
  private short: Int32Array | undefined

  private readonly words: DataView

  constructor(private readonly body: Buffer) {
    this.words = new DataView(body.buffer, body.byteOffset, body.byteLength)
  }

  indexOf(start: number, length: number): number {
    const body = this.body
    if (length <= 2) {
      let short = this.short
      if (short === undefined) {
        short = this.short = new Int32Array(1 + 256 + 65536)
        short[0] = 1 // '' is key 0
      }
      const code = length === 0 ? 0 : length === 1 ? 1 + body[start]! : 257 + ((body[start]! << 8) | body[start + 1]!)
      const known = short[code]!
      if (known !== 0) return known - 1
      const found = this.add(start, length)
      short[code] = found + 1
      return found
    }
    if (length === this.lastLength && this.sameAsLast(start, length)) return this.lastIndex
    const found = this.add(start, length)
    this.lastStart = start
    this.lastLength = length
    this.lastIndex = found
    return found
  }

  /**
   * 32-bit words, then the tail bytes: the file id (32 bytes) is compared on every row, and a
   * byte loop made this pass twice as dear as writing the whole block.
   */
  private sameAsLast(start: number, length: number): boolean {
    const words = this.words
    const last = this.lastStart
    let i = 0
    for (; i + 4 <= length; i += 4) if (words.getUint32(start + i) !== words.getUint32(last + i)) return false
    const body = this.body
    for (; i < length; i++) if (body[start + i] !== body[last + i]) return false
    return true
  }

  private add(start: number, length: number): number {
    const text = this.body.toString('latin1', start, start + length)
    let found = this.index.get(text)
    if (found === undefined) {
      found = this.keys.length
      this.keys.push(this.body.subarray(start, start + length))
      this.index.set(text, found)
    }
    return found
  }

  /** 0, 1, 2: UInt8, UInt16, UInt32 indexes. */
  get indexType(): number {
    return indexTypeOf(this.keys.length)
  }
}

/** Reusable per-row scratch (the pass over the rows allocates nothing per row). */
let rowStarts = new Uint32Array(0)
let sensorIndexes = new Uint32Array(0)
let countryIndexes = new Uint32Array(0)
let fileIndexes = new Uint32Array(0)

function ensureScratch(rows: number): void {
  if (rowStarts.length >= rows) return
  const size = Math.max(rows, rowStarts.length * 2, 1024)
  rowStarts = new Uint32Array(size)
  sensorIndexes = new Uint32Array(size)
  countryIndexes = new Uint32Array(size)
  fileIndexes = new Uint32Array(size)
}

function varUIntBytes(value: number): number {
  let n = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    n++
  }
  return n
}

export function putVarUInt(out: Buffer, o: number, value: number): number {
  while (value >= 0x80) {
    out[o++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 128)
  }
  out[o++] = value
  return o
}

export function putText(out: Buffer, o: number, text: string): number {
  const length = Buffer.byteLength(text)
  o = putVarUInt(out, o, length)
  return o + out.write(text, o, 'latin1')
}

export const COLUMN_HEADERS = EVENT_COLUMNS.map(([name, type]) => ({ name, type }))
const HEADER_BYTES = COLUMN_HEADERS.reduce(
  (n, c) => n + varUIntBytes(c.name.length) + c.name.length + varUIntBytes(c.type.length) + c.type.length,
  0,
)

/** The keys of a LowCardinality column of one block, '' first; 0, 1, 2: UInt8, UInt16, UInt32 indexes. */
export interface LowCardinalityKeys {
  readonly keys: readonly Uint8Array[]
  readonly indexType: number
}

/** Bytes per row of the fixed-width columns (every column but the three LowCardinality ones). */
export const FIXED_ROW_BYTES = COLUMN_WIDTHS.reduce<number>((n, w) => n + w, 0)

/** Bytes of a LowCardinality column of `rows` rows (see the diagram above). */
function lowCardinalityBytes(keys: readonly Uint8Array[], rows: number): number {
  let keyBytes = 0
  for (const key of keys) keyBytes += 1 + key.length
  return 8 + 8 + 8 + keyBytes + 8 + rows * (1 << indexTypeOf(keys.length))
}

/** Bytes of an events Native block of `rows` rows whose LowCardinality columns have these keys. */
export function eventsBlockBytes(rows: number, lowCardinalityKeys: readonly (readonly Uint8Array[])[]): number {
  let n = varUIntBytes(EVENT_COLUMNS.length) + varUIntBytes(rows) + HEADER_BYTES + rows * FIXED_ROW_BYTES
  for (const keys of lowCardinalityKeys) n += lowCardinalityBytes(keys, rows)
  return n
}

export function indexTypeOf(keyCount: number): number {
  return keyCount <= 0x100 ? 0 : keyCount <= 0x10000 ? 1 : 2
}

/** Writes a LowCardinality column: `indexes[from, from + rows)` index `dictionary.keys`. */
export function putLowCardinality(
  out: Buffer,
  view: DataView,
  o: number,
  dictionary: LowCardinalityKeys,
  indexes: Uint32Array,
  rows: number,
  from = 0,
): number {
  const indexType = dictionary.indexType
  view.setBigUint64(o, KEY_VERSION_SHARED_WITH_ADDITIONAL_KEYS, true)
  view.setBigUint64(o + 8, BigInt(indexType | HAS_ADDITIONAL_KEYS | NEED_UPDATE_DICTIONARY), true)
  view.setBigUint64(o + 16, BigInt(dictionary.keys.length), true)
  o += 24
  for (const key of dictionary.keys) {
    out[o++] = key.length
    out.set(key, o)
    o += key.length
  }
  view.setBigUint64(o, BigInt(rows), true)
  o += 8
  if (indexType === 0) {
    for (let r = 0; r < rows; r++) out[o + r] = indexes[from + r]!
    return o + rows
  }
  if (indexType === 1) {
    for (let r = 0; r < rows; r++) view.setUint16(o + 2 * r, indexes[from + r]!, true)
    return o + 2 * rows
  }
  for (let r = 0; r < rows; r++) view.setUint32(o + 4 * r, indexes[from + r]!, true)
  return o + 4 * rows
}

/** 16 address bytes, in their order, as four 32-bit moves. */
function copyAddress(to: DataView, at: number, from: DataView, offset: number): void {
  to.setUint32(at, from.getUint32(offset, true), true)
  to.setUint32(at + 4, from.getUint32(offset + 4, true), true)
  to.setUint32(at + 8, from.getUint32(offset + 8, true), true)
  to.setUint32(at + 12, from.getUint32(offset + 12, true), true)
}

/**
 * The events rows of `body` as one Native block, in a buffer from `blocks` when given. Throws
 * STORE_INSERT_FAILED naming the row and byte offset when the body is not whole rows of
 * EVENT_COLUMNS.
 */
export function eventsRowBinaryToNative(body: Buffer, blocks?: BufferPool): Buffer {
  const n = body.length
  // Pass 1: where each row starts, and the dictionary index of its three strings.
  const sensors = new BlockDictionary(body)
  const countries = new BlockDictionary(body)
  const files = new BlockDictionary(body)
  ensureScratch(Math.ceil(n / (8 + 1 + FIXED_BYTES_AFTER_SENSOR + 1 + 1 + 1 + 8)))
  let rows = 0
  let o = 0
  while (o < n) {
    const start = o
    if (o + 9 > n) throw badBody('truncated row (ts)', rows, start)
    const ls = body[o + 8]!
    if (ls > MAX_STRING) throw badBody('sensor length out of range', rows, start)
    o += 9
    if (o + ls + FIXED_BYTES_AFTER_SENSOR + 1 > n) throw badBody('truncated row', rows, start)
    sensorIndexes[rows] = sensors.indexOf(o, ls)
    o += ls + FIXED_BYTES_AFTER_SENSOR
    const lc = body[o]!
    if (lc > MAX_STRING) throw badBody('country length out of range', rows, start)
    if (o + 1 + lc + 2 > n) throw badBody('truncated row (country)', rows, start)
    countryIndexes[rows] = countries.indexOf(o + 1, lc)
    o += 1 + lc + 1
    const lf = body[o]!
    if (lf > MAX_STRING) throw badBody('file id length out of range', rows, start)
    if (o + 1 + lf + 8 > n) throw badBody('truncated row (file id)', rows, start)
    fileIndexes[rows] = files.indexOf(o + 1, lf)
    o += 1 + lf + 8
    rowStarts[rows] = start
    rows++
  }

  const total = eventsBlockBytes(rows, [sensors.keys, countries.keys, files.keys])
  const out = blocks ? blocks.take(total) : Buffer.allocUnsafe(total)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  const src = new DataView(body.buffer, body.byteOffset, body.byteLength)

  let w = putVarUInt(out, 0, EVENT_COLUMNS.length)
  w = putVarUInt(out, w, rows)
  // Where each column's values start: header, then data; LowCardinality columns are written
  // whole (dictionary and indexes) from pass 1's indexes.
  const starts: number[] = []
  for (const [i, c] of COLUMN_HEADERS.entries()) {
    w = putText(out, w, c.name)
    w = putText(out, w, c.type)
    starts.push(w)
    if (i === SENSOR) w = putLowCardinality(out, view, w, sensors, sensorIndexes, rows)
    else if (i === COUNTRY) w = putLowCardinality(out, view, w, countries, countryIndexes, rows)
    else if (i === FILE_ID) w = putLowCardinality(out, view, w, files, fileIndexes, rows)
    else w += rows * COLUMN_WIDTHS[i]!
  }

  // Pass 2, row by row: each row is read once, front to back, and its values go to 18 column
  // cursors. (Column by column instead, every column re-reads the whole body: 2.0 s of 4.6 for
  // the 17M rows of the 20M-packet bench capture, most of it cache misses.) 32-bit DataView
  // loads and stores: V8 inlines them; Buffer#copy per value is a native call.
  let ts = starts[0]!
  let addrSrc = starts[2]!
  let srcPort = starts[3]!
  let addrDst = starts[4]!
  let dstPort = starts[5]!
  let ipVersion = starts[6]!
  let ttl = starts[7]!
  let ipLen = starts[8]!
  let udpLen = starts[9]!
  let payloadLen = starts[10]!
  let wireLen = starts[11]!
  let cls = starts[12]!
  let ntpVersion = starts[13]!
  let ntpMode = starts[14]!
  let ntpCode = starts[15]!
  let ntpImpl = starts[16]!
  let bogon = starts[18]!
  let record = starts[20]!
  for (let r = 0; r < rows; r++) {
    const s = rowStarts[r]!
    view.setUint32(ts, src.getUint32(s, true), true)
    view.setUint32(ts + 4, src.getUint32(s + 4, true), true)
    ts += 8
    let f = s + 9 + body[s + 8]!
    copyAddress(view, addrSrc, src, f)
    addrSrc += 16
    view.setUint16(srcPort, src.getUint16(f + 16, true), true)
    srcPort += 2
    copyAddress(view, addrDst, src, f + 18)
    addrDst += 16
    view.setUint16(dstPort, src.getUint16(f + 34, true), true)
    dstPort += 2
    out[ipVersion++] = body[f + 36]!
    out[ttl++] = body[f + 37]!
    view.setUint16(ipLen, src.getUint16(f + 38, true), true)
    ipLen += 2
    view.setUint16(udpLen, src.getUint16(f + 40, true), true)
    udpLen += 2
    view.setUint16(payloadLen, src.getUint16(f + 42, true), true)
    payloadLen += 2
    view.setUint32(wireLen, src.getUint32(f + 44, true), true)
    wireLen += 4
    out[cls++] = body[f + 48]!
    out[ntpVersion++] = body[f + 49]!
    out[ntpMode++] = body[f + 50]!
    out[ntpCode++] = body[f + 51]!
    out[ntpImpl++] = body[f + 52]!
    f += FIXED_BYTES_AFTER_SENSOR
    f += 1 + body[f]!
    out[bogon++] = body[f]!
    f += 2 + body[f + 1]!
    view.setUint32(record, src.getUint32(f, true), true)
    view.setUint32(record + 4, src.getUint32(f + 4, true), true)
    record += 8
  }
  // The last column ends the block: anything else is a layout bug, never a short insert.
  if (w !== total || record !== total) {
    throw new TeitenError(
      'STORE_INSERT_FAILED',
      `events body: Native block size mismatch (${record} of ${total} bytes)`,
    )
  }
  return out
}
