/**
 * Local benchmark of the ingest hot path (not a test): readCapture + decodeFrame over a capture,
 * and a generator for a synthetic darknet-like pcap. Compare with
 *   time tcpdump -r FILE -w /dev/null 'udp port 123'
 * Run (Node 24 strips the types): node --import <a .js->.ts resolve hook> bench/decode.ts [FILE] [PACKETS]
 */
import { open } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { readCapture } from '../ingest/capture.js'
import { createUdpPacket, decodeFrame } from '../ingest/decode.js'

export interface DecodeBenchResult {
  records: number
  matched: number
  /** Sum of NTP modes of the matched packets: keeps the payload read from being optimised away. */
  checksum: number
  seconds: number
  packetsPerSecond: number
  megabytesPerSecond: number
}

export async function benchDecode(path: string): Promise<DecodeBenchResult> {
  const out = createUdpPacket()
  let matched = 0
  let checksum = 0
  const start = performance.now()
  const stats = await readCapture(path, (frame) => {
    if (decodeFrame(frame, out)) {
      matched++
      if (out.payload.length > 0) checksum += out.payload[0]! & 7
    }
  })
  const seconds = (performance.now() - start) / 1000
  return {
    records: stats.records,
    matched,
    checksum,
    seconds,
    packetsPerSecond: stats.records / seconds,
    megabytesPerSecond: stats.bytes / 1e6 / seconds,
  }
}

/**
 * Writes `packets` Ethernet records shaped like darknet traffic: ~55% UDP/123 (client requests,
 * monlist, mode 6), ~20% other UDP, ~15% TCP SYN, ~5% ICMP, ~5% IPv6 UDP/123, some VLAN-tagged.
 */
export async function writeSyntheticPcap(path: string, packets: number): Promise<number> {
  const templates = makeTemplates()
  const fh = await open(path, 'w')
  try {
    const header = Buffer.alloc(24)
    header.writeUInt32LE(0xa1b2c3d4, 0)
    header.writeUInt16LE(2, 4)
    header.writeUInt16LE(4, 6)
    header.writeUInt32LE(262144, 16)
    header.writeUInt32LE(1, 20)
    await fh.write(header)
    const chunk = Buffer.allocUnsafe(8 * 1024 * 1024)
    let used = 0
    let written = 24
    let seed = 12345
    for (let i = 0; i < packets; i++) {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff
      const t = templates[seed % templates.length]!
      if (used + 16 + t.length > chunk.length) {
        await fh.write(chunk, 0, used)
        written += used
        used = 0
      }
      const sec = 1_700_000_000 + Math.floor(i / 1000)
      chunk.writeUInt32LE(sec, used)
      chunk.writeUInt32LE((i % 1000) * 1000, used + 4)
      chunk.writeUInt32LE(t.length, used + 8)
      chunk.writeUInt32LE(t.length, used + 12)
      t.copy(chunk, used + 16)
      // Vary the source address so nothing downstream sees one flow.
      if (t[12] === 0x08 && t[13] === 0x00) chunk.writeUInt32BE(0xc6336400 + (seed & 0xff), used + 16 + 26)
      used += 16 + t.length
    }
    await fh.write(chunk, 0, used)
    return written + used
  } finally {
    await fh.close()
  }
}

function makeTemplates(): Buffer[] {
  const mac = Buffer.from('0200000000010200000000020800', 'hex')
  const mac6 = Buffer.from('02000000000102000000000286dd', 'hex')
  const vlan = Buffer.from('020000000001020000000002810000640800', 'hex')
  const v4 = (proto: number, l4: Buffer) => {
    const h = Buffer.alloc(20)
    h[0] = 0x45
    h.writeUInt16BE(20 + l4.length, 2)
    h[8] = 240
    h[9] = proto
    h.writeUInt32BE(0xc6336407, 12)
    h.writeUInt32BE(0xc0000201, 16)
    return Buffer.concat([h, l4])
  }
  const v6 = (l4: Buffer) => {
    const h = Buffer.alloc(40)
    h[0] = 0x60
    h.writeUInt16BE(l4.length, 4)
    h[6] = 17
    h[7] = 60
    h.writeUInt16BE(0x2001, 8)
    h.writeUInt16BE(0x2001, 24)
    return Buffer.concat([h, l4])
  }
  const udp = (sport: number, dport: number, payload: Buffer) => {
    const h = Buffer.alloc(8)
    h.writeUInt16BE(sport, 0)
    h.writeUInt16BE(dport, 2)
    h.writeUInt16BE(8 + payload.length, 4)
    return Buffer.concat([h, payload])
  }
  const client = Buffer.alloc(48)
  client[0] = 0x23
  const monlist = Buffer.from('1700032a00000000', 'hex')
  const readvar = Buffer.from('160200010000000000000000', 'hex')
  const tcpSyn = Buffer.alloc(20)
  tcpSyn.writeUInt16BE(40000, 0)
  tcpSyn.writeUInt16BE(23, 2)
  tcpSyn[12] = 0x50
  tcpSyn[13] = 0x02
  const icmp = Buffer.alloc(8)
  icmp[0] = 8
  const list: Buffer[] = []
  const add = (n: number, b: Buffer) => {
    for (let i = 0; i < n; i++) list.push(b)
  }
  add(25, Buffer.concat([mac, v4(17, udp(40000, 123, client))]))
  add(20, Buffer.concat([mac, v4(17, udp(40001, 123, monlist))]))
  add(5, Buffer.concat([vlan, v4(17, udp(40002, 123, readvar))]))
  add(5, Buffer.concat([mac, v4(17, udp(123, 123, monlist))]))
  add(20, Buffer.concat([mac, v4(17, udp(53000, 53, Buffer.alloc(30)))]))
  add(15, Buffer.concat([mac, v4(6, tcpSyn), Buffer.alloc(6)]))
  add(5, Buffer.concat([mac, v4(1, icmp), Buffer.alloc(18)]))
  add(5, Buffer.concat([mac6, v6(udp(40003, 123, client))]))
  return list
}

const invokedDirectly = import.meta.url === `file://${process.argv[1]}`
if (invokedDirectly) {
  const path = process.argv[2] ?? '/tmp/teiten-bench.pcap'
  const packets = Number(process.argv[3] ?? 2_000_000)
  if (process.argv[3] !== undefined || process.argv[2] === undefined) {
    const bytes = await writeSyntheticPcap(path, packets)
    console.log(`wrote ${packets} packets, ${(bytes / 1e6).toFixed(1)} MB to ${path}`)
  }
  for (let run = 0; run < 3; run++) {
    const r = await benchDecode(path)
    console.log(
      `run ${run + 1}: ${r.records} records, ${r.matched} udp/123 in ${r.seconds.toFixed(3)} s = ` +
        `${(r.packetsPerSecond / 1e6).toFixed(2)} Mpps, ${r.megabytesPerSecond.toFixed(0)} MB/s`,
    )
  }
}
