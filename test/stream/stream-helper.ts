/**
 * Shared pieces of the Kafka pipeline tests: synthetic captures with ground truth (synth/),
 * the CLI as a child process, fingerprints of data directories, and what a direct ingest of
 * the same files would store (the pipeline run into memory).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { silentLogger } from '../../core/logger.js'
import { makeEnricher } from '../../enrich/enrich.js'
import { GeoIp } from '../../enrich/geoip.js'
import { expandPaths } from '../../pipeline/files.js'
import { type IngestSummary, ingestFiles } from '../../pipeline/ingest.js'
import type { EventBatch, EventSink, FileRecord } from '../../pipeline/sink.js'
import { REPO_ROOT } from '../../scripts/kafka-broker.mjs'
import { generateCorpus, type GroundTruth } from '../../synth/corpus.js'
import { openCountryLookup } from '../../synth/geo.js'
import { DEFAULT_SENSORS } from '../../synth/population.js'
import { BATCH_ROWS } from '../../pipeline/sink.js'

export const run = Date.now().toString(36)
let topicSeq = 0
export function uniqueName(prefix: string): string {
  return `${prefix}-${run}-${++topicSeq}`
}

export interface Corpus {
  dir: string
  sensors: string[]
  truth: GroundTruth
}

let countryOf: ReturnType<typeof openCountryLookup> | undefined

/**
 * Daily capture files of `sensors` sensors (named `<prefix>-sensor-a`, …) over `days` days,
 * about `kept` UDP/123 packets in all. Distinct seeds give distinct file contents, so distinct
 * file ids and dedup tokens: tests sharing one store do not see each other's rows.
 */
export async function makeCorpus(
  dir: string,
  o: { seed: number; kept: number; prefix: string; days?: number; sensors?: number },
): Promise<Corpus> {
  countryOf ??= openCountryLookup()
  const sensors = DEFAULT_SENSORS.slice(0, o.sensors ?? 3).map((s) => ({ ...s, name: `${o.prefix}-${s.name}` }))
  const days = o.days ?? 3
  const end = new Date(Date.UTC(2014, 0, days)).toISOString().slice(0, 10)
  mkdirSync(dir, { recursive: true })
  const { truth } = await generateCorpus({
    outDir: dir,
    countryOf,
    seed: o.seed,
    preset: 'test',
    start: '2014-01-01',
    end,
    targetKept: o.kept,
    sensors,
    truthFile: null,
  })
  return { dir, sensors: sensors.map((s) => s.name), truth }
}

export interface Expected {
  rows: number
  files: number
  rowsByFile: Map<string, number>
  batches: EventBatch[]
  records: FileRecord[]
  summary: IngestSummary
}

/** What a direct ingest of `paths` stores: the pipeline run into memory. */
export async function expectedOf(paths: string[]): Promise<Expected> {
  const batches: EventBatch[] = []
  const records: FileRecord[] = []
  const sink: EventSink = {
    identityScheme: async () => 'sha256', // as a Kafka sensor's
    batchRows: async () => BATCH_ROWS,
    lookupFile: async () => undefined,
    writeBatch: async (b) => {
      // Kept past the write: a copy (the pipeline writes the next batches into this body).
      batches.push({ ...b, body: Buffer.from(b.body) })
    },
    finishFile: async (r) => {
      records.push(r)
    },
    close: async () => {},
  }
  const geoip = await GeoIp.open()
  const summary = await ingestFiles(await expandPaths(paths), {
    sink,
    enricher: { enrich: makeEnricher(geoip) },
    logger: silentLogger,
  })
  const rowsByFile = new Map<string, number>()
  for (const b of batches) rowsByFile.set(b.fileId, (rowsByFile.get(b.fileId) ?? 0) + b.rows)
  return { rows: summary.kept, files: records.length, rowsByFile, batches, records, summary }
}

export interface CliRun {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

/** `teiten ARGS` as a child process (dist/ must be built: npm run build). */
export function teiten(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const { TEITEN_KAFKA_BROKERS: _b, ...base } = process.env
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'teiten.js'), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...base, TEITEN_LOG_LEVEL: 'warn', ...env },
  })
  let out = ''
  let err = ''
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString()
  })
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => {
      // 'close', not 'exit': only then has all of the child's output been read.
      child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }))
    },
  )
  return { child, stdout: () => out, stderr: () => err, done }
}

/**
 * Waits for the run to end, killing it (SIGKILL) after `ms`: a hung process fails the test
 * with its own stderr instead of a bare timeout.
 */
export async function within(run: CliRun, ms: number) {
  const timer = setTimeout(() => {
    run.child.kill('SIGKILL')
  }, ms)
  try {
    return await run.done
  } finally {
    clearTimeout(timer)
  }
}

/** Runs `teiten ARGS` to the end; throws with its stderr unless it exits 0. */
export async function teitenOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await teiten(args, env).done
  if (r.code !== 0) throw new Error(`teiten ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr.slice(-4000)}`)
  return r.stdout
}

export type Fingerprint = Record<string, Record<string, string>>

/** Counts and hashes of every table of an embedded data directory (test/stream/fingerprint.mjs). */
export async function fingerprint(dataDir: string): Promise<Fingerprint> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'test', 'stream', 'fingerprint.mjs'), dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString()
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`fingerprint ${dataDir} exited ${code}: ${err}`)
  return JSON.parse(out) as Fingerprint
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns a value other than undefined (or throws after timeoutMs). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}
