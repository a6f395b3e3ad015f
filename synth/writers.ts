/**
 * Streaming capture writers: classic pcap (all four magics) and pcapng (several sections of
 * either byte order, several interfaces with their own link type and if_tsresol, Enhanced and
 * Simple Packet Blocks, any other block), plain or gzip'd.
 *
 * Records are appended synchronously into one large reusable buffer; the caller awaits
 * `flush()` whenever `shouldFlush` says so (a few times per 4 MiB), which is when bytes reach
 * the file, through gzip when asked. Memory stays flat however large the file grows.
 *
 * Formats: https://www.tcpdump.org/manpages/pcap-savefile.5.html and
 * https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ (block and option numbers below).
 */
import { closeSync, createWriteStream, openSync, writeSync } from 'node:fs'
import { finished } from 'node:stream/promises'
import { createGzip, type Gzip } from 'node:zlib'
import { TeitenError } from '../core/errors.js'

/**
 * Reusable record buffers: a generator writing thousands of files in turn hands each file's
 * buffers back here instead of leaving megabytes per file to the garbage collector.
 */
export class BufferPool {
  private free: Buffer[] = []
  constructor(private readonly max = 16) {}
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length === size)
    return i >= 0 ? this.free.splice(i, 1)[0] : Buffer.allocUnsafe(size)
  }
  give(buf: Buffer): void {
    if (this.free.length < this.max) this.free.push(buf)
  }
}

export interface OutputOptions {
  /** gzip the whole file (one gzip member). */
  gzip?: boolean
  /** zlib level 1-9 when gzip is on; 6 (zlib's default) unless told. */
  gzipLevel?: number
  /** Size of the reusable record buffer; 4 MiB unless told. */
  bufferSize?: number
  /** Where record buffers come from and go back to when the file is closed. */
  bufferPool?: BufferPool
}

const DEFAULT_BUFFER = 4 << 20
/** Headroom kept free so that any single record (at most 256 KiB + headers) fits. */
const MAX_RECORD = 262_144 + 1024

interface ByteSink {
  /** True when write() has consumed the chunk by the time it returns. */
  readonly synchronous: boolean
  write(chunk: Buffer): Promise<void>
  close(): Promise<void>
}

/** Plain file: synchronous writes of whole chunks on an fd (the chunk is reused right after). */
class FdSink implements ByteSink {
  readonly synchronous = true
  private fd: number
  constructor(path: string) {
    this.fd = openSync(path, 'w')
  }
  write(chunk: Buffer): Promise<void> {
    let done = 0
    while (done < chunk.length) done += writeSync(this.fd, chunk, done, chunk.length - done)
    return Promise.resolve()
  }
  close(): Promise<void> {
    closeSync(this.fd)
    return Promise.resolve()
  }
}

/** gzip: each write resolves once zlib has consumed the chunk, so the caller may reuse it. */
class GzipSink implements ByteSink {
  readonly synchronous = false
  private gz: Gzip
  private file: ReturnType<typeof createWriteStream>
  private error: Error | null = null
  constructor(path: string, level: number) {
    this.gz = createGzip({ level, chunkSize: 256 << 10 })
    this.file = createWriteStream(path)
    this.gz.pipe(this.file)
    const keep = (err: Error) => {
      this.error ??= err
    }
    this.gz.on('error', keep)
    this.file.on('error', keep)
  }
  write(chunk: Buffer): Promise<void> {
    if (this.error) return Promise.reject(this.error)
    return new Promise((resolve, reject) => {
      this.gz.write(chunk, (err) => (err ? reject(err) : this.error ? reject(this.error) : resolve()))
    })
  }
  async close(): Promise<void> {
    this.gz.end()
    await finished(this.file)
    if (this.error) throw this.error
  }
}

