/**
 * Fixed-width integer reads straight from the byte array. `Buffer#readUInt32LE` re-checks its
 * bounds and argument types on every call; the decoders check bounds once per structure, so
 * these plain index reads are what the hot path uses. Callers guarantee `p + width <= b.length`.
 */

export function u16be(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1]
}

export function u16le(b: Uint8Array, p: number): number {
  return b[p] | (b[p + 1] << 8)
}

export function u32be(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0
}

export function u32le(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0
}

export function u16(b: Uint8Array, p: number, le: boolean): number {
  return le ? u16le(b, p) : u16be(b, p)
}

export function u32(b: Uint8Array, p: number, le: boolean): number {
  return le ? u32le(b, p) : u32be(b, p)
}
