import { createHash } from 'node:crypto'
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs'
import { Readable } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { createGunzip, gunzipSync } from 'node:zlib'
import { TeitenError } from '../core/errors.js'
import {
  DEFAULT_MAX_GZIP_BYTES,
  DEFAULT_MAX_GZIP_RATIO,
  GZIP_RATIO_GRACE_BYTES,
  SMALL_FILE_BYTES,
} from '../ingest/capture.js'

/**
 * A file's identity: 128 bits of SHA-256 (hex) of the capture it holds.
 *
 * - `id`: the hash of the decompressed capture. For a plain file that is the hash of its bytes;
 *   for a gzip file (by magic, as the reader decides) the hash of what it decompresses to
 *   (concatenated members as one stream, as zcat and the reader see them), so X.pcap and
 *   X.pcap.gz are one capture and count once.
 * - `rawId`: the hash of the file's bytes: the identity teiten <= 0.2 gave every file. Stores and
 *   local Kafka ledgers written by those versions know .gz files under it, so it is looked up
 *   too (equal to `id` for plain files).
 *
 * A gzip file that does not decompress completely within the reader's limits (corrupt, cut
 * short, or a bomb past the ratio/size bounds) has `id = rawId`: its bytes are all that
 * identifies it deterministically; a prefix of a capture is not the capture, and its twin (if
 * any) must not be skipped because of it.
 */
export interface FileIds {
  id: string
  rawId: string
}

export interface GzipLimits {
  maxRatio: number
  maxBytes: number
  graceBytes: number
  smallBytes: number
}

export const IDENTITY_GZIP_LIMITS: GzipLimits = {
  maxRatio: DEFAULT_MAX_GZIP_RATIO,
  maxBytes: DEFAULT_MAX_GZIP_BYTES,
  graceBytes: GZIP_RATIO_GRACE_BYTES,
  smallBytes: SMALL_FILE_BYTES,
}

/*
 * The one implementation, as plain JavaScript source: it runs on the hashing worker (below) and
 * on the main thread (fileIdentity), from dist/ and from the TypeScript sources the tests run (a
 * worker file next to the module would not exist there). `m` carries the node modules it uses.
 *
 * The bomb bounds are the reader's (ingest/capture.ts readGzip): at most maxBytes, and past the
 * grace size at most maxRatio times the compressed bytes consumed so far. Small files are
 * gunzipped in one call, as the reader does; past its output bound the stream decides.
 */
const IDENTITY_SOURCE = `
async function identityOf(path, limits, m) {
  const short = (h) => h.digest('hex').slice(0, 32)
  const isGzip = (b) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b
  const gunzipStream = async (chunks) => {
    const hash = m.createHash('sha256')
    const gunzip = m.createGunzip()
    let total = 0
    let bomb = false
    const input = m.Readable.from(chunks, { objectMode: false })
    input.on('error', (err) => gunzip.destroy(err))
    try {
      for await (const chunk of input.pipe(gunzip)) {
        let allowed = limits.maxBytes
        if (total + chunk.length > limits.graceBytes) {
          allowed = Math.min(allowed, Math.max(limits.graceBytes, limits.maxRatio * gunzip.bytesWritten))
        }
        if (total + chunk.length > allowed) { bomb = true; break }
        total += chunk.length
        hash.update(chunk)
      }
    } catch (err) {
      if (err && err.syscall !== undefined) throw err
      return undefined
    } finally {
      input.destroy()
      gunzip.destroy()
    }
    return bomb ? undefined : short(hash)
  }
  let fd = m.openSync(path, 'r')
  try {
    const size = m.fstatSync(fd).size
    if (size <= limits.smallBytes) {
      const bytes = m.readFileSync(fd)
      const rawId = short(m.createHash('sha256').update(bytes))
      if (!isGzip(bytes)) return { id: rawId, rawId }
      let out
      try {
        out = m.gunzipSync(bytes, { maxOutputLength: Math.max(1, Math.min(limits.graceBytes, limits.maxBytes)) })
      } catch {}
      if (out !== undefined) return { id: short(m.createHash('sha256').update(out)), rawId }
      return { id: (await gunzipStream([bytes])) ?? rawId, rawId }
    }
    const raw = m.createHash('sha256')
    const buf = Buffer.allocUnsafe(4 << 20)
    let gzip = false
    let first = true
    for (;;) {
      const n = m.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      if (first) gzip = isGzip(buf.subarray(0, n))
      first = false
      raw.update(buf.subarray(0, n))
      if (m.yieldNow) await m.yieldNow()
    }
    const rawId = short(raw)
    if (!gzip) return { id: rawId, rawId }
    m.closeSync(fd)
    fd = undefined
    // Second pass for the decompressed content: the compressed bytes come from the page cache.
    const id = await gunzipStream(m.createReadStream(path, { highWaterMark: 1 << 20 }))
    return { id: id ?? rawId, rawId }
  } finally {
    if (fd !== undefined) try { m.closeSync(fd) } catch {}
  }
}
`

type IdentityOf = (path: string, limits: GzipLimits, m: Record<string, unknown>) => Promise<FileIds>

