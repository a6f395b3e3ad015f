import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Reader } from 'maxmind'
import { afterAll, describe, expect, it } from 'vitest'
import { type ErrorCode, isTeitenError, type TeitenError } from '../../core/errors.js'
import { DEFAULT_GEOIP_CACHE_SIZE, defaultGeoIpPath, GeoIp } from '../../enrich/geoip.js'
import { countryCodeRecord, geoip2CountryRecord, mmdb, writeMmdb } from '../helpers/mmdb-writer.js'
import { addr16, countryCodeDb, geoip2Db } from './fixtures.js'

const dir = mkdtempSync(join(tmpdir(), 'teiten-geoip-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, bytes: Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, bytes)
  return path
}

async function openError(path: string): Promise<TeitenError> {
  try {
    await GeoIp.open(path)
  } catch (err) {
    if (isTeitenError(err)) return err
    throw err
  }
  throw new Error(`GeoIp.open(${path}) did not fail`)
}

function expectCode(err: TeitenError, code: ErrorCode, path: string): void {
  expect(err.code).toBe(code)
  expect(err.file).toBe(path)
  expect(err.message).toContain(path)
}

const lookups: Array<[string, 4 | 6, string]> = [
  ['133.1.2.3', 4, 'JP'],
  ['81.2.69.142', 4, 'GB'],
  ['89.160.20.112', 4, 'SE'],
  ['8.8.8.8', 4, 'US'],
  ['192.168.1.1', 4, 'AU'], // GeoIp reports the database; enrich() is what blanks bogons
  ['134.0.0.1', 4, '--'], // no network: no data
  ['2001:218::1', 6, 'JP'],
  ['2a02:ff0:1::', 6, 'SE'],
  ['2001:219::1', 6, '--'],
  ['::ffff:133.1.2.3', 6, 'JP'], // IPv4-mapped but flagged 6: still IPv4
]

describe('GeoIp lookups on fixture databases', () => {
  for (const [shape, build] of [
    ['country_code', countryCodeDb],
    ['geoip2', geoip2Db],
  ] as const) {
    for (const recordSize of [24, 28, 32] as const) {
      it(`${shape} records, ${recordSize}-bit tree: each fixture address gets its country`, async () => {
        const path = file(`${shape}-${recordSize}.mmdb`, build({ recordSize }))
        const geo = await GeoIp.open(path)
        expect(geo.shape).toBe(shape)
        const got = lookups.map(([text, v]) => geo.country(addr16(text), v))
        expect(got).toEqual(lookups.map(([, , cc]) => cc))
      })
    }
  }

  it('an IPv4 tree answers IPv4 and gives -- for IPv6', () => {
    const geo = GeoIp.fromBuffer(
      writeMmdb({
        ipVersion: 4,
        databaseType: 'country ipv4',
        networks: [{ network: '133.0.0.0/8', data: countryCodeRecord('JP') }],
      }),
      'v4.mmdb',
    )
    expect(geo.country(addr16('133.9.9.9'), 4)).toBe('JP')
    expect(geo.country(addr16('2001:218::1'), 6)).toBe('--')
    expect(geo.info().ipVersion).toBe(4)
  })

  it('an IPv6 tree without an IPv4 subtree gives -- for IPv4', () => {
    const geo = GeoIp.fromBuffer(
      writeMmdb({
        ipVersion: 6,
        databaseType: 'v6 only',
        networks: [{ network: '2001:218::/32', data: countryCodeRecord('JP') }],
      }),
      'v6.mmdb',
    )
    expect(geo.country(addr16('133.9.9.9'), 4)).toBe('--')
    expect(geo.country(addr16('2001:218::9'), 6)).toBe('JP')
  })

  it('GeoIP2 records: country wins over registered_country', () => {
    const geo = GeoIp.fromBuffer(
      geoip2Db({}, [{ network: '13.112.0.0/14', data: geoip2CountryRecord('JP', 'US') }]), // a cloud region
      'g.mmdb',
    )
    expect(geo.country(addr16('13.112.1.1'), 4)).toBe('JP')
  })

  it('GeoIP2 records: registered_country when country is absent', () => {
    const geo = GeoIp.fromBuffer(
      geoip2Db({}, [{ network: '214.1.1.0/24', data: geoip2CountryRecord(null, 'US') }]),
      'g.mmdb',
    )
    expect(geo.country(addr16('214.1.1.7'), 4)).toBe('US')
  })

  it('GeoIP2 records: neither country nor registered_country is --', () => {
    const geo = GeoIp.fromBuffer(
      geoip2Db({}, [{ network: '214.1.1.0/24', data: { traits: { is_anycast: true } } }]),
      'g.mmdb',
    )
    expect(geo.country(addr16('214.1.1.7'), 4)).toBe('--')
  })

  it.each([
    ['jp', 'JP'],
    ['ZZ', '--'],
    ['USA', '--'],
    ['', '--'],
    ['1A', '--'],
  ])('country_code %j is reported as %j', (code, want) => {
    const geo = GeoIp.fromBuffer(countryCodeDb({}, [{ network: '5.0.0.0/8', data: countryCodeRecord(code) }]), 'c.mmdb')
    expect(geo.country(addr16('5.5.5.5'), 4)).toBe(want)
  })

  it('a country_code that is not a string is --', () => {
    const geo = GeoIp.fromBuffer(countryCodeDb({}, [{ network: '5.0.0.0/8', data: { country_code: 392 } }]), 'c.mmdb')
    expect(geo.country(addr16('5.5.5.5'), 4)).toBe('--')
  })

  it('record values above 2^24 (28-bit nibbles, 32-bit high byte) are followed correctly', () => {
    for (const recordSize of [28, 32] as const) {
      const geo = GeoIp.fromBuffer(
        writeMmdb({
          ipVersion: 6,
          recordSize,
          databaseType: 'country ipvAll',
          networks: [
            { network: '1.0.0.0/8', data: { country_code: 'AU', pad: 'p'.repeat(17 << 20) } },
            { network: '2.0.0.0/8', data: countryCodeRecord('FR') },
          ],
        }),
        'big.mmdb',
      )
      expect([geo.country(addr16('1.1.1.1'), 4), geo.country(addr16('2.2.2.2'), 4)]).toEqual(['AU', 'FR'])
    }
  })

  it('rejects an address shorter than 16 bytes with BAD_PARAMETER', () => {
    const geo = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb')
    expect(() => geo.country(Buffer.from([1, 2, 3, 4]), 4)).toThrow(expect.objectContaining({ code: 'BAD_PARAMETER' }))
  })
})

describe('GeoIp record shape and metadata', () => {
  it('describes the database for logs: type, build date, record shape', async () => {
    const path = file(
      'described.mmdb',
      countryCodeDb({ buildEpoch: 1_750_000_000, description: { en: 'fixture db' }, recordSize: 24 }),
    )
    const geo = await GeoIp.open(path)
    expect(geo.info()).toEqual({
      file: path,
      databaseType: 'country ipvAll',
      buildDate: '2025-06-15T15:06:40.000Z',
      shape: 'country_code',
      ipVersion: 6,
      recordSize: 24,
      nodeCount: expect.any(Number),
      description: 'fixture db',
    })
    expect(geo.describe()).toBe(
      `${path}: type "country ipvAll", built 2025-06-15T15:06:40.000Z, country_code records, IPv6 tree`,
    )
  })

  it('a MaxMind Country type name with no sampled country record is still taken as geoip2', () => {
    const geo = GeoIp.fromBuffer(
      writeMmdb({
        ipVersion: 6,
        databaseType: 'GeoIP2-Country',
        networks: [{ network: '1.0.0.0/8', data: { traits: {} } }],
      }),
      'sparse.mmdb',
    )
    expect(geo.shape).toBe('geoip2')
    expect(geo.country(addr16('1.1.1.1'), 4)).toBe('--')
  })
})

describe('GeoIp.open failures', () => {
  it('an ASN database is GEOIP_UNSUPPORTED naming the file', async () => {
    const path = file(
      'asn.mmdb',
      writeMmdb({
        ipVersion: 6,
        databaseType: 'GeoLite2-ASN',
        networks: [
          {
            network: '1.0.0.0/24',
            data: { autonomous_system_number: 15169, autonomous_system_organization: 'Google Inc.' },
          },
        ],
      }),
    )
    const err = await openError(path)
    expectCode(err, 'GEOIP_UNSUPPORTED', path)
    expect(err.message).toContain('GeoLite2-ASN')
  })

  it('a missing file is GEOIP_OPEN_FAILED naming the file', async () => {
    const path = join(dir, 'nope.mmdb')
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })

  it('a directory is GEOIP_OPEN_FAILED', async () => {
    expectCode(await openError(dir), 'GEOIP_OPEN_FAILED', dir)
  })

  it('bytes that are not a MaxMind DB are GEOIP_OPEN_FAILED', async () => {
    const path = file('junk.mmdb', Buffer.from('this is not a database\n'.repeat(100)))
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })

  it('an empty file is GEOIP_OPEN_FAILED', async () => {
    const path = file('empty.mmdb', Buffer.alloc(0))
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })

  it('a gzip-compressed database is GEOIP_OPEN_FAILED saying so', async () => {
    const path = file('db.mmdb.gz', gzipSync(countryCodeDb()))
    const err = await openError(path)
    expectCode(err, 'GEOIP_OPEN_FAILED', path)
    expect(err.message).toMatch(/gzip/)
  })

  it('a database cut short (metadata lost) is GEOIP_OPEN_FAILED', async () => {
    const whole = countryCodeDb()
    const path = file('cut.mmdb', whole.subarray(0, Math.floor(whole.length / 2)))
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })

  it('metadata claiming more nodes than the file holds is GEOIP_OPEN_FAILED', async () => {
    const path = file('lying.mmdb', countryCodeDb({ metadataOverrides: { node_count: mmdb.uint32(10_000_000) } }))
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })

  it('an unsupported record size is GEOIP_OPEN_FAILED', async () => {
    const path = file('rs.mmdb', countryCodeDb({ metadataOverrides: { record_size: mmdb.uint16(20) } }))
    expectCode(await openError(path), 'GEOIP_OPEN_FAILED', path)
  })
})

describe('GeoIp address cache', () => {
  it('repeats are hits; the first sight of an address is a miss', () => {
    const geo = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb')
    const a = addr16('133.1.2.3')
    const b = addr16('2001:218::1')
    for (let i = 0; i < 5; i++) {
      geo.country(a, 4)
      geo.country(b, 6)
    }
    // Both JP networks share one deduplicated data record: one decode served both families.
    expect(geo.cacheStats()).toEqual({
      hits: 8,
      misses: 2,
      evictions: 0,
      capacity: DEFAULT_GEOIP_CACHE_SIZE,
      records: 1,
    })
  })

  it('cacheSize 0 disables it: every lookup walks the tree', () => {
    const geo = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 0 })
    for (let i = 0; i < 3; i++) expect(geo.country(addr16('133.1.2.3'), 4)).toBe('JP')
    expect(geo.cacheStats()).toMatchObject({ hits: 0, misses: 3, capacity: 0 })
  })

  it('a tiny cache under heavy collisions still answers exactly what the uncached lookup does', () => {
    const cached = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 16 })
    const plain = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 0 })
    const texts: Array<[string, 4 | 6]> = []
    for (let i = 0; i < 2000; i++) {
      texts.push([`${[133, 81, 89, 8, 9][i % 5]}.${(i * 7) % 256}.${i % 256}.${(i * 13) % 256}`, 4])
      texts.push([`2001:${(0x218 + (i % 3)).toString(16)}::${i.toString(16)}`, 6])
    }
    const mismatches = [...texts, ...texts]
      .map(([t, v]) => [t, cached.country(addr16(t), v), plain.country(addr16(t), v)])
      .filter(([, x, y]) => x !== y)
    expect(mismatches).toEqual([])
    const stats = cached.cacheStats()
    expect(stats.capacity).toBe(16)
    expect(stats.evictions).toBeGreaterThan(0)
    expect(stats.hits + stats.misses).toBe(texts.length * 2)
  })

  it('two sources alternating never evict each other, even in a 16-slot cache (2-way sets)', () => {
    // 200 pairs: with one slot per hash, about one pair in 16 would share a slot and miss on
    // every packet; with two ways per set a pair always fits.
    const failures: string[] = []
    for (let i = 0; i < 200; i++) {
      const geo = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 16 })
      const a = addr16(`133.${i}.1.1`)
      const b = addr16(`81.2.${i}.9`)
      for (let k = 0; k < 10; k++) {
        geo.country(a, 4)
        geo.country(b, 4)
      }
      const { misses } = geo.cacheStats()
      if (misses !== 2) failures.push(`pair ${i}: ${misses} misses`)
    }
    expect(failures).toEqual([])
  })

  it('clearCache forgets addresses and zeroes the counters', () => {
    const geo = GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb')
    geo.country(addr16('133.1.2.3'), 4)
    geo.country(addr16('133.1.2.3'), 4)
    geo.clearCache()
    expect(geo.cacheStats()).toMatchObject({ hits: 0, misses: 0, evictions: 0 })
    geo.country(addr16('133.1.2.3'), 4)
    expect(geo.cacheStats()).toMatchObject({ hits: 0, misses: 1 })
  })

  it('cache sizes round up to a power of two, from 16 to 2^24 slots', () => {
    expect(GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 1000 }).cacheStats().capacity).toBe(1024)
    expect(GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 3 }).cacheStats().capacity).toBe(16)
    expect(GeoIp.fromBuffer(countryCodeDb(), 'c.mmdb', { cacheSize: 2 ** 40 }).cacheStats().capacity).toBe(2 ** 24)
  })
})

