/**
 * Builders for annotated capture and packet bytes, plus temp-file and collection helpers for
 * the ingest tests. Nothing binary is committed: every capture is generated here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Frame } from '../../core/event.js'
import { TeitenError } from '../../core/errors.js'
import { readCapture } from '../../ingest/capture.js'
import type { CaptureStats, ReadCaptureOptions } from '../../ingest/capture.js'

/**
 * Hex bytes with comments: `#` to end of line is ignored, as is whitespace. Interpolated values
 * may be Buffers (spliced in) or hex strings.
 */
export function hex(strings: TemplateStringsArray, ...values: (Buffer | string)[]): Buffer {
  const parts: Buffer[] = []
  strings.forEach((s, i) => {
    parts.push(parseHex(s))
    if (i < values.length) {
      const v = values[i]!
      parts.push(typeof v === 'string' ? parseHex(v) : v)
    }
  })
  return Buffer.concat(parts)
}

function parseHex(s: string): Buffer {
  const clean = s.replace(/#[^\n]*/g, '').replace(/\s+/g, '')
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 !== 0) throw new Error(`bad hex: ${JSON.stringify(s)}`)
  return Buffer.from(clean, 'hex')
}

// ---------------------------------------------------------------------------------------------
// Temp files

export interface TempDir {
  dir: string
  write(name: string, bytes: Buffer): string
  cleanup(): void
}

export function tempDir(prefix = 'teiten-ingest-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return {
    dir,
    write(name, bytes) {
      const path = join(dir, name)
      writeFileSync(path, bytes)
      return path
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

/** A Frame copied out of the callback (the original is reused). */
export interface FrameCopy {
  linkType: number
  tsSec: number
  tsNanos: number
  capturedLength: number
  originalLength: number
  fileOffset: number
  data: string
}

export function copyFrame(f: Frame): FrameCopy {
  return {
    linkType: f.linkType,
    tsSec: f.tsSec,
    tsNanos: f.tsNanos,
    capturedLength: f.capturedLength,
    originalLength: f.originalLength,
    fileOffset: f.fileOffset,
    data: f.data.toString('hex'),
  }
}

export interface ReadResult {
  frames: FrameCopy[]
  stats?: CaptureStats
  error?: TeitenError
}

/** Reads a capture to the end or to its error; a non-Teiten error fails the test. */
export async function readAll(path: string, options?: ReadCaptureOptions): Promise<ReadResult> {
  const frames: FrameCopy[] = []
  try {
    const stats = await readCapture(path, (f) => frames.push(copyFrame(f)), options)
    return { frames, stats }
  } catch (err) {
    if (err instanceof TeitenError) return { frames, error: err }
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

export interface PcapRecord {
  sec: number
  /** Microseconds or nanoseconds, per the file's magic. */
  frac: number
  data: Buffer
  /** Defaults to data.length. */
  orig?: number
  /** Overrides the caplen field (to forge bad records). */
  caplen?: number
}

export interface PcapOptions {
  le?: boolean
  nanos?: boolean
  linkType?: number
  snaplen?: number
  major?: number
}

export function pcapHeader(o: PcapOptions = {}): Buffer {
  const b = Buffer.alloc(24)
  const le = o.le ?? true
  const magic = o.nanos ? 0xa1b23c4d : 0xa1b2c3d4
  if (le) {
    b.writeUInt32LE(magic, 0)
    b.writeUInt16LE(o.major ?? 2, 4)
    b.writeUInt16LE(4, 6)
    b.writeUInt32LE(o.snaplen ?? 262144, 16)
    b.writeUInt32LE(o.linkType ?? 1, 20)
  } else {
    b.writeUInt32BE(magic, 0)
    b.writeUInt16BE(o.major ?? 2, 4)
    b.writeUInt16BE(4, 6)
    b.writeUInt32BE(o.snaplen ?? 262144, 16)
    b.writeUInt32BE(o.linkType ?? 1, 20)
  }
  return b
}

export function pcapRecord(r: PcapRecord, le = true): Buffer {
  const h = Buffer.alloc(16)
  const w = (v: number, at: number) => (le ? h.writeUInt32LE(v, at) : h.writeUInt32BE(v, at))
  w(r.sec, 0)
  w(r.frac, 4)
  w(r.caplen ?? r.data.length, 8)
  w(r.orig ?? r.data.length, 12)
  return Buffer.concat([h, r.data])
}

export function pcapFile(o: PcapOptions, records: PcapRecord[]): Buffer {
  const le = o.le ?? true
  return Buffer.concat([pcapHeader(o), ...records.map((r) => pcapRecord(r, le))])
}

// ---------------------------------------------------------------------------------------------
// pcapng

function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2)
  if (le) b.writeUInt16LE(v)
  else b.writeUInt16BE(v)
  return b
}

function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4)
  if (le) b.writeUInt32LE(v >>> 0)
  else b.writeUInt32BE(v >>> 0)
  return b
}

