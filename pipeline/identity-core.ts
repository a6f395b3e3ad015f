/*
 * A capture file's identity, computed the same way on the main thread and on the hashing worker
 * (pipeline/identity-worker.ts). This module imports only node: built-ins and packages (and
 * types, which are erased), never the repo's other modules, and uses only erasable TypeScript,
 * so the worker can load it from dist/ and, in the test runs, straight from the sources (Node 24
 * strips the types).
 *
 * The bomb bounds are the reader's (ingest/capture.ts readGzip): at most maxBytes, and past the
 * grace size at most maxRatio times the compressed bytes consumed so far. Small files are
 * gunzipped in one call, as the reader does; past its output bound the stream decides.
 */
import { createHash } from 'node:crypto'
import { closeSync, createReadStream, fstatSync, openSync, read, readFileSync, readSync } from 'node:fs'
import { Readable } from 'node:stream'
import { createGunzip, gunzipSync } from 'node:zlib'
import { createXXHash128 } from 'hash-wasm'
import type { CaptureContent } from '../ingest/types.js'

/**
 * How a store or a sensor's ledger names files (pipeline/sink.ts EventSink.identityScheme): the
 * first 128 bits of SHA-256, as teiten did before schema v17, or XXH3-128 (as `xxhsum -H2`
 * prints it). A store that `teiten ingest` found empty at schema v17 (store/schema.ts) uses
 * XXH3-128; a store that already named files under SHA-256 keeps it (a file read again after the
 * upgrade would be new to it and counted twice), and so do Kafka sensors and the stores other
 * commands make (a storage worker records the ids its sensors send). Either is 32 hex characters.
 *
 * Why a second scheme: SHA-256 ran at ~1.4 GB/s here (the CPU's SHA extensions), 1.85 CPU s of
 * the 20M-packet bench capture's 2.7 GB, every byte of every capture, and the first insert of a
 * file waits for its identity. XXH3-128 (hash-wasm's WebAssembly) takes ~0.7 CPU s for it.
 * `teiten ingest` of that capture, six interleaved pairs on a slow stretch: 18.67-21.20 s against
 * 19.94-22.84 s (faster in five), ~2 CPU s less, peak RSS 672-714 MiB against 753-815 (the reader
 * holds fewer batches waiting for the identity); docs/performance.md, Round 19. An identity
 * names content against accidents (a rotated, renamed or recompressed file), not against a
 * forger who controls the capture's bytes: 128 bits of a non-cryptographic hash suffice for
 * that, as they do for rsync and Btrfs.
 * Native xxhash bindings hash faster still (~0.2 CPU s) but give 64 bits per streamed pass.
 */
export type IdentityScheme = 'sha256' | 'xxh128'

/** A running hash that gives a file id (32 hex characters) once. */
interface IdHasher {
  update(bytes: Uint8Array): void
  id(): string
}

type WasmHasher = Awaited<ReturnType<typeof createXXHash128>>
/**
 * XXH3-128 instances not in use. Creating one costs ~0.13 ms (a WebAssembly instance): 1 s for
 * the 7,704 files of the bench spool, where init() on a kept one costs nothing.
 */
const idleXxh: WasmHasher[] = []

async function newHasher(scheme: IdentityScheme): Promise<IdHasher> {
  if (scheme === 'sha256') {
    const hash = createHash('sha256')
    return { update: (bytes) => hash.update(bytes), id: () => hash.digest('hex').slice(0, FILE_ID_CHARS) }
  }
  const hash = idleXxh.pop() ?? (await createXXHash128())
  hash.init()
  return {
    update: (bytes) => hash.update(bytes),
    id: () => {
      const id = hash.digest('hex')
      idleXxh.push(hash)
      return id
    },
  }
}

/**
 * The raw-bytes id (`rawId`) the first `length` bytes of a file would have as a whole file:
 * equal to a file's recorded raw id when the file has only grown since (pipeline/watch.ts).
 */
