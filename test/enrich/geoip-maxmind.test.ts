/**
 * Cross-check against MaxMind's own test databases (maxmind/MaxMind-DB test-data, see
 * ../shared/testdata/maxmind/SOURCE.md). Optional: skipped when the shared folder is absent;
 * everything else about GeoIp is proven with in-memory fixtures in geoip.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Reader } from 'maxmind'
import { describe, expect, it } from 'vitest'
import { isTeitenError } from '../../core/errors.js'
import { GeoIp } from '../../enrich/geoip.js'
import { parseAddress } from '../helpers/mmdb-writer.js'
import { addr16 } from './fixtures.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const dataDir = resolve(repoRoot, '../shared/testdata/maxmind')
const present = existsSync(join(dataDir, 'SOURCE.md'))

const COUNTRY_DBS = ['GeoIP2-Country-Test', 'GeoLite2-Country-Test', 'GeoIP2-City-Test', 'GeoLite2-City-Test'] as const

function dbPath(name: string): string {
  return join(dataDir, `${name}.mmdb`)
}

/** The country GeoIp should report for a raw GeoIP2 record (country, else registered_country). */
function expectedCountry(record: unknown): string {
  const r = record as { country?: { iso_code?: string }; registered_country?: { iso_code?: string } } | null
  return r?.country?.iso_code ?? r?.registered_country?.iso_code ?? '--'
}

/** First and last address of every network in a .source.json, with the family to look it up as. */
function sourceProbes(name: string): Array<{ network: string; text: string; bytes: Buffer; version: 4 | 6 }> {
  const entries = JSON.parse(readFileSync(join(dataDir, `${name}.source.json`), 'utf8')) as Array<
    Record<string, unknown>
  >
  const probes: Array<{ network: string; text: string; bytes: Buffer; version: 4 | 6 }> = []
  for (const entry of entries) {
    for (const network of Object.keys(entry)) {
      const [address, lengthText] = network.split('/')
      const isV4 = !address.includes(':')
      const bits = isV4 ? 32 : 128
      const length = Number(lengthText)
      const raw = parseAddress(address, isV4 ? 4 : 6)
      let value = 0n
      for (const b of raw) value = (value << 8n) | BigInt(b)
      const hostBits = BigInt(bits - length)
      const first = (value >> hostBits) << hostBits // host bits cleared: ::74.209.24.0/116 starts at 74.209.16.0
      const last = first | ((1n << hostBits) - 1n)
      for (const v of [first, last]) {
        // IPv4 keys, and IPv4-compatible ::a.b.c.d keys of /96 or longer, are IPv4 networks:
        // a packet from one arrives as IPv4 and is stored ::ffff:a.b.c.d.
        const asV4 = isV4 || (length >= 96 && v >> 32n === 0n)
        const v4 = Number(v & 0xffffffffn)
        const text = asV4
          ? `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`
          : Array.from({ length: 8 }, (_, i) => ((v >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':')
        probes.push({ network, text, bytes: addr16(text), version: asV4 ? 4 : 6 })
      }
    }
  }
  return probes
}

describe.skipIf(!present)('GeoIp against the MaxMind test databases (../shared/testdata/maxmind)', () => {
  it.each(COUNTRY_DBS)('%s opens as geoip2 records and answers the documented examples', async (name) => {
    const geo = await GeoIp.open(dbPath(name))
    expect(geo.info()).toMatchObject({ shape: 'geoip2', ipVersion: 6, recordSize: 28 })
    expect(geo.info().databaseType).toBe(name.replace('-Test', ''))
    expect([
      geo.country(addr16('81.2.69.142'), 4),
      geo.country(addr16('89.160.20.112'), 4),
      geo.country(addr16('2001:218::'), 6),
    ]).toEqual(['GB', 'SE', 'JP'])
  })

  it('IPv4-compatible keys (::81.2.69.142/127) are IPv4 networks: found from the mapped storage form', async () => {
    const geo = await GeoIp.open(dbPath('GeoIP2-Country-Test'))
    expect(geo.country(addr16('81.2.69.142'), 4)).toBe('GB') // stored ::ffff:81.2.69.142, flagged 4
    expect(geo.country(addr16('::ffff:81.2.69.143'), 6)).toBe('GB') // mapped but flagged 6: still IPv4
    expect(geo.country(addr16('81.2.69.141'), 4)).not.toBe('GB') // just outside the /127 -> /31
  })

  it('a key with host bits set (::74.209.24.0/116) covers 74.209.16.0/20, as the maxmind reader says', async () => {
    const geo = await GeoIp.open(dbPath('GeoIP2-Country-Test'))
    const reader = new Reader<never>(readFileSync(dbPath('GeoIP2-Country-Test')))
    expect(reader.getWithPrefixLength('74.209.16.0')[1]).toBe(20)
    const probes = ['74.209.15.255', '74.209.16.0', '74.209.24.0', '74.209.31.255', '74.209.32.0']
    expect(probes.map((t) => geo.country(addr16(t), 4))).toEqual(['--', 'US', 'US', 'US', '--'])
    expect(probes.map((t) => expectedCountry(reader.get(t)))).toEqual(['--', 'US', 'US', 'US', '--'])
  })

  it('214.1.1.0/24 holds a record with neither country nor registered_country: --', async () => {
    const reader = new Reader<never>(readFileSync(dbPath('GeoIP2-Country-Test')))
    const record = reader.get('214.1.1.1') as Record<string, unknown> | null
    expect(record).not.toBeNull()
    expect(record).not.toHaveProperty('country')
    const geo = await GeoIp.open(dbPath('GeoIP2-Country-Test'))
    expect(geo.country(addr16('214.1.1.1'), 4)).toBe('--')
  })

  it('the ASN database is rejected as GEOIP_UNSUPPORTED naming the file', async () => {
    const path = dbPath('GeoLite2-ASN-Test')
    let caught: unknown
    try {
      await GeoIp.open(path)
    } catch (err) {
      caught = err
    }
    expect(isTeitenError(caught, 'GEOIP_UNSUPPORTED')).toBe(true)
    expect((caught as Error).message).toContain(path)
  })

  it.each(COUNTRY_DBS)(
    '%s: first and last address of every source network agree with the maxmind reader',
    async (name) => {
      const geo = await GeoIp.open(dbPath(name))
      const reader = new Reader<never>(readFileSync(dbPath(name)))
      const probes = sourceProbes(name)
      expect(probes.length).toBeGreaterThan(100)
      const mismatches = probes
        .map((p) => ({ ...p, got: geo.country(p.bytes, p.version), want: expectedCountry(reader.get(p.text)) }))
        .filter((p) => p.got !== p.want)
        .map(({ network, text, got, want }) => `${network} ${text}: got ${got}, reader ${want}`)
      expect(mismatches).toEqual([])
    },
  )
})