function pad4(b: Buffer): Buffer {
  const rem = b.length % 4
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - rem)])
}

export function option(code: number, value: Buffer, le: boolean): Buffer {
  return Buffer.concat([u16(code, le), u16(value.length, le), pad4(value)])
}

export function endOfOptions(le: boolean): Buffer {
  return Buffer.concat([u16(0, le), u16(0, le)])
}

/** Frames `body` as a block; `totalLength`/`trailingLength` override the lengths to forge bad blocks. */
export function block(
  type: number,
  body: Buffer,
  le: boolean,
  forge: { totalLength?: number; trailingLength?: number } = {},
): Buffer {
  const padded = pad4(body)
  const total = 12 + padded.length
  return Buffer.concat([
    u32(type, le),
    u32(forge.totalLength ?? total, le),
    padded,
    u32(forge.trailingLength ?? forge.totalLength ?? total, le),
  ])
}

export function shb(le: boolean, options: Buffer = Buffer.alloc(0), major = 1): Buffer {
  const body = Buffer.concat([
    u32(0x1a2b3c4d, le),
    u16(major, le),
    u16(0, le),
    Buffer.from('ffffffffffffffff', 'hex'), // section length: unknown
    options,
  ])
  return block(0x0a0d0d0a, body, le)
}

export interface IdbOptions {
  linkType?: number
  snaplen?: number
  tsresol?: number
  tsoffset?: bigint
}

export function idb(le: boolean, o: IdbOptions = {}): Buffer {
  const opts: Buffer[] = []
  if (o.tsresol !== undefined) opts.push(option(9, Buffer.from([o.tsresol]), le))
  if (o.tsoffset !== undefined) {
    const v = Buffer.alloc(8)
    if (le) v.writeBigInt64LE(o.tsoffset)
    else v.writeBigInt64BE(o.tsoffset)
    opts.push(option(14, v, le))
  }
  if (opts.length > 0) opts.push(endOfOptions(le))
  const body = Buffer.concat([u16(o.linkType ?? 1, le), u16(0, le), u32(o.snaplen ?? 0, le), ...opts])
  return block(1, body, le)
}

export interface EpbOptions {
  iface?: number
  /** 64-bit timestamp in interface units. */
  ts: bigint
  data: Buffer
  orig?: number
  caplen?: number
}

export function epb(le: boolean, o: EpbOptions): Buffer {
  const body = Buffer.concat([
    u32(o.iface ?? 0, le),
    u32(Number(o.ts >> 32n), le),
    u32(Number(o.ts & 0xffffffffn), le),
    u32(o.caplen ?? o.data.length, le),
    u32(o.orig ?? o.data.length, le),
    pad4(o.data),
  ])
  return block(6, body, le)
}

