/**
 * Mutations for capture fuzzing. Pure and seeded: case N of seed S is the same input on every
 * machine, so a failure is reproduced from two numbers. Written in erasable TypeScript only: the
 * fuzz workers load it with Node's own type stripping.
 */
import { gzipSync } from 'node:zlib'

/** A seed capture and where its length fields are (byte offsets), for targeted mutations. */
export interface Seed {
  name: string
  bytes: Buffer
  /** Offsets of 32-bit length fields (little- or big-endian as `le` says). */
  lengths32: number[]
  /** Offsets of 16-bit length fields in the packets (IP total length, UDP length: big-endian). */
  lengths16: number[]
  le: boolean
}

/** xorshift128+ reduced to 32 bits: fast, seedable, plenty for picking mutations. */
export class Rand {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    this.a = seed | 0 || 1
    this.b = 0x9e3779b9
    this.c = 0x243f6a88
    this.d = 0xb7e15162
    for (let i = 0; i < 12; i++) this.next()
  }

  /** 32 random bits, unsigned. */
  next(): number {
    let t = this.d
    const s = this.a
    this.d = this.c
    this.c = this.b
    this.b = s
    t ^= t << 11
    t ^= t >>> 8
    this.a = (t ^ s ^ (s >>> 19)) | 0
    return this.a >>> 0
  }

  /** 0 <= n < max. */
  below(max: number): number {
    return max <= 1 ? 0 : this.next() % max
  }

  chance(p: number): boolean {
    return this.next() / 4294967296 < p
  }
}

/** Case seed from run seed and case index: independent cases, any one replayable alone. */
export function caseSeed(runSeed: number, index: number): number {
  let h = (runSeed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

const INTERESTING_32 = [
  0,
  1,
  3,
  4,
  7,
  8,
  11,
  12,
  13,
  15,
  16,
  20,
  24,
  28,
  31,
  32,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  65535 + 16,
  262_144,
  262_144 + 65_536,
  262_144 + 65_536 + 1,
  262_144 + 65_536 - 1,
  0x7fffffff,
  0x80000000,
  0xfffffffc,
  0xfffffffe,
  0xffffffff,
]
const INTERESTING_16 = [0, 1, 7, 8, 9, 19, 20, 21, 27, 28, 39, 40, 41, 47, 48, 0x7fff, 0x8000, 0xfffe, 0xffff]
const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x46, 0x4f, 0x60, 0x11, 0x06, 0x2c, 0x3a]

function write32(b: Buffer, at: number, v: number, le: boolean): void {
  if (at < 0 || at + 4 > b.length) return
  if (le) b.writeUInt32LE(v >>> 0, at)
  else b.writeUInt32BE(v >>> 0, at)
}

function write16(b: Buffer, at: number, v: number): void {
  if (at < 0 || at + 2 > b.length) return
  b.writeUInt16BE(v & 0xffff, at)
}

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = r.below(256)
  return b
}

export type MutationName =
  | 'bitflip'
  | 'byte'
  | 'insert'
  | 'delete'
  | 'length32'
  | 'length16'
  | 'truncate'
  | 'splice'
  | 'duplicate'

const MUTATIONS: MutationName[] = [
  'bitflip',
  'bitflip',
  'byte',
  'insert',
  'delete',
  'length32',
  'length32',
  'length16',
  'truncate',
  'splice',
  'duplicate',
]

