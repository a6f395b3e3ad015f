/**
 * The country lookup the corpus generator is given. The generator never decides countries
 * itself: it asks `countryOf` about candidate addresses and keeps what the answer says, so
 * ground truth agrees with whatever database the caller chose (the default CC0 ip-location-db
 * database, or a test fixture). This reads the database with the `maxmind` package directly,
 * not through enrich/, so the truth does not share code with the pipeline under test.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Reader, type Response } from 'maxmind'
import { TeitenError } from '../core/errors.js'

/** ISO 3166-1 alpha-2 in capitals, or '--' when the database has no answer. */
export type CountryLookup = (addr: string) => string

export const DEFAULT_DB_PACKAGE = '@ip-location-db/geo-whois-asn-country-mmdb'
export const DEFAULT_DB_FILE = 'geo-whois-asn-country.mmdb'

export function defaultDbPath(): string {
  try {
    return createRequire(import.meta.url).resolve(`${DEFAULT_DB_PACKAGE}/${DEFAULT_DB_FILE}`)
  } catch (err) {
    throw new TeitenError('GEOIP_OPEN_FAILED', `npm package ${DEFAULT_DB_PACKAGE} is not installed`, {}, { cause: err })
  }
}

interface CountryRecord {
  country_code?: string
  country?: { iso_code?: string }
  registered_country?: { iso_code?: string }
}

/** A lookup over an .mmdb file (ip-location-db's `country_code` or GeoIP2's `country.iso_code`). */
export function openCountryLookup(path: string = defaultDbPath()): CountryLookup {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (err) {
    throw new TeitenError('GEOIP_OPEN_FAILED', `cannot read ${path}`, { file: path }, { cause: err })
  }
  const reader = new Reader<Response>(bytes)
  return (addr: string) => {
    // Both record shapes are read field by field, whatever mmdb-lib's union type says.
    const r = reader.get(addr) as CountryRecord | null
    const code = r?.country_code ?? r?.country?.iso_code ?? r?.registered_country?.iso_code
    return typeof code === 'string' && /^[A-Za-z]{2}$/.test(code) ? code.toUpperCase() : '--'
  }
}
