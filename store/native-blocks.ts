import type { BufferPool } from '../core/buffer-pool.js'
import { NTP_CLASSES } from '../core/event.js'
import { type ErrorCode, TeitenError } from '../core/errors.js'
import {
  COLUMN_HEADERS,
  COLUMN_WIDTHS,
  eventsBlockBytes,
  indexTypeOf,
  putLowCardinality,
  putText,
  putVarUInt,
} from './native.js'
import { EVENT_COLUMNS } from './schema.js'

/**
 * Events Native blocks (store/native.ts has the layout) read, cut into parts and joined again
 * without going back to rows: the Kafka path's message bodies (format version 3,
 * stream/codec.ts). The sensor cuts the block its column encoder made of a batch
 * (store/native-encoder.ts) into parts of PART_ROWS rows; the sink checks each part and joins a
 * group's parts into one block for the insert, byte for byte the block the sensor cut
 * (test/store/native-blocks.test.ts), so the engine gets what a direct ingest gives it.
 *
 * Why (docs/kafka.md, format version 3): with RowBinary bodies the sink walked every row to
 * check it, joined the parts and rewrote the rows as a Native block (store/native.ts), 2.1 +
 * 0.7 + 3.1 s of its main thread for the 17M events of the 20M-packet bench capture, and
 * decompressed 1.98 GB of rows (4.2 s); a part as columns is 36% smaller before compression,
 * decompresses ~20% faster, and is checked and joined column by column.
 *
 * Only blocks as teiten writes them are read: the columns of EVENT_COLUMNS in order, and each
 * LowCardinality column in ClickHouse's own canonical form ('' as key 0, keys of under 128
 * bytes, the narrowest index type for the key count, every index in range). Anything else is
 * refused with the byte offset where it stops being one.
 */

/** A block read by readEventsBlock: views into `buf`, nothing copied. */
export interface EventsBlock {
  readonly buf: Buffer
  readonly rows: number
  /** Where the block ends in `buf`. */
  readonly end: number
  /** Per column of EVENT_COLUMNS: where its values start (a LowCardinality column: its indexes). */
  readonly data: readonly number[]
  /** The three LowCardinality columns (sensor, country, file id): keys, '' first. */
  readonly keys: readonly (readonly Uint8Array[])[]
  /** Their index widths in bytes: 1, 2 or 4. */
  readonly indexBytes: readonly number[]
}

const LOW_CARDINALITY_COLUMNS = COLUMN_WIDTHS.flatMap((w, c) => (w === 0 ? [c] : []))
const SENSOR_COLUMN = EVENT_COLUMNS.findIndex(([name]) => name === 'sensor')
const FILE_COLUMN = EVENT_COLUMNS.findIndex(([name]) => name === 'file_id')
const IP_VERSION_COLUMN = EVENT_COLUMNS.findIndex(([name]) => name === 'ip_version')
const CLASS_COLUMN = EVENT_COLUMNS.findIndex(([name]) => name === 'class')
const BOGON_COLUMN = EVENT_COLUMNS.findIndex(([name]) => name === 'bogon')
if (
  LOW_CARDINALITY_COLUMNS.length !== 3 ||
  LOW_CARDINALITY_COLUMNS[0] !== SENSOR_COLUMN ||
  LOW_CARDINALITY_COLUMNS[2] !== FILE_COLUMN ||
  [IP_VERSION_COLUMN, CLASS_COLUMN, BOGON_COLUMN].some((c) => c < 0 || COLUMN_WIDTHS[c] !== 1)
) {
  throw new Error('store/native-blocks.ts: the columns no longer match EVENT_COLUMNS')
}
/** Each column's name and type as the block spells them (varuint length + bytes each). */
const COLUMN_HEADER_BYTES = COLUMN_HEADERS.map(({ name, type }) => {
  // Each length a varuint of up to 5 bytes (the class Enum8's type takes two).
  const out = Buffer.alloc(10 + name.length + type.length)
  return out.subarray(0, putText(out, putText(out, 0, name), type))
})
const KEY_VERSION = 1
const FLAGS = (1 << 9) | (1 << 10)
/** Rows of one block: far more than a batch (BATCH_ROWS), far less than the engine's limits. */
const MAX_BLOCK_ROWS = 1 << 24
const CLASS_MAX = NTP_CLASSES.length

/**
 * Whether `buf` holds the bytes of `want` at `at` (the caller checked the bounds). A plain
 * loop: Buffer.compare on a range costs a native call per call, which checking RowBinary rows
 * (stream/codec.ts walkRows, two per row) paid with 250 ms of the sink's 2.4 s of JavaScript
 * for 1.7M events, against ~30 ms for this.
 */
export function sameBytes(want: Uint8Array, buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < want.length; i++) if (buf[at + i] !== want[i]) return false
  return true
}

/**
 * Reads the events block that starts at `at` in `buf`, checking its structure (not its values:
 * checkEventsValues). Throws `code` naming the byte offset where it is not such a block.
 */
