import { BufferPool } from '../core/buffer-pool.js'
import { DecodedUdpPacket, type Enrichment, type UdpPacket } from '../core/event.js'
import {
  COLUMN_HEADERS,
  COLUMN_WIDTHS,
  indexTypeOf,
  eventsBlockBytes,
  FIXED_ROW_BYTES,
  putLowCardinality,
  putText,
  putVarUInt,
} from './native.js'
import { AddressView, putAddress, putTimestampNanos, putUInt64 } from './rowbinary.js'
import { EVENT_COLUMNS } from './schema.js'

/**
 * Events encoded straight into the columns of a ClickHouse Native block (store/native.ts has
 * the block's layout), for a pipeline whose sink takes Native blocks: StoreSink, which inserts
 * them, and the Kafka sensor, which cuts them into message parts (store/native-blocks.ts).
 *
 * Why: the store turns a RowBinary batch into a Native block before the insert, one pass to
 * find the rows and their strings and one to scatter 18 values per row into columns: 1.4-1.9 s
 * of the main thread for the 17M events of the 20M-packet bench capture (`node --cpu-prof`),
 * as much as encoding the rows. Written as columns to begin with, the rows cost the encoder
 * about what RowBinary did, and the block is put together with one copy per column.
 *
 * The blocks are byte for byte those the rewrite makes of the same rows in RowBinary, listed
 * in the order of `events` (test/store/native-encoder.test.ts; blockRanges): each LowCardinality
 * column's dictionary holds the strings its block uses, '' first, in the order its rows first
 * use them.
 */

/** A key's UTF-8 bytes: under 128, so that its length is one byte in the block (store/native.ts). */
function keyBytes(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length > 127) throw new RangeError(`string too long for the row encoder: ${text.slice(0, 40)}…`)
  return bytes
}

/** One LowCardinality column's strings for the rows so far, in the order they were first used. */
class Strings {
  /** Key 0 is '' (ClickHouse's default value); the others as their UTF-8 bytes. */
  readonly keys: Uint8Array[] = [new Uint8Array(0)]
  /** The row that first used each key (rollback drops keys first used after its row). */
  private readonly firstRows: number[] = [-1]
  private readonly texts: string[] = ['']
  private readonly index = new Map<string, number>([['', 0]])

  indexOf(text: string, row: number): number {
    let found = this.index.get(text)
    if (found === undefined) {
      found = this.keys.length
      this.keys.push(keyBytes(text))
      this.firstRows.push(row)
      this.texts.push(text)
      this.index.set(text, found)
    }
    return found
  }

  /** Forgets the keys no row before `rows` uses. */
  truncate(rows: number): void {
    while (this.keys.length > 1 && this.firstRows[this.firstRows.length - 1]! >= rows) {
      this.firstRows.pop()
      this.keys.pop()
      this.index.delete(this.texts.pop()!)
    }
  }

  /** Gives key `from` the text `to` (a file id found out after its rows were added). */
  rename(from: string, to: string): void {
    const key = this.index.get(from)
    if (key === undefined) return
    if (this.index.has(to)) throw new RangeError(`rename onto a key in use: ${to}`)
    this.keys[key] = keyBytes(to)
    this.texts[key] = to
    this.index.delete(from)
    this.index.set(to, key)
  }

  /** How many keys rows [0, rows) use: those first used before `rows` ('' included). */
  usedBefore(rows: number): number {
    let n = this.keys.length
    while (n > 1 && this.firstRows[n - 1]! >= rows) n--
    return n
  }
}

/** A LowCardinality column of one block: its own dictionary and the rows' indexes into it. */
interface BlockColumn {
  keys: Uint8Array[]
  indexType: number
  indexes: Uint32Array
}

/**
 * Where putLowCardinality (store/native.ts), writing `keys` at `o`, puts the bytes of `wanted`:
 * after three 8-byte words, each key as its length byte (keys are under 128 bytes) and bytes.
 */
function locateKey(o: number, keys: Uint8Array[], wanted: Buffer): number {
  let at = o + 24
  for (const key of keys) {
    at += 1
    if (key.length === wanted.length && wanted.equals(key)) return at
    at += key.length
  }
  return -1
}

