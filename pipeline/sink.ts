import { createHash } from 'node:crypto'
import type { IdentityScheme } from './identity-core.js'

/**
 * Rows per batch. Part of every batch's dedup identity (file id + batch number): a file that
 * crashed halfway must be cut where the run before cut it when it is read again, or the batches
 * stored before the crash would not be recognised and it would be counted twice. So the size is
 * fixed for a ledger's life, never a setting (EventSink.batchRows): BATCH_ROWS for Kafka sensors
 * and for the stores other commands make, LARGE_BATCH_ROWS for those `teiten ingest` makes.
 *
 * 2^18 since 0.2 (was 65,536): every insert writes a part per table and the embedded engine
 * merges them again, so the insert size decides most of the storage cost. 20M-packet bench
 * capture (17M rows), chDB CPU: 47 s in 65,536-row inserts, 33-36 s in 262,144, 28-30 s in
 * 1,048,576, but the engine's peak memory grows with the insert: 740 MB RSS at 262,144 rows,
 * 960 MB at 524,288, 1 GB at 1,048,576, against a 1 GiB budget for the whole process.
 * A file a crash interrupted under 0.1 is re-read with other batch boundaries: its batches stored
 * before the crash are not recognised (0.1 was never released).
 */
export const BATCH_ROWS = 262_144

/**
 * Rows per batch in the stores `teiten ingest` makes (schema v18, store/schema.ts batchRowsOf).
 * Fewer, larger inserts: fewer parts to write and merge, fewer source-day rows and states (a
 * source's day is split over fewer blocks), and the engine's fixed cost per insert paid less
 * often. `teiten ingest` of the 20M-packet bench capture, runs interleaved on a noisy host
 * (docs/performance.md, Round 24): 12.7-15.9 s and 23.5-28.3 CPU s against 13.2-18.8 s and
 * 23.4-34.6 CPU s at BATCH_ROWS; peak RSS 760-911 MiB against 694-812. 524,288 rows: 12.2-14.3 s,
 * but 898-997 MiB, too close to the 1 GiB budget. Kafka sensors keep BATCH_ROWS (a sensor's batch
 * is one insert of its sink: stream/codec.ts PARTS_PER_INSERT), and so do small files' group
 * inserts (pipeline/ingest.ts GROUP_ROWS: the bench spool peaked at 983-1,088 MiB in groups of
 * this size).
 */
export const LARGE_BATCH_ROWS = 393_216

/** A finished block of events from one file, in RowBinary (store/rowbinary.ts). */
export interface EventBatch {
  fileId: string
  sensor: string
  /** Position of the batch in its file: with fileId, the batch's identity for deduplication. */
  batchNo: number
  rows: number
  /** `events` rows: RowBinary (store/rowbinary.ts), or a Native block when `format` says so. */
  body: Buffer
  /** 'Native': `body` is a ClickHouse Native block (store/native-encoder.ts); see EventSink.acceptsNative. */
  format?: BodyFormat
  /** See EventSink.writeBatch: the sink may call it once it no longer reads `body`. */
  onBodyRead?: () => void
}

export type BodyFormat = 'RowBinary' | 'Native'

/** The ledger's record of a file that was read (completely, or up to a fault). */
export interface FileRecord {
  fileId: string
  sensor: string
  path: string
  bytes: number
  records: number
  kept: number
  firstTs: string | null
  lastTs: string | null
  status: 'complete' | 'failed'
  error: string
  /**
   * The hash of the file's bytes when it differs from fileId (a gzip capture: fileId is the hash
   * of what it decompresses to). Versions before 0.3 recorded such files under it.
   */
  rawId?: string
}

/**
 * What `lookupFiles` reports: a FileRecord, or a pending entry: a file sent in a group insert
 * (EventGroup) whose completion was not recorded, with the group's token.
 */
export type LedgerEntry = FileRecord | (Omit<FileRecord, 'status'> & { status: 'pending'; group: string })

