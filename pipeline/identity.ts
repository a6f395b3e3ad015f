import { Worker } from 'node:worker_threads'
import { TeitenError } from '../core/errors.js'
import { fileIdentity } from './files.js'

/*
 * The content hash (pipeline/files.ts fileIdentity) of the files of a run, computed ahead of
 * the reader on a worker thread: SHA-256 runs at ~2 GB/s here, which on the main thread is
 * time the decoder does not run (a 7,700-file spool: ~1.3 s of 2.7 GB). The worker reads the
 * files itself; the second read, by the decoder, comes from the page cache.
 *
 * Plain CommonJS evaluated in the worker, so the same code works from dist/ and from the
 * TypeScript sources the tests run (a worker file next to the module would not exist there).
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const { openSync, readSync, closeSync } = require('node:fs')
const buf = Buffer.allocUnsafe(4 << 20)
parentPort.on('message', ({ id, path }) => {
  let fd
  try {
    fd = openSync(path, 'r')
    const hash = createHash('sha256')
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      hash.update(buf.subarray(0, n))
    }
    parentPort.postMessage({ id, hash: hash.digest('hex').slice(0, 32) })
  } catch (err) {
    parentPort.postMessage({ id, error: { message: String(err && err.message), code: err && err.code, syscall: err && err.syscall } })
  } finally {
    if (fd !== undefined) try { closeSync(fd) } catch {}
  }
})
`

interface Reply {
  id: number
  hash?: string
  error?: { message: string; code?: string; syscall?: string }
}

/** Files hashed ahead of the reader, at most `lookahead` of them at a time. */
export class FileIdentities {
  private worker: Worker | undefined
  private readonly results = new Map<number, Promise<string>>()
  private readonly waiting = new Map<number, { resolve: (id: string) => void; reject: (err: unknown) => void }>()
  private next = 0

  constructor(
    private readonly paths: readonly string[],
    private readonly lookahead = 64,
  ) {}

  /** The identity of file `i`; rejects with CAPTURE_READ_FAILED as fileIdentity does. */
  get(i: number): Promise<string> {
    // One file: no worker (starting one costs more than it saves).
    if (this.paths.length === 1) return fileIdentity(this.paths[i]!)
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
  async known(from: number, to: number): Promise<Map<number, string>> {
    const out = new Map<number, string>()
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
        new Promise<string>((resolve, reject) => {
          this.waiting.set(i, { resolve, reject })
        }),
      )
      this.results.get(i)!.catch(() => {})
      this.start().postMessage({ id: i, path: this.paths[i] })
    }
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(WORKER_SOURCE, { eval: true })
    worker.unref()
    worker.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id)
      if (!w) return
      this.waiting.delete(reply.id)
      if (reply.hash !== undefined) w.resolve(reply.hash)
      else {
        const path = this.paths[reply.id]!
        const cause = Object.assign(new Error(reply.error?.message ?? 'read failed'), {
          code: reply.error?.code,
          syscall: reply.error?.syscall,
        })
        w.reject(new TeitenError('CAPTURE_READ_FAILED', cause.message, { file: path }, { cause }))
      }
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
