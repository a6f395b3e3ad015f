import { Readable } from 'node:stream'
import type { ClickHouseClient } from '@clickhouse/client'
import { TeitenError, wrapError } from '../core/errors.js'
import { BufferPool } from '../core/buffer-pool.js'
import { eventsRowBinaryToNative } from './native.js'
import { EVENT_STRUCTURE } from './schema.js'

export type QueryParams = Record<string, unknown>
export type Settings = Record<string, string | number | boolean>

/**
 * What every stage needs from ClickHouse. Three implementations share it: the embedded engine
 * (chDB through @clickhouse/client), a ClickHouse server by URL (the same client over HTTP),
 * and a delegate that forwards to the teiten process that holds the embedded directory.
 */
export interface Store {
  readonly kind: 'embedded' | 'server' | 'delegated'
  /** Rows as objects (JSONEachRow). 64-bit integers arrive as strings: cast in SQL if needed. */
  query<T = Record<string, unknown>>(sql: string, params?: QueryParams, settings?: Settings): Promise<T[]>
  /** Raw bytes in any ClickHouse output format (CSV, Parquet, …). */
  queryRaw(sql: string, params: QueryParams | undefined, format: string, settings?: Settings): Promise<Buffer>
  command(sql: string, params?: QueryParams, settings?: Settings): Promise<void>
  /**
   * Inserts RowBinary rows (an `events` body reaches ClickHouse as a Native block: native.ts),
   * or a Native block as it is (`options.format`).
   * `dedupToken` makes a retried insert of the same block a no-op (ClickHouse insert
   * deduplication, materialized views included).
   */
  insertRowBinary(
    table: string,
    structure: string,
    body: Buffer,
    dedupToken?: string,
    options?: InsertOptions,
  ): Promise<void>
  close(): Promise<void>
}

export interface InsertOptions {
  /**
   * The insert runs once this settles, and not at all if it fails (its error is the insert's):
   * a ledger statement that must be stored first. Statements and inserts may run side by side
   * (the embedded store's insert connections), so the order is the caller's to ask for.
   */
  after?: Promise<unknown>
  /**
   * Called once the store no longer reads `body` (before the insert settles when it copies the
   * body first); the caller may then write into it again.
   */
  onBodyRead?: () => void
  /**
   * 'Native': the body is already a Native block (the pipeline's, store/native-encoder.ts),
   * inserted as it is; otherwise RowBinary rows of `structure`.
   */
  format?: 'RowBinary' | 'Native'
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

export function dedupSettings(dedupToken: string | undefined): Settings {
  if (dedupToken === undefined) return {}
  return { insert_deduplication_token: dedupToken, deduplicate_blocks_in_dependent_materialized_views: 1 }
}

/**
 * A batch of a sparse capture can span years: one part per week it touches, however many
 * (ClickHouse refuses more than 100 partitions per block by default).
 *
 * optimize_on_insert = 0: the aggregates' blocks come out of a view's GROUP BY on their whole
 * sorting key, so ClickHouse's sort-and-collapse of each inserted block finds nothing to
 * collapse (and queries merge states whatever the parts hold). Replaying the 66 insert bodies
 * of the 20M-packet bench capture: 24.0 -> 22.6-23.0 CPU s, 14.6 -> 13.7-14.0 s.
 */
export const INSERT_SETTINGS: Settings = { max_partitions_per_insert_block: 0, optimize_on_insert: 0 }

function settingsClause(settings: Settings): string {
  const parts = Object.entries(settings).map(([k, v]) => {
    if (!IDENTIFIER.test(k)) throw new TeitenError('BAD_PARAMETER', `invalid setting name ${k}`)
    const value = typeof v === 'string' ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : Number(v)
    return `${k} = ${value}`
  })
  return parts.length > 0 ? ` SETTINGS ${parts.join(', ')}` : ''
}

/**
 * Settings travel inside the statement, never as client settings: the chDB connection turns
 * client settings into session-wide `SET`s that would outlive the query (a dedup token or
 * `readonly` leaking into the next statement).
 */
export function withSettings(sql: string, settings: Settings | undefined): string {
  return settings && Object.keys(settings).length > 0 ? `${sql}${settingsClause(settings)}` : sql
}

export function assertIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new TeitenError('BAD_PARAMETER', `invalid identifier ${name}`)
  return name
}

/**
 * What an insert sends: RowBinary rows of `structure`, or a Native block (which names its
 * columns and types itself). Events travel as RowBinary and are inserted as Native (native.ts).
 */
export type InsertBody = { format: 'RowBinary'; structure: string; bytes: Buffer } | { format: 'Native'; bytes: Buffer }

