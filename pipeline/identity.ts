import { Worker } from 'node:worker_threads'
import { TeitenError } from '../core/errors.js'
import type { CaptureContent } from '../ingest/capture.js'
import {
  DEFAULT_MAX_GZIP_BYTES,
  DEFAULT_MAX_GZIP_RATIO,
  GZIP_RATIO_GRACE_BYTES,
  SMALL_FILE_BYTES,
  SMALL_GUNZIP_CHUNK_BYTES,
} from '../ingest/capture.js'

import { type FileIds, type GzipLimits, type IdentityScheme, identityAndContent } from './identity-core.js'

export type { FileIds, GzipLimits, IdentityScheme } from './identity-core.js'

export const IDENTITY_GZIP_LIMITS: GzipLimits = {
  maxRatio: DEFAULT_MAX_GZIP_RATIO,
  maxBytes: DEFAULT_MAX_GZIP_BYTES,
  graceBytes: GZIP_RATIO_GRACE_BYTES,
  smallBytes: SMALL_FILE_BYTES,
  gunzipChunkBytes: SMALL_GUNZIP_CHUNK_BYTES,
}

// The main thread serves metrics and storage meanwhile: hashing a big file yields per 4 MiB.
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve))

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
export async function fileIdentity(
  path: string,
  limits: GzipLimits = IDENTITY_GZIP_LIMITS,
  scheme: IdentityScheme = 'sha256',
): Promise<FileIds> {
  try {
    return (await identityAndContent(path, limits, yieldNow, undefined, scheme)).ids
  } catch (err) {
    throw readFailed(path, err)
  }
}

/*
 * The hashing worker: identities of the files of a run, computed ahead of the reader, in the
 * sink's scheme (useScheme). Hashing runs at 1.4-4 GB/s here (SHA-256, XXH3-128), which on the
 * main thread is time the decoder does not run (a 7,700-file spool: ~1.3 s of SHA-256 for
 * 2.7 GB). The worker reads the files itself; the second read, by the decoder, comes from the
 * page cache. Files are hashed one at a time, in the order asked.
 */