export async function prefixRawId(path: string, length: number, scheme: IdentityScheme): Promise<string> {
  const hash = await newHasher(scheme)
  if (length > 0) {
    for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 4 << 20 })) {
      hash.update(chunk as Buffer)
    }
  }
  return hash.id()
}

async function idOf(scheme: IdentityScheme, bytes: Uint8Array): Promise<string> {
  const hash = await newHasher(scheme)
  hash.update(bytes)
  return hash.id()
}

/**
 * - `id`: 128 bits (hex) of the scheme's hash of the decompressed capture. For a plain file that is the
 *   hash of its bytes; for a gzip file (by magic, as the reader decides) the hash of what it
 *   decompresses to (concatenated members as one stream, as zcat and the reader see them), so
 *   X.pcap and X.pcap.gz are one capture and count once.
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
  /** Output chunk of the one-call gunzip of a small file (the reader's). */
  gunzipChunkBytes: number
}

/**
 * Read size for hashing a big file. A read copies the bytes from the page cache; at 256 KiB the
 * buffer being filled stays in the core's cache, at 4 MiB it does not and the copy goes to
 * memory and back: `dd` of the 2.7 GB bench capture takes 0.38 s of CPU at 256 KiB against 0.83 s
 * at 4 MiB. Hashing it here (SHA-256 bound either way, 1.8-2.0 s): 2.56-2.66 CPU s in all threads
 * at 256 KiB against 3.15-3.62 at 4 MiB (three runs each). Smaller reads cost more round trips
 * than they save (64-128 KiB).
 */
const READ_CHUNK_BYTES = 256 << 10

function readAt(fd: number, into: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, into, 0, into.length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)))
  })
}

/** A file id's length in hex characters, in either scheme. */
export const FILE_ID_CHARS = 32
const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

/** The hash of the decompressed stream, or undefined when it does not decompress within limits. */
async function gunzippedId(
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  limits: GzipLimits,
  scheme: IdentityScheme,
) {
  const hash = await newHasher(scheme)
  const gunzip = createGunzip()
  const input = Readable.from(chunks, { objectMode: false })
  input.on('error', (err) => gunzip.destroy(err))
  let total = 0
  try {
    for await (const chunk of input.pipe(gunzip) as AsyncIterable<Buffer>) {
      let allowed = limits.maxBytes
      if (total + chunk.length > limits.graceBytes) {
        allowed = Math.min(allowed, Math.max(limits.graceBytes, limits.maxRatio * gunzip.bytesWritten))
      }
      if (total + chunk.length > allowed) return undefined
      total += chunk.length
      hash.update(chunk)
    }
  } catch (err) {
    // A read error is the caller's to report; a stream that does not decompress is an answer.
    if ((err as NodeJS.ErrnoException | undefined)?.syscall !== undefined) throw err
    return undefined
  } finally {
    input.destroy()
    gunzip.destroy()
  }
  return hash.id()
}

/**
 * Reads the whole (small) file: a gzip file into `into` when it fits (its compressed bytes are
 * dead once gunzipped), anything else as readFileSync does (a plain file's bytes are handed
 * over as they are, so they get a buffer of their own, not a copy out of `into`).
 */
function readSmall(fd: number, size: number, into: Buffer | undefined): Buffer {
  if (!into || into.length < size) return readFileSync(fd)
  if (readSync(fd, into, 0, 2, 0) < 2 || !isGzip(into.subarray(0, 2))) return readFileSync(fd)
  let n = 0
  for (;;) {
    const got = readSync(fd, into, n, into.length - n, n)
    if (got === 0) break
    n += got
    if (n === into.length) return readFileSync(fd) // grew past the scratch buffer meanwhile
  }
  return into.subarray(0, n)
}

/**
 * Output chunk for gunzipping `bytes` in one call: one byte more than its trailer's ISIZE (the
 * decompressed size of a single-member gzip, mod 2^32) when that is within `bound`, so the
 * result is one chunk and nothing else is allocated; else `fallback` (the stream is joined
 * from several chunks, correct either way).
 */
