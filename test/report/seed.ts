import type { NtpClass } from '../../core/event.js'
import { EventRowEncoder } from '../../store/rowbinary.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { makePacket, type PacketSpec } from '../helpers/packets.js'

/** Deterministic PRNG (mulberry32): the same seed gives the same noise on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Poisson-distributed counts: Knuth for small means, the normal approximation above. */
export function poisson(rand: () => number, mean: number): number {
  if (mean > 50) {
    const g = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * g))
  }
  const limit = Math.exp(-mean)
  let k = 0
  let p = rand()
  while (p > limit) {
    k++
    p *= rand()
  }
  return k
}

export async function insertEvents(store: Store, events: PacketSpec[], tag: string): Promise<void> {
  const batch = 5000
  for (let i = 0; i < events.length; i += batch) {
    const enc = new EventRowEncoder(1 << 16)
    enc.setFile('sensor-a', tag.padEnd(32, '0').slice(0, 32))
    events.slice(i, i + batch).forEach((spec, j) => {
      const { packet, enrichment } = makePacket(spec)
      enc.add(packet, enrichment, i + j)
    })
    await store.insertRowBinary('events', EVENT_STRUCTURE, enc.take(), `test:${tag}:${i}`)
  }
}

export interface Stream {
  country: string
  cls: NtpClass
  /** Mean packets per day; noise is Poisson around it. */
  level: number
  /** Days (YYYY-MM-DD) with a fixed count instead, e.g. a planted surge; 0 removes the day. */
  fixed?: Record<string, number>
  /** Only these days; default every day of the seed. */
  only?: string[]
}

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/**
 * Events for `days`, one stream per (country, class). Each country draws sources from its
 * own pool of `poolSize` addresses; `newOn` adds sources never used before on one day.
 * Backscatter (source port 123, so not an access) is mixed in and must never be counted.
 */
export function buildEvents(o: {
  seed: number
  days: string[]
  streams: Stream[]
  poolSize: number
  newSources?: { day: string; country: string; count: number; packetsEach: number }[]
}): PacketSpec[] {
  const rand = mulberry32(o.seed)
  const countries = [...new Set(o.streams.map((s) => s.country))]
  const pool = (country: string, k: number) => ipv4(((10 << 24) | ((countries.indexOf(country) + 1) << 16)) + k)
  const time = (day: string) => {
    const ms = Math.floor(rand() * 86_400_000)
    return new Date(Date.parse(`${day}T00:00:00Z`) + ms).toISOString()
  }
  const events: PacketSpec[] = []
  for (const day of o.days) {
    for (const s of o.streams) {
      if (s.only && !s.only.includes(day)) continue
      const n = s.fixed?.[day] ?? poisson(rand, s.level)
      for (let i = 0; i < n; i++) {
        events.push({
          ts: time(day),
          src: pool(s.country, Math.floor(rand() * o.poolSize)),
          cls: s.cls,
          country: s.country,
        })
      }
    }
    for (let i = 0; i < 5; i++) {
      events.push({ ts: time(day), src: `8.8.8.${i}`, srcPort: 123, dstPort: 40000, cls: 'response', country: 'US' })
    }
  }
  let fresh = 0
  for (const ns of o.newSources ?? []) {
    for (let k = 0; k < ns.count; k++) {
      const src = ipv4((172 << 24) | (16 << 16) | fresh++)
      for (let i = 0; i < ns.packetsEach + k; i++)
        events.push({ ts: time(ns.day), src, cls: 'monlist', country: ns.country })
    }
  }
  return events
}