// dist/pipeline/identity-worker.js, or the .ts source when the tests run the sources.
const WORKER_URL = new URL(`./identity-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

interface Reply {
  id: number
  ids?: FileIds
  /** CaptureContent with its bytes as the first `length` bytes of the ArrayBuffer the worker gave away. */
  content?: Omit<CaptureContent, 'data'> & { data: ArrayBuffer; length: number }
  error?: { message: string; code?: string; syscall?: string }
}

/**
 * Decompressed content of small files the worker may hand over ahead of the reader. The worker
 * reads and gunzips every small file to hash it; the reader used to do both again: the 7,704
 * files of the bench spool (58% gzip) spent ~1.0 s reading and ~2.3 s gunzipping on the main
 * thread. The bound holds the reader's lookahead of hourly files (~350 KB each: ingest.ts
 * IDENTITY_LOOKAHEAD) and keeps a spool of small gzip bombs (up to 8 MiB each) from holding
 * the whole lookahead in memory; past it the reader reads the file itself.
 *
 * 64 MiB since the spool is read hour by hour across its sensors (pipeline/files.ts): at 40 MiB
 * 532 of the bench spool's 7,704 files found it full and were read and gunzipped again on the
 * main thread, 18 at 64 MiB. Two runs each: 21-23 full collections against 37-43, peak RSS
 * 841-857 MiB against 915-954 (the reader's own reads were garbage the collector found late).
 */
export const CONTENT_BUDGET_BYTES = 64 << 20

/** Files hashed ahead of the reader, at most `lookahead` of them at a time. */
export class FileIdentities {
  private worker: Worker | undefined
  private readonly results = new Map<number, Promise<FileIds>>()
  private readonly waiting = new Map<number, { resolve: (ids: FileIds) => void; reject: (err: unknown) => void }>()
  private readonly contents = new Map<number, CaptureContent>()
  private next = 0
  private consumedBelow = 0
  private early = false
  private handedOut = false
  /** The worker's transferred buffers behind contents handed out: this side's to free. */
  private readonly transferred = new WeakSet<ArrayBuffer>()

  constructor(
    private readonly paths: readonly string[],
    private readonly lookahead = 64,
    private readonly limits: GzipLimits = IDENTITY_GZIP_LIMITS,
    private readonly contentBudgetBytes = CONTENT_BUDGET_BYTES,
    private scheme: IdentityScheme = 'sha256',
  ) {}

  /**
   * Computes identities in `scheme` from now on. Hashing may have started early, before the
   * sink that decides the scheme was open (startEarly): work done in another scheme is dropped
   * and begun again. Only before the first get(): an identity handed out stays what it was.
   */
  useScheme(scheme: IdentityScheme): void {
    if (scheme === this.scheme) return
    if (this.handedOut) throw new RangeError('useScheme after identities were handed out')
    this.scheme = scheme
    if (!this.worker) return
    // The old worker's answers must not reach the new promises: it is stopped, its results and
    // held contents dropped (nobody took them), and the files asked again.
    const old = this.worker
    this.worker = undefined
    old.removeAllListeners()
    old.on('error', () => {})
    void old.terminate()
    for (const content of this.contents.values()) this.release(content)
    this.contents.clear()
    this.results.clear()
    this.waiting.clear()
    this.next = 0
    if (this.early) this.fill(0)
  }

  /**
   * The identity of file `i`; rejects with CAPTURE_READ_FAILED as fileIdentity does. Files are
   * asked in order: content of the files before `i` is dropped.
   */
  get(i: number): Promise<FileIds> {
    this.handedOut = true
    if (!this.usesWorker) return fileIdentity(this.paths[i]!, this.limits, this.scheme)
    for (const [k, content] of this.contents) {
      if (k >= i) continue
      this.contents.delete(k)
      this.release(content)
    }
    this.consumedBelow = i
    this.fill(i)
    const p = this.results.get(i)!
    this.results.delete(i)
    this.fill(i + 1)
    return p
  }

  /**
   * Starts hashing now, in the worker, even for one file: the CLI calls this before it opens
   * the GeoIP database and the store, which then happen while the first file is hashed (the
   * 20M-packet bench capture: its 1.9 s of SHA-256 began after ~0.7 s of opening before).
   */
  startEarly(): void {
    this.early = true
    this.fill(0)
  }

  /**
   * The bytes file i's identity was computed from, when the worker handed them over (a small
   * file, within the budget), for readCapture's `content`: taken once. Call after get(i) settled.
   */
  content(i: number): CaptureContent | undefined {
    const content = this.contents.get(i)
    this.contents.delete(i)
    return content
  }

  /**
   * Frees the memory of a content taken with content(i), once the reader is done with its bytes
   * (they read as empty afterwards). Left to the collector, each transferred buffer counted as
   * memory newly allocated outside V8's heap until a full collection found it dead, and V8 ran
   * one every few dozen MB handed over: the bench spool (2.7 GB in 7,704 files) 78-82 full
   * collections and 2.7-3.2 CPU s in V8's collector threads, against 0.35 for one file of the
   * same packets. `ArrayBuffer.prototype.transfer(0)` gives the memory back at once: 42 full
   * collections, and V8's collector threads 2.0-2.2 CPU s against 3.6-3.7 for the build before
   * in two interleaved pairs (a busy host: 35-40 s runs), peak RSS the same (906-919 MiB).
   */
  release(content: CaptureContent | undefined): void {
    const buffer = content?.data.buffer
    if (!(buffer instanceof ArrayBuffer) || !this.transferred.has(buffer)) return
    this.transferred.delete(buffer)
    ;(buffer as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0)
  }

  /** File i's identity once computed, without taking it; undefined when it failed. */
  async peek(i: number): Promise<FileIds | undefined> {
    if (!this.usesWorker) return undefined
    this.handedOut = true
    this.fill(i)
    return this.results.get(i)?.catch(() => undefined)
  }

  /** One file: no worker (starting one costs more than it saves), unless hashing started early. */
  private get usesWorker(): boolean {
    return this.paths.length !== 1 || this.early
  }

  /** Whether file i's identity is already known (without waiting). */
  ready(i: number): boolean {
    return this.results.has(i) && !this.waiting.has(i)
  }

  /** Whether file i is being hashed by the worker and its identity is not known yet. Call before get(i). */
  hashing(i: number): boolean {
    if (!this.usesWorker) return false
    this.fill(i)
    return this.waiting.has(i)
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
    for (const content of this.contents.values()) this.release(content)
    this.contents.clear()
    void this.worker?.terminate()
    this.worker = undefined
  }

  private fill(upTo: number): void {
    const end = Math.min(this.paths.length, upTo + this.lookahead)
    // Asked in steps of a quarter of the lookahead, one message per step: a message per file
    // (7,704 for the bench spool) cost the main thread 0.8-1.6 s of postMessage.
    if (this.next >= end || (this.next > upTo && end - this.next < this.lookahead / 4)) return
    const files: Array<{ id: number; path: string }> = []
    while (this.next < end) {
      const i = this.next++
      this.results.set(
        i,
        new Promise<FileIds>((resolve, reject) => {
          this.waiting.set(i, { resolve, reject })
        }),
      )
      this.results.get(i)!.catch(() => {})
      files.push({ id: i, path: this.paths[i]! })
    }
    this.start().postMessage({ files, consumedBelow: this.consumedBelow })
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(WORKER_URL, {
      workerData: { limits: this.limits, contentBudgetBytes: this.contentBudgetBytes, scheme: this.scheme },
    })
    worker.unref()
    worker.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id)
      if (!w) return
      this.waiting.delete(reply.id)
      // The reader may have passed this file by (skipped it) before its content arrived.
      if (reply.content && reply.id >= this.consumedBelow) {
        const { data, length, gzip, fileBytes } = reply.content
        this.transferred.add(data)
        this.contents.set(reply.id, { data: Buffer.from(data, 0, length), gzip, fileBytes })
      }
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