/** A file of an interrupted group insert, as the ledger recorded it. */
export interface GroupMember {
  fileId: string
  sensor: string
  path: string
  bytes: number
}

/**
 * Whole files stored by one insert (files small enough to end within their first batch): a
 * statement costs the embedded engine tens of milliseconds whatever its size, so one per small
 * file would dominate a spool of hourly files. `token` is derived from the members' ids.
 */
export interface EventGroup {
  token: string
  members: FileRecord[]
  rows: number
  /** As EventBatch.body. */
  body: Buffer
  format?: BodyFormat
  /** See EventSink.writeBatch. */
  onBodyRead?: () => void
  /** Storing an interrupted group again: its members are already recorded as pending. */
  recovery?: boolean
}

/** Where the ingest pipeline sends events: the store directly, or Kafka. */
export interface EventSink {
  /**
   * The sink inserts into ClickHouse and takes bodies as Native blocks: the pipeline then encodes
   * columns instead of RowBinary rows (store/native-encoder.ts). The Kafka sensor takes them too
   * (stream/codec.ts, format version 3).
   */
  readonly acceptsNative?: boolean
  /**
   * How this sink's ledger names files (pipeline/identity-core.ts). Fixed for the sink's life: a
   * ledger that knows files under one scheme must be asked in it. Required, not defaulted: a
   * wrapper that dropped it would read files under the other scheme and store them twice.
   */
  identityScheme(): Promise<IdentityScheme>
  /**
   * Rows per batch in this sink's ledger (BATCH_ROWS or LARGE_BATCH_ROWS), fixed for its life as
   * identityScheme is, and required for the same reason: a wrapper that dropped it would cut a
   * file elsewhere than a run before did, and a file interrupted halfway would count twice.
   */
  batchRows(): Promise<number>
  lookupFile(fileId: string): Promise<FileRecord | undefined>
  /** Many lookups in one round trip; pending entries included (see FileRecord.status). */
  lookupFiles?(fileIds: string[]): Promise<Map<string, LedgerEntry>>
  /** Members of interrupted group inserts; required with writeGroup. */
  groupMembers?(groups: string[]): Promise<Map<string, GroupMember[]>>
  /**
   * The batch's body (and a group's) is the sink's until the returned promise settles, or until
   * the sink calls the batch's `onBodyRead`, if sooner; then the pipeline writes later batches
   * into it (core/buffer-pool.ts): a sink that keeps it longer keeps a copy. The store sink
   * calls `onBodyRead` as soon as it no longer reads the body (its own block made of RowBinary
   * rows, or a Native block staged), so the encoder's buffer is not held while the insert waits
   * and runs.
   */
  writeBatch(batch: EventBatch): Promise<void>
  /**
   * Of these raw-bytes ids, those of files whose rows a version before 0.3 stored in part
   * (interrupted before their ledger row): such a file is read again under its old batch tokens.
   */
  legacyPartial?(rawIds: string[]): Promise<Set<string>>
  /**
   * Every id a lookup could answer for (files' ids, raw-bytes ids, legacyPartial's ids), or
   * undefined when there are more than `limit`: ids outside it need no lookup.
   */
  ledgerIds?(limit: number): Promise<Set<string> | undefined>
  /** Optional: stores several whole files in one insert, crash-safe (see EventGroup). */
  writeGroup?(group: EventGroup): Promise<void>
  finishFile(record: FileRecord): Promise<void>
  /** Many ledger entries in one round trip. */
  finishFiles?(records: FileRecord[]): Promise<void>
  close(): Promise<void>
}

/** Dedup identity of a group insert: its members' ids in order. */
export function groupToken(fileIds: readonly string[]): string {
  return `teiten:group:${createHash('sha256').update(fileIds.join(',')).digest('hex').slice(0, 32)}`
}

/** Dedup identity of a batch: the same file read again yields the same tokens. */
export function batchToken(fileId: string, batchNo: number): string {
  return `teiten:${fileId}:${batchNo}`
}
