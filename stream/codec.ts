/**
 * The Kafka message format of teiten (version 3; versions 1 and 2 are still read). A message
 * value is a small binary header followed by a body:
 *
 *   offset  size  field
 *   0       3     magic: E5 AE 9A (UTF-8 of 定)
 *   3       1     version: 3 (2, 1: older sensors)
 *   4       1     kind: 1 = events, 2 = file record (the ledger entry of a finished file)
 *   5       1     flags: 0 (reserved; a reader rejects what it does not know)
 *   events (kind 1):
 *   6       2     part, UInt16 LE: index of this message within its batch
 *   8       2     parts, UInt16 LE: messages the batch was split into (the sink stores the
 *                 parts in groups of PARTS_PER_INSERT, each once all its parts are in)
 *   10      4     batchNo, UInt32 LE
 *   14      4     rows, UInt32 LE
 *   18      4     body bytes as carried, UInt32 LE
 *   22      1+n   sensor (length byte + UTF-8, n <= 127)
 *   ..      1+m   fileId (length byte + ASCII, m <= 127)
 *   ..            body, version 3: one zstd frame (level 1, content checksum) of one ClickHouse
 *                 Native block of `rows` events rows (store/native-blocks.ts), a part of the
 *                 block the sensor's column encoder made of the batch, cut every PART_ROWS rows;
 *                 the sink joins a group's parts into one block again, the bytes a direct
 *                 ingest inserts. Versions 1 and 2: `rows` rows of RowBinary in the column order
 *                 of EVENT_COLUMNS (store/rowbinary.ts), cut at MAX_PART_BODY_BYTES; version 2
 *                 as one zstd frame, version 1 as they are
 *
 * Why the body is compressed here and not by Kafka (version 1 left it to kafkajs' gzip, then
 * zstd): the broker appends an uncompressed record batch without decompressing it to validate
 * it, and the sensor knows each value's size on the wire, so it packs consecutive parts into
 * one produce request up to the broker's 1 MB limit (~5 parts per round trip instead of one).
 * On the 2M-packet bench capture: sensor 4.0-4.6 -> 3.1-3.6 CPU s, broker 0.6-0.7 -> 0.2-0.35
 * CPU s while the sensor publishes (docs/kafka.md).
 *   file record (kind 2):
 *   6             UTF-8 JSON of the FileRecord (pipeline/sink.ts); one per file, so size is moot
 *
 * Why Native parts (version 3) rather than RowBinary rows (version 2): the sink walked every
 * row to check it, joined the parts and rewrote the rows as the Native block the engine takes
 * (2.1 + 0.7 + 3.1 s of its main thread for the 17M events of the 20M-packet bench capture),
 * and decompressed 1.98 GB of rows (4.2 s); as columns a part is 36% smaller before zstd, is
 * checked column by column and joined with a copy per column (docs/kafka.md).
 *
 * Why this and not JSON (bench/kafka.ts `benchCodec`: 200,000 events of the synthetic bench
 * corpus through the real pipeline, ~8,600-event messages, sensor id of 9 characters; best of
 * 3 rounds on this shared 2-core machine, so costs are +-25% from run to run):
 *
 *   format        bytes/event  gzip -1  gzip -6  encode ns/ev  decode ns/ev  gzip -1 ns/ev  gzip -6 ns/ev
 *   JSON objects        316.8     42.2     33.0     2500-3000     2800-3500        950          2500
 *   binary (this)       116.0     25.2     21.7       340-490       130-180        445          1310
 *
 * (JSON: sensor and file id once per message, one object per event with text addresses and
 * class names; its decode is JSON.parse plus the RowBinary encoding the insert needs. Binary
 * encode is EventRowEncoder.add, which the embedded path pays too, plus the split and header;
 * its decode is the validation below.) Binary is 2.7x smaller raw and 1.5-1.7x smaller after
 * gzip, 6-8x cheaper to produce and ~20x cheaper to consume. gzip -1 costs a third of gzip -6
 * for 16% more bytes (25.2 vs 21.7 per event). zstd level 1 (version 2) beats both: 23.0
 * bytes/event, ~210 ns/event to compress and ~140 to decompress (stream/kafka.ts has the table).
 *
 * Validation: decoding checks the header and walks every row of the body (string lengths,
 * enum ranges, the sensor and file id of each row against the header, the row count, no
 * trailing bytes), so a body that decodes is a body ClickHouse accepts: a malformed message is
 * rejected here with KAFKA_BAD_MESSAGE and parked (stream/consumer.ts) instead of failing the
 * insert forever.
 */
