/**
 * Deterministic pseudo-random numbers for the synthetic corpus: xoshiro128** seeded through
 * splitmix32. Every random choice of the generator comes from one of these, so a seed names one
 * corpus byte for byte on every machine (no Math.random, no wall clock, no iteration over
 * hash-ordered containers whose order could change).
 */

function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) | 0
  let z = s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return [s, (z ^ (z >>> 16)) >>> 0]
}

/** FNV-1a of a label, so that forks can be named by strings and still be stable. */
function hashLabel(label: string | number): number {
  const text = String(label)
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    let s = seed | 0
    let out: number
    ;[s, out] = splitmix32(s)
    this.a = out
    ;[s, out] = splitmix32(s)
    this.b = out
    ;[s, out] = splitmix32(s)
    this.c = out
    ;[s, out] = splitmix32(s)
    this.d = out
    // xoshiro's all-zero state is a fixed point.
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  /** An independent stream derived from this seed and a label, without consuming this stream. */
  static derive(seed: number, label: string | number): Rng {
    return new Rng((Math.imul(seed | 0, 0x9e3779b1) ^ hashLabel(label)) | 0)
  }

  /** Uniform unsigned 32-bit integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  /** Uniform in [0, 1) with 32 bits of resolution (enough for every use here). */
  float(): number {
    return this.u32() / 4294967296
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n)
  }

  /** Uniform integer in [lo, hi], both ends included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }

  /** Index drawn with probability proportional to weights (precomputed cumulative sums). */
  weighted(cumulative: Float64Array | readonly number[]): number {
    const total = cumulative[cumulative.length - 1]
    const x = this.float() * total
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cumulative[mid] > x) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  /** Poisson variate; exact (Knuth) for small means, rounded normal beyond. */
  poisson(mean: number): number {
    if (mean <= 0) return 0
    if (mean < 30) {
      const limit = Math.exp(-mean)
      let k = 0
      let p = this.float()
      while (p > limit) {
        k++
        p *= this.float()
      }
      return k
    }
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()))
  }

  /** Standard normal (Box-Muller; one value per call keeps the stream simple to reason about). */
  normal(): number {
    const u = 1 - this.float()
    const v = this.float()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  /** Fills a buffer range with random bytes. */
  fill(buf: Uint8Array, offset: number, length: number): void {
    let i = offset
    const end = offset + length
    while (i + 4 <= end) {
      const x = this.u32()
      buf[i] = x >>> 24
      buf[i + 1] = (x >>> 16) & 0xff
      buf[i + 2] = (x >>> 8) & 0xff
      buf[i + 3] = x & 0xff
      i += 4
    }
    while (i < end) buf[i++] = this.u32() & 0xff
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** Cumulative sums of weights, for Rng.weighted. */
export function cumulative(weights: readonly number[]): Float64Array {
  const out = new Float64Array(weights.length)
  let sum = 0
  for (let i = 0; i < weights.length; i++) {
    sum += weights[i]
    out[i] = sum
  }
  return out
}
