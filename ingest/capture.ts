import type { FileHandle } from 'node:fs/promises'
import { readFileSync, statSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, gunzipSync } from 'node:zlib'
import { CaptureFrame, type Frame } from '../core/event.js'
import { TeitenError, wrapError } from '../core/errors.js'
import { Framer } from './framer.js'
import type { CaptureContent, CaptureStats, DecoderContext, ReadCaptureOptions } from './types.js'

export type { CaptureContent, CaptureFormat, CaptureStats, ReadCaptureOptions } from './types.js'

/** 256 KiB is libpcap's MAXIMUM_SNAPLEN; the rest is room for pcapng block overhead and options. */
export const DEFAULT_MAX_RECORD_BYTES = 262144 + 65536
export const DEFAULT_MAX_GZIP_RATIO = 1000
export const DEFAULT_MAX_GZIP_BYTES = 64 * 1024 ** 3
/** The ratio check starts once this much was decompressed: tiny files legitimately compress a lot. */
export const GZIP_RATIO_GRACE_BYTES = 8 * 1024 * 1024
/**
 * Read size of the streaming reader. The read (libuv's pool) copies from the page cache into a
 * buffer the decoder then walks: at 256 KiB both stay in cache. Reading and decoding the 2.7 GB
 * bench capture, three runs each: 3.2-3.5 CPU s at 256 KiB against 4.0-4.8 at 2 MiB (the pool's
 * reads ~0.7 s against ~1.7; the decoding thread the same), 3.7-4.2 at 128 KiB.
 */
const DEFAULT_CHUNK_BYTES = 256 * 1024
/** Piece size for framing a capture already in memory (a small file, a hand-over): one piece per hourly file. */
const MEMORY_CHUNK_BYTES = 2 * 1024 * 1024
/** A failing inflate call loses its output (Node zlib does not push it): keep those calls small. */
const GUNZIP_CHUNK_BYTES = 64 * 1024

/**
 * Streams a pcap or pcapng capture, plain or gzip-compressed, and calls `onFrame` once per
 * packet record, in file order. The format is detected from the bytes, never the name.
 *
 * `onFrame` receives the same Frame object every time; `frame.data` is a view into the read
 * buffer, valid only during the call (copy what you keep).
 *
 * Errors are TeitenErrors naming the file and the byte offset of the faulty header or record in
 * the (decompressed) stream, thrown after every complete record before the fault was delivered.
 * A 0-byte file is CAPTURE_TRUNCATED at offset 0; a pcap with only its file header, or a pcapng
 * with only headers, is a valid capture of zero records. An error thrown by `onFrame` ends the
 * read and is rethrown as is; an aborted `signal` rejects with its reason.
 */
export async function readCapture(
  path: string,
  onFrame: (frame: Frame) => void,
  options: ReadCaptureOptions = {},
): Promise<CaptureStats> {
  const chunkBytes = Math.max(1, options.chunkBytes ?? DEFAULT_CHUNK_BYTES)
  const { stats, framer } = begin(path, onFrame, options)
  options.signal?.throwIfAborted()

  // Bytes already in memory are framed in larger pieces: no read to keep in cache.
  const memoryChunkBytes = Math.max(1, options.chunkBytes ?? MEMORY_CHUNK_BYTES)
  const content = options.content
  if (content !== undefined && (!content.gzip || content.data.length <= smallGunzipLimit(options))) {
    return readContent(content, stats, framer, memoryChunkBytes, options)
  }
  const small = readSmallFile(path)
  if (small !== undefined) return readSmall(small, path, stats, framer, memoryChunkBytes, options)

  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw wrapError(err, 'CAPTURE_READ_FAILED', { file: path, offset: 0 })
  }
  try {
    // Read buffers no larger than the file: two 2 MiB buffers per file made a spool of 7,700
    // hourly files (~30 KB each) allocate 30 GB, and V8 spent more CPU collecting it (its GC
    // threads: 56% of the run's samples) than teiten spent reading.
    const size = await fh.stat().then(
      (st) => st.size,
      () => chunkBytes,
    )
    const bufBytes = Math.max(2, Math.min(chunkBytes, size + 1))
    const buf = Buffer.allocUnsafe(bufBytes)
    const first = await readAt(fh, buf, 0, path)
    if (first >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
      stats.gzip = true
      const input = fh.createReadStream({ start: 0, highWaterMark: bufBytes, autoClose: false })
      await readGzip(input, framer, chunkBytes, options, path)
    } else {
      await readPlain(fh, buf, first, framer, options, path)
    }
    framer.end()
    stats.bytes = framer.bytes
    return stats
  } finally {
    await fh.close().catch(() => {})
  }
}

/**
 * Files up to this size are read in one synchronous call, and gunzipped in one when the output
 * stays within every limit (else the streaming path decides, with its exact semantics). A
 * spool of 7,700 hourly files (~20-60 KB each) spent ~0.35 ms per file in the five
 * asynchronous round trips of the streaming path (open, stat, read, read, close) and in the
 * gunzip stream machinery, more than decoding the file's packets (2M-packet split: 9.9 s ->
 * 7.1 s for the whole ingest).
 */
