import { createHash } from 'node:crypto'
import type { IdentityScheme } from './identity-core.js'

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
