import type { Enrichment, NtpClass, UdpPacket } from '../../core/event.js'
import { CLASS_ID } from '../../core/event.js'
import { EventRowEncoder } from '../../store/rowbinary.js'

/** 16-byte IPv4-mapped or IPv6 address from its text form (test helper, not for hot paths). */
export function addr16(text: string): Buffer {
  const out = Buffer.alloc(16)
  if (text.includes('.')) {
    out[10] = 0xff
    out[11] = 0xff
    text.split('.').forEach((octet, i) => {
      out[12 + i] = Number(octet)
    })
    return out
  }
  const [head, tail = ''] = text.split('::')
  const h = head ? head.split(':') : []
  const t = text.includes('::') && tail ? tail.split(':') : []
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

/** A deterministic draw in [0, m) per call (a 32-bit LCG): seeded test data, same on every run. */
export function seededDraw(seed: number): (m: number) => number {
  let x = seed >>> 0
  return (m) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    return x % m
  }
}

export interface PacketSpec {
  ts: string // ISO time, UTC
  src: string
  dst?: string
  srcPort?: number
  dstPort?: number
  cls: NtpClass
  country: string
  bogon?: boolean
}

export function makePacket(spec: PacketSpec): { packet: UdpPacket; enrichment: Enrichment } {
  const ms = Date.parse(spec.ts)
  const v6 = !spec.src.includes('.')
  return {
    packet: {
      tsSec: Math.floor(ms / 1000),
      tsNanos: (ms % 1000) * 1_000_000,
      ipVersion: v6 ? 6 : 4,
      src: addr16(spec.src),
      dst: addr16(spec.dst ?? (v6 ? '2001:db8::1' : '203.0.113.9')),
      srcPort: spec.srcPort ?? 40000,
      dstPort: spec.dstPort ?? 123,
      ttl: 50,
      ipLength: 36,
      udpLength: 16,
      payload: Buffer.from([0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0]),
      wireLength: 50,
    },
    enrichment: {
      classId: CLASS_ID[spec.cls],
      ntpVersion: 2,
      ntpMode: 7,
      ntpCode: 42,
      ntpImpl: 3,
      country: spec.country,
      bogon: spec.bogon ?? false,
    },
  }
}

/** RowBinary rows of `events` for these packets, as the pipeline encodes them (record = index). */
export function encodeRows(specs: PacketSpec[], sensor = 'sensor-a', fileId = 'f'.repeat(32)): Buffer {
  const enc = new EventRowEncoder(64)
  enc.setFile(sensor, fileId)
  specs.forEach((s, i) => {
    const { packet, enrichment } = makePacket(s)
    enc.add(packet, enrichment, i)
  })
  return enc.take()
}