export const SMALL_FILE_BYTES = 1 << 20

/**
 * Output chunk of the one-call gunzip of a small file. Node's default (16 KiB) makes an hourly
 * file (~350 KB decompressed) ~22 chunks to allocate and join: 300 files of the bench spool
 * gunzipped in 158-194 ms at 16 KiB, 149-154 ms at 256 KiB, 138-148 ms at 1 MiB (which also
 * allocates 1 MiB for every file). The hashing worker uses it too (pipeline/identity.ts).
 */
export const SMALL_GUNZIP_CHUNK_BYTES = 256 << 10

function readSmallFile(path: string): Buffer | undefined {
  let size: number
  try {
    const st = statSync(path)
    if (!st.isFile()) return undefined
    size = st.size
  } catch {
    return undefined // the streaming path reports it
  }
  if (size > SMALL_FILE_BYTES) return undefined
  try {
    return readFileSync(path)
  } catch (err) {
    throw wrapError(err, 'CAPTURE_READ_FAILED', { file: path, offset: 0 })
  }
}

async function readSmall(
  bytes: Buffer,
  path: string,
  stats: CaptureStats,
  framer: Framer,
  chunkBytes: number,
  options: ReadCaptureOptions,
): Promise<CaptureStats> {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    stats.gzip = true
    let data: Buffer
    try {
      data = gunzipSync(bytes, { maxOutputLength: smallGunzipLimit(options), chunkSize: SMALL_GUNZIP_CHUNK_BYTES })
    } catch {
      // Corrupt, or beyond a limit: the stream delivers every complete record before the fault.
      const chunks: Buffer[] = []
      for (let at = 0; at < bytes.length; at += chunkBytes) chunks.push(bytes.subarray(at, at + chunkBytes))
      await readGzip(Readable.from(chunks), framer, chunkBytes, options, path)
      framer.end()
      stats.bytes = framer.bytes
      return stats
    }
    return readContent({ data, gzip: true, fileBytes: bytes.length }, stats, framer, chunkBytes, options)
  }
  return readContent({ data: bytes, gzip: false, fileBytes: bytes.length }, stats, framer, chunkBytes, options)
}

/** A small capture in memory (read here, or by the hashing worker): progress in file bytes. */
function readContent(
  content: CaptureContent,
  stats: CaptureStats,
  framer: Framer,
  chunkBytes: number,
  options: ReadCaptureOptions,
): Promise<CaptureStats> {
  stats.gzip = content.gzip
  if (content.gzip) options.onProgress?.(content.fileBytes)
  return pushAll(content.data, !content.gzip, stats, framer, chunkBytes, options)
}

/** Output bound of a one-call gunzip: past it, the streaming path applies the ratio limit. */
function smallGunzipLimit(options: ReadCaptureOptions): number {
  return Math.max(1, Math.min(GZIP_RATIO_GRACE_BYTES, options.maxGzipBytes ?? DEFAULT_MAX_GZIP_BYTES))
}

/** A capture stream in memory, framed chunk by chunk (`fileOffsets`: progress is its own offsets). */
async function pushAll(
  data: Buffer,
  fileOffsets: boolean,
  stats: CaptureStats,
  framer: Framer,
  chunkBytes: number,
  options: ReadCaptureOptions,
): Promise<CaptureStats> {
  for (let at = 0; at < data.length; at += chunkBytes) {
    const end = Math.min(data.length, at + chunkBytes)
    if (fileOffsets) options.onProgress?.(end)
    framer.push(data.subarray(at, end))
    if (options.afterChunk) await options.afterChunk()
    options.signal?.throwIfAborted()
  }
  framer.end()
  stats.bytes = framer.bytes
  return stats
}

/**
 * readCapture over bytes in memory (fuzzing, tests): the same framer, decoders and gzip limits,
 * no file. `name` stands for the path in errors.
 */
export async function readCaptureBuffer(
  bytes: Buffer,
  name: string,
  onFrame: (frame: Frame) => void,
  options: ReadCaptureOptions = {},
): Promise<CaptureStats> {
  const chunkBytes = Math.max(1, options.chunkBytes ?? MEMORY_CHUNK_BYTES)
  const { stats, framer } = begin(name, onFrame, options)
  options.signal?.throwIfAborted()
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    stats.gzip = true
    const chunks: Buffer[] = []
    for (let at = 0; at < bytes.length; at += chunkBytes) chunks.push(bytes.subarray(at, at + chunkBytes))
    await readGzip(Readable.from(chunks), framer, chunkBytes, options, name)
    framer.end()
    stats.bytes = framer.bytes
    return stats
  }
  return pushAll(bytes, true, stats, framer, chunkBytes, options)
}

function begin(
  path: string,
  onFrame: (frame: Frame) => void,
  options: ReadCaptureOptions,
): { stats: CaptureStats; framer: Framer } {
  const stats: CaptureStats = {
    format: 'pcap',
    gzip: false,
    records: 0,
    bytes: 0,
    linkTypes: [],
    caplenExceedsOriginal: 0,
    skippedBlocks: 0,
    sections: 0,
  }
  const frame = new CaptureFrame()
  const ctx: DecoderContext = {
    file: path,
    frame,
    onFrame,
    stats,
    maxRecordBytes: options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
  }
  return { stats, framer: new Framer(ctx) }
}