import { promisify } from 'node:util'
import { constants as zlibConstants, zstdCompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib'
import { NTP_CLASSES } from '../core/event.js'
import { TeitenError } from '../core/errors.js'
import { batchToken, type BodyFormat, type EventBatch, type FileRecord } from '../pipeline/sink.js'
import {
  checkEventsValues,
  type EventsBlock,
  readEventsBlock,
  sameBytes,
  splitEventsBlock,
} from '../store/native-blocks.js'

export const MAGIC = Buffer.from([0xe5, 0xae, 0x9a])
/** What this teiten writes. Readers take versions 1, 2 and 3. */
export const FORMAT_VERSION = 3
/** Version 2: RowBinary rows, zstd (sensors before 0.9; still read, and written for RowBinary batches). */
export const FORMAT_V2 = 2
/** Version 1: RowBinary rows as they are (older sensors; still read). */
export const FORMAT_V1 = 1
export const KIND_EVENTS = 1
export const KIND_FILE = 2

const EVENTS_FIXED_HEADER = 22
const MAX_STRING = 127

/**
 * Version 2 bodies: one zstd frame, level 1, with its content checksum (a corrupted body fails
 * to decompress instead of yielding other rows). Output buffers sized to what comes out (a part
 * is <= 999,000 bytes raw, ~200 KB compressed) rather than zlib's 16 KiB chunks: one buffer, no
 * concatenation (the sink's decompression: 257 ms of 16 KiB chunks and their concatenation for
 * 1.7M events before this).
 */
const ZSTD_OPTIONS = {
  params: { [zlibConstants.ZSTD_c_compressionLevel]: 1, [zlibConstants.ZSTD_c_checksumFlag]: 1 },
  chunkSize: 256 * 1024,
}
const zstdAsync = promisify(zstdCompress)
/**
 * Bound on a decompressed body: a part is at most MAX_PART_BODY_BYTES; this leaves room for a
 * sensor built with a larger split while refusing a decompression bomb.
 */
const MAX_DECOMPRESSED_BODY = 16 * 1024 * 1024

/**
 * Largest body of one message. The broker's default limit (message.max.bytes, 1,048,588) is on
 * the record batch: one message per produce request, value <= 1,000,000 bytes with the header,
 * keeps it under the limit even when the codec cannot shrink the data (deflate adds ~0.01%, zstd
 * at most ~0.4%). It fixes
 * the split, and a sink may complete a batch with parts from two runs of a sensor (a re-run
 * after a crash): a constant, like BATCH_ROWS.
 */
export const MAX_PART_BODY_BYTES = 999_000

/**
 * Rows of a version 3 part: a full batch (BATCH_ROWS, 262,144) in 20 parts of ~0.96 MB (73 bytes a row
 * as columns), under MAX_PART_BODY_BYTES; a part whose strings make it larger is halved until
 * it fits (splitEventsBlock). Like MAX_PART_BODY_BYTES it fixes the split: a constant.
 */
export const PART_ROWS = 13_108

/**
 * Parts the sink joins into one insert. Inserts of ~275,000 rows cost the embedded engine a
 * fraction of 8,600-row ones per row (a part per table and the materialized views per insert),
 * and holding at most 32 parts (~32 MB) bounds the sink's memory per sensor whatever
 * BATCH_ROWS is. Part of the dedup identity of what the sink stores: a constant.
 */
export const PARTS_PER_INSERT = 32

/** Which insert of its batch a part belongs to, and the parts of that insert. */
export function insertGroup(part: number, parts: number): { group: number; first: number; count: number } {
  const group = Math.floor(part / PARTS_PER_INSERT)
  const first = group * PARTS_PER_INSERT
  return { group, first, count: Math.min(PARTS_PER_INSERT, parts - first) }
}

/**
 * Dedup token of one insert of the sink. A batch that fits one insert gets the token a direct
 * ingest gives it (pipeline/sink.ts batchToken), so the two paths deduplicate each other; a
 * larger batch gets one token per group of PARTS_PER_INSERT parts.
 */
export function insertToken(fileId: string, batchNo: number, parts: number, group: number): string {
  return parts <= PARTS_PER_INSERT ? batchToken(fileId, batchNo) : `${batchToken(fileId, batchNo)}:g${group}`
}

/**
 * A decoded events message. `body` is a Native block (version 3; `block` is it read) or
 * RowBinary rows (a view into the message value for version 1, the decompressed body for 2).
 */
export interface EventsMessage {
  kind: 'events'
  sensor: string
  fileId: string
  batchNo: number
  part: number
  parts: number
  rows: number
  format: BodyFormat
  body: Buffer
  block?: EventsBlock
}

export interface FileMessage {
  kind: 'file'
  record: FileRecord
}

export type DecodedMessage = EventsMessage | FileMessage

function bad(message: string, context: Record<string, unknown> = {}): TeitenError {
  return new TeitenError('KAFKA_BAD_MESSAGE', message, context)
}

function stringBytes(value: string, what: string): Buffer {
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length > MAX_STRING) throw new TeitenError('BAD_PARAMETER', `${what} longer than ${MAX_STRING} bytes`)
  return bytes
}

