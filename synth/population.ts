/**
 * Who sends what to the synthetic darknet: sensors with their dark prefixes, and a source
 * population shaped like a 2013-14 darknet's view of UDP/123 — scanners from many countries
 * that come back day after day, a surge of monlist probing from a few countries in November,
 * backscatter (responses from port 123 to spoofed darknet addresses), a few bogon and IPv6
 * sources — plus the addresses of the noise that the pipeline must drop.
 *
 * Countries are never invented: candidate addresses are drawn at random from public IPv4 space
 * (or from the RIR IPv6 blocks) and the caller's `countryOf` says where each one is; the pool
 * of each wanted country fills up with the addresses it claims.
 */
import { TeitenError } from '../core/errors.js'
import { formatIp, parseIp } from './frames.js'
import type { CountryLookup } from './geo.js'
import type { PayloadVariant } from './payloads.js'
import { cumulative, Rng } from './rng.js'

export const UNKNOWN = '--'

// ---------------------------------------------------------------------------------------------
// Prefixes and address space

export interface Prefix {
  text: string
  v: 4 | 6
  bytes: Buffer
  bits: number
}

export function parseCidr(text: string): Prefix {
  const [addr, bitsText] = text.split('/')
  const bytes = parseIp(addr)
  const bits = Number(bitsText)
  const max = bytes.length * 8
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new TeitenError('BAD_PARAMETER', `bad prefix ${text}`)
  return { text, v: bytes.length === 4 ? 4 : 6, bytes, bits }
}

export function inPrefix(addr: Uint8Array, p: Prefix): boolean {
  if (addr.length !== p.bytes.length) return false
  let bits = p.bits
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((addr[i] & mask) !== (p.bytes[i] & mask)) return false
  }
  return true
}

/** Writes a random address inside `p` into out (4 or 16 bytes): the host part is random. */
export function randomInPrefix(p: Prefix, rng: Rng, out: Buffer): void {
  for (let i = 0; i < out.length; i++) {
    const bitStart = i * 8
    if (bitStart + 8 <= p.bits) out[i] = p.bytes[i]
    else if (bitStart >= p.bits) out[i] = rng.u32() & 0xff
    else {
      const keep = p.bits - bitStart
      const mask = (0xff << (8 - keep)) & 0xff
      out[i] = (p.bytes[i] & mask) | (rng.u32() & ~mask & 0xff)
    }
  }
}

/**
 * IPv4 space that is not globally reachable (IANA special-purpose registry, RFC 6890) plus
 * multicast and class E. Kept here rather than imported from enrich/ so that the truth does
 * not share code with the pipeline; a darknet's "bogon" sources are drawn from a few of these.
 */
const V4_NOT_PUBLIC: ReadonlyArray<readonly [number, number]> = [
  [0x00000000, 8],
  [0x0a000000, 8],
  [0x64400000, 10],
  [0x7f000000, 8],
  [0xa9fe0000, 16],
  [0xac100000, 12],
  [0xc0000000, 24],
  [0xc0000200, 24],
  [0xc0586300, 24],
  [0xc0a80000, 16],
  [0xc6120000, 15],
  [0xc6336400, 24],
  [0xcb007100, 24],
  [0xe0000000, 3],
]

export function isPublicV4(addr: number): boolean {
  for (const [net, bits] of V4_NOT_PUBLIC) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    if ((addr & mask) >>> 0 === net) return false
  }
  return true
}