/**
 * Double-buffered: the next chunk is read (on the libuv pool) while the current one is decoded,
 * so decoding never waits for the disk when the disk keeps up. The framer copies what it keeps of
 * a chunk before returning, which is what makes handing the buffer back to the reader safe.
 */
async function readPlain(
  fh: FileHandle,
  first: Buffer,
  firstLength: number,
  framer: Framer,
  options: ReadCaptureOptions,
  path: string,
): Promise<void> {
  let cur: Buffer = first
  let spare: Buffer = Buffer.allocUnsafe(first.length)
  let n = firstLength
  let filePos = 0
  let pending: Promise<number> | undefined
  try {
    while (n > 0) {
      filePos += n
      options.onProgress?.(filePos)
      pending = readAt(fh, spare, filePos, path)
      framer.push(cur.subarray(0, n))
      if (options.afterChunk) await options.afterChunk()
      options.signal?.throwIfAborted()
      n = await pending
      pending = undefined
      const t = cur
      cur = spare
      spare = t
    }
  } finally {
    // Never leave a read in flight into a buffer (or on a handle) about to go away.
    if (pending) await pending.catch(() => 0)
  }
}

async function readAt(fh: FileHandle, buf: Buffer, position: number, path: string): Promise<number> {
  try {
    const { bytesRead } = await fh.read(buf, 0, buf.length, position)
    return bytesRead
  } catch (err) {
    throw wrapError(err, 'CAPTURE_READ_FAILED', { file: path, offset: position })
  }
}

/**
 * Gunzips as a stream (concatenated members are one stream, as with zcat). Offsets in errors are
 * decompressed-stream offsets. Bomb limits are enforced on the decompressed count as it grows: the
 * bytes up to the limit are still decoded, so complete records before it are delivered.
 */
async function readGzip(
  input: Readable,
  framer: Framer,
  chunkBytes: number,
  options: ReadCaptureOptions,
  path: string,
): Promise<void> {
  const maxRatio = options.maxGzipRatio ?? DEFAULT_MAX_GZIP_RATIO
  const maxBytes = options.maxGzipBytes ?? DEFAULT_MAX_GZIP_BYTES
  const signal = options.signal
  const gunzip = createGunzip({ chunkSize: Math.max(64, Math.min(chunkBytes, GUNZIP_CHUNK_BYTES)) })
  let compressedRead = 0
  let decompressed = 0
  // Errors raised while decoding (or by onFrame) are the caller's; everything else the
  // pipeline reports is about reading or inflating.
  let decodeError: unknown
  let readError: unknown

  const count = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of source) {
        compressedRead += chunk.length
        options.onProgress?.(compressedRead)
        yield chunk
      }
    } catch (err) {
      // A system error from the file; not the premature close the pipeline causes on its own.
      if ((err as NodeJS.ErrnoException).syscall !== undefined) readError = err
      throw err
    }
  }
  const decode = async (source: AsyncIterable<Buffer>): Promise<void> => {
    // Only what happens to a chunk is ours: an error out of the iteration itself is the
    // gunzip's or the file's and is classified below.
    for await (const chunk of source) {
      try {
        signal?.throwIfAborted()
        let allowed = maxBytes
        let why = `the limit of ${maxBytes} bytes`
        if (decompressed + chunk.length > GZIP_RATIO_GRACE_BYTES) {
          const ratioLimit = Math.max(GZIP_RATIO_GRACE_BYTES, maxRatio * gunzip.bytesWritten)
          if (ratioLimit < allowed) {
            allowed = ratioLimit
            why = `${maxRatio} times the ${gunzip.bytesWritten} compressed bytes consumed`
          }
        }
        if (decompressed + chunk.length > allowed) {
          const keep = Math.max(0, allowed - decompressed)
          framer.push(chunk.subarray(0, keep))
          decompressed += keep
          throw new TeitenError('CAPTURE_GZIP_BOMB', `gzip stream expands beyond ${why}`, {
            file: path,
            offset: decompressed,
          })
        }
        decompressed += chunk.length
        framer.push(chunk)
        if (options.afterChunk) await options.afterChunk()
      } catch (err) {
        decodeError = err
        throw err
      }
    }
  }

  try {
    await pipeline(input, count, gunzip, decode, signal ? { signal } : {})
  } catch (err) {
    if (decodeError !== undefined) throw decodeError
    if (signal?.aborted) throw signal.reason
    if (readError !== undefined) throw wrapError(readError, 'CAPTURE_READ_FAILED', { file: path, offset: decompressed })
    const message = err instanceof Error ? err.message : String(err)
    throw new TeitenError(
      'CAPTURE_GZIP_CORRUPT',
      `gzip stream is corrupt (${message}) after ${decompressed} decompressed bytes`,
      { file: path, offset: decompressed },
      { cause: err },
    )
  }
}