// Row layout offsets (rowbinary.ts), after the sensor string.
const FIXED_AFTER_SENSOR = 16 + 2 + 16 + 2 // src, src_port, dst, dst_port
const CLASS_MAX = NTP_CLASSES.length

/**
 * Walks RowBinary rows from `start`, calling `onRow(rowStart, rowEnd)` for each one; throws
 * KAFKA_BAD_MESSAGE on anything an events row cannot be. When sensor/fileId are given, every
 * row must carry exactly those.
 */
export function walkRows(
  body: Buffer,
  onRow: ((start: number, end: number) => void) | undefined,
  sensor?: Buffer,
  fileId?: Buffer,
): number {
  const n = body.length
  let o = 0
  let rows = 0
  while (o < n) {
    const start = o
    // ts
    o += 8
    if (o >= n) throw bad('truncated row (ts)', { row: rows })
    const ls = body[o]!
    if (ls > MAX_STRING) throw bad('sensor length out of range', { row: rows })
    if (o + 1 + ls > n) throw bad('truncated row (sensor)', { row: rows })
    if (sensor !== undefined && (ls !== sensor.length || !sameBytes(sensor, body, o + 1))) {
      throw bad('row sensor differs from the header', { row: rows })
    }
    o += 1 + ls + FIXED_AFTER_SENSOR
    // ip_version ttl | ip_len udp_len payload_len wire_len | class | 4 x ntp | country length
    if (o + 18 > n) throw bad('truncated row', { row: rows })
    const ipVersion = body[o]!
    if (ipVersion !== 4 && ipVersion !== 6) throw bad(`ip_version ${ipVersion}`, { row: rows })
    const cls = body[o + 12]!
    if (cls < 1 || cls > CLASS_MAX) throw bad(`class ${cls}`, { row: rows })
    const lc = body[o + 17]!
    if (lc > MAX_STRING) throw bad('country length out of range', { row: rows })
    o += 18 + lc
    if (o + 2 > n) throw bad('truncated row (bogon)', { row: rows })
    const bogon = body[o]!
    if (bogon > 1) throw bad(`bogon ${bogon}`, { row: rows })
    const lf = body[o + 1]!
    if (lf > MAX_STRING) throw bad('file id length out of range', { row: rows })
    if (o + 2 + lf > n) throw bad('truncated row (file id)', { row: rows })
    if (fileId !== undefined && (lf !== fileId.length || !sameBytes(fileId, body, o + 2))) {
      throw bad('row file id differs from the header', { row: rows })
    }
    o += 2 + lf + 8
    if (o > n) throw bad('truncated row (record)', { row: rows })
    onRow?.(start, o)
    rows++
  }
  return rows
}