function v4Bytes(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

/** RIR unicast blocks (IANA IPv6 unicast address assignments): where IPv6 sources are drawn from. */
const V6_SOURCE_BLOCKS = ['2400::/12', '2600::/12', '2800::/12', '2a00::/12', '2c00::/12'].map(parseCidr)

/** Bogon sources a darknet sees: RFC 1918 leaks, CGN space, and IPv6 ULA. */
const BOGON_BLOCKS = ['10.0.0.0/8', '192.168.0.0/16', '172.16.0.0/12', '100.64.0.0/10', 'fd00::/8'].map(parseCidr)

// ---------------------------------------------------------------------------------------------
// Sensors

/**
 * File rotation: windows of `seconds`, aligned `shiftSeconds` before the start day's 00:00 UTC
 * (a sensor rotating at midnight JST has shiftSeconds = 9 h, so its daily files straddle two
 * UTC days).
 */
export interface Rotation {
  seconds: number
  shiftSeconds: number
}

export const DAILY_UTC: Rotation = { seconds: 86_400, shiftSeconds: 0 }
export const DAILY_JST: Rotation = { seconds: 86_400, shiftSeconds: 9 * 3600 }
export const HOURLY: Rotation = { seconds: 3600, shiftSeconds: 0 }

export interface SensorSpec {
  name: string
  /** The dark IPv4 prefix the sensor watches (destinations are drawn from it). */
  prefix4: string
  /** The dark IPv6 prefix the sensor watches. */
  prefix6: string
  rotation?: Rotation
}

/**
 * Default dark prefixes. They are arbitrary routed-looking public prefixes picked for the
 * synthetic corpus, deliberately not documentation or other special-purpose space (real sensors
 * watch routed, unused space, and a pipeline that treats 198.51.100.0/24 as bogon would see
 * nothing else). They say nothing about who holds these blocks; no source is ever drawn from
 * them.
 */
export const DEFAULT_SENSORS: readonly SensorSpec[] = [
  { name: 'sensor-a', prefix4: '150.95.218.0/24', prefix6: '2400:8500:1301:51::/64' },
  { name: 'sensor-b', prefix4: '157.7.44.0/24', prefix6: '2400:8902:e1:2c::/64' },
  { name: 'sensor-c', prefix4: '160.16.96.0/23', prefix6: '2403:3a00:202:1107::/64' },
]

// ---------------------------------------------------------------------------------------------
// Countries and the November surge

export interface CountryWeight {
  country: string
  weight: number
}

/**
 * Illustrative shares of scanning sources by country, in the spirit of the advisory's Figure 2
 * (the United States and China dominate, then a long tail); not the advisory's numbers.
 */
export const DEFAULT_COUNTRIES: readonly CountryWeight[] = [
  { country: 'US', weight: 24 },
  { country: 'CN', weight: 18 },
  { country: 'JP', weight: 6 },
  { country: 'KR', weight: 5 },
  { country: 'RU', weight: 5 },
  { country: 'DE', weight: 4 },
  { country: 'NL', weight: 4 },
  { country: 'FR', weight: 3 },
  { country: 'GB', weight: 3 },
  { country: 'BR', weight: 3 },
  { country: 'TW', weight: 3 },
  { country: 'IN', weight: 2 },
  { country: 'HK', weight: 2 },
  { country: 'CA', weight: 2 },
  { country: 'UA', weight: 1.5 },
  { country: 'RO', weight: 1.5 },
  { country: 'TR', weight: 1.5 },
  { country: 'VN', weight: 1.5 },
  { country: 'PL', weight: 1 },
  { country: 'IT', weight: 1 },
  { country: 'ES', weight: 1 },
  { country: 'SE', weight: 1 },
  { country: 'SG', weight: 1 },
  { country: 'ID', weight: 1 },
  { country: 'TH', weight: 1 },
  { country: 'AR', weight: 1 },
  { country: 'MX', weight: 1 },
]

export interface SurgeSpec {
  countries: readonly string[]
  /** ISO dates (UTC): the surge starts, peaks, and is over. */
  start: string
  peak: string
  end: string
  /** Share of all kept packets that the surge sources send (0 disables the surge). */
  share: number
}

export const DEFAULT_SURGE: SurgeSpec = {
  countries: ['US', 'CN', 'NL'],
  start: '2013-11-04',
  peak: '2013-11-22',
  end: '2013-12-20',
  share: 0.35,
}

// ---------------------------------------------------------------------------------------------
// Behaviour profiles

export interface Profile {
  name: string
  /** Responders send from port 123 (backscatter); scanners send to port 123. */
  responder: boolean
  /** Probability that a scanner uses source port 123 (ntpd talking to ntpd). */
  sport123: number
  payloads: ReadonlyArray<readonly [string, number]>
}

export const PROFILES: readonly Profile[] = [
  {
    name: 'monlist-kit',
    responder: false,
    sport123: 0.01,
    payloads: [
      ['monlist.kit', 88],
      ['monlist.vn3', 4],
      ['monlist.more-bit', 2],
      ['monlist.vn0', 1],
      ['mode7.impl0-code42', 2],
      ['non_ntp.vn7-monlist', 3],
    ],
  },
  {
    name: 'nmap',
    responder: false,
    sport123: 0,
    payloads: [
      ['monlist.nmap', 45],
      ['client.v4-nmap', 45],
      ['monlist.vn4-48', 5],
      ['mode7.four-bytes', 5],
    ],
  },
  {
    name: 'ntpdc',
    responder: false,
    sport123: 0.05,
    payloads: [
      ['monlist.ntpdc', 40],
      ['monlist.ntpdc-impl2', 10],
      ['monlist.getlist', 10],
      ['mode7.peer-list', 15],
      ['mode7.sys-info', 10],
      ['mode7.sys-stats', 5],
      ['mode7.if-stats', 5],
      ['mode7.impl3-code43', 5],
    ],
  },
  {
    name: 'ntpq',
    responder: false,
    sport123: 0.05,
    payloads: [
      ['mode6.readvar', 45],
      ['mode6.readvar-vn3', 8],
      ['mode6.readvar-vn0', 3],
      ['mode6.readvar-assoc', 8],
      ['mode6.readvar-names', 5],
      ['mode6.readvar-more', 3],
      ['mode6.readstat', 12],
      ['mode6.read-mru', 8],
      ['mode6.req-nonce', 4],
      ['mode6.opcode0', 2],
      ['mode6.opcode31', 2],
    ],
  },
  {
    name: 'research',
    responder: false,
    sport123: 0,
    payloads: [
      ['client.v4', 30],
      ['mode6.readvar', 30],
      ['monlist.ntpdc', 20],
      ['mode7.peer-list', 10],
      ['client.v3', 10],
    ],
  },
  {
    name: 'version',
    responder: false,
    sport123: 0.02,
    payloads: [
      ['client.v4-nmap', 35],
      ['client.v4', 25],
      ['client.v3', 15],
      ['client.v2', 6],
      ['client.v1', 4],
      ['client.v4-mac', 5],
      ['client.v4-ext', 3],
      ['other.client-vn0', 4],
      ['other.mode0', 3],
    ],
  },
  {
    name: 'ntpd',
    responder: false,
    sport123: 1,
    payloads: [
      ['client.v4', 45],
      ['client.v3', 10],
      ['other.symmetric-active', 20],
      ['other.symmetric-passive', 5],
      ['other.client-vn0', 5],
      ['other.mode0-zeros', 5],
      ['response.server-v4', 10],
    ],
  },
  {
    name: 'junk',
    responder: false,
    sport123: 0.05,
    payloads: [
      ['non_ntp.empty', 20],
      ['non_ntp.vn5-client', 8],
      ['non_ntp.vn6-client', 6],
      ['non_ntp.vn7-monlist', 6],
      ['non_ntp.vn5-readvar', 6],
      ['non_ntp.vn7-junk', 10],
      ['non_ntp.client-47', 8],
      ['non_ntp.client-49', 8],
      ['non_ntp.server-40', 6],
      ['non_ntp.newline', 6],
      ['non_ntp.crlf2', 6],
      ['non_ntp.zeros-8', 5],
      ['non_ntp.client-50', 5],
    ],
  },
  {
    name: 'reflector',
    responder: true,
    sport123: 1,
    payloads: [
      ['response.monlist-6', 35],
      ['response.monlist-6-impl2', 5],
      ['response.monlist-3', 15],
      ['response.monlist-1', 10],
      ['response.mode7-error', 10],
      ['response.server-v4', 10],
      ['response.kiss-rate', 5],
      ['non_ntp.vn7-junk', 5],
      ['other.symmetric-passive', 5],
    ],
  },
  {
    name: 'server',
    responder: true,
    sport123: 1,
    payloads: [
      ['response.server-v4', 40],
      ['response.server-v3', 15],
      ['response.server-mac', 5],
      ['response.broadcast', 5],
      ['response.readvar', 15],
      ['response.readstat', 5],
      ['response.mode6-error', 5],
      ['response.kiss-rate', 5],
      ['non_ntp.server-40', 5],
    ],
  },
]

const BASE_PROFILE_WEIGHTS: Record<string, number> = {
  'monlist-kit': 15,
  nmap: 8,
  ntpdc: 14,
  ntpq: 12,
  research: 10,
  version: 30,
  ntpd: 8,
  junk: 7,
}
const SURGE_PROFILE_WEIGHTS: Record<string, number> = { 'monlist-kit': 55, ntpdc: 35, nmap: 10 }
const RESPONDER_PROFILE_WEIGHTS: Record<string, number> = { reflector: 40, server: 60 }

/** A profile's payload choice, resolved against the catalogue. */
export interface ResolvedProfile {
  profile: Profile
  variants: Int32Array
  cumulative: Float64Array
}

export function resolveProfiles(catalog: readonly PayloadVariant[]): ResolvedProfile[] {
  const byName = new Map(catalog.map((v, i) => [v.name, i]))
  return PROFILES.map((profile) => {
    const variants = profile.payloads.map(([name]) => {
      const i = byName.get(name)
      if (i === undefined) throw new Error(`profile ${profile.name} names unknown payload ${name}`)
      return i
    })
    return {
      profile,
      variants: Int32Array.from(variants),
      cumulative: cumulative(profile.payloads.map(([, w]) => w)),
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Sources

export type SourceGroup = 'base' | 'surge' | 'responder'

export interface Source {
  addr: Buffer
  text: string
  v: 4 | 6
  /** Truth country: countryOf(text), or '--' for a bogon. */
  country: string
  bogon: boolean
  group: SourceGroup
  profile: number
  ttl: number
  /** Source port used for every packet, or -1 for a random ephemeral port per packet. */
  fixedSport: number
  /** Active window, day indexes (inclusive) relative to the first day; may extend past the range. */
  firstDay: number
  lastDay: number
  /** Probability of being active on a day of the window. */
  activeProb: number
  /** Bit i set: the source reaches sensor i. */
  sensorMask: number
  /** Mean packets per active day per sensor (after scaling). */
  rate: number
  /** Preferred second of the day and spread (seconds) of its packets' times. */
  centerSecond: number
  spreadSeconds: number
}

export interface PopulationOptions {
  seed: number
  days: number
  /** First day of the range, as day number since the epoch (UTC). */
  startDay: number
  sensors: number
  countryOf: CountryLookup
  countries: readonly CountryWeight[]
  surge: SurgeSpec | null
  /** Kept (UDP/123) packets to aim at over the whole range. */
  targetKept: number
  /** Addresses never used as sources (the sensors' own prefixes). */
  excluded: readonly Prefix[]
  /** Upper bound on countryOf calls while filling the country pools. */
  maxLookups?: number
}

export interface Population {
  sources: Source[]
  /** Countries that were wanted but that no candidate address fell in. */
  missingCountries: string[]
  lookups: number
}

const DAY = 86_400

/** Days since the epoch of an ISO date (UTC). */
export function dayNumber(iso: string): number {
  const ms = Date.parse(`${iso}T00:00:00Z`)
  if (Number.isNaN(ms)) throw new TeitenError('BAD_PARAMETER', `bad date ${iso}`)
  return Math.floor(ms / 1000 / DAY)
}

function weightedKeys(weights: Record<string, number>): { names: string[]; cum: Float64Array } {
  const names = Object.keys(weights)
  return { names, cum: cumulative(names.map((n) => weights[n])) }
}

function profileIndex(name: string): number {
  const i = PROFILES.findIndex((p) => p.name === name)
  if (i < 0) throw new Error(`no profile ${name}`)
  return i
}

function pickTtl(rng: Rng): number {
  const initial = rng.pick([64, 64, 64, 128, 128, 255])
  return initial - rng.range(4, 24)
}

function pickSensorMask(rng: Rng, sensors: number): number {
  const all = (1 << sensors) - 1
  const x = rng.float()
  if (x < 0.6 || sensors === 1) return all
  let mask = 0
  const want = x < 0.85 ? Math.min(2, sensors) : 1
  while (popcount(mask) < want) mask |= 1 << rng.int(sensors)
  return mask
}

export function popcount(x: number): number {
  let n = 0
  for (let v = x; v; v &= v - 1) n++
  return n
}

/** Rejects candidates inside any excluded prefix (the sensors' dark space). */
function excluded(addr: Uint8Array, list: readonly Prefix[]): boolean {
  for (const p of list) if (inPrefix(addr, p)) return true
  return false
}

interface Draft {
  group: SourceGroup
  kind: 'country' | 'v6' | 'bogon' | 'unknown'
  country: string
  profile: number
}

/**
 * Builds the source population: decides how many sources of which kind and country, then fills
 * per-country address pools by asking countryOf about random public addresses.
 */
export function buildPopulation(o: PopulationOptions): Population {
  const rng = Rng.derive(o.seed, 'population')
  const maxLookups = o.maxLookups ?? 3_000_000
  const target = Math.max(1, o.targetKept)
  const nBase = Math.round(Math.min(40_000, Math.max(120, Math.sqrt(target) * 6)))
  const surgeShare = surgeShareInRange(o)
  const nSurge = surgeShare > 0 ? Math.round(nBase * 0.3) : 0
  const nResp = Math.round(nBase * 0.25)

  const countryNames = o.countries.map((c) => c.country.toUpperCase())
  const countryCum = cumulative(o.countries.map((c) => c.weight))
  const surgeCountries = (o.surge?.countries ?? []).map((c) => c.toUpperCase())
  const base = weightedKeys(BASE_PROFILE_WEIGHTS)
  const surge = weightedKeys(SURGE_PROFILE_WEIGHTS)
  const resp = weightedKeys(RESPONDER_PROFILE_WEIGHTS)

  const drafts: Draft[] = []
  const draft = (group: SourceGroup, profile: number, countries: string[], cum: Float64Array | null) => {
    const x = rng.float()
    let kind: Draft['kind'] = 'country'
    if (group !== 'surge') {
      if (x < 0.015) kind = 'bogon'
      else if (x < 0.025) kind = 'unknown'
      else if (x < (group === 'responder' ? 0.1 : 0.06)) kind = 'v6'
    }
    const country = kind === 'country' ? (cum ? countries[rng.weighted(cum)] : rng.pick(countries)) : UNKNOWN
    drafts.push({ group, kind, country, profile })
  }
  for (let i = 0; i < nBase; i++)
    draft('base', profileIndex(base.names[rng.weighted(base.cum)]), countryNames, countryCum)
  for (let i = 0; i < nSurge; i++) {
    draft('surge', profileIndex(surge.names[rng.weighted(surge.cum)]), surgeCountries, null)
  }
  for (let i = 0; i < nResp; i++)
    draft('responder', profileIndex(resp.names[rng.weighted(resp.cum)]), countryNames, countryCum)

  // How many addresses each country pool needs.
  const need = new Map<string, number>()
  let needUnknown = 0
  for (const d of drafts) {
    if (d.kind === 'country') need.set(d.country, (need.get(d.country) ?? 0) + 1)
    else if (d.kind === 'unknown') needUnknown++
  }
  const pools = new Map<string, Buffer[]>()
  for (const c of need.keys()) pools.set(c, [])
  const unknownPool: Buffer[] = []
  const used = new Set<string>()
  let lookups = 0
  let open = need.size + (needUnknown > 0 ? 1 : 0)
  const poolRng = Rng.derive(o.seed, 'pools')
  while (open > 0 && lookups < maxLookups) {
    const n = poolRng.u32()
    if (!isPublicV4(n)) continue
    const addr = v4Bytes(n)
    if (excluded(addr, o.excluded)) continue
    const text = formatIp(addr)
    if (used.has(text)) continue
    lookups++
    const c = o.countryOf(text) || UNKNOWN
    if (c === UNKNOWN) {
      if (unknownPool.length < needUnknown) {
        unknownPool.push(addr)
        used.add(text)
        if (unknownPool.length === needUnknown) open--
      }
      continue
    }
    const pool = pools.get(c)
    const want = need.get(c) ?? 0
    if (pool && pool.length < want) {
      pool.push(addr)
      used.add(text)
      if (pool.length === want) open--
    }
  }
  const missingCountries = [...need.keys()].filter((c) => (pools.get(c)?.length ?? 0) === 0).sort()

  const sources: Source[] = []
  const taken = new Map<string, number>()
  const surgeStart = o.surge ? dayNumber(o.surge.start) - o.startDay : 0
  const surgePeak = o.surge ? dayNumber(o.surge.peak) - o.startDay : 0
  const surgeEnd = o.surge ? dayNumber(o.surge.end) - o.startDay : 0
  for (const d of drafts) {
    let addr: Buffer | undefined
    let country = UNKNOWN
    let bogon = false
    if (d.kind === 'country') {
      const pool = pools.get(d.country) ?? []
      if (pool.length === 0) continue // the lookup knows no address of that country: documented in missingCountries
      const k = taken.get(d.country) ?? 0
      taken.set(d.country, k + 1)
      if (k >= pool.length) continue // pool ran short within the lookup budget: fewer sources of that country
      addr = pool[k]
      country = d.country
    } else if (d.kind === 'unknown') {
      addr = unknownPool.pop()
      if (!addr) continue
    } else if (d.kind === 'bogon') {
      const block = rng.pick(BOGON_BLOCKS)
      addr = Buffer.alloc(block.bytes.length)
      randomInPrefix(block, rng, addr)
      bogon = true
    } else {
      const block = rng.pick(V6_SOURCE_BLOCKS)
      addr = Buffer.alloc(16)
      randomInPrefix(block, rng, addr)
      if (excluded(addr, o.excluded)) continue
      country = o.countryOf(formatIp(addr)) || UNKNOWN
      lookups++
    }
    const text = formatIp(addr)
    if (used.has(text) && d.kind !== 'country' && d.kind !== 'unknown') continue
    used.add(text)

    // Activity: when, how often, how much.
    let firstDay: number
    let lastDay: number
    let activeProb: number
    if (d.group === 'surge') {
      firstDay = Math.round(triangular(rng, surgeStart, surgePeak, surgeEnd))
      lastDay = Math.min(surgeEnd, firstDay + rng.range(2, 14))
      activeProb = 0.8 + 0.2 * rng.float()
    } else if (d.group === 'responder') {
      firstDay = rng.range(0, o.days - 1)
      lastDay = firstDay + rng.range(0, 3)
      activeProb = 1
    } else if (rng.chance(0.1)) {
      // Research scanners and the like: there all along.
      firstDay = 0
      lastDay = o.days - 1
      activeProb = 0.85 + 0.15 * rng.float()
    } else {
      firstDay = rng.range(-10, o.days - 1)
      lastDay = firstDay + Math.min(60, Math.floor(-8 * Math.log(1 - rng.float())))
      activeProb = 0.5 + 0.5 * rng.float()
    }
    const profile = PROFILES[d.profile]
    let fixedSport = -1
    if (profile.responder) fixedSport = 123
    else if (rng.chance(profile.sport123)) fixedSport = 123
    else if (rng.chance(0.5)) fixedSport = rng.range(1024, 65535)
    sources.push({
      addr,
      text,
      v: addr.length === 4 ? 4 : 6,
      country: bogon ? UNKNOWN : country,
      bogon,
      group: d.group,
      profile: d.profile,
      ttl: pickTtl(rng),
      fixedSport,
      firstDay,
      lastDay,
      activeProb,
      sensorMask: pickSensorMask(rng, o.sensors),
      rate: Math.exp(1.1 * rng.normal()),
      centerSecond: rng.int(DAY),
      spreadSeconds: rng.chance(0.3) ? DAY : 600 + rng.int(6 * 3600),
    })
  }
  scaleRates(sources, o, surgeShare)
  return { sources, missingCountries, lookups }
}

/** The surge's share of kept packets, or 0 when the surge is off or outside the date range. */
function surgeShareInRange(o: PopulationOptions): number {
  if (!o.surge || o.surge.share <= 0 || o.surge.countries.length === 0) return 0
  const start = dayNumber(o.surge.start) - o.startDay
  const end = dayNumber(o.surge.end) - o.startDay
  if (end < 0 || start >= o.days) return 0
  return Math.min(0.9, o.surge.share)
}

function triangular(rng: Rng, a: number, c: number, b: number): number {
  if (b <= a) return a
  const u = rng.float()
  const f = (c - a) / (b - a)
  return u < f ? a + Math.sqrt(u * (b - a) * (c - a)) : b - Math.sqrt((1 - u) * (b - a) * (b - c))
}

/** Expected packets of a source over the range at rate 1. */
function exposure(s: Source, days: number): number {
  const first = Math.max(0, s.firstDay)
  const last = Math.min(days - 1, s.lastDay)
  if (last < first) return 0
  return (last - first + 1) * s.activeProb * popcount(s.sensorMask)
}

/** Scales rates so that each group sends its share of the target number of kept packets. */
function scaleRates(sources: Source[], o: PopulationOptions, surgeShare: number): void {
  const respShare = 0.16
  const shares: Record<SourceGroup, number> = {
    surge: surgeShare,
    responder: respShare,
    base: 1 - surgeShare - respShare,
  }
  for (const group of ['base', 'surge', 'responder'] as const) {
    let expected = 0
    for (const s of sources) if (s.group === group) expected += s.rate * exposure(s, o.days)
    if (expected <= 0) continue
    const k = (shares[group] * o.targetKept) / expected
    for (const s of sources) if (s.group === group) s.rate *= k
  }
}

// ---------------------------------------------------------------------------------------------
// Noise sources

/** Addresses of noise senders (TCP scanners, ICMP-sending routers, tunnel endpoints). */
export function buildNoisePool(seed: number, count: number, excludedPrefixes: readonly Prefix[]): Buffer[] {
  const rng = Rng.derive(seed, 'noise-pool')
  const out: Buffer[] = []
  while (out.length < count) {
    if (out.length % 16 === 15) {
      const addr = Buffer.alloc(16)
      randomInPrefix(rng.pick(V6_SOURCE_BLOCKS), rng, addr)
      if (!excluded(addr, excludedPrefixes)) out.push(addr)
      continue
    }
    const n = rng.u32()
    if (!isPublicV4(n)) continue
    const addr = v4Bytes(n)
    if (!excluded(addr, excludedPrefixes)) out.push(addr)
  }
  return out
}