function gunzipChunk(bytes: Buffer, bound: number, fallback: number): number {
  if (bytes.length < 18) return fallback
  const isize = bytes.readUInt32LE(bytes.length - 4)
  return isize > 0 && isize < bound ? isize + 1 : fallback
}

/**
 * The identity, and for a small file (read and gunzipped in one call) the bytes it was computed
 * from, which the reader parses instead of reading and gunzipping the file again. Big files are
 * hashed as a stream: no content. `yieldNow` lets the main thread serve metrics and storage
 * while it hashes a big file (called once per 4 MiB read); the worker passes none.
 *
 * `scratch`: a buffer of the worker's, used again for every small gzip file's compressed bytes
 * (readSmall).
 * The worker's garbage (each file's compressed bytes, the gunzip's spare output chunks: ~0.6 MB
 * per hourly file of the bench spool) held 80-120 MB of dead buffers at a time between its rare
 * collections, a tenth of the spool's peak RSS.
 */
export async function identityAndContent(
  path: string,
  limits: GzipLimits,
  yieldNow?: () => Promise<void>,
  scratch?: Buffer,
  scheme: IdentityScheme = 'sha256',
): Promise<{ ids: FileIds; content?: CaptureContent }> {
  let fd: number | undefined = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    if (size <= limits.smallBytes) {
      let bytes = readSmall(fd, size, scratch)
      const rawId = await idOf(scheme, bytes)
      if (!isGzip(bytes)) {
        // The content is handed over: not the scratch buffer's bytes (a file rewritten while read).
        if (bytes.buffer === scratch?.buffer) bytes = Buffer.from(bytes)
        return { ids: { id: rawId, rawId }, content: { data: bytes, gzip: false, fileBytes: bytes.length } }
      }
      let out: Buffer | undefined
      const bound = Math.max(1, Math.min(limits.graceBytes, limits.maxBytes))
      try {
        out = gunzipSync(bytes, {
          maxOutputLength: bound,
          chunkSize: scratch ? gunzipChunk(bytes, bound, limits.gunzipChunkBytes) : limits.gunzipChunkBytes,
        })
      } catch {
        // Past the one-call bound, or not gzip after all: the stream decides.
      }
      if (out !== undefined) {
        const ids = { id: await idOf(scheme, out), rawId }
        return { ids, content: { data: out, gzip: true, fileBytes: bytes.length } }
      }
      // The stream reads the bytes after this returns: not the scratch buffer's.
      if (bytes.buffer === scratch?.buffer) bytes = Buffer.from(bytes)
      return { ids: { id: (await gunzippedId([bytes], limits, scheme)) ?? rawId, rawId } }
    }
    const raw = await newHasher(scheme)
    // The next chunk is read (libuv's pool) while this one is hashed: read-then-hash in turn
    // took 2.0 s for the 20M-packet bench capture (2.7 GB; 0.68 s of it reading), and a big
    // file's first insert waits for its identity (its batch tokens name it).
    let current = Buffer.allocUnsafe(READ_CHUNK_BYTES)
    let next = Buffer.allocUnsafe(READ_CHUNK_BYTES)
    let position = 0
    let reading = readAt(fd, current, position)
    let gzip = false
    let first = true
    try {
      for (;;) {
        const n = await reading
        if (n === 0) break
        position += n
        reading = readAt(fd, next, position)
        const chunk = current.subarray(0, n)
        if (first) gzip = isGzip(chunk)
        first = false
        raw.update(chunk)
        ;[current, next] = [next, current]
        if (yieldNow) await yieldNow()
      }
    } finally {
      // Never close the descriptor under a read still in flight (this one may have settled).
      await reading.catch(() => 0)
    }
    const rawId = raw.id()
    if (!gzip) return { ids: { id: rawId, rawId } }
    closeSync(fd)
    fd = undefined
    // Second pass for the decompressed content: the compressed bytes come from the page cache.
    const id = await gunzippedId(createReadStream(path, { highWaterMark: 1 << 20 }), limits, scheme)
    return { ids: { id: id ?? rawId, rawId } }
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd)
      } catch {
        // Already failing or done: nothing to add.
      }
    }
  }
}
