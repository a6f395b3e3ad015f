import type { NtpClass } from '../../core/event.js'
import { EventRowEncoder } from '../../store/rowbinary.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { makePacket, type PacketSpec } from '../helpers/packets.js'

export interface SeedSpec extends PacketSpec {
  sensor?: string
}

/** Inserts the packets as events, one batch per sensor; the aggregates follow by their views. */
export async function seedEvents(store: Store, specs: SeedSpec[], tag = 'seed'): Promise<void> {
  const bySensor = new Map<string, SeedSpec[]>()
  for (const s of specs) {
    const sensor = s.sensor ?? 'sensor-a'
    bySensor.set(sensor, [...(bySensor.get(sensor) ?? []), s])
  }
  let n = 0
  for (const [sensor, list] of bySensor) {
    const enc = new EventRowEncoder(1 << 16)
    const fileId = `${tag}-${sensor}`.padEnd(32, '0').slice(0, 32)
    enc.setFile(sensor, fileId)
    list.forEach((s, i) => {
      const { packet, enrichment } = makePacket(s)
      enc.add(packet, enrichment, i)
    })
    await store.insertRowBinary('events', EVENT_STRUCTURE, enc.take(), `${tag}-${n++}`)
  }
}

const rep = (n: number, spec: (i: number) => SeedSpec): SeedSpec[] => Array.from({ length: n }, (_, i) => spec(i))

/**
 * A small store whose numbers the API tests state literally:
 *
 *   2014-01-01  CN 4 packets from 2 sources, US 2/1, DE 1/1, plus 1 backscatter packet (DE)
 *   2014-01-02  CN 2/1, JP 1/1 (IPv6), -- 1/1 (bogon)
 *   2014-01-03  US 4/1 at 00:10, 00:20, 05:00, 23:59
 */
export const SMALL: SeedSpec[] = [
  ...rep(3, (i) => ({
    ts: `2014-01-01T01:0${i}:00Z`,
    src: '1.1.1.1',
    dst: `203.0.113.${i + 1}`,
    cls: 'monlist',
    country: 'CN',
  })),
  { ts: '2014-01-01T02:00:00Z', src: '1.1.1.2', cls: 'client', country: 'CN' },
  ...rep(2, (i) => ({
    ts: `2014-01-01T03:0${i}:00Z`,
    src: '2.2.2.2',
    dst: '203.0.113.1',
    cls: 'monlist',
    country: 'US',
    sensor: 'sensor-b',
  })),
  { ts: '2014-01-01T04:00:00Z', src: '3.3.3.3', cls: 'mode6_readvar', country: 'DE' },
  { ts: '2014-01-01T05:00:00Z', src: '9.9.9.9', srcPort: 123, dstPort: 40000, cls: 'response', country: 'DE' },
  ...rep(2, (i) => ({
    ts: `2014-01-02T06:0${i}:00Z`,
    src: '1.1.1.1',
    dst: `203.0.113.${i + 4}`,
    cls: 'monlist',
    country: 'CN',
    sensor: 'sensor-b',
  })),
  { ts: '2014-01-02T07:00:00Z', src: '2001:200::5', cls: 'monlist', country: 'JP' },
  { ts: '2014-01-02T08:00:00Z', src: '10.0.0.1', cls: 'client', country: '--', bogon: true },
  ...['00:10', '00:20', '05:00', '23:59'].map(
    (hm): SeedSpec => ({
      ts: `2014-01-03T${hm}:00Z`,
      src: '2.2.2.2',
      dst: '203.0.113.1',
      cls: 'monlist',
      country: 'US',
      sensor: 'sensor-b',
    }),
  ),
]

/** Deterministic pseudo-random numbers (mulberry32), so a failing run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const LARGE_COUNTRIES = ['CN', 'US', 'RU', 'DE', 'JP', 'FR', 'NL', 'KR', 'BR', 'GB', 'IN', 'TW', 'VN', 'UA']
export const LARGE_DAYS = Array.from({ length: 14 }, (_, i) => `2014-01-${String(i + 1).padStart(2, '0')}`)

/**
 * A fortnight of scanning from 14 countries over two sensors: enough for "top N + other", a
 * monlist wave in the second week, backscatter, a bogon and IPv6 sources.
 */
export function largeDataset(seed = 20140101): SeedSpec[] {
  const r = rng(seed)
  const out: SeedSpec[] = []
  const classes: NtpClass[] = ['monlist', 'client', 'mode6_readvar', 'mode7_other', 'other_ntp']
  LARGE_DAYS.forEach((day, d) => {
    LARGE_COUNTRIES.forEach((country, c) => {
      const weight = Math.max(1, Math.round((LARGE_COUNTRIES.length - c) * (0.6 + r()) * (d >= 7 ? 2 : 1)))
      const sources = 1 + Math.floor(r() * 4)
      for (let k = 0; k < weight; k++) {
        const s = Math.floor(r() * sources)
        const hour = Math.floor(r() * 24)
        const minute = Math.floor(r() * 60)
        const monlistBias = d >= 7 ? 0.7 : 0.3
        const cls = r() < monlistBias ? 'monlist' : classes[1 + Math.floor(r() * (classes.length - 1))]!
        out.push({
          ts: `${day}T${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}:${String(k % 60).padStart(2, '0')}Z`,
          src: `${20 + c}.${s}.${d % 3}.${1 + (s % 200)}`,
          dst: `198.51.100.${1 + Math.floor(r() * 254)}`,
          cls,
          country,
          sensor: r() < 0.6 ? 'sensor-a' : 'sensor-b',
        })
      }
    })
    // Backscatter (from port 123) and a bogon source every day; an IPv6 scanner on odd days.
    out.push({
      ts: `${day}T12:00:00Z`,
      src: '192.0.2.77',
      srcPort: 123,
      dstPort: 33333,
      cls: 'response',
      country: 'US',
    })
    out.push({ ts: `${day}T13:00:00Z`, src: '10.1.2.3', cls: 'client', country: '--', bogon: true })
    if (d % 2 === 1)
      out.push({ ts: `${day}T14:00:00Z`, src: '2001:200:dead::1', cls: 'monlist', country: 'JP', sensor: 'sensor-b' })
  })
  return out
}