/** Obsolete Packet Block (type 2). */
export function pb(le: boolean, o: EpbOptions): Buffer {
  const body = Buffer.concat([
    u16(o.iface ?? 0, le),
    u16(0, le),
    u32(Number(o.ts >> 32n), le),
    u32(Number(o.ts & 0xffffffffn), le),
    u32(o.caplen ?? o.data.length, le),
    u32(o.orig ?? o.data.length, le),
    pad4(o.data),
  ])
  return block(2, body, le)
}

export function spb(le: boolean, data: Buffer, orig = data.length): Buffer {
  return block(3, Buffer.concat([u32(orig, le), pad4(data)]), le)
}

// ---------------------------------------------------------------------------------------------
// Packets

export interface UdpSpec {
  sport: number
  dport: number
  payload?: Buffer
  /** Overrides the UDP length field. */
  length?: number
}

export function udp(s: UdpSpec): Buffer {
  const payload = s.payload ?? Buffer.alloc(0)
  const h = Buffer.alloc(8)
  h.writeUInt16BE(s.sport, 0)
  h.writeUInt16BE(s.dport, 2)
  h.writeUInt16BE(s.length ?? 8 + payload.length, 4)
  return Buffer.concat([h, payload])
}

export interface Ipv4Spec {
  src: string
  dst: string
  proto?: number
  ttl?: number
  /** Options bytes (multiple of 4). */
  options?: Buffer
  /** Fragment offset in 8-byte units. */
  fragOffset?: number
  moreFragments?: boolean
  /** Overrides the Total Length field. */
  totalLength?: number
}

function checksum(b: Buffer): number {
  let sum = 0
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

export function ipv4(s: Ipv4Spec, payload: Buffer): Buffer {
  const options = s.options ?? Buffer.alloc(0)
  const h = Buffer.alloc(20 + options.length)
  h[0] = 0x40 | ((20 + options.length) >> 2)
  h.writeUInt16BE(s.totalLength ?? h.length + payload.length, 2)
  h.writeUInt16BE(0x1234, 4)
  h.writeUInt16BE(((s.moreFragments ? 1 : 0) << 13) | (s.fragOffset ?? 0), 6)
  h[8] = s.ttl ?? 64
  h[9] = s.proto ?? 17
  Buffer.from(s.src.split('.').map(Number)).copy(h, 12)
  Buffer.from(s.dst.split('.').map(Number)).copy(h, 16)
  options.copy(h, 20)
  h.writeUInt16BE(checksum(h), 10)
  return Buffer.concat([h, payload])
}

/** Expands an IPv6 text address (with at most one `::`) to 16 bytes. */
export function ipv6Bytes(addr: string): Buffer {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  const b = Buffer.alloc(16)
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  })
  return b
}

export interface Ipv6Ext {
  /** 0 hop-by-hop, 43 routing, 44 fragment, 51 AH, 60 destination options. */
  type: number
  fragOffset?: number
  moreFragments?: boolean
}

export interface Ipv6Spec {
  src: string
  dst: string
  hopLimit?: number
  /** Upper-layer protocol at the end of the chain. */
  proto?: number
  ext?: Ipv6Ext[]
  /** Overrides the Payload Length field. */
  payloadLength?: number
}

function extHeader(e: Ipv6Ext, next: number): Buffer {
  switch (e.type) {
    case 44: {
      const b = Buffer.alloc(8)
      b[0] = next
      b.writeUInt16BE(((e.fragOffset ?? 0) << 3) | (e.moreFragments ? 1 : 0), 2)
      b.writeUInt32BE(0xcafe, 4)
      return b
    }
    case 51: {
      // AH with a 12-byte ICV: 24 bytes, Payload Len = 24/4 - 2 = 4.
      const b = Buffer.alloc(24)
      b[0] = next
      b[1] = 4
      b.writeUInt32BE(0x100, 4) // SPI
      b.writeUInt32BE(1, 8) // sequence
      return b
    }
    case 43: {
      // Type 0 style routing header with one address: 24 bytes, Hdr Ext Len 2.
      const b = Buffer.alloc(24)
      b[0] = next
      b[1] = 2
      b[2] = 0 // routing type
      b[3] = 0 // segments left: 0, so it is inert
      return b
    }
    default: {
      // Hop-by-hop / destination options: 16 bytes (Hdr Ext Len 1) of PadN.
      const b = Buffer.alloc(16)
      b[0] = next
      b[1] = 1
      b[2] = 1 // PadN
      b[3] = 12
      return b
    }
  }
}

