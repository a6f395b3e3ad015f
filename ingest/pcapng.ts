import { TeitenError } from '../core/errors.js'
import type { ErrorCode } from '../core/errors.js'
import { u16, u32, u32be, u32le } from './bytes.js'
import { Timebase, TSRESOL_MICRO } from './timestamp.js'
import type { DecoderContext, RecordDecoder } from './types.js'

/*
 * pcapng (draft-ietf-opsawg-pcapng). Every block has the same frame, in the byte order of the
 * section it belongs to:
 *                         1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +---------------------------------------------------------------+
 *  0 |                          Block Type                           |
 *    +---------------------------------------------------------------+
 *  4 |                      Block Total Length                       |
 *    +---------------------------------------------------------------+
 *  8 /                          Block Body                           /
 *    /              variable length, padded to 32 bits               /
 *    +---------------------------------------------------------------+
 *    |                      Block Total Length                       |
 *    +---------------------------------------------------------------+
 *
 * Section Header Block (type 0x0A0D0D0A, a palindrome so it reads the same in both orders; the
 * Byte-Order Magic 0x1A2B3C4D then fixes the order of the whole section, including this
 * block's own lengths):
 *  8 |                      Byte-Order Magic                         |
 * 12 |          Major Version        |         Minor Version         |
 * 16 |                     Section Length (64 bits)                  |
 * 24 /                      Options (variable)                       /
 *
 * Interface Description Block (type 1); interfaces are numbered from 0 per section:
 *  8 |           LinkType            |           Reserved            |
 * 12 |                            SnapLen                            |
 * 16 /                      Options (variable)                       /
 *
 * Enhanced Packet Block (type 6):                 obsolete Packet Block (type 2):
 *  8 |                 Interface ID              |  8 | Interface ID (16) | Drops Count (16) |
 * 12 |                Timestamp (High)           | 12 |          Timestamp (High)            |
 * 16 |                Timestamp (Low)            | 16 |          Timestamp (Low)             |
 * 20 |           Captured Packet Length          | 20 |       Captured Packet Length         |
 * 24 |           Original Packet Length          | 24 |       Original Packet Length         |
 * 28 /  Packet Data (padded to 32 bits), Options / 28 /  Packet Data, Options               /
 *
 * Simple Packet Block (type 3), always interface 0, no timestamp:
 *  8 |                    Original Packet Length                     |
 * 12 /                 Packet Data (padded to 32 bits)               /
 *
 * Options (IDB): | Option Code (16) | Option Length (16) | Value, padded to 32 bits |
 * if_tsresol = 9 (1 byte), if_tsoffset = 14 (int64 seconds), opt_endofopt = 0.
 */

export const PCAPNG_SHB = 0x0a0d0d0a
const BLOCK_IDB = 1
const BLOCK_PB = 2
const BLOCK_SPB = 3
const BLOCK_EPB = 6
const BOM = 0x1a2b3c4d
const BOM_SWAPPED = 0x4d3c2b1a
const OPT_ENDOFOPT = 0
const OPT_IF_TSRESOL = 9
const OPT_IF_TSOFFSET = 14

const MIN_BLOCK = 12
const MIN_SHB = 28
const MIN_IDB = 20
const MIN_EPB = 32
const MIN_PB = 32
const MIN_SPB = 16

interface Interface {
  linkType: number
  snapLen: number
  timebase: Timebase
}

export class PcapngDecoder implements RecordDecoder {
  private readonly ctx: DecoderContext
  private le = false
  private interfaces: Interface[] = []
  /**
   * Simple Packet Blocks carry no timestamp. They get the timestamp of the packet delivered just
   * before them (0 if none): that keeps them on the right day for daily counts, where 1970
   * would put them on a day of their own.
   */
  private lastSec = 0
  private lastNanos = 0

  constructor(ctx: DecoderContext) {
    this.ctx = ctx
  }