/**
 * The deterministic split of a batch into message bodies: consecutive rows, each part as
 * large as fits in `maxBodyBytes`. Depends only on the batch's bytes, so a file published again
 * yields byte-identical parts.
 */
export function splitBody(body: Buffer, maxBodyBytes = MAX_PART_BODY_BYTES): Array<{ body: Buffer; rows: number }> {
  const parts: Array<{ body: Buffer; rows: number }> = []
  let partStart = 0
  let partEnd = 0
  let rows = 0
  walkRows(body, (start, end) => {
    if (end - start > maxBodyBytes)
      throw new TeitenError('BAD_PARAMETER', `a row of ${end - start} bytes cannot be split`)
    if (end - partStart > maxBodyBytes) {
      parts.push({ body: body.subarray(partStart, partEnd), rows })
      partStart = start
      rows = 0
    }
    partEnd = end
    rows++
  })
  if (rows > 0) parts.push({ body: body.subarray(partStart, partEnd), rows })
  return parts
}

function writeCommonHeader(out: Buffer, kind: number, version = FORMAT_VERSION): void {
  MAGIC.copy(out, 0)
  out[3] = version
  out[4] = kind
  out[5] = 0
}

/** The stored body of a part: zstd (version 2). Runs in the libuv pool: the sensor reads on meanwhile. */
export function compressBody(body: Buffer): Promise<Buffer> {
  return zstdAsync(body, ZSTD_OPTIONS)
}

/** Header + stored body; `stored` is the body as the message carries it (compressed for versions 2 and 3). */
function eventsMessage(m: Omit<EventsMessage, 'kind'>, stored: Buffer, version: number): Buffer {
  const sensor = stringBytes(m.sensor, 'sensor')
  const fileId = stringBytes(m.fileId, 'file id')
  const headerBytes = EVENTS_FIXED_HEADER + 1 + sensor.length + 1 + fileId.length
  const out = Buffer.allocUnsafe(headerBytes + stored.length)
  writeCommonHeader(out, KIND_EVENTS, version)
  out.writeUInt16LE(m.part, 6)
  out.writeUInt16LE(m.parts, 8)
  out.writeUInt32LE(m.batchNo, 10)
  out.writeUInt32LE(m.rows, 14)
  out.writeUInt32LE(stored.length, 18)
  let o = EVENTS_FIXED_HEADER
  out[o++] = sensor.length
  o += sensor.copy(out, o)
  out[o++] = fileId.length
  o += fileId.copy(out, o)
  stored.copy(out, o)
  return out
}

/** The version a part's body is carried in: 3 for a Native block, 2 for RowBinary rows. */
function versionOf(format: BodyFormat): number {
  return format === 'Native' ? FORMAT_VERSION : FORMAT_V2
}

type OutgoingPart = Omit<EventsMessage, 'kind' | 'block'>

/**
 * One message value for a part of a batch: version 3 for a Native body, 2 for RowBinary rows
 * (zstd both), or version 1 (RowBinary as it is) when asked for: older sensors wrote versions 1
 * and 2, readers still take them.
 */
export function encodeEventsMessage(m: OutgoingPart, version = versionOf(m.format)): Buffer {
  if (
    (version === FORMAT_VERSION) !== (m.format === 'Native') ||
    ![FORMAT_V1, FORMAT_V2, FORMAT_VERSION].includes(version)
  )
    throw new TeitenError('BAD_PARAMETER', `a ${m.format} body cannot be carried in format version ${version}`)
  return eventsMessage(m, version === FORMAT_V1 ? m.body : zstdCompressSync(m.body, ZSTD_OPTIONS), version)
}

