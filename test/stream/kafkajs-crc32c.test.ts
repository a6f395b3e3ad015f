/**
 * kafkajs's record batch CRC-32C replaced by hash-wasm's (stream/kafkajs-crc32c.ts): the same
 * checksums as kafkajs's own function, and the one kafkajs's encoder gets. That brokers accept
 * them is proven by every test that produces to the real broker (they check each batch's CRC).
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import '../../stream/kafka.js'
import { crc32C, KAFKAJS_CRC32C_MODULE } from '../../stream/kafkajs-crc32c.js'

const require = createRequire(import.meta.url)
/** kafkajs's own byte-by-byte function, loaded from its file (not the replaced module). */
const kafkajsOwn = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number

describe('record batch CRC-32C', () => {
  it('is the Castagnoli CRC: the standard check value of "123456789"', () => {
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283)
  })

  it.each([0, 1, 3, 7, 8, 9, 61, 1000, 65_537, 1 << 20])('matches kafkajs own function on %i random bytes', (n) => {
    const buf = randomBytes(n)
    expect(crc32C(buf)).toBe(kafkajsOwn(buf) >>> 0)
  })

  it('is what kafkajs record batch encoder requires', () => {
    expect(require(KAFKAJS_CRC32C_MODULE)).toBe(crc32C)
  })
})
