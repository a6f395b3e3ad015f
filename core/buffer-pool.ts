/**
 * Batch-sized buffers used again once their last reader is done, instead of a new one per batch.
 *
 * Why: every buffer of a batch (the encoder's 33 MiB of RowBinary, the store's 19 MB Native
 * block) was new memory outside V8's heap, and V8 answers that much external memory with a full
 * collection: the 20M-packet bench capture's ingest ran 51 mark-compacts on the main thread
 * (`node --trace-gc`), 5 with the two buffers reused; the pages of a fresh buffer are also
 * faulted in and zeroed by the kernel on first touch. The spool of 7,704 files, five runs each
 * interleaved with the build before: 27.1-31.6 s and 44.6-51.8 CPU s against 29.4-32.8 s and
 * 48.6-54.0 (faster in every pair); the single file: no difference the shared host resolves.
 * One buffer held per pool: the next batch takes it as soon as a write settles.
 */
export class BufferPool {
  private readonly free: Buffer[] = []
  /** Memory this pool made: give() takes back nothing else (not Node's shared small-buffer slabs). */
  private readonly made = new WeakSet<ArrayBufferLike>()
  private largest = 0

  /** `keep`: buffers held for reuse at most; more given back are left to the collector. */
  constructor(private readonly keep = 1) {}

  /**
   * `bytes` bytes: a view of a held buffer that is large enough, else of a new one as large as
   * the largest asked so far and an eighth more (so that one held buffer fits the batches after
   * it). Without the eighth, batches whose size creeps up (a spool's group inserts: each a few
   * KB larger than any before) each got a new buffer and left the held ones too small: the bench
   * spool made 25 encoder blocks (484 MB) where the single file makes 2; 12 (261 MB) with it.
   */
  take(bytes: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const held = this.free[i]!
      if (held.length >= bytes) {
        this.free.splice(i, 1)
        return held.subarray(0, bytes)
      }
    }
    this.largest = Math.max(this.largest, bytes)
    const made = Buffer.allocUnsafeSlow(this.largest + (this.largest >> 3))
    this.made.add(made.buffer)
    return made.subarray(0, bytes)
  }

  /**
   * Gives back a buffer take() returned (any view of it; other buffers are ignored). The caller
   * must not use it again.
   */
  give(view: Buffer): void {
    if (!this.made.has(view.buffer)) return
    const whole = Buffer.from(view.buffer, 0, view.buffer.byteLength)
    if (whole.length < this.largest || this.free.length >= this.keep) return
    if (this.free.some((held) => held.buffer === whole.buffer)) return
    this.free.push(whole)
  }

  /** Buffers held for reuse (tests). */
  get held(): number {
    return this.free.length
  }
}
