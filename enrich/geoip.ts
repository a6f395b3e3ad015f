/**
 * Country of an address from a MaxMind DB (.mmdb) file: by default the ip-location-db
 * geo-whois-asn-country database installed with teiten from npm (package declared CC0-1.0; its
 * README credits the RIR WHOIS/ASN data to the NRO under CC BY 4.0), or any MaxMind
 * GeoIP2/GeoLite2 Country or City database.
 *
 * Per-packet cost matters (a darknet sensor sees millions of packets a day, mostly from a few
 * thousand repeating sources), so the hot path neither builds an address string nor allocates:
 * - the search tree is walked here, straight over the database bytes, with the bit layout and
 *   node count from the `maxmind` reader's parsed metadata;
 * - the `maxmind` reader only decodes a data record the first time the walk reaches it
 *   (its decoder is not public; `Reader.get` wants an address string), and the record's country
 *   is remembered by its record value, so a country database costs a few hundred decodes in
 *   total;
 * - an address -> country cache in typed arrays (2-way set associative, least recently used of
 *   the pair replaced) answers repeats without walking the tree. Fixed memory, no clearing
 *   pauses, no garbage: 6 bytes per IPv4 slot, 18 per IPv6 slot (IPv6 allocated on first use).
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { Reader, type Response } from 'maxmind'
import { TeitenError } from '../core/errors.js'
import { UNKNOWN_COUNTRY } from '../core/event.js'

/**
 * How the database's records name a country.
 * - `country_code`: ip-location-db, `{ country_code: 'JP' }`.
 * - `geoip2`: MaxMind GeoIP2/GeoLite2 Country, City, Enterprise:
 *   `{ country: { iso_code }, registered_country: { iso_code }, ... }`.
 */
export type GeoIpRecordShape = 'country_code' | 'geoip2'

/** What a log line should say about the database in use. */
export interface GeoIpInfo {
  file: string
  /** `database_type` from the metadata, e.g. "GeoLite2-Country" or "country ipvAll". */
  databaseType: string
  /** `build_epoch` as ISO 8601 UTC. */
  buildDate: string
  shape: GeoIpRecordShape
  /** Tree family: 6 trees hold IPv4 at ::/96; a 4 tree answers '--' for IPv6. */
  ipVersion: 4 | 6
  recordSize: number
  nodeCount: number
  /** The metadata's English description, when it has one. */
  description: string | undefined
}

export interface GeoIpCacheStats {
  /** Lookups answered from the address cache. */
  hits: number
  /** Lookups that walked the tree (every lookup when the cache is disabled). */
  misses: number
  /** Cached addresses pushed out by another one. */
  evictions: number
  /** Slots per address family (0: cache disabled). */
  capacity: number
  /** Distinct data records decoded so far. */
  records: number
}

export interface GeoIpOptions {
  /**
   * Address cache slots per family, rounded up to a power of two; 0 disables the cache.
   * Default 2^16: 384 KiB for IPv4 (fits a core's L2), 1.1 MiB for IPv6 once an IPv6 source is
   * seen. Measured on the default database with Zipf-distributed sources (5M lookups, 70
   * thousand to 1.8 million distinct): about 3x faster than no cache when sources repeat, never
   * slower when they do not; 2^20 slots raise the hit rate by under a point and run slower,
   * because a 6 MiB table misses the CPU cache on most probes.
   */
  cacheSize?: number
}

export const DEFAULT_GEOIP_CACHE_SIZE = 1 << 16
/** npm package and file of the default database. */
export const DEFAULT_GEOIP_PACKAGE = '@ip-location-db/geo-whois-asn-country-mmdb'
export const DEFAULT_GEOIP_FILE = 'geo-whois-asn-country.mmdb'

const METADATA_MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com', 'latin1')])
const DATA_SECTION_SEPARATOR = 16
/** Country index 0 marks an empty cache slot; 1 is '--'. */
const EMPTY = 0
const UNKNOWN = 1
/** Bounds the work of sniffing the record shape at open. */
const SHAPE_SAMPLE_RECORDS = 64
const SHAPE_SAMPLE_NODES = 200_000
/** Bounds the record-value -> country map for databases with very many records (City). */
const MAX_REMEMBERED_RECORDS = 1 << 20