/** A buffered byte stream to one file; the writers below append records to it. */
export class CaptureOutput {
  buf: Buffer
  pos = 0
  /** Uncompressed bytes handed to the file so far (plus what is buffered). */
  private flushed = 0
  private sink: ByteSink
  private closed = false
  /** gzip: the chunk being compressed while the other buffer fills (double buffering). */
  private pending: Promise<void> | null = null
  private spare: Buffer | null = null
  private failure: unknown = null

  private readonly pool: BufferPool | null

  constructor(
    readonly path: string,
    opts: OutputOptions = {},
  ) {
    const size = Math.max(opts.bufferSize ?? DEFAULT_BUFFER, 2 * MAX_RECORD)
    this.pool = opts.bufferPool ?? null
    this.buf = this.pool ? this.pool.take(size) : Buffer.allocUnsafe(size)
    this.sink = opts.gzip ? new GzipSink(path, opts.gzipLevel ?? 6) : new FdSink(path)
  }

  /** Returns the offset at which `n` bytes may be written; the caller then advances `pos`. */
  reserve(n: number): number {
    if (this.closed) throw new TeitenError('BAD_PARAMETER', 'write after close', { file: this.path })
    if (this.pos + n > this.buf.length) {
      // The caller ignored shouldFlush: grow instead of corrupting (rare, bounded by the caller).
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
      this.buf.copy(bigger, 0, 0, this.pos)
      this.buf = bigger
    }
    return this.pos
  }

  get shouldFlush(): boolean {
    return this.pos > this.buf.length - MAX_RECORD
  }

  get bytes(): number {
    return this.flushed + this.pos
  }

  async flush(): Promise<void> {
    if (this.pos === 0) return
    const n = this.pos
    if (this.sink.synchronous) {
      await this.sink.write(this.buf.subarray(0, n))
    } else {
      // Compression of this chunk overlaps with filling the other buffer; only one is in flight.
      await this.settle()
      this.pending = this.sink.write(this.buf.subarray(0, n)).catch((err: unknown) => {
        this.failure ??= err
      })
      const next = this.spare ?? (this.pool ? this.pool.take(this.buf.length) : Buffer.allocUnsafe(this.buf.length))
      this.spare = this.buf
      this.buf = next
    }
    this.flushed += n
    this.pos = 0
  }

  private async settle(): Promise<void> {
    if (this.pending) {
      await this.pending
      this.pending = null
    }
    if (this.failure !== null) throw this.failure
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.flush()
    await this.settle()
    this.closed = true
    await this.sink.close()
    if (this.pool) {
      this.pool.give(this.buf)
      if (this.spare) this.pool.give(this.spare)
    }
    this.spare = null
  }
}

/** The part of a writer the corpus generator drives. */
export interface PacketWriter {
  readonly records: number
  readonly shouldFlush: boolean
  flush(): Promise<void>
  close(): Promise<void>
}

/**
 * Copies a record's bytes without allocating: a subarray view per record would cost a garbage
 * collection every few hundred thousand packets.
 */