/**
 * How the body reaches the engine differs; everything else is one code path. `stage` runs as
 * soon as a batch is handed over, `insert` when its connection's turn comes (the embedded
 * engine runs one statement at a time per connection), `release` after it, whatever the outcome.
 */
export interface BodyInserter<Staged = unknown> {
  /** Whether a staged body holds its own copy of the bytes (the caller's buffer is free once staged). */
  readonly copiesOnStage: boolean
  stage(body: InsertBody): Promise<Staged>
  insert(client: ClickHouseClient, table: string, staged: Staged, settings: Settings): Promise<void>
  release(staged: Staged): void
}

/** ClickHouse server over HTTP: the body is streamed as the request body. */
export const httpBodyInserter: BodyInserter<InsertBody> = {
  copiesOnStage: false,
  stage: async (body) => body,
  async insert(client, table, body, settings) {
    const result = await client.exec({
      query: `INSERT INTO ${assertIdentifier(table)}${settingsClause(settings)} FORMAT ${body.format}`,
      values: Readable.from([body.bytes], { objectMode: false }),
    })
    result.stream.resume()
    await new Promise<void>((resolve, reject) => {
      result.stream.on('end', resolve)
      result.stream.on('error', reject)
    })
  },
  release: () => {},
}

/** One connection's queue of statements (the embedded engine runs one at a time per connection). */
interface Lane {
  client: ClickHouseClient
  tail: Promise<unknown>
  queued: number
}

export class ClickHouseStore implements Store {
  private readonly main: Lane
  /** Connections that only insert: statements never wait behind an insert (embedded). */
  private readonly insertLanes: Lane[]
  /** Native blocks of events inserts, used again once their insert no longer reads them (core/buffer-pool.ts). */
  private readonly nativeBlocks: BufferPool

  /**
   * `insertClients`: further connections to the same embedded engine, for inserts. chDB runs
   * one statement at a time per connection but connections to one directory side by side, and
   * an insert's views end on fewer threads than they start on: with one connection the 20M-packet
   * bench capture's 65 inserts ran back to back with the two cores ~1.7 busy; with two insert
   * connections the next insert fills the gap (see INSERT_CONNECTIONS in store/open.ts).
   */
  constructor(
    readonly kind: 'embedded' | 'server',
    client: ClickHouseClient,
    private readonly inserter: BodyInserter,
    private readonly onClose: () => Promise<void> = async () => {},
    insertClients: ClickHouseClient[] = [],
  ) {
    this.main = { client, tail: Promise.resolve(), queued: 0 }
    this.insertLanes = insertClients.map((c) => ({ client: c, tail: Promise.resolve(), queued: 0 }))
    this.nativeBlocks = new BufferPool(Math.max(1, this.insertLanes.length))
  }

  /**
   * Runs `fn` in its turn on `lane`. The embedded engine runs one statement at a time per
   * connection, and a failed statement is followed by a throwaway query in the same turn: chDB
   * 3.4 hands the partial output of a query that failed while streaming to whichever query runs
   * next on the connection (seen: 3.4 MB of a timed-out SELECT prepended to a later `SELECT 1`).
   * A server answers each HTTP request apart.
   */
  private turn<T>(fn: (client: ClickHouseClient) => Promise<T>, lane: Lane = this.main): Promise<T> {
    if (this.kind === 'server') return fn(lane.client)
    lane.queued++
    const run = async () => {
      try {
        return await fn(lane.client)
      } catch (err) {
        try {
          await lane.client.query({ query: 'SELECT 1', format: 'TabSeparated' }).then((rs) => rs.text())
        } catch {}
        throw err
      } finally {
        lane.queued--
      }
    }
    const result = lane.tail.then(run, run)
    lane.tail = result.catch(() => undefined)
    return result
  }

  /** The insert connection with the fewest statements queued (the main one if there is none). */
  private insertLane(): Lane {
    let best = this.insertLanes[0] ?? this.main
    for (const lane of this.insertLanes) if (lane.queued < best.queued) best = lane
    return best
  }

  query<T>(sql: string, params?: QueryParams, settings?: Settings): Promise<T[]> {
    return this.turn((client) => this.queryNow<T>(client, sql, params, settings))
  }

  queryRaw(sql: string, params: QueryParams | undefined, format: string, settings?: Settings): Promise<Buffer> {
    return this.turn((client) => this.queryRawNow(client, sql, params, format, settings))
  }

  command(sql: string, params?: QueryParams, settings?: Settings): Promise<void> {
    return this.turn((client) => this.commandNow(client, sql, params, settings))
  }