export function readEventsBlock(buf: Buffer, at = 0, code: ErrorCode = 'STORE_INSERT_FAILED'): EventsBlock {
  const n = buf.length
  const bad = (message: string, offset: number) =>
    new TeitenError(code, `events Native block: ${message} at byte ${offset}`, { offset })
  let o = at
  const varUInt = (what: string): number => {
    let value = 0
    let scale = 1
    for (let i = 0; i < 4; i++) {
      if (o >= n) throw bad(`truncated (${what})`, o)
      const byte = buf[o++]!
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return value
      scale *= 128
    }
    throw bad(`${what} out of range`, o)
  }
  /** A UInt64 that must fit 32 bits. */
  const uint64 = (what: string): number => {
    if (o + 8 > n) throw bad(`truncated (${what})`, o)
    if (buf.readUInt32LE(o + 4) !== 0) throw bad(`${what} out of range`, o)
    const value = buf.readUInt32LE(o)
    o += 8
    return value
  }
  if (varUInt('column count') !== EVENT_COLUMNS.length) throw bad('not the events columns', at)
  const rowsAt = o
  const rows = varUInt('row count')
  if (rows === 0 || rows > MAX_BLOCK_ROWS) throw bad(`${rows} rows`, rowsAt)
  const data: number[] = []
  const keys: Uint8Array[][] = []
  const indexBytes: number[] = []
  for (let c = 0; c < EVENT_COLUMNS.length; c++) {
    const header = COLUMN_HEADER_BYTES[c]!
    if (o + header.length > n || !sameBytes(header, buf, o)) throw bad(`column ${c} is not ${EVENT_COLUMNS[c]![0]}`, o)
    o += header.length
    const width = COLUMN_WIDTHS[c]!
    if (width > 0) {
      data.push(o)
      o += rows * width
      if (o > n) throw bad(`truncated (column ${EVENT_COLUMNS[c]![0]})`, n)
      continue
    }
    const columnAt = o
    if (uint64('key version') !== KEY_VERSION) throw bad('unknown LowCardinality key version', columnAt)
    const flagsAt = o
    const flags = uint64('flags')
    const indexType = flags & 0xff
    if ((flags & ~0xff) !== FLAGS || indexType > 2) throw bad(`LowCardinality flags ${flags}`, flagsAt)
    const countAt = o
    const keyCount = uint64('key count')
    if (keyCount === 0 || keyCount > rows + 1 || indexTypeOf(keyCount) !== indexType)
      throw bad(`${keyCount} keys with index type ${indexType}`, countAt)
    const columnKeys: Uint8Array[] = []
    for (let k = 0; k < keyCount; k++) {
      if (o >= n) throw bad('truncated (keys)', o)
      const length = buf[o]!
      if (length > 127 || (k === 0 && length !== 0)) throw bad(`key ${k} of ${length} bytes`, o)
      if (o + 1 + length > n) throw bad('truncated (keys)', o)
      columnKeys.push(buf.subarray(o + 1, o + 1 + length))
      o += 1 + length
    }
    const rowsAgainAt = o
    if (uint64('index rows') !== rows) throw bad('index rows differ from the block rows', rowsAgainAt)
    const width2 = 1 << indexType
    if (o + rows * width2 > n) throw bad('truncated (indexes)', n)
    const indexes = o
    for (let r = 0; r < rows; r++) {
      const index =
        width2 === 1
          ? buf[indexes + r]!
          : width2 === 2
            ? buf.readUInt16LE(indexes + 2 * r)
            : buf.readUInt32LE(indexes + 4 * r)
      if (index >= keyCount) throw bad(`index ${index} of ${keyCount} keys`, indexes + r * width2)
    }
    data.push(indexes)
    keys.push(columnKeys)
    indexBytes.push(width2)
    o += rows * width2
  }
  return { buf, rows, end: o, data, keys, indexBytes }
}

/** A LowCardinality column's index of row `r`. */
function indexAt(block: EventsBlock, l: number, r: number): number {
  const w = block.indexBytes[l]!
  const at = block.data[LOW_CARDINALITY_COLUMNS[l]!]! + w * r
  return w === 1 ? block.buf[at]! : w === 2 ? block.buf.readUInt16LE(at) : block.buf.readUInt32LE(at)
}

/**
 * Checks what a row of `events` can hold that the block's structure does not say: ip_version 4
 * or 6, a class of NTP_CLASSES, bogon 0 or 1, and when given, every row's sensor and file id.
 * Returns undefined, or what is wrong with the first row that is not such a row.
 */