export function ipv6(s: Ipv6Spec, payload: Buffer): Buffer {
  const ext = s.ext ?? []
  const chain: Buffer[] = []
  for (let i = 0; i < ext.length; i++) {
    const next = i + 1 < ext.length ? ext[i + 1]!.type : (s.proto ?? 17)
    chain.push(extHeader(ext[i]!, next))
  }
  const rest = Buffer.concat([...chain, payload])
  const h = Buffer.alloc(40)
  h.writeUInt32BE(0x60000000, 0)
  h.writeUInt16BE(s.payloadLength ?? rest.length, 4)
  h[6] = ext.length > 0 ? ext[0]!.type : (s.proto ?? 17)
  h[7] = s.hopLimit ?? 64
  ipv6Bytes(s.src).copy(h, 8)
  ipv6Bytes(s.dst).copy(h, 24)
  return Buffer.concat([h, rest])
}

const MAC_DST = Buffer.from('020000000001', 'hex')
const MAC_SRC = Buffer.from('020000000002', 'hex')

/** Ethernet II with optional stacked tags: each tag is [TPID, VID]. */
export function ether(etherType: number, payload: Buffer, tags: [number, number][] = []): Buffer {
  const parts: Buffer[] = [MAC_DST, MAC_SRC]
  for (const [tpid, vid] of tags) {
    const t = Buffer.alloc(4)
    t.writeUInt16BE(tpid, 0)
    t.writeUInt16BE(vid, 2)
    parts.push(t)
  }
  const et = Buffer.alloc(2)
  et.writeUInt16BE(etherType)
  parts.push(et, payload)
  return Buffer.concat(parts)
}

/** Linux cooked v1 (LINKTYPE_LINUX_SLL). */
export function sll(protocol: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16)
  h.writeUInt16BE(0, 0) // to us
  h.writeUInt16BE(1, 2) // ARPHRD_ETHER
  h.writeUInt16BE(6, 4)
  MAC_SRC.copy(h, 6)
  h.writeUInt16BE(protocol, 14)
  return Buffer.concat([h, payload])
}

/** Linux cooked v2 (LINKTYPE_LINUX_SLL2). */
export function sll2(protocol: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20)
  h.writeUInt16BE(protocol, 0)
  h.writeUInt32BE(2, 4) // ifindex
  h.writeUInt16BE(1, 8) // ARPHRD_ETHER
  h[10] = 0 // to us
  h[11] = 6
  MAC_SRC.copy(h, 12)
  return Buffer.concat([h, payload])
}

/** BSD loopback header: `le` for LINKTYPE_NULL from a little-endian host; LOOP is always big-endian. */
export function loopback(family: number, payload: Buffer, le: boolean): Buffer {
  const h = Buffer.alloc(4)
  if (le) h.writeUInt32LE(family)
  else h.writeUInt32BE(family)
  return Buffer.concat([h, payload])
}

/** An NTP mode-3 client request, 48 bytes. */
export function ntpClient(marker = 0): Buffer {
  const b = Buffer.alloc(48)
  b[0] = 0x23 // LI 0, VN 4, mode 3
  b[47] = marker
  return b
}

/** An NTP mode-7 monlist request (8 bytes). */
export function ntpMonlist(): Buffer {
  return hex`17 00 03 2a 00 00 00 00`
}