  insertRowBinary(
    table: string,
    structure: string,
    body: Buffer,
    dedupToken?: string,
    options: InsertOptions = {},
  ): Promise<void> {
    const { after, onBodyRead, format } = options
    after?.catch(() => {}) // awaited in the turn
    if (body.length === 0) {
      onBodyRead?.()
      return after ? after.then(() => {}) : Promise.resolve()
    }
    let prepared: InsertBody
    /** The Native block was made here (from RowBinary rows) and goes back to this store's pool. */
    let ownBlock = false
    try {
      if (format === 'Native') prepared = { format: 'Native', bytes: body }
      else if (table === 'events' && structure === EVENT_STRUCTURE) {
        // Rewritten before waiting for the turn: the engine is busy with the inserts ahead.
        prepared = { format: 'Native', bytes: eventsRowBinaryToNative(body, this.nativeBlocks) }
        ownBlock = true
      } else prepared = { format: 'RowBinary', structure, bytes: body }
    } catch (err) {
      onBodyRead?.()
      return Promise.reject(wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken }))
    }
    let bytesDone = false
    /** Nothing reads the bytes sent any more (staged as a copy, or the insert is over): once. */
    const doneWithBytes = () => {
      if (bytesDone) return
      bytesDone = true
      if (ownBlock) this.nativeBlocks.give(prepared.bytes)
      else onBodyRead?.()
    }
    // The RowBinary body is read: only the Native block made of it is left to read.
    if (ownBlock) onBodyRead?.()
    // Staging (the embedded engine's body file) overlaps the insert ahead in the queue: inside
    // the turn, writing the 20M-packet bench capture's 66 bodies (19 MB each) kept the engine
    // idle 7.8 s of the run's 24 s (median 111 ms per body while the engine and the pipeline
    // held both cores).
    const staged = this.inserter.stage(prepared)
    staged.catch(() => {}) // awaited in the turn; not an unhandled rejection while it waits
    // A staged copy (the body file) frees the bytes at once: while two inserts run and a third
    // waits, their bytes are on disk, not three blocks in memory.
    if (this.inserter.copiesOnStage) staged.then(doneWithBytes, () => {})
    return this.turn(async (client) => {
      let ready: unknown
      try {
        if (after) await after
        ready = await staged
      } catch (err) {
        doneWithBytes()
        throw wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken })
      }
      try {
        await this.insertNow(client, table, ready, dedupToken)
      } finally {
        this.inserter.release(ready)
        doneWithBytes()
      }
    }, this.insertLane())
  }

  private async queryNow<T>(
    client: ClickHouseClient,
    sql: string,
    params?: QueryParams,
    settings?: Settings,
  ): Promise<T[]> {
    try {
      const rs = await client.query({
        query: withSettings(sql, settings),
        format: 'JSONEachRow',
        query_params: params,
      })
      return await rs.json<T>()
    } catch (err) {
      throw wrapError(err, 'STORE_QUERY_FAILED', { sql: sql.slice(0, 200) })
    }
  }

  private async queryRawNow(
    client: ClickHouseClient,
    sql: string,
    params: QueryParams | undefined,
    format: string,
    settings?: Settings,
  ): Promise<Buffer> {
    assertIdentifier(format)
    try {
      const result = await client.exec({
        query: `${withSettings(sql, settings)} FORMAT ${format}`,
        query_params: params,
      })
      const chunks: Buffer[] = []
      for await (const chunk of result.stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
      return Buffer.concat(chunks)
    } catch (err) {
      throw wrapError(err, 'STORE_QUERY_FAILED', { sql: sql.slice(0, 200) })
    }
  }

  private async commandNow(
    client: ClickHouseClient,
    sql: string,
    params?: QueryParams,
    settings?: Settings,
  ): Promise<void> {
    try {
      await client.command({ query: withSettings(sql, settings), query_params: params })
    } catch (err) {
      throw wrapError(err, 'STORE_QUERY_FAILED', { sql: sql.slice(0, 200) })
    }
  }

  private async insertNow(
    client: ClickHouseClient,
    table: string,
    staged: unknown,
    dedupToken?: string,
  ): Promise<void> {
    try {
      await this.inserter.insert(client, assertIdentifier(table), staged, {
        ...INSERT_SETTINGS,
        ...dedupSettings(dedupToken),
      })
    } catch (err) {
      throw wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken })
    }
  }

  async close(): Promise<void> {
    for (const lane of this.insertLanes) {
      await lane.tail
      await lane.client.close()
    }
    await this.main.client.close()
    await this.onClose()
  }
}

export { settingsClause }