/** Where the default database is: resolved through node_modules, wherever teiten is installed. */
export function defaultGeoIpPath(): string {
  try {
    return createRequire(import.meta.url).resolve(`${DEFAULT_GEOIP_PACKAGE}/${DEFAULT_GEOIP_FILE}`)
  } catch (err) {
    throw new TeitenError(
      'GEOIP_OPEN_FAILED',
      `the default GeoIP database (npm package ${DEFAULT_GEOIP_PACKAGE}) is not installed`,
      {},
      { cause: err },
    )
  }
}

type AnyReader = Reader<Response>

export class GeoIp {
  /** Opens `path`, or the default database when no path is given. */
  static async open(path?: string, options: GeoIpOptions = {}): Promise<GeoIp> {
    const file = path ?? defaultGeoIpPath()
    let bytes: Buffer
    try {
      bytes = await readFile(file)
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      throw new TeitenError(
        'GEOIP_OPEN_FAILED',
        `cannot read GeoIP database ${file}: ${reason}`,
        { file },
        { cause: err },
      )
    }
    return GeoIp.fromBuffer(bytes, file, options)
  }

  /** A database already in memory; `file` names it in errors and in `info()`. */
  static fromBuffer(bytes: Buffer, file: string, options: GeoIpOptions = {}): GeoIp {
    return new GeoIp(bytes, file, options)
  }

  private readonly db: Buffer
  private readonly reader: AnyReader
  private readonly file: string
  readonly shape: GeoIpRecordShape
  private readonly nodeCount: number
  private readonly recordSize: number
  private readonly nodeBytes: number
  private readonly searchTreeSize: number
  private readonly metadataStart: number
  private readonly treeIpVersion: 4 | 6
  private readonly ipv4Start: number
  private readonly databaseType: string
  private readonly buildDate: string
  private readonly description: string | undefined

  /** Country strings by index (0 unused, 1 '--'), and the way back. */
  private readonly names: string[] = ['', UNKNOWN_COUNTRY]
  private readonly nameIndex = new Map<string, number>([[UNKNOWN_COUNTRY, UNKNOWN]])
  /** Record value (as found in the tree) -> country index. */
  private readonly recordCountry = new Map<number, number>()

  private readonly slots: number
  private readonly shift: number
  private readonly v4Keys: Uint32Array
  private readonly v4Vals: Uint16Array
  private v6Keys: Uint32Array | null = null
  private v6Vals: Uint16Array | null = null
  private hits = 0
  private misses = 0
  private evictions = 0

  private constructor(bytes: Buffer, file: string, options: GeoIpOptions) {
    this.db = bytes
    this.file = file
    if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
      throw new TeitenError(
        'GEOIP_OPEN_FAILED',
        `GeoIP database ${file} is gzip-compressed: decompress it (gunzip) and pass the .mmdb`,
        { file },
      )
    }
    const metadataStart = bytes.lastIndexOf(METADATA_MARKER)
    if (metadataStart < 0) {
      throw new TeitenError('GEOIP_OPEN_FAILED', `${file} is not a MaxMind DB file (no metadata marker)`, { file })
    }
    let reader: AnyReader
    try {
      reader = new Reader<Response>(bytes)
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      throw new TeitenError(
        'GEOIP_OPEN_FAILED',
        `${file} is not a readable MaxMind DB: ${reason}`,
        { file },
        { cause: err },
      )
    }
    this.reader = reader
    const m = reader.metadata
    const nodeCount = m.nodeCount
    const recordSize = m.recordSize
    const ipVersion = m.ipVersion
    // Checked once here so the per-packet walk needs no bounds check: every node number it
    // reads from is below nodeCount, and nodeCount nodes fit before the data section.
    if (
      !Number.isSafeInteger(nodeCount) ||
      nodeCount <= 0 ||
      (recordSize !== 24 && recordSize !== 28 && recordSize !== 32) ||
      (ipVersion !== 4 && ipVersion !== 6) ||
      (nodeCount * recordSize) / 4 + DATA_SECTION_SEPARATOR > metadataStart
    ) {
      throw new TeitenError(
        'GEOIP_OPEN_FAILED',
        `${file} has inconsistent MaxMind DB metadata (node_count ${nodeCount}, record_size ${recordSize}, ip_version ${ipVersion})`,
        { file },
      )
    }
    this.nodeCount = nodeCount
    this.recordSize = recordSize
    this.nodeBytes = recordSize / 4
    this.searchTreeSize = (nodeCount * recordSize) / 4
    this.metadataStart = metadataStart
    this.treeIpVersion = ipVersion
    this.ipv4Start = this.findIpv4Start()
    this.databaseType = typeof m.databaseType === 'string' ? m.databaseType : ''
    const built = m.buildEpoch instanceof Date ? m.buildEpoch : new Date(Number.NaN)
    this.buildDate = Number.isNaN(built.getTime()) ? 'unknown' : built.toISOString()
    // Typed as a string by mmdb-lib, but the spec (and every database) makes it a map of
    // language -> text.
    const desc: unknown = m.description
    this.description =
      isObject(desc) && typeof desc.en === 'string' ? desc.en : typeof desc === 'string' ? desc : undefined

