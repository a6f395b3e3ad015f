import { TeitenError } from '../core/errors.js'
import { u16, u32, u32be } from './bytes.js'
import type { DecoderContext, RecordDecoder } from './types.js'

/*
 * Classic libpcap file format (draft-ietf-opsawg-pcap).
 *
 * File header, 24 bytes, in the byte order the magic reveals:
 *                         1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  0 |                          Magic Number                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  4 |          Major Version        |         Minor Version         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  8 |                           Reserved1                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * 12 |                           Reserved2                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * 16 |                            SnapLen                            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * 20 | FCS |f|0 0 0 0 0 0 0 0 0 0 0 0|         LinkType              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Magic A1B2C3D4: seconds + microseconds; A1B23C4D: seconds + nanoseconds. Read big-endian, the
 * byte-swapped forms D4C3B2A1 / 4D3CB2A1 mean the whole file is little-endian.
 *
 * Packet record, 16-byte header + CapLen bytes of data:
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  0 |                      Timestamp (Seconds)                      |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  4 |            Timestamp (Microseconds or nanoseconds)            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  8 |                    Captured Packet Length                     |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * 12 |                    Original Packet Length                     |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * 16 /                          Packet Data                          /
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */

export const PCAP_FILE_HEADER_BYTES = 24
export const PCAP_RECORD_HEADER_BYTES = 16

export const PCAP_MAGIC_MICRO = 0xa1b2c3d4
export const PCAP_MAGIC_NANO = 0xa1b23c4d
export const PCAP_MAGIC_MICRO_SWAPPED = 0xd4c3b2a1
export const PCAP_MAGIC_NANO_SWAPPED = 0x4d3cb2a1

export function isPcapMagic(be32: number): boolean {
  return (
    be32 === PCAP_MAGIC_MICRO ||
    be32 === PCAP_MAGIC_NANO ||
    be32 === PCAP_MAGIC_MICRO_SWAPPED ||
    be32 === PCAP_MAGIC_NANO_SWAPPED
  )
}

export class PcapDecoder implements RecordDecoder {
  private readonly ctx: DecoderContext
  private headerDone = false
  private le = false
  private nanos = false
  private linkType = 0

  constructor(ctx: DecoderContext) {
    this.ctx = ctx
  }

  need(buf: Buffer, pos: number, avail: number, offset: number): number {
    if (!this.headerDone) return PCAP_FILE_HEADER_BYTES
    if (avail < PCAP_RECORD_HEADER_BYTES) return PCAP_RECORD_HEADER_BYTES
    const caplen = u32(buf, pos + 8, this.le)
    if (caplen > this.ctx.maxRecordBytes) this.tooLarge(caplen, offset)
    return PCAP_RECORD_HEADER_BYTES + caplen
  }

  unit(buf: Buffer, pos: number, length: number, offset: number): void {
    if (this.headerDone) this.record(buf, pos, length - PCAP_RECORD_HEADER_BYTES, offset)
    else this.header(buf, pos, offset)
  }

  run(buf: Buffer, pos: number, end: number, base: number): number {
    if (!this.headerDone) {
      if (end - pos < PCAP_FILE_HEADER_BYTES) return pos
      this.header(buf, pos, base + pos)
      pos += PCAP_FILE_HEADER_BYTES
    }
    const max = this.ctx.maxRecordBytes
    const le = this.le
    while (end - pos >= PCAP_RECORD_HEADER_BYTES) {
      const caplen = u32(buf, pos + 8, le)
      if (caplen > max) this.tooLarge(caplen, base + pos)
      const next = pos + PCAP_RECORD_HEADER_BYTES + caplen
      if (next > end) break
      this.record(buf, pos, caplen, base + pos)
      pos = next
    }
    return pos
  }

  private header(buf: Buffer, pos: number, offset: number): void {
    const magic = u32be(buf, pos)
    this.le = magic === PCAP_MAGIC_MICRO_SWAPPED || magic === PCAP_MAGIC_NANO_SWAPPED
    this.nanos = magic === PCAP_MAGIC_NANO || magic === PCAP_MAGIC_NANO_SWAPPED
    const major = u16(buf, pos + 4, this.le)
    if (major !== 2) {
      throw new TeitenError('CAPTURE_BAD_HEADER', `pcap version ${major}.${u16(buf, pos + 6, this.le)} is not 2.x`, {
        file: this.ctx.file,
        offset,
      })
    }
    // Bits 16-31 carry the FCS length and reserved bits, not part of the link type.
    this.linkType = u32(buf, pos + 20, this.le) & 0xffff
    const stats = this.ctx.stats
    stats.format = 'pcap'
    stats.sections = 1
    stats.linkTypes.push(this.linkType)
    this.headerDone = true
  }

  private record(buf: Buffer, pos: number, caplen: number, offset: number): void {
    const le = this.le
    let sec = u32(buf, pos, le)
    let frac = u32(buf, pos + 4, le)
    const orig = u32(buf, pos + 12, le)
    // A sub-second field of a whole second or more is malformed but unambiguous: carry it.
    const perSec = this.nanos ? 1e9 : 1e6
    if (frac >= perSec) {
      sec += Math.floor(frac / perSec)
      frac %= perSec
    }
    const frame = this.ctx.frame
    frame.linkType = this.linkType
    frame.tsSec = sec
    frame.tsNanos = this.nanos ? frac : frac * 1000
    frame.originalLength = orig
    frame.fileOffset = offset
    frame.at(buf, pos + PCAP_RECORD_HEADER_BYTES, caplen)
    const stats = this.ctx.stats
    if (caplen > orig) stats.caplenExceedsOriginal++
    stats.records++
    this.ctx.onFrame(frame)
  }

  private tooLarge(caplen: number, offset: number): never {
    throw new TeitenError(
      'CAPTURE_CAPLEN_TOO_LARGE',
      `pcap record claims ${caplen} captured bytes, more than the limit of ${this.ctx.maxRecordBytes}`,
      { file: this.ctx.file, offset },
    )
  }
}