export class EventColumnEncoder {
  private capacity: number
  private count = 0
  private columns: Buffer
  private view: DataView
  /** Where each fixed-width column starts in `columns` (capacity rows each). */
  private starts: number[] = []
  private sensorRows: Uint32Array
  private countryRows: Uint32Array
  private fileRows: Uint32Array
  private readonly sensors = new Strings()
  private readonly countries = new Strings()
  private readonly files = new Strings()
  private readonly srcView = new AddressView()
  private readonly dstView = new AddressView()
  private sensor = ''
  private fileId = ''
  /**
   * Runs of rows of one file, in the order they were added: the first row of each and its
   * sensor key. A group of small files from several sensor folders (read hour by hour across
   * them) interleaves the sensors; writeBlock lists the runs by sensor, then by time (blockRanges).
   */
  private readonly runStarts: number[] = []
  private readonly runSensors: number[] = []
  /** The current file's sensor and id keys, once a row of it has been added (-1: not yet). */
  private sensorKey = -1
  private fileKey = -1
  /** A two-byte country's key + 1 by its bytes (c0 << 8 | c1); 0: not used in this batch yet. */
  private shortCountries = new Int32Array(65536)
  /** Blocks handed out come back through recycle() once the sink is done with them. */
  private readonly pool = new BufferPool(2)
  /** takeLocatingFileId: the id whose key writeBlock looks for, and where it wrote it (-1: not in the block). */
  private locating: Buffer | undefined
  private locatedAt = -1
  /** Scratch for a block's own dictionary: global key -> block key + 1. */
  private remap = new Int32Array(256)
  private remapped = new Uint32Array(0)

  constructor(initialRows = 1 << 16) {
    this.capacity = Math.max(1, initialRows)
    this.columns = Buffer.alloc(0)
    this.view = new DataView(new ArrayBuffer(0))
    this.sensorRows = new Uint32Array(0)
    this.countryRows = new Uint32Array(0)
    this.fileRows = new Uint32Array(0)
    this.allocate(this.capacity, 0)
  }

  private allocate(capacity: number, keep: number): void {
    const columns = Buffer.allocUnsafeSlow(capacity * FIXED_ROW_BYTES)
    const starts: number[] = []
    let at = 0
    for (let c = 0; c < COLUMN_WIDTHS.length; c++) {
      starts.push(at)
      if (keep > 0 && COLUMN_WIDTHS[c]! > 0) {
        const w = COLUMN_WIDTHS[c]!
        this.columns.copy(columns, at, this.starts[c]!, this.starts[c]! + keep * w)
      }
      at += capacity * COLUMN_WIDTHS[c]!
    }
    const grow = (old: Uint32Array) => {
      const next = new Uint32Array(capacity)
      next.set(old.subarray(0, keep))
      return next
    }
    this.sensorRows = grow(this.sensorRows)
    this.countryRows = grow(this.countryRows)
    this.fileRows = grow(this.fileRows)
    this.columns = columns
    this.view = new DataView(columns.buffer, columns.byteOffset, columns.byteLength)
    this.starts = starts
    this.capacity = capacity
  }

  setFile(sensor: string, fileId: string): void {
    this.sensor = sensor
    this.fileId = fileId
    this.sensorKey = -1
    this.fileKey = -1
  }

  /**
   * Gives the rows already added under file id `from` the id `to`, and the rows still to come
   * (the current file's, when it is `from`). For a file read before its id was known
   * (pipeline/ingest.ts, early reads): blocks taken before are patched with takeLocatingFileId.
   */
  renameFile(from: string, to: string): void {
    this.files.rename(from, to)
    if (this.fileId === from) this.fileId = to
  }

  get rows(): number {
    return this.count
  }

  /** A position in the rows for rollback(): the row count (the Native block has no row offsets). */
  get bytes(): number {
    return this.count
  }

  add(p: UdpPacket, e: Enrichment, record: number): void {
    if (this.count === this.capacity) this.allocate(this.capacity * 2, this.count)
    const r = this.count
    const b = this.columns
    const v = this.view
    const s = this.starts
    if (this.sensorKey < 0) {
      this.sensorKey = this.sensors.indexOf(this.sensor, r)
      this.fileKey = this.files.indexOf(this.fileId, r)
      this.runStarts.push(r)
      this.runSensors.push(this.sensorKey)
    }
    putTimestampNanos(v, s[0]! + 8 * r, p.tsSec, p.tsNanos)
    this.sensorRows[r] = this.sensorKey
    putAddress(v, s[2]! + 16 * r, this.srcView.of(p.src))
    v.setUint16(s[3]! + 2 * r, p.srcPort, true)
    putAddress(v, s[4]! + 16 * r, this.dstView.of(p.dst))
    v.setUint16(s[5]! + 2 * r, p.dstPort, true)
    b[s[6]! + r] = p.ipVersion
    b[s[7]! + r] = p.ttl
    v.setUint16(s[8]! + 2 * r, Math.min(p.ipLength, 65535), true)
    v.setUint16(s[9]! + 2 * r, Math.min(p.udpLength, 65535), true)
    v.setUint16(
      s[10]! + 2 * r,
      Math.min(p instanceof DecodedUdpPacket ? p.payloadLength : p.payload.length, 65535),
      true,
    )
    v.setUint32(s[11]! + 4 * r, p.wireLength >>> 0, true)
    b[s[12]! + r] = e.classId + 1
    b[s[13]! + r] = e.ntpVersion
    b[s[14]! + r] = e.ntpMode
    b[s[15]! + r] = e.ntpCode
    b[s[16]! + r] = e.ntpImpl
    this.countryRows[r] = this.countryKey(e.country, r)
    b[s[18]! + r] = e.bogon ? 1 : 0
    this.fileRows[r] = this.fileKey
    putUInt64(v, s[20]! + 8 * r, record)
    this.count = r + 1
  }