const identityOf = new Function(`${IDENTITY_SOURCE}; return identityOf`)() as IdentityOf
const MODULES = {
  // The main thread serves metrics and storage meanwhile: hashing a big file yields per 4 MiB.
  yieldNow: () => new Promise<void>((resolve) => setImmediate(resolve)),
  createHash,
  createGunzip,
  gunzipSync,
  createReadStream,
  openSync,
  fstatSync,
  readFileSync,
  readSync,
  closeSync,
  Readable,
}

function readFailed(path: string, err: unknown): TeitenError {
  const e = err as { message?: string; code?: string; syscall?: string }
  const cause =
    err instanceof Error
      ? err
      : Object.assign(new Error(String(e?.message ?? 'read failed')), { code: e?.code, syscall: e?.syscall })
  return new TeitenError('CAPTURE_READ_FAILED', cause.message, { file: path }, { cause })
}

/**
 * Identity by content, not name: a file renamed by a rotation script is not new data, a file
 * rewritten under the same name is, and a capture compressed by its sensor is the same capture.
 * Rejects with CAPTURE_READ_FAILED when the file cannot be read (a gzip stream that does not
 * decompress is not an error here: see FileIds).
 */
export async function fileIdentity(path: string, limits: GzipLimits = IDENTITY_GZIP_LIMITS): Promise<FileIds> {
  try {
    return await identityOf(path, limits, MODULES)
  } catch (err) {
    throw readFailed(path, err)
  }
}

/*
 * The hashing worker: identities of the files of a run, computed ahead of the reader. SHA-256
 * runs at ~2 GB/s here, which on the main thread is time the decoder does not run (a 7,700-file
 * spool: ~1.3 s of 2.7 GB). The worker reads the files itself; the second read, by the decoder,
 * comes from the page cache. Files are hashed one at a time, in the order asked.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const m = { ...require('node:crypto'), ...require('node:fs'), ...require('node:zlib'), Readable: require('node:stream').Readable }
${IDENTITY_SOURCE}
let tail = Promise.resolve()
parentPort.on('message', ({ id, path }) => {
  tail = tail.then(() => identityOf(path, workerData.limits, m)).then(
    (ids) => parentPort.postMessage({ id, ids }),
    (err) => parentPort.postMessage({ id, error: { message: String(err && err.message), code: err && err.code, syscall: err && err.syscall } }),
  )
})
`

interface Reply {
  id: number
  ids?: FileIds
  error?: { message: string; code?: string; syscall?: string }
}

/** Files hashed ahead of the reader, at most `lookahead` of them at a time. */
export class FileIdentities {
  private worker: Worker | undefined
  private readonly results = new Map<number, Promise<FileIds>>()
  private readonly waiting = new Map<number, { resolve: (ids: FileIds) => void; reject: (err: unknown) => void }>()
  private next = 0

  constructor(
    private readonly paths: readonly string[],
    private readonly lookahead = 64,
    private readonly limits: GzipLimits = IDENTITY_GZIP_LIMITS,
  ) {}

  /** The identity of file `i`; rejects with CAPTURE_READ_FAILED as fileIdentity does. */
  get(i: number): Promise<FileIds> {
    // One file: no worker (starting one costs more than it saves).
    if (this.paths.length === 1) return fileIdentity(this.paths[i]!, this.limits)
    this.fill(i)
    const p = this.results.get(i)!
    this.results.delete(i)
    this.fill(i + 1)
    return p
  }

  /** Whether file i's identity is already known (without waiting). */
  ready(i: number): boolean {
    return this.results.has(i) && !this.waiting.has(i)
  }

  /** Identities already computed among files from..to-1, without waiting (for batched lookups). */
  async known(from: number, to: number): Promise<Map<number, FileIds>> {
    const out = new Map<number, FileIds>()
    for (let i = from; i < to; i++) {
      if (!this.ready(i)) break
      try {
        out.set(i, await this.results.get(i)!)
      } catch {
        // Reported when the file is reached.
      }
    }
    return out
  }

  close(): void {
    void this.worker?.terminate()
    this.worker = undefined
  }

  private fill(upTo: number): void {
    const end = Math.min(this.paths.length, upTo + this.lookahead)
    while (this.next < end) {
      const i = this.next++
      this.results.set(
        i,
        new Promise<FileIds>((resolve, reject) => {
          this.waiting.set(i, { resolve, reject })
        }),
      )
      this.results.get(i)!.catch(() => {})
      this.start().postMessage({ id: i, path: this.paths[i] })
    }
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { limits: this.limits } })
    worker.unref()
    worker.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id)
      if (!w) return
      this.waiting.delete(reply.id)
      if (reply.ids !== undefined) w.resolve(reply.ids)
      else w.reject(readFailed(this.paths[reply.id]!, reply.error ?? {}))
    })
    worker.on('error', (err) => this.failAll(err))
    worker.on('exit', () => this.failAll(new Error('the hashing worker stopped')))
    this.worker = worker
    return worker
  }

  private failAll(err: unknown): void {
    for (const [i, w] of this.waiting) {
      w.reject(new TeitenError('CAPTURE_READ_FAILED', String((err as Error)?.message ?? err), { file: this.paths[i] }))
    }
    this.waiting.clear()
    this.worker = undefined
  }
}