/**
 * The parts of a batch before compression, checked: a Native block cut every PART_ROWS rows
 * (splitEventsBlock), RowBinary rows at `maxBodyBytes` (splitBody). Both splits depend only on
 * the batch's bytes.
 */
function batchParts(batch: EventBatch, maxBodyBytes: number): OutgoingPart[] {
  const format = batch.format ?? 'RowBinary'
  let split: Array<{ body: Buffer; rows: number }>
  if (format === 'Native') {
    const block = readEventsBlock(batch.body, 0, 'BAD_PARAMETER')
    if (block.end !== batch.body.length) throw new TeitenError('BAD_PARAMETER', 'a batch of more than one Native block')
    split = splitEventsBlock(block, PART_ROWS, maxBodyBytes)
  } else split = splitBody(batch.body, maxBodyBytes)
  const counted = split.reduce((n, p) => n + p.rows, 0)
  if (counted !== batch.rows) {
    throw new TeitenError(
      'BAD_PARAMETER',
      `batch ${batch.batchNo} of ${batch.fileId} claims ${batch.rows} rows, has ${counted}`,
    )
  }
  if (split.length > 0xffff) throw new TeitenError('BAD_PARAMETER', 'batch too large to split')
  return split.map((p, part) => ({
    sensor: batch.sensor,
    fileId: batch.fileId,
    batchNo: batch.batchNo,
    part,
    parts: split.length,
    rows: p.rows,
    format,
    body: p.body,
  }))
}

/**
 * The messages of one batch, in order: part i of n, each within the broker's default limit.
 * The sink joins them back (insertGroup) and stores each group with its insertToken.
 */
export function encodeBatch(
  batch: EventBatch,
  maxBodyBytes = MAX_PART_BODY_BYTES,
): Array<{ value: Buffer; rows: number }> {
  return batchParts(batch, maxBodyBytes).map((m) => ({ value: encodeEventsMessage(m), rows: m.rows }))
}

/**
 * encodeBatch with the compression in the libuv pool: one promise per part, in order, all
 * started at once, so the producer sends part i while later parts are still being compressed.
 * Same bytes as encodeBatch.
 */
export function encodeBatchAsync(
  batch: EventBatch,
  maxBodyBytes = MAX_PART_BODY_BYTES,
): Array<Promise<{ value: Buffer; rows: number }>> {
  return batchParts(batch, maxBodyBytes).map(async (m) => ({
    value: eventsMessage(m, await compressBody(m.body), versionOf(m.format)),
    rows: m.rows,
  }))
}

export function encodeFileMessage(record: FileRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record), 'utf8')
  const out = Buffer.allocUnsafe(6 + json.length)
  writeCommonHeader(out, KIND_FILE)
  json.copy(out, 6)
  return out
}

const FILE_FIELDS: Record<keyof FileRecord, 'string' | 'number' | 'nullable-string' | 'status' | 'optional-id'> = {
  fileId: 'string',
  sensor: 'string',
  path: 'string',
  bytes: 'number',
  records: 'number',
  kept: 'number',
  firstTs: 'nullable-string',
  lastTs: 'nullable-string',
  status: 'status',
  error: 'string',
  // Since 0.3, for gzip captures (pipeline/identity.ts); producers of older versions omit it.
  rawId: 'optional-id',
}

const ISO_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$/

