/**
 * GeoIP lookup throughput on a darknet-like source distribution: `vitest bench --run test/enrich`.
 * Not part of `vitest run` (only *.test.ts are). Each iteration looks up 100k packets' sources
 * drawn Zipf(1.1) from 20k scanners plus 1% one-off sources, against the default database.
 */
import { readFileSync } from 'node:fs'
import { Reader } from 'maxmind'
import { bench, describe } from 'vitest'
import { defaultGeoIpPath, GeoIp } from '../../enrich/geoip.js'

const PACKETS = 100_000
const SCANNERS = 20_000
const ONE_OFF = 0.01

let seed = 42
function random(): number {
  seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0
  return seed / 4_294_967_296
}

const scanners = Uint32Array.from({ length: SCANNERS }, () => (random() * 4_294_967_296) >>> 0)
const cdf = new Float64Array(SCANNERS)
let total = 0
for (let i = 0; i < SCANNERS; i++) {
  total += 1 / (i + 1) ** 1.1
  cdf[i] = total
}
const sources = Uint32Array.from({ length: PACKETS }, () => {
  if (random() < ONE_OFF) return (random() * 4_294_967_296) >>> 0
  const x = random() * total
  let lo = 0
  let hi = SCANNERS - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (cdf[mid] < x) lo = mid + 1
    else hi = mid
  }
  return scanners[lo]
})

const path = defaultGeoIpPath()
const bytes = readFileSync(path)
const reader = new Reader<never>(bytes)
const uncached = GeoIp.fromBuffer(bytes, path, { cacheSize: 0 })
const cached = GeoIp.fromBuffer(bytes, path)
const mapped = Buffer.alloc(16)
mapped[10] = 0xff
mapped[11] = 0xff

describe(`GeoIP: ${PACKETS} lookups per iteration`, () => {
  bench('maxmind Reader.get(dotted string)', () => {
    for (const a of sources) {
      const r = reader.get(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`) as {
        country_code?: string
      } | null
      if (r?.country_code === '') throw new Error('unreachable')
    }
  })
  bench('GeoIp, address cache off', () => {
    for (const a of sources) {
      mapped.writeUInt32BE(a, 12)
      uncached.country(mapped, 4)
    }
  })
  bench('GeoIp, address cache on (default size)', () => {
    for (const a of sources) {
      mapped.writeUInt32BE(a, 12)
      cached.country(mapped, 4)
    }
  })
})
