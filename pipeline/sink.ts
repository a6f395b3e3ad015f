/** A finished block of events from one file, in RowBinary (store/rowbinary.ts). */
export interface EventBatch {
  fileId: string
  sensor: string
  /** Position of the batch in its file: with fileId, the batch's identity for deduplication. */
  batchNo: number
  rows: number
  body: Buffer
}

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
}

/** Where the ingest pipeline sends events: the store directly, or Kafka. */
export interface EventSink {
  lookupFile(fileId: string): Promise<FileRecord | undefined>
  writeBatch(batch: EventBatch): Promise<void>
  finishFile(record: FileRecord): Promise<void>
  close(): Promise<void>
}

/** Dedup identity of a batch: the same file read again yields the same tokens. */
export function batchToken(fileId: string, batchNo: number): string {
  return `teiten:${fileId}:${batchNo}`
}
