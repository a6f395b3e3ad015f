import { batchToken, type EventBatch, type EventSink, type FileRecord } from '../pipeline/sink.js'
import { EVENT_STRUCTURE } from './schema.js'
import { type Store, dedupSettings } from './store.js'

export async function lookupFile(store: Store, fileId: string): Promise<FileRecord | undefined> {
  const rows = await store.query<Record<string, unknown>>(
    `SELECT file_id, sensor, path, bytes, records, kept, first_ts, last_ts, status, error
     FROM ingested_files FINAL WHERE file_id = {id:String} LIMIT 1`,
    { id: fileId },
  )
  const row = rows[0]
  if (!row) return undefined
  return {
    fileId: String(row.file_id),
    sensor: String(row.sensor),
    path: String(row.path),
    bytes: Number(row.bytes),
    records: Number(row.records),
    kept: Number(row.kept),
    firstTs: (row.first_ts as string | null) ?? null,
    lastTs: (row.last_ts as string | null) ?? null,
    status: row.status as FileRecord['status'],
    error: String(row.error ?? ''),
  }
}

export async function recordFile(store: Store, record: FileRecord): Promise<void> {
  await store.command(
    `INSERT INTO ingested_files (file_id, sensor, path, bytes, records, kept, first_ts, last_ts, status, error, ingested_at)
     SETTINGS ${Object.entries(dedupSettings(`ledger:${record.fileId}`))
       .map(([k, v]) => `${k} = ${typeof v === 'string' ? `'${v}'` : v}`)
       .join(', ')}
     VALUES ({file_id:String}, {sensor:String}, {path:String}, {bytes:UInt64}, {records:UInt64}, {kept:UInt64},
             {first_ts:Nullable(DateTime64(9, 'UTC'))}, {last_ts:Nullable(DateTime64(9, 'UTC'))},
             {status:String}, {error:String}, now64(3))`,
    {
      file_id: record.fileId,
      sensor: record.sensor,
      path: record.path,
      bytes: record.bytes,
      records: record.records,
      kept: record.kept,
      first_ts: record.firstTs,
      last_ts: record.lastTs,
      status: record.status,
      error: record.error,
    },
  )
}

/** Events go straight into ClickHouse (embedded or server). */
export class StoreSink implements EventSink {
  constructor(private readonly store: Store) {}

  lookupFile(fileId: string): Promise<FileRecord | undefined> {
    return lookupFile(this.store, fileId)
  }

  writeBatch(batch: EventBatch): Promise<void> {
    return this.store.insertRowBinary('events', EVENT_STRUCTURE, batch.body, batchToken(batch.fileId, batch.batchNo))
  }

  finishFile(record: FileRecord): Promise<void> {
    return recordFile(this.store, record)
  }

  async close(): Promise<void> {}
}