  private countryKey(country: string, row: number): number {
    const c0 = country.charCodeAt(0)
    const c1 = country.charCodeAt(1)
    // ISO alpha-2 or '--' (core/event.ts): two ASCII bytes, found without hashing the string.
    if (country.length === 2 && c0 < 0x80 && c1 < 0x80) {
      const code = (c0 << 8) | c1
      const known = this.shortCountries[code]!
      if (known !== 0) return known - 1
      const found = this.countries.indexOf(country, row)
      this.shortCountries[code] = found + 1
      return found
    }
    return this.countries.indexOf(country, row)
  }

  /** Forgets the rows after the first `rows` (a file read only in part); `offset` is bytes' value then. */
  rollback(offset: number, rows: number): void {
    if (offset !== rows || rows > this.count) throw new RangeError('rollback past the end')
    this.count = rows
    this.sensors.truncate(rows)
    this.countries.truncate(rows)
    this.files.truncate(rows)
    while (this.runStarts.length > 0 && this.runStarts[this.runStarts.length - 1]! >= rows) {
      this.runStarts.pop()
      this.runSensors.pop()
    }
    this.shortCountries.fill(0)
    // The current file's keys are looked up again at its next row (they may have been dropped).
    this.sensorKey = -1
    this.fileKey = -1
  }

  /** The rows so far as one Native block; the encoder starts over (see takeSplit). */
  take(): Buffer {
    return this.takeSplit(0).body
  }

  /**
   * The rows so far as two Native blocks back to back in one buffer, rows [0, `rows`) and the
   * rest (`at`: where the second starts; a single block when `rows` is 0). A block stream may
   * hold several blocks; the pipeline sends the two apart (a group and a file's first batch).
   */
  takeSplit(rows: number, _offset?: number): { body: Buffer; at: number } {
    const n = this.count
    if (rows < 0 || rows > n) throw new RangeError('split past the end')
    const firstRanges = this.blockRanges(0, rows)
    const first = rows > 0 ? this.blockColumns(firstRanges, rows) : undefined
    const secondRanges = this.blockRanges(rows, n - rows)
    const second = this.blockColumns(secondRanges, n - rows, 3 * rows)
    const keysOf = (columns: BlockColumn[]) => columns.map((c) => c.keys)
    const firstBytes = first ? eventsBlockBytes(rows, keysOf(first)) : 0
    const total = firstBytes + eventsBlockBytes(n - rows, keysOf(second))
    const out = this.pool.take(total)
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
    if (first) this.writeBlock(out, view, 0, rows, first, firstRanges)
    const end = this.writeBlock(out, view, firstBytes, n - rows, second, secondRanges)
    if (end !== total) throw new Error(`store/native-encoder.ts: block size mismatch (${end} of ${total} bytes)`)
    this.rollback(0, 0) // the next batch starts with no rows and no strings
    return { body: out, at: firstBytes }
  }

  /**
   * take(), and where the current file's id is in the block: the offset of its bytes in the
   * file_id dictionary (-1: no row of it). A block taken before the file's id was known gets it
   * written there in place once it is, when the stand-in has the same length.
   */
  takeLocatingFileId(): { body: Buffer; fileIdAt: number } {
    this.locating = Buffer.from(this.fileId, 'utf8')
    this.locatedAt = -1
    try {
      const body = this.take()
      return { body, fileIdAt: this.locatedAt }
    } finally {
      this.locating = undefined
    }
  }

  /** A block handed out by take(), for a later batch: only once nothing reads it any more. */
  recycle(body: Buffer): void {
    this.pool.give(body)
  }

