import { createHash } from 'node:crypto'
import {
  batchToken,
  type EventBatch,
  type EventGroup,
  type EventSink,
  type FileRecord,
  type GroupMember,
  type LedgerEntry,
} from '../pipeline/sink.js'
import { batchRowsOf, EVENT_STRUCTURE, identitySchemeOf } from './schema.js'
import { dedupSettings, type Store, settingsClause } from './store.js'

const LEDGER_COLUMNS =
  'file_id, sensor, path, bytes, records, kept, first_ts, last_ts, status, error, batch_group, raw_id'

function recordOf(row: Record<string, unknown>): LedgerEntry {
  const record = {
    fileId: String(row.file_id),
    sensor: String(row.sensor),
    path: String(row.path),
    bytes: Number(row.bytes),
    records: Number(row.records),
    kept: Number(row.kept),
    firstTs: (row.first_ts as string | null) ?? null,
    lastTs: (row.last_ts as string | null) ?? null,
    error: String(row.error ?? ''),
    ...(row.raw_id ? { rawId: String(row.raw_id) } : {}),
  }
  if (row.status === 'pending') return { ...record, status: 'pending', group: String(row.batch_group ?? '') }
  return { ...record, status: row.status as FileRecord['status'] }
}

/**
 * The ledger entry of a file. A pending entry (a group insert whose completion was not
 * recorded: see StoreSink.writeGroup) comes out as failed, with what to do: a caller that does
 * not complete groups must neither read the file again as new (its rows may be stored under the
 * group's token: counted twice) nor take it as stored (the insert may not have got through).
 * ingestFiles asks lookupFiles, which reports it as pending, and completes the group.
 */
export async function lookupFile(store: Store, fileId: string): Promise<FileRecord | undefined> {
  const found = (await lookupFiles(store, [fileId])).get(fileId)
  if (found?.status !== 'pending') return found
  const { group: _group, ...rest } = found
  return {
    ...rest,
    status: 'failed',
    error:
      'stored together with other files by an insert that was interrupted: run teiten ingest on it to complete the insert',
  }
}

/** Lookups in one statement per 1,000 ids: each statement costs the embedded engine milliseconds. */
const LOOKUP_CHUNK = 1000

/**
 * The ledger entries of many files at once, pending ones included (an insert of several small
 * files together that was interrupted: see `writeGroup`). An id matches a row's file_id or its
 * raw_id (the raw-bytes hash of a gzip capture, pipeline/identity.ts); a file_id match wins.
 */
export async function lookupFiles(store: Store, fileIds: string[]): Promise<Map<string, LedgerEntry>> {
  const out = new Map<string, LedgerEntry>()
  for (let i = 0; i < fileIds.length; i += LOOKUP_CHUNK) {
    const ids = fileIds.slice(i, i + LOOKUP_CHUNK)
    const rows = await store.query<Record<string, unknown>>(
      `SELECT ${LEDGER_COLUMNS} FROM ingested_files FINAL
       WHERE file_id IN {ids:Array(String)} OR (raw_id != '' AND raw_id IN {ids:Array(String)})`,
      { ids },
    )
    const asked = new Set(ids)
    for (const row of rows) out.set(String(row.file_id), recordOf(row))
    for (const row of rows) {
      const raw = String(row.raw_id ?? '')
      if (raw !== '' && asked.has(raw) && !out.has(raw)) out.set(raw, recordOf(row))
    }
  }
  return out
}

/** See EventSink.ledgerIds. */
export async function ledgerIds(store: Store, limit: number): Promise<Set<string> | undefined> {
  const rows = await store.query<{ id: string }>(
    `SELECT DISTINCT id FROM (
       SELECT file_id AS id FROM ingested_files
       UNION ALL SELECT raw_id AS id FROM ingested_files WHERE raw_id != ''
       UNION ALL SELECT file_id AS id FROM legacy_partial_files
     ) LIMIT {n:UInt64}`,
    { n: limit + 1 },
  )
  if (rows.length > limit) return undefined
  return new Set(rows.map((row) => row.id))
}

/** See EventSink.legacyPartial. */
export async function legacyPartial(store: Store, rawIds: string[]): Promise<Set<string>> {
  const out = new Set<string>()
  for (let i = 0; i < rawIds.length; i += LOOKUP_CHUNK) {
    const rows = await store.query<{ file_id: string }>(
      'SELECT DISTINCT file_id FROM legacy_partial_files WHERE file_id IN {ids:Array(String)}',
      { ids: rawIds.slice(i, i + LOOKUP_CHUNK) },
    )
    for (const row of rows) out.add(String(row.file_id))
  }
  return out
}

/** The members of interrupted group inserts, by group token (their order does not matter: the token decides). */
export async function groupMembers(store: Store, groups: string[]): Promise<Map<string, GroupMember[]>> {
  const out = new Map<string, GroupMember[]>()
  if (groups.length === 0) return out
  const rows = await store.query<Record<string, unknown>>(
    `SELECT file_id, sensor, path, bytes, batch_group FROM ingested_files FINAL
     WHERE batch_group IN {groups:Array(String)} AND status = 'pending' ORDER BY batch_group, file_id`,
    { groups },
  )
  for (const row of rows) {
    const group = String(row.batch_group)
    let list = out.get(group)
    if (!list) {
      list = []
      out.set(group, list)
    }
    list.push({
      fileId: String(row.file_id),
      sensor: String(row.sensor),
      path: String(row.path),
      bytes: Number(row.bytes),
    })
  }
  return out
}