  need(buf: Buffer, pos: number, avail: number, offset: number): number {
    if (avail < 8) return 8
    let le = this.le
    if (u32le(buf, pos) === PCAPNG_SHB) {
      if (avail < 12) return 12
      le = this.sectionOrder(buf, pos, offset)
    }
    const length = u32(buf, pos + 4, le)
    if (length < MIN_BLOCK || (length & 3) !== 0 || length > this.ctx.maxRecordBytes) {
      const why =
        length > this.ctx.maxRecordBytes
          ? `beyond the limit of ${this.ctx.maxRecordBytes}`
          : length < MIN_BLOCK
            ? 'shorter than 12'
            : 'not a multiple of 4'
      throw this.error('CAPTURE_BAD_BLOCK_LENGTH', `pcapng block total length ${length} is ${why}`, offset)
    }
    return length
  }

  unit(buf: Buffer, pos: number, length: number, offset: number): void {
    let le = this.le
    const isShb = u32le(buf, pos) === PCAPNG_SHB
    if (isShb) le = this.sectionOrder(buf, pos, offset)
    const trailing = u32(buf, pos + length - 4, le)
    if (trailing !== length) {
      throw this.error(
        'CAPTURE_BAD_BLOCK_LENGTH',
        `pcapng block trailing total length ${trailing} differs from the leading ${length}`,
        offset,
      )
    }
    if (isShb) {
      this.section(buf, pos, length, le, offset)
      return
    }
    switch (u32(buf, pos, le)) {
      case BLOCK_EPB:
        this.enhancedPacket(buf, pos, length, offset)
        break
      case BLOCK_SPB:
        this.simplePacket(buf, pos, length, offset)
        break
      case BLOCK_IDB:
        this.interfaceDescription(buf, pos, length, offset)
        break
      case BLOCK_PB:
        this.obsoletePacket(buf, pos, length, offset)
        break
      default:
        this.ctx.stats.skippedBlocks++
    }
  }

  run(buf: Buffer, pos: number, end: number, base: number): number {
    for (;;) {
      const avail = end - pos
      const length = this.need(buf, pos, avail, base + pos)
      if (length > avail) return pos
      this.unit(buf, pos, length, base + pos)
      pos += length
    }
  }

  private sectionOrder(buf: Buffer, pos: number, offset: number): boolean {
    const bom = u32be(buf, pos + 8)
    if (bom === BOM) return false
    if (bom === BOM_SWAPPED) return true
    throw this.error(
      'CAPTURE_BAD_HEADER',
      `pcapng section header byte-order magic is 0x${bom.toString(16).padStart(8, '0')}, not 0x1a2b3c4d`,
      offset,
    )
  }

  private section(buf: Buffer, pos: number, length: number, le: boolean, offset: number): void {
    this.minLength(length, MIN_SHB, 'section header', offset)
    const major = u16(buf, pos + 12, le)
    if (major !== 1) {
      throw this.error('CAPTURE_BAD_HEADER', `pcapng version ${major}.${u16(buf, pos + 14, le)} is not 1.x`, offset)
    }
    this.le = le
    // Interface IDs are scoped to their section.
    this.interfaces = []
    this.ctx.stats.format = 'pcapng'
    this.ctx.stats.sections++
  }

  private interfaceDescription(buf: Buffer, pos: number, length: number, offset: number): void {
    this.minLength(length, MIN_IDB, 'interface description', offset)
    const le = this.le
    const linkType = u16(buf, pos + 8, le)
    const snapLen = u32(buf, pos + 12, le)
    let tsresol = TSRESOL_MICRO
    let tsoffset = 0
    const optEnd = pos + length - 4
    let p = pos + 16
    while (p + 4 <= optEnd) {
      const code = u16(buf, p, le)
      const len = u16(buf, p + 2, le)
      if (code === OPT_ENDOFOPT) break
      const value = p + 4
      if (value + len > optEnd) {
        throw this.error('CAPTURE_BAD_HEADER', `pcapng interface option ${code} runs past its block`, offset)
      }
      if (code === OPT_IF_TSRESOL && len >= 1) tsresol = buf[value]
      else if (code === OPT_IF_TSOFFSET && len >= 8) {
        tsoffset = Number(le ? buf.readBigInt64LE(value) : buf.readBigInt64BE(value))
      }
      p = value + ((len + 3) & ~3)
    }
    this.interfaces.push({ linkType, snapLen, timebase: new Timebase(tsresol, tsoffset) })
    const linkTypes = this.ctx.stats.linkTypes
    if (!linkTypes.includes(linkType)) linkTypes.push(linkType)
  }