function decodeFileRecord(json: Buffer): FileRecord {
  let value: unknown
  try {
    value = JSON.parse(json.toString('utf8'))
  } catch {
    throw bad('file record is not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('file record is not an object')
  const v = value as Record<string, unknown>
  for (const [key, type] of Object.entries(FILE_FIELDS)) {
    const x = v[key]
    const ok =
      type === 'string'
        ? typeof x === 'string'
        : type === 'number'
          ? typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
          : type === 'nullable-string'
            ? x === null || (typeof x === 'string' && ISO_TS.test(x))
            : type === 'optional-id'
              ? x === undefined || (typeof x === 'string' && /^[0-9a-f]{1,127}$/.test(x))
              : x === 'complete' || x === 'failed'
    if (!ok) throw bad(`file record field ${key} is invalid`)
  }
  if (!/^[0-9a-f]{1,127}$/.test(v.fileId as string)) throw bad('file record fileId is invalid')
  const record = {} as Record<string, unknown>
  for (const key of Object.keys(FILE_FIELDS)) if (v[key] !== undefined) record[key] = v[key]
  return record as unknown as FileRecord
}

/** Decodes and validates a message value; throws KAFKA_BAD_MESSAGE for anything else. */
export function decodeMessage(value: Buffer | null | undefined): DecodedMessage {
  if (!value || value.length < 6) throw bad(`message too short (${value?.length ?? 0} bytes)`)
  if (value[0] !== MAGIC[0] || value[1] !== MAGIC[1] || value[2] !== MAGIC[2])
    throw bad('not a teiten message (bad magic)')
  const version = value[3]!
  if (version !== FORMAT_V1 && version !== FORMAT_V2 && version !== FORMAT_VERSION)
    throw bad(`unsupported message format version ${version}`)
  if (value[5] !== 0) throw bad(`unknown flags ${value[5]}`)
  const kind = value[4]
  if (kind === KIND_FILE) return { kind: 'file', record: decodeFileRecord(value.subarray(6)) }
  if (kind !== KIND_EVENTS) throw bad(`unknown message kind ${kind}`)
  if (value.length < EVENTS_FIXED_HEADER + 2) throw bad('events header truncated')
  const part = value.readUInt16LE(6)
  const parts = value.readUInt16LE(8)
  const batchNo = value.readUInt32LE(10)
  const rows = value.readUInt32LE(14)
  const bodyBytes = value.readUInt32LE(18)
  let o = EVENTS_FIXED_HEADER
  const ls = value[o++]!
  if (ls > MAX_STRING || o + ls + 1 > value.length) throw bad('events header truncated (sensor)')
  const sensorBytes = value.subarray(o, o + ls)
  o += ls
  const lf = value[o++]!
  if (lf === 0 || lf > MAX_STRING || o + lf > value.length) throw bad('events header truncated (file id)')
  const fileIdBytes = value.subarray(o, o + lf)
  o += lf
  if (parts === 0 || part >= parts) throw bad(`part ${part} of ${parts}`)
  if (rows === 0) throw bad('events message without rows')
  if (value.length - o !== bodyBytes) throw bad(`body is ${value.length - o} bytes, header says ${bodyBytes}`)
  const sensor = sensorBytes.toString('utf8')
  const fileId = fileIdBytes.toString('latin1')
  if (!/^[0-9a-f]+$/.test(fileId)) throw bad('file id is not hexadecimal')
  const stored = value.subarray(o)
  let body = stored
  if (version !== FORMAT_V1) {
    try {
      body = zstdDecompressSync(stored, { maxOutputLength: MAX_DECOMPRESSED_BODY, chunkSize: 1024 * 1024 })
    } catch (err) {
      throw new TeitenError(
        'KAFKA_BAD_MESSAGE',
        `body does not decompress: ${(err as Error).message}`,
        {},
        { cause: err },
      )
    }
  }
  if (version === FORMAT_VERSION) {
    const block = readEventsBlock(body, 0, 'KAFKA_BAD_MESSAGE')
    if (block.end !== body.length) throw bad(`${body.length - block.end} bytes after the block`)
    if (block.rows !== rows) throw bad(`body has ${block.rows} rows, header says ${rows}`)
    const wrong = checkEventsValues(block, sensorBytes, fileIdBytes)
    if (wrong !== undefined) throw bad(wrong)
    return { kind: 'events', sensor, fileId, batchNo, part, parts, rows, format: 'Native', body, block }
  }
  const counted = walkRows(body, undefined, sensorBytes, fileIdBytes)
  if (counted !== rows) throw bad(`body has ${counted} rows, header says ${rows}`)
  return { kind: 'events', sensor, fileId, batchNo, part, parts, rows, format: 'RowBinary', body }
}