export async function recordFile(store: Store, record: FileRecord): Promise<void> {
  await store.command(
    `INSERT INTO ingested_files (file_id, sensor, path, bytes, records, kept, first_ts, last_ts, status, error, raw_id, ingested_at)
     SETTINGS ${Object.entries(dedupSettings(`ledger:${record.fileId}`))
       .map(([k, v]) => `${k} = ${typeof v === 'string' ? `'${v}'` : v}`)
       .join(', ')}
     VALUES ({file_id:String}, {sensor:String}, {path:String}, {bytes:UInt64}, {records:UInt64}, {kept:UInt64},
             {first_ts:Nullable(DateTime64(9, 'UTC'))}, {last_ts:Nullable(DateTime64(9, 'UTC'))},
             {status:String}, {error:String}, {raw_id:String}, now64(3))`,
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
      raw_id: record.rawId ?? '',
    },
  )
}

/**
 * Many ledger rows in one INSERT (a statement costs the embedded engine ~25 ms of CPU whatever
 * its size: writing the rows of a 300-file run one by one cost more than reading the files).
 * `ingested_at` is given, so that a file's complete row always outranks its pending row.
 */
export async function recordFiles(
  store: Store,
  records: readonly FileRecord[],
  options: { status?: 'pending'; group?: string; token: string },
): Promise<void> {
  if (records.length === 0) return
  // Inline JSON rows, not query parameters: binding is quadratic in the number of parameters
  // (100 rows 0.14 s, 500 rows 2.3 s of CPU; as JSON rows 500 take ~10 ms).
  const at = ledgerClock()
  const ts = (t: string | null) => (t === null ? null : t.replace('T', ' '))
  const lines = records.map((r) =>
    JSON.stringify({
      file_id: r.fileId,
      sensor: r.sensor,
      path: r.path,
      bytes: r.bytes,
      records: r.records,
      kept: r.kept,
      first_ts: ts(r.firstTs),
      last_ts: ts(r.lastTs),
      status: options.status ?? r.status,
      error: r.error,
      batch_group: options.group ?? '',
      raw_id: r.rawId ?? '',
      ingested_at: at,
    }),
  )
  await store.command(
    `INSERT INTO ingested_files (${LEDGER_COLUMNS}, ingested_at)${settingsClause(dedupSettings(options.token))} FORMAT JSONEachRow\n${lines.join('\n')}\n`,
  )
}

let lastLedgerMs = 0
/** Strictly increasing milliseconds, as ClickHouse DateTime64(3) text: a later row always wins FINAL. */
function ledgerClock(): string {
  lastLedgerMs = Math.max(Date.now(), lastLedgerMs + 1)
  return new Date(lastLedgerMs).toISOString().replace('T', ' ').replace('Z', '')
}

function idsToken(prefix: string, ids: readonly string[]): string {
  const hash = createHash('sha256')
  for (const id of ids) hash.update(`${id}\n`)
  return `${prefix}:${hash.digest('hex').slice(0, 32)}`
}

/** The answer of `ask`, asked once; a failed ask is asked again next time, not remembered. */
function askedOnce<T>(ask: () => Promise<T>): () => Promise<T> {
  let answer: Promise<T> | undefined
  return () => {
    if (answer) return answer
    const asked = ask()
    asked.catch(() => {
      if (answer === asked) answer = undefined
    })
    answer = asked
    return asked
  }
}

/** Events go straight into ClickHouse (embedded or server). */
export class StoreSink implements EventSink {
  readonly acceptsNative = true

  constructor(private readonly store: Store) {}

  /**
   * Fixed for the store's life (schema v17 and v18): asked once, not once per file of a watched
   * spool.
   */
  readonly identityScheme = askedOnce(() => identitySchemeOf(this.store))
  readonly batchRows = askedOnce(() => batchRowsOf(this.store))

  lookupFile(fileId: string): Promise<FileRecord | undefined> {
    return lookupFile(this.store, fileId)
  }

  lookupFiles(fileIds: string[]): Promise<Map<string, LedgerEntry>> {
    return lookupFiles(this.store, fileIds)
  }

  groupMembers(groups: string[]): Promise<Map<string, GroupMember[]>> {
    return groupMembers(this.store, groups)
  }

  legacyPartial(rawIds: string[]): Promise<Set<string>> {
    return legacyPartial(this.store, rawIds)
  }

  ledgerIds(limit: number): Promise<Set<string> | undefined> {
    return ledgerIds(this.store, limit)
  }

  writeBatch(batch: EventBatch): Promise<void> {
    return this.store.insertRowBinary('events', EVENT_STRUCTURE, batch.body, batchToken(batch.fileId, batch.batchNo), {
      onBodyRead: batch.onBodyRead,
      format: batch.format,
    })
  }

  /**
   * Several whole files in one insert. The members are written to the ledger as pending, with
   * the group's token, before the insert: a run that finds them pending (a crash between the
   * insert and the ledger rows that complete them) stores the same members again under the same
   * token, which ClickHouse drops if the first insert got through (pipeline/ingest.ts).
   */
  writeGroup(group: EventGroup): Promise<void> {
    // The body is handed over at once (the store reads it before the insert's turn); the insert
    // itself waits for the pending rows.
    const intent = group.recovery
      ? undefined
      : recordFiles(this.store, group.members, {
          status: 'pending',
          group: group.token,
          token: `intent:${group.token}`,
        })
    return this.store.insertRowBinary('events', EVENT_STRUCTURE, group.body, group.token, {
      after: intent,
      onBodyRead: group.onBodyRead,
      format: group.format,
    })
  }

  finishFile(record: FileRecord): Promise<void> {
    return recordFile(this.store, record)
  }

  finishFiles(records: FileRecord[]): Promise<void> {
    if (records.length === 1) return recordFile(this.store, records[0]!)
    return recordFiles(this.store, records, {
      token: idsToken(
        'ledger',
        records.map((r) => r.fileId),
      ),
    })
  }

  async close(): Promise<void> {}
}
