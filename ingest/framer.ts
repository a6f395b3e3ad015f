import { TeitenError } from '../core/errors.js'
import { u32be } from './bytes.js'
import { isPcapMagic, PcapDecoder } from './pcap.js'
import { PCAPNG_SHB, PcapngDecoder } from './pcapng.js'
import type { DecoderContext, RecordDecoder } from './types.js'

const EMPTY = Buffer.alloc(0)
const MIN_STASH = 64 * 1024

/** Leading bytes of every format we know, to tell a short file from a foreign one. */
const KNOWN_PREFIXES: readonly number[][] = [
  [0xa1, 0xb2, 0xc3, 0xd4],
  [0xd4, 0xc3, 0xb2, 0xa1],
  [0xa1, 0xb2, 0x3c, 0x4d],
  [0x4d, 0x3c, 0xb2, 0xa1],
  [0x0a, 0x0d, 0x0d, 0x0a],
  [0x1f, 0x8b],
]

/**
 * Turns a sequence of chunks into units for the format decoder. Units wholly inside a chunk are
 * decoded in place (zero copy); the one unit that straddles a chunk boundary is copied into the
 * stash, completed from the next chunk(s) and decoded from there. The stash never holds more
 * than one unit, so memory is bounded by the largest allowed record.
 */
export class Framer {
  private readonly ctx: DecoderContext
  private dec: RecordDecoder
  private stash: Buffer = EMPTY
  private stashLen = 0
  /** Stream offset of stash[0]. */
  private stashOffset = 0
  /** Stream offset of the next byte pushed. */
  private consumed = 0

  constructor(ctx: DecoderContext) {
    this.ctx = ctx
    this.dec = new Detector(this, ctx)
  }

  get bytes(): number {
    return this.consumed
  }

  setDecoder(dec: RecordDecoder): void {
    this.dec = dec
  }

  /** Decodes everything complete in `chunk`; keeps (copies) only an incomplete tail. */
  push(chunk: Buffer): void {
    const base = this.consumed
    const end = chunk.length
    this.consumed += end
    let pos = 0
    if (this.stashLen > 0) {
      pos = this.completeStash(chunk)
      if (pos < 0) return
    }
    pos = this.dec.run(chunk, pos, end, base)
    if (pos < end) {
      this.reserve(end - pos)
      chunk.copy(this.stash, 0, pos, end)
      this.stashLen = end - pos
      this.stashOffset = base + pos
    }
  }

  /** Call at end of stream: a leftover partial unit (or no bytes at all) means truncation. */
  end(): void {
    if (this.consumed === 0) {
      throw new TeitenError('CAPTURE_TRUNCATED', 'capture is empty (0 bytes)', { file: this.ctx.file, offset: 0 })
    }
    if (this.stashLen === 0) return
    const need = this.dec.need(this.stash, 0, this.stashLen, this.stashOffset)
    throw new TeitenError(
      'CAPTURE_TRUNCATED',
      `capture ends inside a header or record: ${this.stashLen} of ${need} bytes present`,
      { file: this.ctx.file, offset: this.stashOffset },
    )
  }

  /** Feeds the stashed partial unit from `chunk`; returns where in `chunk` to go on, or -1 if it is used up. */
  private completeStash(chunk: Buffer): number {
    let cpos = 0
    for (;;) {
      // Re-read `dec` each time: the detector replaces itself once it has seen the magic.
      const n = this.dec.need(this.stash, 0, this.stashLen, this.stashOffset)
      if (this.stashLen >= n) {
        this.dec.unit(this.stash, 0, n, this.stashOffset)
        this.stashLen -= n
        this.stashOffset += n
        if (this.stashLen === 0) return cpos
        this.stash.copyWithin(0, n, n + this.stashLen)
        continue
      }
      if (cpos === chunk.length) return -1
      const take = Math.min(n - this.stashLen, chunk.length - cpos)
      this.reserve(this.stashLen + take)
      chunk.copy(this.stash, this.stashLen, cpos, cpos + take)
      this.stashLen += take
      cpos += take
    }
  }

  private reserve(size: number): void {
    if (size <= this.stash.length) return
    const grown = Buffer.allocUnsafe(
      Math.max(size, MIN_STASH, Math.min(this.stash.length * 2, this.ctx.maxRecordBytes + 64)),
    )
    this.stash.copy(grown, 0, 0, this.stashLen)
    this.stash = grown
  }
}

/** The first decoder of every stream: reads the magic, installs the real decoder and hands over. */
class Detector implements RecordDecoder {
  private readonly framer: Framer
  private readonly ctx: DecoderContext

  constructor(framer: Framer, ctx: DecoderContext) {
    this.framer = framer
    this.ctx = ctx
  }

  need(buf: Buffer, pos: number, avail: number, offset: number): number {
    const dec = this.detect(buf, pos, avail, offset)
    return dec === null ? 4 : dec.need(buf, pos, avail, offset)
  }

  unit(): void {
    throw new Error('unreachable: the detector never owns a complete unit')
  }

  run(buf: Buffer, pos: number, end: number, base: number): number {
    const dec = this.detect(buf, pos, end - pos, base + pos)
    return dec === null ? pos : dec.run(buf, pos, end, base)
  }

  private detect(buf: Buffer, pos: number, avail: number, offset: number): RecordDecoder | null {
    if (avail < 4) {
      const known = KNOWN_PREFIXES.some((m) => m.slice(0, avail).every((byte, i) => buf[pos + i] === byte))
      if (!known) this.unknown(buf, pos, avail, offset)
      return null
    }
    const magic = u32be(buf, pos)
    let dec: RecordDecoder
    if (isPcapMagic(magic)) dec = new PcapDecoder(this.ctx)
    else if (magic === PCAPNG_SHB) dec = new PcapngDecoder(this.ctx)
    else this.unknown(buf, pos, 4, offset)
    this.framer.setDecoder(dec)
    return dec
  }

  private unknown(buf: Buffer, pos: number, avail: number, offset: number): never {
    const hex = buf.subarray(pos, pos + avail).toString('hex')
    throw new TeitenError(
      'CAPTURE_UNKNOWN_FORMAT',
      `not a pcap, pcapng or gzip capture (starts with ${hex || 'nothing'})`,
      { file: this.ctx.file, offset },
    )
  }
}