export function checkEventsValues(block: EventsBlock, sensor?: Uint8Array, fileId?: Uint8Array): string | undefined {
  const { buf, rows, data } = block
  const ipVersion = data[IP_VERSION_COLUMN]!
  const cls = data[CLASS_COLUMN]!
  const bogon = data[BOGON_COLUMN]!
  for (let r = 0; r < rows; r++) {
    const v = buf[ipVersion + r]!
    if (v !== 4 && v !== 6) return `row ${r}: ip_version ${v}`
    const c = buf[cls + r]!
    if (c < 1 || c > CLASS_MAX) return `row ${r}: class ${c}`
    if (buf[bogon + r]! > 1) return `row ${r}: bogon ${buf[bogon + r]}`
  }
  const only = (l: number, want: Uint8Array | undefined, what: string): string | undefined => {
    if (want === undefined) return undefined
    const keys = block.keys[l]!
    const ok = keys.map((k) => k.length === want.length && sameBytes(want, k, 0))
    let r = 0
    // A part of one file's batch: keys '' and the header's, UInt8 indexes; a row with index 0
    // ('') is the only wrong one, and memchr finds it.
    if (keys.length === 2 && !ok[0] && ok[1] && block.indexBytes[l] === 1) {
      const at = data[LOW_CARDINALITY_COLUMNS[l]!]!
      const zero = buf.indexOf(0, at)
      r = zero < 0 || zero >= at + rows ? rows : zero - at
    }
    for (; r < rows; r++) if (!ok[indexAt(block, l, r)]) return `row ${r}: ${what} differs from the header`
    return undefined
  }
  return only(0, sensor, 'sensor') ?? only(2, fileId, 'file id')
}

/** Rows [from, to) of a block. */
export interface BlockRows {
  block: EventsBlock
  from: number
  to: number
}

/** Scratch for the joined indexes and the per-block key maps (nothing allocated per row). */
let joinedIndexes = new Uint32Array(0)
let remap = new Int32Array(0)

/**
 * One Native block of the given rows, in their order: fixed-width columns copied range by
 * range, each LowCardinality column with one dictionary of the keys the rows use, '' first, in
 * the order the rows first use them (the order the encoder and ClickHouse write them in, so
 * that a block cut into parts and joined again is the same bytes). In a buffer from `pool`
 * when given (core/buffer-pool.ts: batch-sized buffers made anew keep V8 collecting).
 */
export function writeEventsBlock(ranges: readonly BlockRows[], pool?: BufferPool): Buffer {
  let rows = 0
  for (const r of ranges) rows += r.to - r.from
  if (joinedIndexes.length < 3 * rows) joinedIndexes = new Uint32Array(Math.max(3 * rows, 2 * joinedIndexes.length))
  const dictionaries: Uint8Array[][] = []
  for (let l = 0; l < 3; l++) {
    const merged: Uint8Array[] = [new Uint8Array(0)]
    const byText = new Map<string, number>([['', 0]])
    const out = joinedIndexes.subarray(l * rows, (l + 1) * rows)
    let w = 0
    for (const { block, from, to } of ranges) {
      const blockKeys = block.keys[l]!
      if (remap.length < blockKeys.length) remap = new Int32Array(Math.max(blockKeys.length, 2 * remap.length))
      remap.fill(-1, 0, blockKeys.length)
      for (let r = from; r < to; r++) {
        const k = indexAt(block, l, r)
        let m = remap[k]!
        if (m < 0) {
          const key = blockKeys[k]!
          const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
          m = byText.get(text) ?? -1
          if (m < 0) {
            m = merged.length
            merged.push(key)
            byText.set(text, m)
          }
          remap[k] = m
        }
        out[w++] = m
      }
    }
    dictionaries.push(merged)
  }
  const total = eventsBlockBytes(rows, dictionaries)
  const out = pool ? pool.take(total) : Buffer.allocUnsafe(total)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  let o = putVarUInt(out, 0, EVENT_COLUMNS.length)
  o = putVarUInt(out, o, rows)
  let l = 0
  for (let c = 0; c < EVENT_COLUMNS.length; c++) {
    o += COLUMN_HEADER_BYTES[c]!.copy(out, o)
    const width = COLUMN_WIDTHS[c]!
    if (width === 0) {
      const keys = dictionaries[l]!
      o = putLowCardinality(out, view, o, { keys, indexType: indexTypeOf(keys.length) }, joinedIndexes, rows, l * rows)
      l++
      continue
    }
    for (const { block, from, to } of ranges) {
      o += block.buf.copy(out, o, block.data[c]! + from * width, block.data[c]! + to * width)
    }
  }
  if (o !== total) throw new Error(`store/native-blocks.ts: block size mismatch (${o} of ${total} bytes)`)
  return out
}

/**
 * A block's rows in consecutive parts of `rowsPerPart` rows (the last one shorter), each its
 * own block; a part larger than `maxBytes` (long strings in every row) is halved until it
 * fits. Depends only on the block's bytes: the same batch is cut the same way every time.
 */
export function splitEventsBlock(
  block: EventsBlock,
  rowsPerPart: number,
  maxBytes: number,
): Array<{ body: Buffer; rows: number }> {
  const parts: Array<{ body: Buffer; rows: number }> = []
  const cut = (from: number, to: number) => {
    const part = writeEventsBlock([{ block, from, to }])
    if (part.length <= maxBytes) parts.push({ body: part, rows: to - from })
    else if (to - from === 1)
      throw new TeitenError('BAD_PARAMETER', `a row of a ${part.length}-byte block cannot be split`)
    else {
      const middle = from + Math.ceil((to - from) / 2)
      cut(from, middle)
      cut(middle, to)
    }
  }
  for (let from = 0; from < block.rows; from += rowsPerPart) cut(from, Math.min(block.rows, from + rowsPerPart))
  return parts
}