function copyBytes(src: Uint8Array, offset: number, length: number, dst: Buffer, at: number): void {
  if (offset === 0 && length === src.length) {
    dst.set(src, at)
  } else if (length <= 256) {
    for (let i = 0; i < length; i++) dst[at + i] = src[offset + i]
  } else {
    dst.set(src.subarray(offset, offset + length), at)
  }
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

export interface PcapOptions extends OutputOptions {
  linkType: number
  /** Nanosecond magic 0xa1b23c4d instead of microseconds 0xa1b2c3d4. */
  nanos?: boolean
  bigEndian?: boolean
  snaplen?: number
}

export const PCAP_MAGIC_MICROS = 0xa1b2c3d4
export const PCAP_MAGIC_NANOS = 0xa1b23c4d

export class PcapWriter implements PacketWriter {
  records = 0
  private readonly nanos: boolean
  private readonly be: boolean

  constructor(
    private readonly out: CaptureOutput,
    opts: PcapOptions,
  ) {
    this.nanos = opts.nanos ?? false
    this.be = opts.bigEndian ?? false
    const at = out.reserve(24)
    const b = out.buf
    this.u32(b, this.nanos ? PCAP_MAGIC_NANOS : PCAP_MAGIC_MICROS, at)
    this.u16(b, 2, at + 4)
    this.u16(b, 4, at + 6)
    this.u32(b, 0, at + 8) // thiszone: timestamps are UTC
    this.u32(b, 0, at + 12) // sigfigs
    this.u32(b, opts.snaplen ?? 262_144, at + 16)
    this.u32(b, opts.linkType, at + 20)
    out.pos = at + 24
  }

  static open(path: string, opts: PcapOptions): PcapWriter {
    return new PcapWriter(new CaptureOutput(path, opts), opts)
  }

  private u32(b: Buffer, v: number, at: number): void {
    if (this.be) b.writeUInt32BE(v >>> 0, at)
    else b.writeUInt32LE(v >>> 0, at)
  }

  private u16(b: Buffer, v: number, at: number): void {
    if (this.be) b.writeUInt16BE(v, at)
    else b.writeUInt16LE(v, at)
  }

  /** Appends one record: the first `caplen` bytes of data[offset..] of a frame of `origlen`. */
  writePacket(tsSec: number, tsNanos: number, data: Uint8Array, offset: number, caplen: number, origlen: number): void {
    const out = this.out
    const at = out.reserve(16 + caplen)
    const b = out.buf
    this.u32(b, tsSec, at)
    this.u32(b, this.nanos ? tsNanos : Math.floor(tsNanos / 1000), at + 4)
    this.u32(b, caplen, at + 8)
    this.u32(b, origlen, at + 12)
    copyBytes(data, offset, caplen, b, at + 16)
    out.pos = at + 16 + caplen
    this.records++
  }

  get shouldFlush(): boolean {
    return this.out.shouldFlush
  }

  get bytes(): number {
    return this.out.bytes
  }

  flush(): Promise<void> {
    return this.out.flush()
  }

  close(): Promise<void> {
    return this.out.close()
  }
}

// ---------------------------------------------------------------------------------------------
// pcapng

export const BLOCK_SHB = 0x0a0d0d0a
export const BLOCK_IDB = 0x00000001
export const BLOCK_SPB = 0x00000003
export const BLOCK_NRB = 0x00000004
export const BLOCK_ISB = 0x00000005
export const BLOCK_EPB = 0x00000006
/** Custom blocks: readers that do not know the Private Enterprise Number skip them. */
export const BLOCK_CUSTOM_COPY = 0x00000bad
export const BLOCK_CUSTOM_NOCOPY = 0x40000bad
const BYTE_ORDER_MAGIC = 0x1a2b3c4d

/** if_tsresol: units of 10^-exponent or 2^-exponent seconds. */
export interface TsResolution {
  base: 10 | 2
  exponent: number
}

export interface PcapngInterfaceOptions {
  linkType: number
  /** 0 means no limit. */
  snaplen?: number
  /** Absent means the default, microseconds (and no if_tsresol option is written). */
  tsresol?: TsResolution
  name?: string
  description?: string
}

export interface PcapngSectionOptions {
  bigEndian?: boolean
  interfaces: readonly PcapngInterfaceOptions[]
  hardware?: string
  os?: string
  userAppl?: string
  comment?: string
}

interface IfaceState {
  snaplen: number
  base: 10 | 2
  exponent: number
  /** Units per second (at most 2^32, so every product below stays exact). */
  perSecond: number
}

const TWO32 = 4294967296

export class PcapngWriter implements PacketWriter {
  records = 0
  private be = false
  private ifaces: IfaceState[] = []
  private inSection = false

  constructor(private readonly out: CaptureOutput) {}

  static open(path: string, opts: OutputOptions = {}): PcapngWriter {
    return new PcapngWriter(new CaptureOutput(path, opts))
  }

  get shouldFlush(): boolean {
    return this.out.shouldFlush
  }

  get bytes(): number {
    return this.out.bytes
  }

  /** Number of interfaces of the current section. */
  get interfaceCount(): number {
    return this.ifaces.length
  }

  flush(): Promise<void> {
    return this.out.flush()
  }

  close(): Promise<void> {
    return this.out.close()
  }

  private u32(v: number, at: number): void {
    if (this.be) this.out.buf.writeUInt32BE(v >>> 0, at)
    else this.out.buf.writeUInt32LE(v >>> 0, at)
  }

  private u16(v: number, at: number): void {
    if (this.be) this.out.buf.writeUInt16BE(v, at)
    else this.out.buf.writeUInt16LE(v, at)
  }

  /** Writes a block whose body (between the type/length header and the trailing length) is `body`. */
  private block(type: number, bodyLength: number, writeBody: (at: number) => void): void {
    const total = 12 + ((bodyLength + 3) & ~3)
    const at = this.out.reserve(total)
    this.u32(type, at)
    this.u32(total, at + 4)
    writeBody(at + 8)
    this.out.buf.fill(0, at + 8 + bodyLength, at + total - 4)
    this.u32(total, at + total - 4)
    this.out.pos = at + total
  }

  /** Options area: [code, value] pairs, each padded to 32 bits, then opt_endofopt. */
  private optionsLength(opts: ReadonlyArray<readonly [number, Uint8Array]>): number {
    if (opts.length === 0) return 0
    let n = 4
    for (const [, v] of opts) n += 4 + ((v.length + 3) & ~3)
    return n
  }

  private writeOptions(opts: ReadonlyArray<readonly [number, Uint8Array]>, at: number): number {
    if (opts.length === 0) return at
    let p = at
    const b = this.out.buf
    for (const [code, v] of opts) {
      this.u16(code, p)
      this.u16(v.length, p + 2)
      b.set(v, p + 4)
      const padded = (v.length + 3) & ~3
      b.fill(0, p + 4 + v.length, p + 4 + padded)
      p += 4 + padded
    }
    this.u32(0, p)
    return p + 4
  }

  /** Starts a section: Section Header Block in the chosen byte order, then one IDB per interface. */
  startSection(o: PcapngSectionOptions): void {
    this.be = o.bigEndian ?? false
    const text = (s: string) => Buffer.from(s, 'utf8')
    const shbOpts: Array<[number, Uint8Array]> = []
    if (o.comment) shbOpts.push([1, text(o.comment)])
    if (o.hardware) shbOpts.push([2, text(o.hardware)])
    if (o.os) shbOpts.push([3, text(o.os)])
    if (o.userAppl) shbOpts.push([4, text(o.userAppl)])
    this.block(BLOCK_SHB, 16 + this.optionsLength(shbOpts), (at) => {
      this.u32(BYTE_ORDER_MAGIC, at)
      this.u16(1, at + 4)
      this.u16(0, at + 6)
      // Section length unknown (-1): the writer streams.
      this.out.buf.fill(0xff, at + 8, at + 16)
      this.writeOptions(shbOpts, at + 16)
    })
    this.ifaces = []
    for (const iface of o.interfaces) this.addInterface(iface)
    this.inSection = true
  }

  /** Adds an Interface Description Block to the current section; returns its interface id. */
  addInterface(iface: PcapngInterfaceOptions): number {
    const opts: Array<[number, Uint8Array]> = []
    if (iface.name) opts.push([2, Buffer.from(iface.name, 'utf8')])
    if (iface.description) opts.push([3, Buffer.from(iface.description, 'utf8')])
    const base = iface.tsresol?.base ?? 10
    const exponent = iface.tsresol?.exponent ?? 6
    if (iface.tsresol) {
      if (base === 10 && !(Number.isInteger(exponent) && exponent >= 0 && exponent <= 9)) {
        throw new TeitenError('BAD_PARAMETER', 'if_tsresol 10^-e needs e in 0..9')
      }
      if (base === 2 && !(Number.isInteger(exponent) && exponent >= 0 && exponent <= 32)) {
        throw new TeitenError('BAD_PARAMETER', 'if_tsresol 2^-e needs e in 0..32')
      }
      opts.push([9, Uint8Array.of(base === 2 ? 0x80 | exponent : exponent)])
    }
    const snaplen = iface.snaplen ?? 262_144
    this.block(BLOCK_IDB, 8 + this.optionsLength(opts), (at) => {
      this.u16(iface.linkType, at)
      this.u16(0, at + 2)
      this.u32(snaplen, at + 4)
      this.writeOptions(opts, at + 8)
    })
    this.ifaces.push({ snaplen, base, exponent, perSecond: base === 10 ? 10 ** exponent : 2 ** exponent })
    return this.ifaces.length - 1
  }

  /** The last timestampUnits result, as the high and low 32 bits (no tuple per packet). */
  private tsHi = 0
  private tsLo = 0

  /** Timestamp in the interface's units, floored, exact for any 32-bit second (no BigInt). */
  private timestampUnits(iface: IfaceState, tsSec: number, tsNanos: number): void {
    let frac: number
    if (iface.base === 10) frac = Math.floor(tsNanos / 10 ** (9 - iface.exponent))
    else if (iface.exponent <= 23) frac = Math.floor((tsNanos * iface.perSecond) / 1e9)
    else {
      // nanos * 2^e would pass 2^53: divide in two steps, each exact.
      const q = Math.floor((tsNanos * 8_388_608) / 1e9)
      const r = tsNanos * 8_388_608 - q * 1e9
      const m = 2 ** (iface.exponent - 23)
      frac = q * m + Math.floor((r * m) / 1e9)
    }
    // sec * perSecond + frac, with perSecond split in 16-bit halves so no product passes 2^53.
    const rHi = Math.floor(iface.perSecond / 65_536)
    const rLo = iface.perSecond % 65_536
    const a = tsSec * rHi
    const low = (a % 65_536) * 65_536 + tsSec * rLo + frac
    this.tsLo = low % TWO32
    this.tsHi = Math.floor(a / 65_536) + Math.floor(low / TWO32)
  }

  private iface(id: number): IfaceState {
    if (!this.inSection) throw new TeitenError('BAD_PARAMETER', 'pcapng packet before any section')
    const s = this.ifaces[id]
    if (!s) throw new TeitenError('BAD_PARAMETER', `pcapng interface ${id} not described in this section`)
    return s
  }

  /** Enhanced Packet Block on interface `ifaceId`; `flags` becomes epb_flags, `comment` opt_comment. */
  writePacket(
    ifaceId: number,
    tsSec: number,
    tsNanos: number,
    data: Uint8Array,
    offset: number,
    caplen: number,
    origlen: number,
    extra?: { flags?: number; comment?: string },
  ): void {
    const iface = this.iface(ifaceId)
    this.timestampUnits(iface, tsSec, tsNanos)
    const hi = this.tsHi
    const lo = this.tsLo
    let opts: Array<[number, Uint8Array]> | null = null
    if (extra && (extra.flags !== undefined || extra.comment !== undefined)) {
      opts = []
      if (extra.comment !== undefined) opts.push([1, Buffer.from(extra.comment, 'utf8')])
      if (extra.flags !== undefined) {
        const f = Buffer.alloc(4)
        if (this.be) f.writeUInt32BE(extra.flags >>> 0)
        else f.writeUInt32LE(extra.flags >>> 0)
        opts.push([2, f])
      }
    }
    const padded = (caplen + 3) & ~3
    const optLen = opts ? this.optionsLength(opts) : 0
    const total = 32 + padded + optLen
    const at = this.out.reserve(total)
    const b = this.out.buf
    this.u32(BLOCK_EPB, at)
    this.u32(total, at + 4)
    this.u32(ifaceId, at + 8)
    this.u32(hi, at + 12)
    this.u32(lo, at + 16)
    this.u32(caplen, at + 20)
    this.u32(origlen, at + 24)
    copyBytes(data, offset, caplen, b, at + 28)
    b.fill(0, at + 28 + caplen, at + 28 + padded)
    if (opts) this.writeOptions(opts, at + 28 + padded)
    this.u32(total, at + total - 4)
    this.out.pos = at + total
    this.records++
  }

  /**
   * Simple Packet Block: no interface id (it is interface 0 of the section) and no timestamp;
   * the captured length is min(origlen, interface 0's snaplen), implied by the block length.
   */
  writeSimplePacket(data: Uint8Array, offset: number, origlen: number): void {
    const iface = this.iface(0)
    const caplen = iface.snaplen > 0 ? Math.min(origlen, iface.snaplen) : origlen
    this.block(BLOCK_SPB, 4 + caplen, (at) => {
      this.u32(origlen, at)
      copyBytes(data, offset, caplen, this.out.buf, at + 4)
    })
    this.records++
  }

  /** Any block, e.g. a type no reader knows: readers must skip it by its length. */
  writeBlock(type: number, body: Uint8Array): void {
    this.block(type, body.length, (at) => {
      this.out.buf.set(body, at)
    })
  }

  /** Custom Block (copyable or not) with a Private Enterprise Number. */
  writeCustomBlock(pen: number, data: Uint8Array, copyable = true): void {
    this.block(copyable ? BLOCK_CUSTOM_COPY : BLOCK_CUSTOM_NOCOPY, 4 + data.length, (at) => {
      this.u32(pen, at)
      this.out.buf.set(data, at + 4)
    })
  }

  /** Name Resolution Block with IPv4 and IPv6 records. */
  writeNameResolution(entries: ReadonlyArray<{ address: Uint8Array; names: readonly string[] }>): void {
    const recs = entries.map((e) => {
      const names = Buffer.from(`${e.names.join('\0')}\0`, 'utf8')
      return { type: e.address.length === 4 ? 1 : 2, value: Buffer.concat([e.address, names]) }
    })
    let len = 4
    for (const r of recs) len += 4 + ((r.value.length + 3) & ~3)
    this.block(BLOCK_NRB, len, (at) => {
      let p = at
      for (const r of recs) {
        this.u16(r.type, p)
        this.u16(r.value.length, p + 2)
        this.out.buf.set(r.value, p + 4)
        const padded = (r.value.length + 3) & ~3
        this.out.buf.fill(0, p + 4 + r.value.length, p + 4 + padded)
        p += 4 + padded
      }
      this.u32(0, p)
    })
  }

  /** Interface Statistics Block (isb_ifrecv, isb_ifdrop). */
  writeInterfaceStatistics(ifaceId: number, tsSec: number, tsNanos: number, received: number, dropped: number): void {
    const iface = this.iface(ifaceId)
    this.timestampUnits(iface, tsSec, tsNanos)
    const hi = this.tsHi
    const lo = this.tsLo
    const u64 = (v: number) => {
      const b = Buffer.alloc(8)
      if (this.be) b.writeBigUInt64BE(BigInt(v))
      else b.writeBigUInt64LE(BigInt(v))
      return b
    }
    const opts: Array<[number, Uint8Array]> = [
      [4, u64(received)],
      [5, u64(dropped)],
    ]
    this.block(BLOCK_ISB, 12 + this.optionsLength(opts), (at) => {
      this.u32(ifaceId, at)
      this.u32(hi, at + 4)
      this.u32(lo, at + 8)
      this.writeOptions(opts, at + 12)
    })
  }
}
