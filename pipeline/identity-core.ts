/*
 * A capture file's identity, computed the same way on the main thread and on the hashing worker
 * (pipeline/identity-worker.ts). This module imports only node: built-ins (and types, which
 * are erased) and uses only erasable TypeScript, so the worker can load it from dist/ and, in
 * the test runs, straight from the sources (Node 24 strips the types).
 *
 * The bomb bounds are the reader's (ingest/capture.ts readGzip): at most maxBytes, and past the
 * grace size at most maxRatio times the compressed bytes consumed so far. Small files are
 * gunzipped in one call, as the reader does; past its output bound the stream decides.
 */
import { createHash, type Hash } from 'node:crypto'
import { closeSync, createReadStream, fstatSync, openSync, read, readFileSync, readSync } from 'node:fs'
import { Readable } from 'node:stream'
import { createGunzip, gunzipSync } from 'node:zlib'
import type { CaptureContent } from '../ingest/types.js'

/**
 * - `id`: 128 bits of SHA-256 (hex) of the decompressed capture. For a plain file that is the
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

/** A file id's length: hex characters of its SHA-256. */
export const FILE_ID_CHARS = 32
const short = (hash: Hash): string => hash.digest('hex').slice(0, FILE_ID_CHARS)
const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

/** The hash of the decompressed stream, or undefined when it does not decompress within limits. */
async function gunzippedId(chunks: Iterable<Buffer> | AsyncIterable<Buffer>, limits: GzipLimits) {
  const hash = createHash('sha256')
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
  return short(hash)
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
): Promise<{ ids: FileIds; content?: CaptureContent }> {
  let fd: number | undefined = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    if (size <= limits.smallBytes) {
      let bytes = readSmall(fd, size, scratch)
      const rawId = short(createHash('sha256').update(bytes))
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
        const ids = { id: short(createHash('sha256').update(out)), rawId }
        return { ids, content: { data: out, gzip: true, fileBytes: bytes.length } }
      }
      // The stream reads the bytes after this returns: not the scratch buffer's.
      if (bytes.buffer === scratch?.buffer) bytes = Buffer.from(bytes)
      return { ids: { id: (await gunzippedId([bytes], limits)) ?? rawId, rawId } }
    }
    const raw = createHash('sha256')
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
    const rawId = short(raw)
    if (!gzip) return { ids: { id: rawId, rawId } }
    closeSync(fd)
    fd = undefined
    // Second pass for the decompressed content: the compressed bytes come from the page cache.
    const id = await gunzippedId(createReadStream(path, { highWaterMark: 1 << 20 }), limits)
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
