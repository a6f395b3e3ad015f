import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFile, writeFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { join, resolve } from 'node:path'
import { createClient } from '@clickhouse/client'
import { TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import { connectDelegate } from './delegate.js'
import { type StoreHost, startStoreHost } from './host.js'
import { type MigrateOptions, migrate } from './migrate.js'
import {
  type BodyInserter,
  ClickHouseStore,
  httpBodyInserter,
  type InsertBody,
  type Store,
  settingsClause,
} from './store.js'

export interface OpenStoreOptions {
  /** Embedded data directory (default ./teiten-data). Ignored when clickhouseUrl is set. */
  dataDir: string
  /** A ClickHouse server, e.g. http://user:pass@host:8123/db. */
  clickhouseUrl?: string
  logger: Logger
  /** What this process is, for the lock owner file ("teiten serve"). */
  role?: string
  /** Let other teiten processes use this embedded store through a local socket (default true). */
  host?: boolean
  retentionDays?: number
  /** See MigrateOptions.newStoreIdentity (store/migrate.ts). */
  newStoreIdentity?: MigrateOptions['newStoreIdentity']
}

export function embeddedPaths(dataDir: string) {
  const root = resolve(dataDir)
  return {
    root,
    engine: join(root, 'clickhouse'),
    tmp: join(root, 'tmp'),
    socket: join(root, 'teiten.sock'),
    owner: join(root, 'owner.json'),
  }
}

/**
 * One write of the whole body. `fs/promises` writeFile writes in 512 KiB pieces, each a round
 * trip through libuv's pool and back to the main thread, which is decoding the next batch and
 * answers between chunks of the capture: a 19 MB block took 0.2-0.4 s to stage while both
 * insert connections waited for it (traced: three batches staged within 0.02 s of each other,
 * 0.2 s after the first was handed over). The callback form writes it in one call.
 * `teiten ingest` of the 20M-packet bench capture, six runs interleaved with fs/promises:
 * 14.75-17.28 s against 15.99-17.72 s (faster in five), ~1 CPU s less, peak RSS 692-713 MiB
 * against 730-768; its spool 23.99 / 24.05 s against 25.71 / 25.99 s.
 */
const writeWhole = promisify(writeFile)

/**
 * chDB reads an INSERT's body as text, so binary rows go through a file the engine reads
 * itself (INSERT … SELECT FROM file(): measured 4.8M rows/s vs 1.4M for raw TSV and 0.6M
 * for TSV through the client on this machine). chDB 3.4's native raw insert takes binary
 * bodies but cuts them silently at the first "\n\n" (a RowBinary body of 20,000 rows stored
 * 2,570), so it is no way around the file.
 *
 * Events arrive as a Native block (store/native.ts). A RowBinary body (other tables) is read
 * with String where the table has LowCardinality(String): RowBinary LowCardinality is
 * deserialized value by value into a dictionary, which made parsing 3x dearer (1.7M bench
 * rows: 1.02 s vs 0.31 s of CPU, SELECT … FORMAT Null); the INSERT then converts whole
 * columns at once.
 */
interface StagedFile {
  path: string
  body: InsertBody
}

function fileBodyInserter(tmpDir: string): BodyInserter<StagedFile> {
  return {
    copiesOnStage: true,
    async stage(body) {
      const path = join(tmpDir, `${randomUUID()}.${body.format.toLowerCase()}`)
      try {
        await writeWhole(path, body.bytes)
      } catch (err) {
        rmSync(path, { force: true })
        throw err
      }
      return { path, body }
    },
    async insert(client, table, { path, body }, settings) {
      // One block per batch keeps the dedup token's block numbering deterministic.
      // The three materialized views run side by side (parallel_view_processing): the 2M-packet
      // bench ingest 4.6 s -> 3.4-3.8 s for the same CPU; each view's block keeps its own
      // deterministic dedup token.
      const all = { ...settings, max_block_size: 1_048_576, max_insert_threads: 1, parallel_view_processing: 1 }
      const quoted = path.replace(/\\/g, '\\\\').replace(/'/g, "\\'")
      if (body.format === 'Native') {
        await client.command({
          query: `INSERT INTO ${table}${settingsClause(all)} SELECT * FROM file('${quoted}', Native)`,
        })
      } else {
        await client.command({
          query: `INSERT INTO ${table}${settingsClause(all)} SELECT * FROM file('${quoted}', RowBinary, {structure:String})`,
          query_params: { structure: body.structure.replace(/LowCardinality\(([^()]*)\)/g, '$1') },
        })
      }
    },
    release({ path }) {
      rmSync(path, { force: true })
    },
  }
}

type ChdbConnection = Parameters<typeof createClient>[0] extends infer C
  ? C extends { connection?: infer X }
    ? X
    : never
  : never

/**
 * Connections of the embedded store that only insert, besides the one for statements. chDB runs
 * one statement per connection at a time, and connections to one directory side by side (two
 * 1.4 s queries: 2.65 s on one connection, 1.38 s on two). With one connection the 20M-packet
 * bench capture's 65 inserts ran back to back with the process at 1.6-1.9 of its 2 cores: an
 * insert's views start side by side and end one by one. Two let the next insert fill that
 * tail; the statement connection keeps ledger lookups and dashboard queries from waiting behind
 * inserts. `teiten ingest` of that capture, six runs interleaved with one connection (load
 * 1.1-2.8): faster in five, 16.53-18.53 s against 17.30-20.41 s, at the same CPU; the spool of
 * 7,704 files 23.6-24.9 s against 25.6-26.1 s. Two inserts hold more of the engine's memory at
 * once (+80-100 MiB), paid for by handing batch bodies back early (pipeline/sink.ts onBodyRead).
 */
export const INSERT_CONNECTIONS = 2

function isLockError(err: unknown): boolean {
  const text = `${(err as Error)?.message ?? ''} ${String((err as { cause?: unknown })?.cause ?? '')}`
  return /Cannot lock file|already running|different on-disk path/i.test(text)
}

/** The engine writes `PID: n` into its status file while it holds the directory. */
function engineHolderPid(engineDir: string): number | undefined {
  try {
    const match = /PID:\s*(\d+)/.exec(readFileSync(join(engineDir, 'status'), 'utf8'))
    if (!match) return undefined
    const pid = Number(match[1])
    if (pid === process.pid) return undefined
    process.kill(pid, 0)
    return pid
  } catch {
    return undefined
  }
}

interface OwnerRecord {
  pid: number
  role: string
  startedAt: string
  socket: string
}

function readOwner(path: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as OwnerRecord
  } catch {
    return undefined
  }
}

export function lockedMessage(dataDir: string, owner: Partial<OwnerRecord> | undefined): string {
  const detail = [owner?.role, owner?.startedAt ? `since ${owner.startedAt}` : undefined].filter(Boolean).join(', ')
  const who = owner?.pid ? `pid ${owner.pid}${detail ? ` (${detail})` : ''}` : 'another process'
  return (
    `the data directory ${dataDir} is in use by ${who}, and it does not accept requests from other teiten commands. ` +
    `Wait for it to finish or stop it, or point this command at a ClickHouse server with --clickhouse URL, ` +
    `or use another directory with --data DIR.`
  )
}

async function openEmbedded(options: OpenStoreOptions): Promise<Store> {
  const paths = embeddedPaths(options.dataDir)
  mkdirSync(paths.tmp, { recursive: true })
  /** The store through the process that holds the directory, if it serves it. */
  const throughHolder = async (): Promise<Store | undefined> => {
    const delegate = await connectDelegate(paths.socket, options.logger).catch(() => undefined)
    if (delegate) {
      options.logger.info(
        { owner: readOwner(paths.owner) },
        'data directory held by another teiten process: working through it',
      )
    }
    return delegate
  }
  // A live holder that serves the store: work through it without trying the engine's lock first.
  // A failed lock makes chDB print "Code: 76. DB::Exception: Cannot lock file …" on stderr, which
  // read as an error at the top of every `teiten daily` run while an ingest held the directory.
  if (engineHolderPid(paths.engine) !== undefined) {
    const delegate = await throughHolder()
    if (delegate) return delegate
  }
  const { createChdbConnection } = await import('chdb/connection')
  let connection: ReturnType<typeof createChdbConnection>
  try {
    connection = createChdbConnection({ path: paths.engine })
  } catch (err) {
    // chDB reports a held directory only as "Failed to create connection" (the lock message
    // goes to stderr), so the status file's PID decides whether someone holds it.
    const holderPid = engineHolderPid(paths.engine)
    if (holderPid === undefined && !isLockError(err)) {
      throw new TeitenError(
        'STORE_UNAVAILABLE',
        `${paths.engine}: ${(err as Error).message}`,
        { file: paths.engine },
        {
          cause: err,
        },
      )
    }
    const delegate = await throughHolder()
    if (delegate) return delegate
    const owner = readOwner(paths.owner)
    const holder = owner?.pid === holderPid || !holderPid ? owner : { pid: holderPid }
    throw new TeitenError('STORE_LOCKED', lockedMessage(paths.root, holder), { file: paths.root }, { cause: err })
  }
  // chdb ships its own copy of client-common's types; the runtime contract is the same.
  const client = createClient({ connection: connection as unknown as ChdbConnection })
  // Connections to the directory this process holds already: no lock to take.
  const insertClients = Array.from({ length: INSERT_CONNECTIONS }, () =>
    createClient({ connection: createChdbConnection({ path: paths.engine }) as unknown as ChdbConnection }),
  )
  let host: StoreHost | undefined
  const store = new ClickHouseStore(
    'embedded',
    client,
    fileBodyInserter(paths.tmp) as BodyInserter,
    async () => {
      await host?.close()
      try {
        const owner = readOwner(paths.owner)
        if (owner?.pid === process.pid) unlinkSync(paths.owner)
      } catch {}
    },
    insertClients,
  )
  await migrate(store, { retentionDays: options.retentionDays, newStoreIdentity: options.newStoreIdentity })
  if (options.host !== false) {
    host = await startStoreHost(store, paths.socket, options.logger)
    const owner: OwnerRecord = {
      pid: process.pid,
      role: options.role ?? 'teiten',
      startedAt: new Date().toISOString(),
      socket: paths.socket,
    }
    writeFileSync(paths.owner, `${JSON.stringify(owner)}\n`)
  }
  return store
}

async function openServer(options: OpenStoreOptions & { clickhouseUrl: string }): Promise<Store> {
  const client = createClient({ url: options.clickhouseUrl, request_timeout: 300_000 })
  const ping = await client.ping()
  if (!ping.success) {
    await client.close()
    const safeUrl = options.clickhouseUrl.replace(/\/\/[^@/]*@/, '//***@')
    throw new TeitenError(
      'STORE_UNAVAILABLE',
      `cannot reach ClickHouse at ${safeUrl}: ${ping.error.message}`,
      {},
      {
        cause: ping.error,
      },
    )
  }
  const store = new ClickHouseStore('server', client, httpBodyInserter as BodyInserter)
  await migrate(store, { retentionDays: options.retentionDays, newStoreIdentity: options.newStoreIdentity })
  return store
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (options.clickhouseUrl) return openServer({ ...options, clickhouseUrl: options.clickhouseUrl })
  return openEmbedded(options)
}