  /**
   * The order in which a block lists rows [from, from + rows), as [start, end) row pairs: the
   * files' runs by sensor name (bytewise, as ClickHouse orders strings), then by their first
   * timestamp; one pair [from, from + rows) when that is the order they were added in.
   *
   * Why: `events` is ordered by (sensor, ts), and the engine sorts an inserted block that is not
   * in that order already (a permutation and a copy of every column). A group of small files
   * read hour by hour across three sensor folders interleaves the sensors, and files closed
   * at nearly the same time can be read out of their hours' order; each file's packets are in
   * time order, so listing its rows file by file in this order leaves the block sorted. The
   * bench spool's 17M events replayed into a new store in 262,144-row blocks (three runs each,
   * interleaved): 19.7-21.7 CPU s as sorted blocks against 21.2-24.2 as read (docs/performance.md,
   * Round 21). A big file's batches are one run each, copied as before.
   */
  private blockRanges(from: number, rows: number): number[] {
    const end = from + rows
    const asAdded = [from, end]
    const starts = this.runStarts
    let first = 0
    while (first + 1 < starts.length && starts[first + 1]! <= from) first++
    let last = first
    while (last + 1 < starts.length && starts[last + 1]! < end) last++
    if (last === first) return asAdded
    const runs: number[] = []
    for (let i = first; i <= last; i++) runs.push(i)
    const keys = this.sensors.keys
    const v = this.view
    const ts = this.starts[0]!
    // A run's first timestamp: the high word signed, the low unsigned (Int64 nanoseconds).
    const high = (i: number) => v.getInt32(ts + 8 * Math.max(from, starts[i]!) + 4, true)
    const low = (i: number) => v.getUint32(ts + 8 * Math.max(from, starts[i]!), true)
    runs.sort(
      (a, b) =>
        Buffer.compare(keys[this.runSensors[a]!]!, keys[this.runSensors[b]!]!) ||
        high(a) - high(b) ||
        low(a) - low(b) ||
        a - b,
    )
    if (runs.every((run, i) => i === 0 || run > runs[i - 1]!)) return asAdded
    const order: number[] = []
    for (const i of runs) {
      order.push(Math.max(from, starts[i]!), i + 1 < starts.length ? Math.min(end, starts[i + 1]!) : end)
    }
    return order
  }

  /**
   * The three LowCardinality columns of a block of `rows` rows listed as `ranges` (blockRanges):
   * the global keys when the block is rows [0, rows) as added (they used the keys first, in this
   * order), else a dictionary of its own, its keys in the order the block's rows first use them.
   */
  private blockColumns(ranges: number[], rows: number, scratchAt = 0): BlockColumn[] {
    const all = [this.sensorRows, this.countryRows, this.fileRows]
    const strings = [this.sensors, this.countries, this.files]
    return all.map((indexes, i) => {
      const global = strings[i]!.keys
      if (ranges.length === 2 && ranges[0] === 0) {
        const keys = rows === this.count ? global : global.slice(0, strings[i]!.usedBefore(rows))
        return { keys, indexType: indexTypeOf(keys.length), indexes }
      }
      if (this.remap.length < global.length) this.remap = new Int32Array(global.length * 2)
      const remap = this.remap
      remap.fill(0, 0, global.length)
      remap[0] = 1 // '' stays key 0
      const keys: Uint8Array[] = [global[0]!]
      // Both blocks of a split may have their own: the second's after the first's.
      if (this.remapped.length < this.count * 3) this.remapped = new Uint32Array(this.capacity * 3)
      const own = this.remapped.subarray(scratchAt + i * rows, scratchAt + (i + 1) * rows)
      let r = 0
      for (let p = 0; p < ranges.length; p += 2) {
        for (let row = ranges[p]!; row < ranges[p + 1]!; row++) {
          const g = indexes[row]!
          let k = remap[g]!
          if (k === 0) {
            keys.push(global[g]!)
            k = remap[g] = keys.length
          }
          own[r++] = k - 1
        }
      }
      return { keys, indexType: indexTypeOf(keys.length), indexes: own }
    })
  }

  private writeBlock(
    out: Buffer,
    view: DataView,
    o: number,
    rows: number,
    lc: BlockColumn[],
    ranges: number[],
  ): number {
    o = putVarUInt(out, o, EVENT_COLUMNS.length)
    o = putVarUInt(out, o, rows)
    let l = 0
    for (const [c, header] of COLUMN_HEADERS.entries()) {
      o = putText(out, o, header.name)
      o = putText(out, o, header.type)
      // Width 0: a LowCardinality column (sensor, country, file id, in this order: blockColumns).
      if (COLUMN_WIDTHS[c] === 0) {
        const column = lc[l++]!
        if (l === 3 && this.locating) this.locatedAt = locateKey(o, column.keys, this.locating)
        o = putLowCardinality(out, view, o, column, column.indexes, rows)
      } else {
        const w = COLUMN_WIDTHS[c]!
        const column = this.starts[c]!
        for (let p = 0; p < ranges.length; p += 2) {
          o += this.columns.copy(out, o, column + ranges[p]! * w, column + ranges[p + 1]! * w)
        }
      }
    }
    return o
  }
}