/** One mutation of `input` (a fresh buffer; `input` is not changed). */
export function mutateOnce(r: Rand, input: Buffer, seed: Seed, seeds: readonly Seed[], name: MutationName): Buffer {
  const len = input.length
  switch (name) {
    case 'bitflip': {
      const out = Buffer.from(input)
      const flips = 1 + r.below(8)
      for (let i = 0; i < flips && len > 0; i++) out[r.below(len)]! ^= 1 << r.below(8)
      return out
    }
    case 'byte': {
      const out = Buffer.from(input)
      if (len > 0) out[r.below(len)] = INTERESTING_8[r.below(INTERESTING_8.length)]!
      return out
    }
    case 'insert': {
      const at = r.below(len + 1)
      return Buffer.concat([input.subarray(0, at), randomBytes(r, 1 + r.below(16)), input.subarray(at)])
    }
    case 'delete': {
      const at = r.below(len + 1)
      return Buffer.concat([input.subarray(0, at), input.subarray(Math.min(len, at + 1 + r.below(64)))])
    }
    case 'length32': {
      const out = Buffer.from(input)
      const at = seed.lengths32.length > 0 ? seed.lengths32[r.below(seed.lengths32.length)]! : r.below(len)
      const old = at + 4 <= len ? (seed.le ? out.readUInt32LE(at) : out.readUInt32BE(at)) : 0
      const v = r.chance(0.3) ? old + r.below(9) - 4 : INTERESTING_32[r.below(INTERESTING_32.length)]!
      write32(out, at, v, r.chance(0.9) ? seed.le : !seed.le)
      return out
    }
    case 'length16': {
      const out = Buffer.from(input)
      const at = seed.lengths16.length > 0 ? seed.lengths16[r.below(seed.lengths16.length)]! : r.below(len)
      const old = at + 2 <= len ? out.readUInt16BE(at) : 0
      write16(out, at, r.chance(0.3) ? old + r.below(9) - 4 : INTERESTING_16[r.below(INTERESTING_16.length)]!)
      return out
    }
    case 'truncate':
      return input.subarray(0, r.below(len + 1))
    case 'splice': {
      const other = seeds[r.below(seeds.length)]!.bytes
      return Buffer.concat([input.subarray(0, r.below(len + 1)), other.subarray(r.below(other.length + 1))])
    }
    case 'duplicate': {
      const at = r.below(len + 1)
      const n = 1 + r.below(128)
      return Buffer.concat([input.subarray(0, at + n), input.subarray(at, at + n), input.subarray(at + n)])
    }
  }
}

export interface FuzzCase {
  bytes: Buffer
  /** How it was made, for the failure report. */
  recipe: string
  /** Read in chunks of this size (undefined: the default, one chunk). */
  chunkBytes: number | undefined
  gzip: boolean
}

/**
 * Case `index` of run `runSeed`: a seed, 1-4 mutations, and sometimes gzip (wrapping the mutated
 * capture, which fuzzes the decoders behind the inflater, or mutating the gzip'd bytes
 * themselves, which fuzzes the inflater's error paths).
 */
export function makeCase(runSeed: number, index: number, seeds: readonly Seed[]): FuzzCase {
  const r = new Rand(caseSeed(runSeed, index))
  const seed = seeds[r.below(seeds.length)]!
  const steps: string[] = [seed.name]
  let bytes = seed.bytes
  const n = 1 + r.below(r.chance(0.7) ? 2 : 4)
  for (let i = 0; i < n; i++) {
    const m = MUTATIONS[r.below(MUTATIONS.length)]!
    bytes = mutateOnce(r, bytes, seed, seeds, m)
    steps.push(m)
  }
  let gzip = false
  // Few gzip cases: a gunzip stream costs some 50 times a plain read, and the decoders behind
  // it are the same ones the plain cases reach.
  const g = r.next() % 100
  if (g < 4) {
    bytes = gzipSync(bytes, { level: 1 })
    gzip = true
    steps.push('gzip')
  } else if (g < 6) {
    bytes = gzipSync(bytes, { level: 1 })
    const m = MUTATIONS[r.below(MUTATIONS.length)]!
    bytes = mutateOnce(r, bytes, { ...seed, lengths32: [], lengths16: [] }, seeds, m === 'splice' ? 'bitflip' : m)
    gzip = true
    steps.push('gzip', m)
  }
  const chunkBytes = r.chance(0.3) ? 1 + r.below(r.chance(0.5) ? 64 : 700) : undefined
  return { bytes, recipe: steps.join('>'), chunkBytes, gzip }
}