  private enhancedPacket(buf: Buffer, pos: number, length: number, offset: number): void {
    this.minLength(length, MIN_EPB, 'enhanced packet', offset)
    const le = this.le
    const iface = this.interfaceAt(u32(buf, pos + 8, le), offset)
    this.packet(buf, pos, length, offset, iface, le)
  }

  private obsoletePacket(buf: Buffer, pos: number, length: number, offset: number): void {
    this.minLength(length, MIN_PB, 'packet', offset)
    const le = this.le
    const iface = this.interfaceAt(u16(buf, pos + 8, le), offset)
    this.packet(buf, pos, length, offset, iface, le)
  }

  /** EPB and PB share the layout from offset 12 on. */
  private packet(buf: Buffer, pos: number, length: number, offset: number, iface: Interface, le: boolean): void {
    const caplen = u32(buf, pos + 20, le)
    const orig = u32(buf, pos + 24, le)
    if (caplen > length - MIN_EPB) {
      throw this.error(
        'CAPTURE_BAD_RECORD',
        `pcapng packet claims ${caplen} captured bytes in a block of ${length}`,
        offset,
      )
    }
    const frame = this.ctx.frame
    iface.timebase.apply(u32(buf, pos + 12, le), u32(buf, pos + 16, le), frame)
    this.deliver(buf, pos + 28, caplen, orig, iface.linkType, offset)
  }

  private simplePacket(buf: Buffer, pos: number, length: number, offset: number): void {
    this.minLength(length, MIN_SPB, 'simple packet', offset)
    const iface = this.interfaceAt(0, offset)
    const orig = u32(buf, pos + 8, this.le)
    // The block does not store the captured length: it is the original length cut by the
    // interface snaplen (0 = unlimited) and, defensively, by the room in the block.
    let caplen = Math.min(orig, length - MIN_SPB)
    if (iface.snapLen !== 0 && iface.snapLen < caplen) caplen = iface.snapLen
    const frame = this.ctx.frame
    frame.tsSec = this.lastSec
    frame.tsNanos = this.lastNanos
    this.deliver(buf, pos + 12, caplen, orig, iface.linkType, offset)
  }

  private deliver(buf: Buffer, data: number, caplen: number, orig: number, linkType: number, offset: number): void {
    const frame = this.ctx.frame
    this.lastSec = frame.tsSec
    this.lastNanos = frame.tsNanos
    frame.linkType = linkType
    frame.originalLength = orig
    frame.fileOffset = offset
    frame.at(buf, data, caplen)
    const stats = this.ctx.stats
    if (caplen > orig) stats.caplenExceedsOriginal++
    stats.records++
    this.ctx.onFrame(frame)
  }

  private interfaceAt(id: number, offset: number): Interface {
    const iface = this.interfaces[id]
    if (iface === undefined) {
      throw this.error(
        'CAPTURE_UNKNOWN_INTERFACE',
        `pcapng packet names interface ${id}, but this section describes ${this.interfaces.length}`,
        offset,
      )
    }
    return iface
  }

  private minLength(length: number, min: number, what: string, offset: number): void {
    if (length < min) {
      throw this.error(
        'CAPTURE_BAD_BLOCK_LENGTH',
        `pcapng ${what} block of ${length} bytes is shorter than its minimum of ${min}`,
        offset,
      )
    }
  }

  private error(code: ErrorCode, message: string, offset: number): TeitenError {
    return new TeitenError(code, message, { file: this.ctx.file, offset })
  }
}
