/** Cross-check of classic pcap framing against the npm package pcap-parser (µs magics only). */
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { afterAll, describe, expect, it } from 'vitest'
import { pcapFile, readAll, tempDir } from './helpers.js'

const pcapParser = createRequire(import.meta.url)('pcap-parser') as { parse(path: string): EventEmitter }

interface ParsedPacket {
  header: { timestampSeconds: number; timestampMicroseconds: number; capturedLength: number; originalLength: number }
  data: Buffer
}

const tmp = tempDir()
afterAll(() => tmp.cleanup())

function parseWithPcapParser(path: string): Promise<{ linkType: number; packets: ParsedPacket[] }> {
  return new Promise((resolve, reject) => {
    const packets: ParsedPacket[] = []
    let linkType = -1
    const parser = pcapParser.parse(path)
    parser.on('globalHeader', (h: { linkLayerType: number }) => {
      linkType = h.linkLayerType
    })
    parser.on('packet', (p: ParsedPacket) => packets.push({ header: { ...p.header }, data: Buffer.from(p.data) }))
    parser.on('error', reject)
    parser.on('end', () => resolve({ linkType, packets }))
  })
}

describe('cross-check against pcap-parser', () => {
  it.each([true, false])('frames the same records (little-endian=%s)', async (le) => {
    let seed = 7
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff
      return seed % n
    }
    const records = Array.from({ length: 300 }, (_, i) => {
      const data = Buffer.alloc(rand(1600))
      for (let j = 0; j < data.length; j++) data[j] = rand(256)
      return { sec: 1_700_000_000 + i * 13, frac: rand(1_000_000), data, orig: data.length + rand(3) }
    })
    const path = tmp.write(`cross-${le}.pcap`, pcapFile({ le, linkType: 113 }, records))
    const theirs = await parseWithPcapParser(path)
    const ours = await readAll(path, { chunkBytes: 4096 })
    expect(ours.error).toBeUndefined()
    expect(ours.frames.map((f) => f.linkType)).toEqual(theirs.packets.map(() => theirs.linkType))
    expect(ours.frames.map((f) => [f.tsSec, f.tsNanos, f.capturedLength, f.originalLength, f.data])).toEqual(
      theirs.packets.map((p) => [
        p.header.timestampSeconds,
        p.header.timestampMicroseconds * 1000,
        p.header.capturedLength,
        p.header.originalLength,
        p.data.toString('hex'),
      ]),
    )
  })
})
