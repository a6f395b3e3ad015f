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
   * Inserts RowBinary rows (an `events` body reaches ClickHouse as a Native block: native.ts).
   * `dedupToken` makes a retried insert of the same block a no-op (ClickHouse insert
   * deduplication, materialized views included).
   */
  insertRowBinary(table: string, structure: string, body: Buffer, dedupToken?: string): Promise<void>
  close(): Promise<void>
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
 * soon as a batch is handed over, `insert` when the store's turn comes (the embedded engine
 * runs one statement at a time), `release` after it, whatever the outcome.
 */
export interface BodyInserter<Staged = unknown> {
  stage(body: InsertBody): Promise<Staged>
  insert(client: ClickHouseClient, table: string, staged: Staged, settings: Settings): Promise<void>
  release(staged: Staged): void
}

/** ClickHouse server over HTTP: the body is streamed as the request body. */
export const httpBodyInserter: BodyInserter<InsertBody> = {
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

export class ClickHouseStore implements Store {
  private tail: Promise<unknown> = Promise.resolve()
  /** Native blocks of events inserts, used again once their insert is over (core/buffer-pool.ts). */
  private readonly nativeBlocks = new BufferPool(1)

  constructor(
    readonly kind: 'embedded' | 'server',
    private readonly client: ClickHouseClient,
    private readonly inserter: BodyInserter,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  /**
   * The embedded engine runs one statement at a time, and a failed statement is followed by a
   * throwaway query in the same turn: chDB 3.4 hands the partial output of a query that failed
   * while streaming to whichever query runs next on the session (seen: 3.4 MB of a timed-out
   * SELECT prepended to a later `SELECT 1`). A server answers each HTTP request apart.
   */
  private turn<T>(fn: () => Promise<T>): Promise<T> {
    if (this.kind === 'server') return fn()
    const run = async () => {
      try {
        return await fn()
      } catch (err) {
        try {
          await this.client.query({ query: 'SELECT 1', format: 'TabSeparated' }).then((rs) => rs.text())
        } catch {}
        throw err
      }
    }
    const result = this.tail.then(run, run)
    this.tail = result.catch(() => undefined)
    return result
  }

  query<T>(sql: string, params?: QueryParams, settings?: Settings): Promise<T[]> {
    return this.turn(() => this.queryNow<T>(sql, params, settings))
  }

  queryRaw(sql: string, params: QueryParams | undefined, format: string, settings?: Settings): Promise<Buffer> {
    return this.turn(() => this.queryRawNow(sql, params, format, settings))
  }

  command(sql: string, params?: QueryParams, settings?: Settings): Promise<void> {
    return this.turn(() => this.commandNow(sql, params, settings))
  }

  insertRowBinary(table: string, structure: string, body: Buffer, dedupToken?: string): Promise<void> {
    if (body.length === 0) return Promise.resolve()
    let prepared: InsertBody
    try {
      // Rewritten before waiting for the turn: the engine is busy with the previous insert.
      prepared =
        table === 'events' && structure === EVENT_STRUCTURE
          ? { format: 'Native', bytes: eventsRowBinaryToNative(body, this.nativeBlocks) }
          : { format: 'RowBinary', structure, bytes: body }
    } catch (err) {
      return Promise.reject(wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken }))
    }
    // Staging (the embedded engine's body file) overlaps the insert ahead in the queue: inside
    // the turn, writing the 20M-packet bench capture's 66 bodies (19 MB each) kept the engine
    // idle 7.8 s of the run's 24 s (median 111 ms per body while the engine and the pipeline
    // held both cores).
    const staged = this.inserter.stage(prepared)
    staged.catch(() => {}) // awaited in the turn; not an unhandled rejection while it waits
    return this.turn(async () => {
      let ready: unknown
      try {
        ready = await staged
      } catch (err) {
        throw wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken })
      }
      try {
        await this.insertNow(table, ready, dedupToken)
      } finally {
        this.inserter.release(ready)
        // Staged (written to the body file) or sent: nothing reads the block any more.
        if (prepared.format === 'Native') this.nativeBlocks.give(prepared.bytes)
      }
    })
  }

  private async queryNow<T>(sql: string, params?: QueryParams, settings?: Settings): Promise<T[]> {
    try {
      const rs = await this.client.query({
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
    sql: string,
    params: QueryParams | undefined,
    format: string,
    settings?: Settings,
  ): Promise<Buffer> {
    assertIdentifier(format)
    try {
      const result = await this.client.exec({
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

  private async commandNow(sql: string, params?: QueryParams, settings?: Settings): Promise<void> {
    try {
      await this.client.command({ query: withSettings(sql, settings), query_params: params })
    } catch (err) {
      throw wrapError(err, 'STORE_QUERY_FAILED', { sql: sql.slice(0, 200) })
    }
  }

  private async insertNow(table: string, staged: unknown, dedupToken?: string): Promise<void> {
    try {
      await this.inserter.insert(this.client, assertIdentifier(table), staged, {
        ...INSERT_SETTINGS,
        ...dedupSettings(dedupToken),
      })
    } catch (err) {
      throw wrapError(err, 'STORE_INSERT_FAILED', { table, dedupToken })
    }
  }

  async close(): Promise<void> {
    await this.client.close()
    await this.onClose()
  }
}

export { settingsClause }
