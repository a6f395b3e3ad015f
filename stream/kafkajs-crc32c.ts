/**
 * kafkajs computes the CRC-32C of every record batch it produces byte by byte in JavaScript
 * (kafkajs/src/protocol/recordBatch/crc32C): 1.25-1.6 s of the sensor's main thread for the
 * ~400 MB of messages of the 20M-packet bench capture (`node --cpu-prof`), ~430 MB/s.
 * hash-wasm's CRC-32C (WebAssembly, the Castagnoli polynomial) does ~1.5 GB/s: 200 MB of 1 MB
 * buffers in 126-131 ms against 460-487 ms (a slicing-by-8 table in JavaScript: 176-203 ms).
 * kafkajs has no hook for it, so its module is put in Node's CommonJS cache before kafkajs
 * loads it: stream/kafka.ts imports this module ahead of kafkajs. The broker checks every
 * batch's CRC, so a wrong one fails every produce (the Kafka tests run on a real broker).
 */
import { createRequire, Module } from 'node:module'
import { createCRC32 } from 'hash-wasm'

const require = createRequire(import.meta.url)
/** Where kafkajs's record batch encoder (recordBatch/v0) takes its CRC-32C function from. */
export const KAFKAJS_CRC32C_MODULE = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js')

const CASTAGNOLI = 0x82f63b78
const hasher = await createCRC32(CASTAGNOLI)

/** CRC-32C of `buffer` as an unsigned 32-bit number, as kafkajs's own function returns it. */
export function crc32C(buffer: Uint8Array): number {
  hasher.init()
  hasher.update(buffer)
  const d = hasher.digest('binary')
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0
}

// Only when kafkajs has not loaded its own yet (its encoder keeps the function it required).
if (!require.cache[KAFKAJS_CRC32C_MODULE]) {
  const replacement = new Module(KAFKAJS_CRC32C_MODULE)
  replacement.filename = KAFKAJS_CRC32C_MODULE
  replacement.loaded = true
  replacement.exports = crc32C
  require.cache[KAFKAJS_CRC32C_MODULE] = replacement
}
