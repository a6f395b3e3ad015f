import type { Frame } from '../core/event.js'

/**
 * Exact conversion of a pcapng 64-bit timestamp (two 32-bit halves, in units of the interface's
 * if_tsresol) to whole seconds + nanoseconds.
 *
 * A nanosecond timestamp of today is ~1.7e18, far beyond 2^53, so `hi * 2^32 + lo` as a double
 * would lose the low bits. The common resolutions are therefore done with integer-exact double
 * arithmetic on 16-bit limbs (every intermediate stays below 2^53); only resolutions no capture
 * tool writes (finer than 1 ns decimal, finer than 2^-32 binary) fall back to BigInt per packet.
 *
 * if_tsresol (RFC draft-ietf-opsawg-pcapng, 4.2): most significant bit 0 -> the remaining bits are
 * a negative power of 10, bit set -> a negative power of 2. Absent -> 10^-6.
 * if_tsoffset: signed seconds to add to every timestamp of the interface.
 */

const TWO16 = 65536
const TWO32 = 4294967296

const KIND_DECIMAL = 0
const KIND_BINARY = 1
const KIND_BIGINT = 2

export class Timebase {
  private readonly kind: number
  /** Decimal: ticks per second (10^k, k <= 9) and nanoseconds per tick. */
  private readonly divisor: number
  private readonly nsPerTick: number
  /** Binary: ticks per second = 2^shift (shift <= 32). */
  private readonly shift: number
  /** BigInt fallback: ticks per second and whether it is a power of two. */
  private readonly bigDivisor: bigint
  private readonly bigShift: bigint
  /** if_tsoffset, whole seconds. */
  readonly offsetSec: number

  constructor(tsresol: number, offsetSec = 0) {
    this.offsetSec = offsetSec
    const binary = (tsresol & 0x80) !== 0
    const exp = tsresol & 0x7f
    this.divisor = 1
    this.nsPerTick = 1
    this.shift = 0
    this.bigDivisor = 1n
    this.bigShift = -1n
    if (!binary && exp <= 9) {
      this.kind = KIND_DECIMAL
      this.divisor = 10 ** exp
      this.nsPerTick = 10 ** (9 - exp)
    } else if (binary && exp <= 32) {
      this.kind = KIND_BINARY
      this.shift = exp
    } else {
      this.kind = KIND_BIGINT
      if (binary) this.bigShift = BigInt(exp)
      else this.bigDivisor = 10n ** BigInt(exp)
    }
  }

  /** Sets frame.tsSec / frame.tsNanos from the timestamp halves. */
  apply(hi: number, lo: number, frame: Frame): void {
    if (this.kind === KIND_DECIMAL) {
      // Long division of hi:lo by D < 2^30 in three steps (32 + 16 + 16 bits); each partial
      // dividend is < D * 2^16 < 2^46, so every operation below is exact in a double.
      const d = this.divisor
      const qh = Math.floor(hi / d)
      const rh = hi - qh * d
      const a = rh * TWO16 + (lo >>> 16)
      const qa = Math.floor(a / d)
      const ra = a - qa * d
      const b = ra * TWO16 + (lo & 0xffff)
      const qb = Math.floor(b / d)
      frame.tsSec = qh * TWO32 + qa * TWO16 + qb + this.offsetSec
      frame.tsNanos = (b - qb * d) * this.nsPerTick
    } else if (this.kind === KIND_BINARY) {
      const k = this.shift
      let frac: number
      if (k === 32) {
        frame.tsSec = hi + this.offsetSec
        frac = lo
      } else {
        // `>>>` takes its count mod 32, so k = 0 needs no special case here (lo >>> 0 = lo).
        frame.tsSec = hi * 2 ** (32 - k) + (k === 0 ? lo : lo >>> k) + this.offsetSec
        frac = k === 0 ? 0 : (lo & (2 ** k - 1)) >>> 0
      }
      if (k <= 16) {
        // frac < 2^16: frac * 1e9 < 2^46, exact; dividing by a power of two is exact.
        frame.tsNanos = Math.floor((frac * 1e9) / 2 ** k)
      } else {
        // floor(frac * 1e9 / 2^k) with frac split in 16-bit halves:
        // = floor((fh * 1e9 + floor(fl * 1e9 / 2^16)) / 2^(k-16)), all terms < 2^47.
        const high = (frac >>> 16) * 1e9
        const low = Math.floor(((frac & 0xffff) * 1e9) / TWO16)
        frame.tsNanos = Math.floor((high + low) / 2 ** (k - 16))
      }
    } else {
      const ticks = (BigInt(hi) << 32n) | BigInt(lo)
      if (this.bigShift >= 0n) {
        frame.tsSec = Number(ticks >> this.bigShift) + this.offsetSec
        const frac = ticks & ((1n << this.bigShift) - 1n)
        frame.tsNanos = Number((frac * 1_000_000_000n) >> this.bigShift)
      } else {
        frame.tsSec = Number(ticks / this.bigDivisor) + this.offsetSec
        frame.tsNanos = Number(((ticks % this.bigDivisor) * 1_000_000_000n) / this.bigDivisor)
      }
    }
  }
}

/** The default if_tsresol: microseconds. */
export const TSRESOL_MICRO = 6
