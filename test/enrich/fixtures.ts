/** Shared by the enrich tests: addresses as teiten stores them, and small GeoIP databases. */
import {
  countryCodeRecord,
  geoip2CountryRecord,
  type MmdbNetwork,
  type MmdbWriterOptions,
  parseAddress,
  writeMmdb,
} from '../helpers/mmdb-writer.js'

/** 16-byte address as the decoders store it: IPv4 as ::ffff:a.b.c.d, IPv6 as is. */
export function addr16(text: string): Buffer {
  return Buffer.from(text.includes(':') ? parseAddress(text, 6) : parseAddress(`::ffff:${text}`, 6))
}

/** Networks and countries every shape of fixture database holds. */
export const FIXTURE_COUNTRIES: ReadonlyArray<readonly [string, string]> = [
  ['133.0.0.0/8', 'JP'],
  ['81.2.69.0/24', 'GB'],
  ['89.160.20.0/24', 'SE'],
  ['192.168.0.0/16', 'AU'], // what ip-location-db really says about part of it
  ['8.8.8.0/24', 'US'],
  ['2001:218::/32', 'JP'],
  ['2a02:ff0::/32', 'SE'],
]

export function countryCodeDb(extra: Partial<MmdbWriterOptions> = {}, more: MmdbNetwork[] = []): Buffer {
  return writeMmdb({
    ipVersion: 6,
    databaseType: 'country ipvAll',
    networks: [...FIXTURE_COUNTRIES.map(([network, cc]) => ({ network, data: countryCodeRecord(cc) })), ...more],
    ...extra,
  })
}

export function geoip2Db(extra: Partial<MmdbWriterOptions> = {}, more: MmdbNetwork[] = []): Buffer {
  return writeMmdb({
    ipVersion: 6,
    databaseType: 'GeoLite2-Country',
    networks: [...FIXTURE_COUNTRIES.map(([network, cc]) => ({ network, data: geoip2CountryRecord(cc) })), ...more],
    ...extra,
  })
}