    const shape = this.detectShape()
    if (shape === null) {
      throw new TeitenError(
        'GEOIP_UNSUPPORTED',
        `GeoIP database ${file} (type "${this.databaseType}") has neither country_code records nor GeoIP2 country records`,
        { file },
      )
    }
    this.shape = shape

    const wanted = Math.max(0, Math.floor(options.cacheSize ?? DEFAULT_GEOIP_CACHE_SIZE))
    // At least 16 slots when enabled, so the hash shift stays below 32 (x >>> 32 is x in JS);
    // at most 2^24 (96 MiB of IPv4 keys), far past any useful size.
    const slots = wanted === 0 ? 0 : 2 ** Math.min(24, Math.max(4, Math.ceil(Math.log2(wanted))))
    this.slots = slots
    this.shift = slots === 0 ? 0 : 32 - Math.log2(slots)
    this.v4Keys = new Uint32Array(slots)
    this.v4Vals = new Uint16Array(slots)
  }

  /**
   * ISO 3166-1 alpha-2 country (capitals) of a 16-byte address, or '--'. IPv4 is read from
   * bytes 12-15 (teiten stores it ::ffff:a.b.c.d); an IPv4-mapped address is looked up as IPv4
   * even when `ipVersion` says 6, since that is the only meaning it has in teiten.
   */
  country(addr16: Buffer, ipVersion: 4 | 6): string {
    if (addr16.length < 16) {
      throw new TeitenError('BAD_PARAMETER', `GeoIp.country needs a 16-byte address, got ${addr16.length} bytes`)
    }
    // Plain byte reads: cheaper than Buffer#readUInt32BE's own argument checks.
    const w3 = ((addr16[12] << 24) | (addr16[13] << 16) | (addr16[14] << 8) | addr16[15]) >>> 0
    if (ipVersion === 4) return this.country4(w3)
    const w0 = ((addr16[0] << 24) | (addr16[1] << 16) | (addr16[2] << 8) | addr16[3]) >>> 0
    const w1 = ((addr16[4] << 24) | (addr16[5] << 16) | (addr16[6] << 8) | addr16[7]) >>> 0
    const w2 = ((addr16[8] << 24) | (addr16[9] << 16) | (addr16[10] << 8) | addr16[11]) >>> 0
    if (w0 === 0 && w1 === 0 && w2 === 0x0000ffff) return this.country4(w3)
    return this.country6(w0, w1, w2, w3)
  }

  /** Country of an IPv4 address given as an unsigned 32-bit number. */
  country4(addr: number): string {
    const a = addr >>> 0
    if (this.slots === 0) {
      this.misses++
      return this.names[this.resolve4(a)]
    }
    const keys = this.v4Keys
    const vals = this.v4Vals
    // Two ways per set, way 0 most recently used: two hot sources that hash alike share a set
    // instead of evicting each other on every packet.
    const w0 = (Math.imul(a, 0x9e3779b1) >>> this.shift) & ~1
    const w1 = w0 | 1
    const v0 = vals[w0]
    if (v0 !== EMPTY && keys[w0] === a) {
      this.hits++
      return this.names[v0]
    }
    const v1 = vals[w1]
    if (v1 !== EMPTY && keys[w1] === a) {
      this.hits++
      keys[w1] = keys[w0]
      vals[w1] = v0
      keys[w0] = a
      vals[w0] = v1
      return this.names[v1]
    }
    this.misses++
    const index = this.resolve4(a)
    if (v0 !== EMPTY) {
      if (v1 !== EMPTY) this.evictions++
      keys[w1] = keys[w0]
      vals[w1] = v0
    }
    keys[w0] = a
    vals[w0] = index
    return this.names[index]
  }

  /** Country of an IPv6 address given as four unsigned 32-bit words, most significant first. */
  country6(w0: number, w1: number, w2: number, w3: number): string {
    if (this.slots === 0) {
      this.misses++
      return this.names[this.resolve6(w0, w1, w2, w3)]
    }
    let keys = this.v6Keys
    let vals = this.v6Vals
    if (keys === null || vals === null) {
      keys = this.v6Keys = new Uint32Array(this.slots * 4)
      vals = this.v6Vals = new Uint16Array(this.slots)
    }
    const a0 = w0 >>> 0
    const a1 = w1 >>> 0
    const a2 = w2 >>> 0
    const a3 = w3 >>> 0
    const h = a0 ^ Math.imul(a1, 0x85ebca6b) ^ Math.imul(a2, 0xc2b2ae35) ^ Math.imul(a3, 0x27d4eb2f)
    const s0 = (Math.imul(h, 0x9e3779b1) >>> this.shift) & ~1 // same two-way scheme as country4
    const s1 = s0 | 1
    const k0 = s0 << 2
    const k1 = s1 << 2
    const v0 = vals[s0]
    if (v0 !== EMPTY && keys[k0] === a0 && keys[k0 + 1] === a1 && keys[k0 + 2] === a2 && keys[k0 + 3] === a3) {
      this.hits++
      return this.names[v0]
    }
    const v1 = vals[s1]
    if (v1 !== EMPTY && keys[k1] === a0 && keys[k1 + 1] === a1 && keys[k1 + 2] === a2 && keys[k1 + 3] === a3) {
      this.hits++
      keys[k1] = keys[k0]
      keys[k1 + 1] = keys[k0 + 1]
      keys[k1 + 2] = keys[k0 + 2]
      keys[k1 + 3] = keys[k0 + 3]
      vals[s1] = v0
      keys[k0] = a0
      keys[k0 + 1] = a1
      keys[k0 + 2] = a2
      keys[k0 + 3] = a3
      vals[s0] = v1
      return this.names[v1]
    }
    this.misses++
    const index = this.resolve6(a0, a1, a2, a3)
    if (v0 !== EMPTY) {
      if (v1 !== EMPTY) this.evictions++
      keys[k1] = keys[k0]
      keys[k1 + 1] = keys[k0 + 1]
      keys[k1 + 2] = keys[k0 + 2]
      keys[k1 + 3] = keys[k0 + 3]
      vals[s1] = v0
    }
    keys[k0] = a0
    keys[k0 + 1] = a1
    keys[k0 + 2] = a2
    keys[k0 + 3] = a3
    vals[s0] = index
    return this.names[index]
  }

  info(): GeoIpInfo {
    return {
      file: this.file,
      databaseType: this.databaseType,
      buildDate: this.buildDate,
      shape: this.shape,
      ipVersion: this.treeIpVersion,
      recordSize: this.recordSize,
      nodeCount: this.nodeCount,
      description: this.description,
    }
  }

  /** One line for logs. */
  describe(): string {
    return `${this.file}: type "${this.databaseType}", built ${this.buildDate}, ${this.shape} records, IPv${this.treeIpVersion} tree`
  }

  cacheStats(): GeoIpCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      capacity: this.slots,
      records: this.recordCountry.size,
    }
  }

  /** Empties the address cache and zeroes the counters (decoded records are kept). */
  clearCache(): void {
    this.v4Vals.fill(EMPTY)
    this.v6Vals?.fill(EMPTY)
    this.hits = 0
    this.misses = 0
    this.evictions = 0
  }

  /*
   * Search tree, MaxMind DB spec "Search Tree Section": node n is nodeBytes bytes at
   * n * nodeBytes, two records (left = bit 0, right = bit 1), big-endian:
   *
   *   24-bit: | left 23..0 (3 bytes) | right 23..0 (3 bytes) |
   *   28-bit: | left 23..0 (3 bytes) | left 27..24 : right 27..24 (1 byte) | right 23..0 (3 bytes) |
   *   32-bit: | left (4 bytes) | right (4 bytes) |
   *
   * A record value below nodeCount is the next node; nodeCount means no data; above it is a
   * data record at file offset value - nodeCount + searchTreeSize.
   */
  private readRecord(node: number, bit: number): number {
    const db = this.db
    const o = node * this.nodeBytes
    switch (this.recordSize) {
      case 24: {
        const p = o + bit * 3
        return (db[p] << 16) | (db[p + 1] << 8) | db[p + 2]
      }
      case 28:
        return bit === 0
          ? ((db[o + 3] & 0xf0) << 20) | (db[o] << 16) | (db[o + 1] << 8) | db[o + 2]
          : ((db[o + 3] & 0x0f) << 24) | (db[o + 4] << 16) | (db[o + 5] << 8) | db[o + 6]
      default: {
        const p = o + bit * 4
        return db[p] * 0x1000000 + ((db[p + 1] << 16) | (db[p + 2] << 8) | db[p + 3])
      }
    }
  }

  /** IPv4 lives at ::/96 in an IPv6 tree: the node 96 left turns down (spec "IPv4 addresses in an IPv6 tree"). */
  private findIpv4Start(): number {
    if (this.treeIpVersion === 4) return 0
    let node = 0
    for (let i = 0; i < 96 && node < this.nodeCount; i++) node = this.readRecord(node, 0)
    return node
  }

  private resolve4(addr: number): number {
    const n = this.nodeCount
    let node = this.ipv4Start
    for (let i = 31; i >= 0 && node < n; i--) node = this.readRecord(node, (addr >>> i) & 1)
    return this.countryOfRecord(node, 4, addr, 0, 0, 0)
  }

  private resolve6(w0: number, w1: number, w2: number, w3: number): number {
    if (this.treeIpVersion === 4) return UNKNOWN
    const n = this.nodeCount
    let node = 0
    for (let i = 0; i < 128 && node < n; i++) {
      const word = i < 32 ? w0 : i < 64 ? w1 : i < 96 ? w2 : w3
      node = this.readRecord(node, (word >>> (31 - (i & 31))) & 1)
    }
    return this.countryOfRecord(node, 6, w0, w1, w2, w3)
  }

  /** Country index of the record the walk ended on; decodes it (once) through the reader. */
  private countryOfRecord(value: number, family: 4 | 6, a: number, b: number, c: number, d: number): number {
    // == nodeCount: no data for this network; < nodeCount: the address bits ran out inside
    // the tree, which only a malformed database does.
    if (value <= this.nodeCount) return UNKNOWN
    const known = this.recordCountry.get(value)
    if (known !== undefined) return known
    let index = UNKNOWN
    const offset = value - this.nodeCount + this.searchTreeSize
    if (offset < this.metadataStart) {
      try {
        const address = family === 4 ? ipv4Text(a) : ipv6Text(a, b, c, d)
        index = this.intern(countryFromRecord(this.reader.get(address), this.shape))
      } catch {
        // A record the decoder cannot read counts as unknown rather than failing the ingest.
      }
    }
    if (this.recordCountry.size >= MAX_REMEMBERED_RECORDS) this.recordCountry.clear()
    this.recordCountry.set(value, index)
    return index
  }

  private intern(code: string): number {
    const known = this.nameIndex.get(code)
    if (known !== undefined) return known
    const index = this.names.length
    if (index > 0xffff) return UNKNOWN // Uint16 slots; ISO 3166 has 676 two-letter codes at most.
    this.names.push(code)
    this.nameIndex.set(code, index)
    return index
  }

  /**
   * The first data records met walking the tree depth-first from the left (IPv4 space first in
   * an IPv6 tree), decoded, decide the shape. The metadata's database_type is only a fallback:
   * ip-location-db writes free text there ("country ipvAll"), and a record says what it holds.
   */
  private detectShape(): GeoIpRecordShape | null {
    const bits = this.treeIpVersion === 6 ? 128 : 32
    const stack: Array<{ node: number; depth: number; path: bigint }> = [{ node: 0, depth: 0, path: 0n }]
    const seen = new Set<number>()
    let visited = 0
    while (stack.length > 0 && visited < SHAPE_SAMPLE_NODES && seen.size < SHAPE_SAMPLE_RECORDS) {
      const { node, depth, path } = stack.pop()!
      visited++
      for (const bit of [1, 0]) {
        const value = this.readRecord(node, bit)
        const childDepth = depth + 1
        const childPath = (path << 1n) | BigInt(bit)
        if (value < this.nodeCount) {
          if (childDepth < bits) stack.push({ node: value, depth: childDepth, path: childPath })
          continue
        }
        if (value === this.nodeCount || seen.has(value)) continue
        seen.add(value)
        const offset = value - this.nodeCount + this.searchTreeSize
        if (offset >= this.metadataStart) continue
        const address = childPath << BigInt(bits - childDepth)
        let record: unknown
        try {
          record = this.reader.get(bits === 32 ? ipv4Text(Number(address)) : ipv6TextFromBigint(address))
        } catch {
          continue
        }
        const shape = shapeOf(record)
        if (shape !== null) return shape
      }
    }
    // No sampled record named a country (an empty or sparse fixture): trust a MaxMind type name.
    if (/^(GeoIP2|GeoLite2)-(Country|City)|Enterprise/i.test(this.databaseType)) return 'geoip2'
    return null
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null
}

