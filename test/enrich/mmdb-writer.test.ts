import { Reader } from 'maxmind'
import { describe, expect, it } from 'vitest'
import {
  countryCodeRecord,
  geoip2CountryRecord,
  METADATA_MARKER,
  type MmdbValue,
  mmdb,
  parseAddress,
  writeMmdb,
} from '../helpers/mmdb-writer.js'

// The writer is only worth its fixtures if an independent reader agrees with it: every test
// here reads the output with the `maxmind` package.

function read(buf: Buffer): Reader<never> {
  return new Reader<never>(buf)
}

describe('mmdb-writer output read by the maxmind package', () => {
  it.each([24, 28, 32] as const)('%i-bit records: metadata and country_code lookups in an IPv6 tree', (recordSize) => {
    const buf = writeMmdb({
      ipVersion: 6,
      recordSize,
      databaseType: 'country ipvAll',
      buildEpoch: 1_750_000_000,
      description: { en: 'fixture' },
      networks: [
        { network: '133.0.0.0/8', data: countryCodeRecord('JP') },
        { network: '81.2.69.0/24', data: countryCodeRecord('GB') },
        { network: '2001:218::/32', data: countryCodeRecord('JP') },
      ],
    })
    const reader = read(buf)
    expect(reader.metadata).toMatchObject({
      recordSize,
      ipVersion: 6,
      databaseType: 'country ipvAll',
      binaryFormatMajorVersion: 2,
      binaryFormatMinorVersion: 0,
      description: { en: 'fixture' },
    })
    expect(reader.metadata.buildEpoch.toISOString()).toBe('2025-06-15T15:06:40.000Z')
    expect(reader.get('133.45.6.7')).toEqual({ country_code: 'JP' })
    expect(reader.get('81.2.69.142')).toEqual({ country_code: 'GB' })
    expect(reader.get('2001:218:ffff::1')).toEqual({ country_code: 'JP' })
    expect(reader.get('134.0.0.0')).toBeNull()
    expect(reader.get('2001:219::')).toBeNull()
    expect(reader.getWithPrefixLength('81.2.69.1')[1]).toBe(24)
  })

  it('IPv4 tree with GeoIP2 records', () => {
    const buf = writeMmdb({
      ipVersion: 4,
      databaseType: 'GeoLite2-Country',
      networks: [
        { network: '89.160.20.0/24', data: geoip2CountryRecord('SE') },
        { network: '214.1.1.0/24', data: geoip2CountryRecord(null, 'US') },
      ],
    })
    const reader = read(buf)
    expect(reader.metadata.ipVersion).toBe(4)
    expect(reader.get('89.160.20.112')).toMatchObject({
      country: { iso_code: 'SE' },
      registered_country: { iso_code: 'SE' },
    })
    expect(reader.get('214.1.1.9')).toEqual({
      registered_country: { geoname_id: 2, iso_code: 'US', names: { en: 'US' } },
    })
  })

  it('a more specific network inserted later splits the wider one', () => {
    const reader = read(
      writeMmdb({
        ipVersion: 4,
        databaseType: 'split',
        networks: [
          { network: '10.0.0.0/8', data: countryCodeRecord('AA') },
          { network: '10.1.0.0/16', data: countryCodeRecord('BB') },
        ],
      }),
    )
    expect(reader.getWithPrefixLength('10.1.2.3')).toEqual([{ country_code: 'BB' }, 16])
    expect(reader.getWithPrefixLength('10.0.255.255')).toEqual([{ country_code: 'AA' }, 16])
    expect(reader.getWithPrefixLength('10.200.0.1')).toEqual([{ country_code: 'AA' }, 9])
  })

  it('aliasIpv4 makes ::ffff:0:0/96 and 2002::/16 lead into the IPv4 subtree', () => {
    const reader = read(
      writeMmdb({
        ipVersion: 6,
        databaseType: 'alias',
        aliasIpv4: true,
        networks: [{ network: '1.2.3.0/24', data: countryCodeRecord('AU') }],
      }),
    )
    expect(reader.get('1.2.3.4')).toEqual({ country_code: 'AU' })
    expect(reader.get('::ffff:1.2.3.4')).toEqual({ country_code: 'AU' })
    expect(reader.get('2002:102:304::1')).toEqual({ country_code: 'AU' }) // 6to4 of 1.2.3.4
    expect(reader.get('2002:102:404::1')).toBeNull()
  })

  it('every data type survives the round trip, including long strings needing extended sizes', () => {
    const record: MmdbValue = {
      short: 'JP',
      size29: 'x'.repeat(100), // size field 29: one extra byte
      size30: 'y'.repeat(1000), // size field 30: two extra bytes
      size31: 'z'.repeat(70_000), // size field 31: three extra bytes
      utf8: '日本',
      u16: mmdb.uint16(65_535),
      u32: 4_294_967_295,
      zero: 0,
      u64: 18_446_744_073_709_551_615n,
      u128: mmdb.uint128((1n << 128n) - 1n),
      i32: -123_456,
      double: 3.5,
      float: mmdb.float(0.5),
      yes: true,
      no: false,
      list: ['a', 1, { nested: 'map' }],
      bytes: new Uint8Array([0, 1, 254, 255]),
    }
    const reader = read(
      writeMmdb({ ipVersion: 4, databaseType: 'types', networks: [{ network: '1.0.0.0/8', data: record }] }),
    )
    const got = reader.get('1.1.1.1') as unknown as Record<string, unknown>
    expect(got).toMatchObject({
      short: 'JP',
      size29: 'x'.repeat(100),
      size30: 'y'.repeat(1000),
      utf8: '日本',
      u16: 65_535,
      u32: 4_294_967_295,
      zero: 0,
      u64: 18_446_744_073_709_551_615n,
      u128: (1n << 128n) - 1n,
      i32: -123_456,
      double: 3.5,
      float: 0.5,
      yes: true,
      no: false,
      list: ['a', 1, { nested: 'map' }],
    })
    expect(got.size31).toBe('z'.repeat(70_000))
    expect(Buffer.from(got.bytes as Uint8Array)).toEqual(Buffer.from([0, 1, 254, 255]))
  })

  it('identical records are stored once and shared by the tree', () => {
    const one = writeMmdb({
      ipVersion: 4,
      databaseType: 'dedup',
      networks: [{ network: '1.0.0.0/8', data: countryCodeRecord('JP') }],
    })
    const many = writeMmdb({
      ipVersion: 4,
      databaseType: 'dedup',
      networks: ['1.0.0.0/8', '3.0.0.0/8', '5.0.0.0/8'].map((network) => ({ network, data: countryCodeRecord('JP') })),
    })
    const dataBytes = (b: Buffer) => {
      const r = read(b)
      return b.indexOf(METADATA_MARKER) - (r.metadata.nodeCount * r.metadata.recordSize) / 4 - 16
    }
    expect(dataBytes(many)).toBe(dataBytes(one))
  })

  it.each([28, 32] as const)('%i-bit records carry values above 2^24 (the nibble/high byte is used)', (recordSize) => {
    // A 17 MiB record first pushes the second record's pointer past 2^24.
    const reader = read(
      writeMmdb({
        ipVersion: 4,
        recordSize,
        databaseType: 'big',
        networks: [
          { network: '1.0.0.0/8', data: { pad: 'p'.repeat(17 << 20) } },
          { network: '2.0.0.0/8', data: countryCodeRecord('FR') },
        ],
      }),
    )
    expect(reader.get('2.2.2.2')).toEqual({ country_code: 'FR' })
  })

  it('refuses a record value that does not fit 24 bits', () => {
    expect(() =>
      writeMmdb({
        ipVersion: 4,
        recordSize: 24,
        databaseType: 'big',
        networks: [
          { network: '1.0.0.0/8', data: { pad: 'p'.repeat(17 << 20) } },
          { network: '2.0.0.0/8', data: countryCodeRecord('FR') },
        ],
      }),
    ).toThrow(/too large for 24 bits/)
  })

  it.each([
    ['1.2.3.4', 4, [1, 2, 3, 4]],
    ['::', 6, new Array(16).fill(0)],
    ['::ffff:1.2.3.4', 6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]],
    ['2001:db8::1', 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['fe80::1:2', 6, [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]],
    ['1:2:3:4:5:6:7:8', 6, [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
  ] as const)('parseAddress(%s)', (text, version, bytes) => {
    expect([...parseAddress(text, version)]).toEqual([...bytes])
  })
})