describe('GeoIp with the default database (ip-location-db, installed with teiten)', () => {
  it('resolves the .mmdb inside the npm package and reads country_code records', async () => {
    const path = defaultGeoIpPath()
    expect(path).toMatch(/node_modules\/@ip-location-db\/geo-whois-asn-country-mmdb\/geo-whois-asn-country\.mmdb$/)
    const geo = await GeoIp.open()
    expect(geo.info()).toMatchObject({ file: path, shape: 'country_code', ipVersion: 6 })
    expect(geo.info().buildDate).toMatch(/^\d{4}-\d\d-\d\dT/)
  })

  it('the tree walk agrees with the maxmind reader on 20k pseudo-random IPv4 and IPv6 addresses', async () => {
    const path = defaultGeoIpPath()
    const geo = await GeoIp.open(path, { cacheSize: 0 })
    const reader = new Reader<never>((await import('node:fs')).readFileSync(path))
    const expected = (text: string): string => {
      const code = (reader.get(text) as { country_code?: string } | null)?.country_code
      return code && /^[A-Za-z]{2}$/.test(code) && code.toUpperCase() !== 'ZZ' ? code.toUpperCase() : '--'
    }
    let x = 20_140_110
    const next = () => {
      x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0
      return x
    }
    const mismatches: string[] = []
    for (let i = 0; i < 10_000; i++) {
      const a = next()
      const v4 = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`
      if (geo.country(addr16(v4), 4) !== expected(v4)) mismatches.push(v4)
      // Global unicast, where the database has data.
      const words = [0x20000000 | (next() & 0x1fffffff), next(), next(), next()]
      const v6 = words.flatMap((w) => [(w >>> 16).toString(16), (w & 0xffff).toString(16)]).join(':')
      if (geo.country(addr16(v6), 6) !== expected(v6)) mismatches.push(v6)
    }
    expect(mismatches).toEqual([])
  })
})