function shapeOf(record: unknown): GeoIpRecordShape | null {
  if (!isObject(record)) return null
  if (typeof record.country_code === 'string') return 'country_code'
  const country = record.country
  const registered = record.registered_country
  if (
    (isObject(country) && typeof country.iso_code === 'string') ||
    (isObject(registered) && typeof registered.iso_code === 'string')
  ) {
    return 'geoip2'
  }
  return null
}

/**
 * GeoIP2 records: `country` first, then `registered_country`. For a darknet the question is
 * where the scanning host is, and `country` is MaxMind's estimate of exactly that; it differs
 * from the registration for cloud regions, multinational carriers and the like.
 * `registered_country` is the fallback because MaxMind leaves `country` out where it cannot
 * place a host (some anycast, satellite and widely dispersed ranges), and the country of the
 * registrant is then the best evidence left, better than counting the packet as unknown.
 * `represented_country` (military bases, embassies) is ignored: `country` is still where the
 * host is. A record with neither (MaxMind's test databases have one at 214.1.1.0/24, holding
 * only `traits.is_anycast`) is '--'.
 */
function countryFromRecord(record: unknown, shape: GeoIpRecordShape): string {
  if (!isObject(record)) return UNKNOWN_COUNTRY
  if (shape === 'country_code') return normaliseCode(record.country_code)
  const country = record.country
  if (isObject(country) && typeof country.iso_code === 'string') return normaliseCode(country.iso_code)
  const registered = record.registered_country
  if (isObject(registered) && typeof registered.iso_code === 'string') return normaliseCode(registered.iso_code)
  return UNKNOWN_COUNTRY
}

/** Two ASCII letters in capitals, else '--'; ZZ, the conventional "unknown" code, is '--' too. */
function normaliseCode(code: unknown): string {
  if (typeof code !== 'string' || code.length !== 2) return UNKNOWN_COUNTRY
  const upper = code.toUpperCase()
  if (!/^[A-Z]{2}$/.test(upper) || upper === 'ZZ') return UNKNOWN_COUNTRY
  return upper
}

function ipv4Text(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`
}

function ipv6Text(w0: number, w1: number, w2: number, w3: number): string {
  const words = [w0, w1, w2, w3]
  const groups: string[] = []
  for (const w of words) groups.push(((w >>> 16) & 0xffff).toString(16), (w & 0xffff).toString(16))
  return groups.join(':')
}

function ipv6TextFromBigint(address: bigint): string {
  const word = (shift: bigint): number => Number((address >> shift) & 0xffffffffn)
  return ipv6Text(word(96n), word(64n), word(32n), word(0n))
}
