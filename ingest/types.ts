import type { CaptureFrame, Frame } from '../core/event.js'

export type CaptureFormat = 'pcap' | 'pcapng'

/** What one `readCapture` call saw. */
export interface CaptureStats {
  format: CaptureFormat
  /** The file was gzip-compressed (detected from its bytes, not its name). */
  gzip: boolean
  /** Packet records delivered to `onFrame`. */
  records: number
  /** Bytes of the (decompressed) capture stream consumed. */
  bytes: number
  /** LINKTYPE_* values declared by the file header or the pcapng IDBs, in order of first appearance. */
  linkTypes: number[]
  /** Records whose captured length exceeds their original length (tolerated, delivered as is). */
  caplenExceedsOriginal: number
  /** pcapng blocks skipped because teiten has no use for them (NRB, ISB, DSB, custom, unknown). */
  skippedBlocks: number
  /** pcapng sections (Section Header Blocks) seen; 1 for classic pcap. */
  sections: number
}

export interface ReadCaptureOptions {
  /**
   * Upper bound on a classic pcap record's captured length and on a pcapng block's total length.
   * Anything longer is treated as corruption instead of being buffered.
   */
  maxRecordBytes?: number
  signal?: AbortSignal
  /** Called once per chunk read from disk with the bytes of the file read so far (compressed bytes for gzip). */
  onProgress?: (bytesReadOfFile: number) => void
  /** Once past the grace size, decompressed bytes may not exceed this multiple of the compressed bytes consumed. */
  maxGzipRatio?: number
  /** Absolute cap on decompressed bytes. */
  maxGzipBytes?: number
  /**
   * Awaited after each chunk's complete records were delivered, before more is read: lets a
   * consumer with asynchronous work (batched inserts) hold the reader back.
   */
  afterChunk?: () => void | Promise<void>
  /** Read size from disk (and gunzip output size). Tests set it tiny to force records across chunk boundaries. */
  chunkBytes?: number
  /**
   * The file's capture, already read (and gunzipped) by whoever hashed it (the hashing worker,
   * pipeline/identity.ts): parsed instead of the file, which is then not opened. Used only when
   * it is within this read's gzip limits.
   */
  content?: CaptureContent
}

/** A small capture file in memory: its decompressed stream and what it took on disk. */
export interface CaptureContent {
  /** The capture stream: the file's bytes, or what they decompress to. */
  data: Buffer
  /** The file was gzip (by its magic bytes). */
  gzip: boolean
  /** Size of the file on disk (progress is reported in file bytes). */
  fileBytes: number
}

/** Shared by the format decoders: where frames go and what they count. */
export interface DecoderContext {
  readonly file: string
  /** The one Frame of this file, mutated per record. */
  readonly frame: CaptureFrame
  readonly onFrame: (frame: Frame) => void
  readonly stats: CaptureStats
  readonly maxRecordBytes: number
}

/**
 * A format's framing, split so that the framer can resume a unit (header, record or block) that
 * straddles two chunks: `need` says how many bytes the unit at `pos` spans (or how many it must
 * see to find out), `unit` consumes one complete unit, `run` consumes as many complete units as a
 * chunk holds and returns where the first incomplete one starts.
 *
 * `need` must not change state: it may be asked again about the same unit once more bytes arrived.
 * `offset` is the stream offset of `buf[pos]`, for error reports.
 */
export interface RecordDecoder {
  need(buf: Buffer, pos: number, avail: number, offset: number): number
  unit(buf: Buffer, pos: number, length: number, offset: number): void
  run(buf: Buffer, pos: number, end: number, base: number): number
}
