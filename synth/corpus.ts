/**
 * Seeded synthetic darknet corpus with ground truth.
 *
 * The generator writes sensor captures (one folder per sensor, files rotated per window, every
 * capture format and link type teiten reads) and, from what it wrote — never by reading it
 * back, never by running the classifier — the ground truth that the pipeline's results must
 * equal. Everything is decided by the seed (and by the answers of the caller's countryOf).
 *
 * Ground-truth definitions (also written into the truth file):
 * - kept packet: a UDP datagram at the top level of a record (not quoted in an ICMP error, not
 *   inside a tunnel), whole or its first fragment, with source or destination port 123;
 * - access: a kept packet whose destination port is 123;
 * - day: the UTC date of the record's capture timestamp (not the file's name or rotation);
 * - sources: distinct source addresses within the group;
 * - country: countryOf(source address), '--' for bogon sources;
 * - class: exactly one per packet, from the UDP payload delimited by the UDP length:
 *   non_ntp if empty, VN 5-7, or mode 0-5 with fewer than 48 bytes or a length not a multiple
 *   of 4; mode 7: response bit (byte 0 & 0x80) -> response, else impl (byte 2) 2|3 and request
 *   (byte 3) 42|20 -> monlist, else mode7_other; mode 6: byte 1 & 0x80 -> response, else
 *   opcode (byte 1 & 0x1f) 2 -> mode6_readvar, else mode6_other; mode 4|5 -> response; mode 3
 *   VN 1-4 -> client; mode 3 VN 0 and modes 0-2 -> other_ntp. Records cut short by the snaplen
 *   and first fragments are only made where both readings (UDP length, bytes present) agree.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { NTP_CLASSES, type NtpClass } from '../core/event.js'
import { TeitenError } from '../core/errors.js'
import { patchFrame } from './frames.js'
import type { CountryLookup } from './geo.js'
import { buildPayloadCatalog } from './payloads.js'
import {
  buildNoisePool,
  buildPopulation,
  type CountryWeight,
  DAILY_JST,
  DAILY_UTC,
  DEFAULT_COUNTRIES,
  DEFAULT_SENSORS,
  DEFAULT_SURGE,
  dayNumber,
  type Prefix,
  parseCidr,
  popcount,
  type Rotation,
  randomInPrefix,
  resolveProfiles,
  type SensorSpec,
  type Source,
  type SurgeSpec,
  UNKNOWN,
} from './population.js'
import { cumulative, Rng } from './rng.js'
import {
  DROP_CATEGORIES,
  type DropCategory,
  LINK_CHOICES,
  type LinkChoice,
  type LinkChoiceInfo,
  NET_V4_CUM,
  NET_V6_CUM,
  NOISE_CUM_V4,
  NOISE_CUM_V6,
  type Template,
  TemplateStore,
} from './templates.js'
import { BufferPool, PcapngWriter, PcapWriter, type TsResolution } from './writers.js'

// ---------------------------------------------------------------------------------------------
// File formats

export interface PcapFormat {
  container: 'pcap'
  nanos: boolean
  bigEndian: boolean
  link: LinkChoice
  gzip: boolean
}

export interface PcapngInterfacePlan {
  link: LinkChoice
  /** Absent: the default microseconds, with no if_tsresol option. */
  tsresol?: TsResolution
  weight: number
}

export interface PcapngSectionPlan {
  bigEndian: boolean
  interfaces: readonly PcapngInterfacePlan[]
}

export interface PcapngFormat {
  container: 'pcapng'
  sections: readonly PcapngSectionPlan[]
  gzip: boolean
  /** Some noise records go in Simple Packet Blocks (no timestamp: they are never kept). */
  simplePackets: boolean
  /** Name Resolution, Interface Statistics, Custom and unknown-type blocks, which readers skip. */
  extraBlocks: boolean
}

export type FileFormat = PcapFormat | PcapngFormat

const NS: TsResolution = { base: 10, exponent: 9 }
const US: TsResolution = { base: 10, exponent: 6 }
const BIN20: TsResolution = { base: 2, exponent: 20 }
const BIN30: TsResolution = { base: 2, exponent: 30 }

/**
 * The twelve file formats, assigned to files round-robin: any twelve consecutive windows of
 * the sensors cover all of them (every pcap magic, pcapng sections of both byte orders with
 * mixed interfaces and resolutions, every link type, gzip of both containers).
 */
export const FORMAT_SLOTS: readonly FileFormat[] = [
  { container: 'pcap', nanos: false, bigEndian: false, link: 'ethernet', gzip: false },
  {
    container: 'pcapng',
    gzip: true,
    simplePackets: true,
    extraBlocks: true,
    sections: [
      {
        bigEndian: false,
        interfaces: [
          { link: 'ethernet', weight: 3 },
          { link: 'sll2', tsresol: NS, weight: 1 },
        ],
      },
      {
        bigEndian: true,
        interfaces: [
          { link: 'raw', tsresol: BIN20, weight: 1 },
          { link: 'null-be', tsresol: NS, weight: 1 },
        ],
      },
    ],
  },
  { container: 'pcap', nanos: true, bigEndian: true, link: 'raw', gzip: false },
  { container: 'pcap', nanos: false, bigEndian: true, link: 'sll', gzip: true },
  { container: 'pcap', nanos: true, bigEndian: false, link: 'null-le', gzip: false },
  { container: 'pcap', nanos: false, bigEndian: false, link: 'sll2', gzip: true },
  {
    container: 'pcapng',
    gzip: false,
    simplePackets: true,
    extraBlocks: true,
    sections: [
      { bigEndian: true, interfaces: [{ link: 'ethernet', tsresol: NS, weight: 1 }] },
      {
        bigEndian: false,
        interfaces: [
          { link: 'sll', weight: 1 },
          { link: 'ethernet', tsresol: BIN30, weight: 2 },
        ],
      },
    ],
  },
  // NULL with a big-endian family inside a little-endian file: the family is the capturing host's order.
  { container: 'pcap', nanos: false, bigEndian: false, link: 'null-be', gzip: true },
  { container: 'pcap', nanos: true, bigEndian: true, link: 'ethernet', gzip: true },
  {
    container: 'pcapng',
    gzip: false,
    simplePackets: false,
    extraBlocks: true,
    sections: [
      {
        bigEndian: true,
        interfaces: [
          { link: 'sll', weight: 1 },
          { link: 'ethernet', tsresol: { base: 2, exponent: 24 }, weight: 2 },
        ],
      },
      {
        bigEndian: false,
        interfaces: [
          { link: 'raw', tsresol: US, weight: 1 },
          { link: 'sll2', tsresol: NS, weight: 1 },
          { link: 'null-le', weight: 1 },
        ],
      },
      { bigEndian: true, interfaces: [{ link: 'ethernet', tsresol: NS, weight: 1 }] },
    ],
  },
  { container: 'pcap', nanos: true, bigEndian: false, link: 'raw', gzip: true },
  {
    container: 'pcapng',
    gzip: true,
    simplePackets: true,
    extraBlocks: false,
    sections: [
      {
        bigEndian: false,
        interfaces: [
          { link: 'ethernet', weight: 1 },
          { link: 'ethernet', tsresol: NS, weight: 1 },
        ],
      },
    ],
  },
]

function tsresolText(t: TsResolution | undefined): string {
  if (!t) return 'us'
  if (t.base === 10) return t.exponent === 6 ? 'us' : t.exponent === 9 ? 'ns' : `10^-${t.exponent}`
  return `2^-${t.exponent}`
}

/** One-line description of a format, e.g. `pcap/ns/be/raw` or `pcapng[le:ethernet,sll2@ns|be:raw@2^-20]`. */
export function describeFormat(f: FileFormat): string {
  const gz = f.gzip ? '+gzip' : ''
  if (f.container === 'pcap') return `pcap/${f.nanos ? 'ns' : 'us'}/${f.bigEndian ? 'be' : 'le'}/${f.link}${gz}`
  const sections = f.sections
    .map(
      (s) => `${s.bigEndian ? 'be' : 'le'}:${s.interfaces.map((i) => `${i.link}@${tsresolText(i.tsresol)}`).join(',')}`,
    )
    .join('|')
  return `pcapng[${sections}]${f.simplePackets ? '+spb' : ''}${gz}`
}

function extensionOf(f: FileFormat): string {
  return (f.container === 'pcap' ? '.pcap' : '.pcapng') + (f.gzip ? '.gz' : '')
}

// ---------------------------------------------------------------------------------------------
// Options and presets

export type Preset = 'small' | 'test' | 'bench'

export interface CorpusOptions {
  /** Output folder (created); sensor folders and truth.json go inside. */
  outDir: string
  countryOf: CountryLookup
  seed?: number
  preset?: Preset
  /** First and last day (inclusive), ISO dates, UTC. Default: the advisory's 2013-10-01 .. 2014-01-15. */
  start?: string
  end?: string
  sensors?: readonly SensorSpec[]
  countries?: readonly CountryWeight[]
  surge?: SurgeSpec | null
  /** Kept (UDP/123) packets to aim at; the actual number is in the truth. */
  targetKept?: number
  /** Exact number of records to write (bench): noise is steered so the total is exactly this. */
  packets?: number
  /** Dropped records (TCP, other UDP, ICMP, tunnels) per kept packet. */
  noiseRatio?: number
  /** 'sensors': files per sensor and rotation window; 'single': everything in one file. */
  layout?: 'sensors' | 'single'
  /** Rotation for every sensor (otherwise each sensor's own, else the preset's). */
  rotation?: Rotation
  /** Approximate number of files (bench split): sets an hour-multiple rotation for all sensors. */
  files?: number
  /** FORMAT_SLOTS index for the single-file layout (default 0: pcap, microseconds, Ethernet). */
  singleFormat?: number
  /** Name of the single file, without extension (default 'bench'). */
  singleName?: string
  gzipLevel?: number
  /** Where the truth JSON goes, relative to outDir unless absolute (default truth.json); null: nowhere. */
  truthFile?: string | null
  /** Called after each day with progress figures. */
  onProgress?: (p: { day: number; days: number; records: number }) => void
}

interface PresetDefaults {
  targetKept: number
  noiseRatio: number
  layout: 'sensors' | 'single'
  rotations: (sensors: number, days: number) => Rotation[]
  gzipLevel: number
}

const PRESETS: Record<Preset, PresetDefaults> = {
  // README demo: a few thousand packets in twelve files (four windows per sensor, one per format).
  small: {
    targetKept: 4000,
    noiseRatio: 0.25,
    layout: 'sensors',
    rotations: (n, days) => new Array(n).fill({ seconds: Math.ceil(days / 4) * 86_400, shiftSeconds: 0 }),
    gzipLevel: 6,
  },
  // Test corpus: daily files; the third sensor rotates at midnight JST.
  test: {
    targetKept: 150_000,
    noiseRatio: 0.2,
    layout: 'sensors',
    rotations: (n) => Array.from({ length: n }, (_, i) => (i === 2 ? DAILY_JST : DAILY_UTC)),
    gzipLevel: 6,
  },
  bench: {
    targetKept: 0,
    noiseRatio: 0.15,
    layout: 'single',
    rotations: (n) => new Array(n).fill(DAILY_UTC),
    gzipLevel: 1,
  },
}

export const DEFAULT_START = '2013-10-01'
export const DEFAULT_END = '2014-01-15'
export const DEFAULT_SEED = 20140115
export const DEFAULT_BENCH_PACKETS = 2_000_000

// ---------------------------------------------------------------------------------------------
// Ground truth

export interface CountRow {
  day: string
  country: string
  packets: number
  sources: number
}

export interface ClassRow extends CountRow {
  class: NtpClass
  /** The same group restricted to accesses (destination port 123). */
  accesses: number
  accessSources: number
}

export interface FileTruth {
  /** Path relative to the corpus folder, with '/' separators. */
  path: string
  sensor: string | null
  format: string
  gzip: boolean
  linkTypes: number[]
  records: number
  kept: number
  accesses: number
  dropped: Record<DropCategory, number>
  /** Capture time of the first and last timestamped record (UTC ISO), null when none. */
  first: string | null
  last: string | null
}

export interface GroundTruth {
  format: 'teiten-synth-truth/1'
  seed: number
  preset: Preset | null
  range: { start: string; end: string; days: number }
  sensors: Array<{ name: string; prefix4: string; prefix6: string; rotation: Rotation }>
  definitions: Record<string, string>
  classes: readonly NtpClass[]
  /** Per day x country x class, over kept packets (both directions), with the access subset. */
  byDayCountryClass: ClassRow[]
  /** Figure 2: per day x country, accesses (destination port 123). */
  accessesByDayCountry: CountRow[]
  /** Per day x country, all kept packets. */
  keptByDayCountry: CountRow[]
  files: FileTruth[]
  totals: {
    files: number
    records: number
    kept: number
    accesses: number
    dropped: Record<DropCategory, number>
    /** Distinct source addresses over the whole corpus. */
    sources: number
    accessSources: number
    byClass: Record<NtpClass, { packets: number; sources: number; accesses: number; accessSources: number }>
    byCountry: Record<string, { packets: number; accesses: number }>
  }
  notes: string[]
}

const DEFINITIONS: Record<string, string> = {
  kept: 'UDP datagram at the top level of a record (not quoted in ICMP, not tunnelled), whole or first fragment, with source or destination port 123',
  access: 'kept packet whose destination port is 123',
  day: 'UTC date of the capture timestamp',
  sources: 'distinct source addresses in the group',
  country: "countryOf(source address); '--' for bogon sources and addresses the lookup does not know",
  class:
    'non_ntp: empty, VN 5-7, or mode 0-5 with < 48 bytes or not a multiple of 4; mode 7: byte0&0x80 response, impl 2|3 and code 42|20 monlist, else mode7_other; mode 6: byte1&0x80 response, opcode 2 mode6_readvar, else mode6_other; mode 4|5 response; mode 3 VN 1-4 client; mode 3 VN 0 and modes 0-2 other_ntp',
}

const NCLASS = NTP_CLASSES.length

/** Accumulates the truth with typed arrays and per-source day stamps (no per-packet allocation). */
class TruthBuilder {
  readonly keptPk: Float64Array
  readonly keptSrc: Float64Array
  readonly accPk: Float64Array
  readonly accSrc: Float64Array
  readonly dcKeptPk: Float64Array
  readonly dcKeptSrc: Float64Array
  readonly dcAccPk: Float64Array
  readonly dcAccSrc: Float64Array
  private readonly stampClass: Int32Array
  private readonly stampAccClass: Int32Array
  private readonly stampKept: Int32Array
  private readonly stampAcc: Int32Array
  readonly everClass: Uint8Array
  readonly everAccClass: Uint8Array
  readonly everKept: Uint8Array
  readonly everAcc: Uint8Array

  constructor(
    readonly days: number,
    readonly countries: number,
    readonly sources: number,
  ) {
    const groups = days * countries
    this.keptPk = new Float64Array(groups * NCLASS)
    this.keptSrc = new Float64Array(groups * NCLASS)
    this.accPk = new Float64Array(groups * NCLASS)
    this.accSrc = new Float64Array(groups * NCLASS)
    this.dcKeptPk = new Float64Array(groups)
    this.dcKeptSrc = new Float64Array(groups)
    this.dcAccPk = new Float64Array(groups)
    this.dcAccSrc = new Float64Array(groups)
    this.stampClass = new Int32Array(sources * NCLASS)
    this.stampAccClass = new Int32Array(sources * NCLASS)
    this.stampKept = new Int32Array(sources)
    this.stampAcc = new Int32Array(sources)
    this.everClass = new Uint8Array(sources * NCLASS)
    this.everAccClass = new Uint8Array(sources * NCLASS)
    this.everKept = new Uint8Array(sources)
    this.everAcc = new Uint8Array(sources)
  }

  add(day: number, country: number, cls: number, source: number, access: boolean): void {
    const stamp = day + 1
    const dc = day * this.countries + country
    const g = dc * NCLASS + cls
    const sc = source * NCLASS + cls
    this.keptPk[g]++
    this.dcKeptPk[dc]++
    if (this.stampClass[sc] !== stamp) {
      this.stampClass[sc] = stamp
      this.keptSrc[g]++
    }
    if (this.stampKept[source] !== stamp) {
      this.stampKept[source] = stamp
      this.dcKeptSrc[dc]++
    }
    this.everClass[sc] = 1
    this.everKept[source] = 1
    if (!access) return
    this.accPk[g]++
    this.dcAccPk[dc]++
    if (this.stampAccClass[sc] !== stamp) {
      this.stampAccClass[sc] = stamp
      this.accSrc[g]++
    }
    if (this.stampAcc[source] !== stamp) {
      this.stampAcc[source] = stamp
      this.dcAccSrc[dc]++
    }
    this.everAccClass[sc] = 1
    this.everAcc[source] = 1
  }
}

function emptyDropped(): Record<DropCategory, number> {
  return Object.fromEntries(DROP_CATEGORIES.map((c) => [c, 0])) as Record<DropCategory, number>
}

// ---------------------------------------------------------------------------------------------
// Day events

/** One day's events in struct-of-arrays form, reused from day to day. */
class DayEvents {
  n = 0
  sec = new Int32Array(1024)
  sensor = new Uint8Array(1024)
  /** Source index (kept events) or noise pool index. */
  who = new Int32Array(1024)
  /** Payload variant (kept) or noise kind (noise, stored as -1 - kind). */
  what = new Int32Array(1024)
  net = new Uint8Array(1024)
  frames = new Uint8Array(1024)
  order = new Int32Array(1024)
  /** Per second of the day: index of its first event in `order`, and the end. */
  bucketStart = new Int32Array(86_401)

  reset(): void {
    this.n = 0
  }

  push(sec: number, sensor: number, who: number, what: number, net: number, frames: number): void {
    if (this.n === this.sec.length) this.grow()
    const i = this.n++
    this.sec[i] = sec
    this.sensor[i] = sensor
    this.who[i] = who
    this.what[i] = what
    this.net[i] = net
    this.frames[i] = frames
  }

  private grow(): void {
    const size = this.sec.length * 2
    const g = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(size)
      b.set(a)
      return b
    }
    this.sec = g(this.sec, (n) => new Int32Array(n))
    this.sensor = g(this.sensor, (n) => new Uint8Array(n))
    this.who = g(this.who, (n) => new Int32Array(n))
    this.what = g(this.what, (n) => new Int32Array(n))
    this.net = g(this.net, (n) => new Uint8Array(n))
    this.frames = g(this.frames, (n) => new Uint8Array(n))
  }

  /** Stable counting sort by second (generation order is kept within a second). */
  sort(): void {
    if (this.order.length < this.n) this.order = new Int32Array(this.sec.length)
    const start = this.bucketStart
    start.fill(0)
    for (let i = 0; i < this.n; i++) start[this.sec[i] + 1]++
    for (let s = 1; s <= 86_400; s++) start[s] += start[s - 1]
    const next = Int32Array.from(start.subarray(0, 86_400))
    for (let i = 0; i < this.n; i++) this.order[next[this.sec[i]]++] = i
  }
}

// ---------------------------------------------------------------------------------------------
// Open files

interface IfaceRuntime {
  choice: LinkChoiceInfo
  received: number
}

interface OpenFile {
  truth: FileTruth
  format: FileFormat
  pcap: PcapWriter | null
  ng: PcapngWriter | null
  writer: PcapWriter | PcapngWriter
  simplePackets: boolean
  extraBlocks: boolean
  windowStart: number
  windowEnd: number
  section: number
  sectionEnd: number
  ifaces: IfaceRuntime[]
  ifaceCum: Float64Array
  linkTypes: Set<number>
  lastSec: number
  lastNanos: number
  firstSec: number
}

function isoSecond(sec: number): string {
  return new Date(sec * 1000).toISOString().replace('.000Z', 'Z')
}

function isoDay(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10)
}

function stampOf(sec: number, rotation: Rotation): string {
  const d = new Date((sec + rotation.shiftSeconds) * 1000).toISOString()
  const date = d.slice(0, 10).replaceAll('-', '')
  if (rotation.seconds % 86_400 === 0) return date
  if (rotation.seconds % 3600 === 0) return `${date}-${d.slice(11, 13)}`
  return `${date}-${d.slice(11, 13)}${d.slice(14, 16)}`
}

function zoneSuffix(rotation: Rotation): string {
  if (rotation.shiftSeconds === 0) return ''
  const m = Math.round(rotation.shiftSeconds / 60)
  const sign = m >= 0 ? '+' : '-'
  const a = Math.abs(m)
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`
}

// ---------------------------------------------------------------------------------------------
// The generator

export interface CorpusResult {
  truth: GroundTruth
  truthPath: string | null
  stats: {
    records: number
    /** Bytes of capture data before compression. */
    bytes: number
    /** Bytes on disk. */
    diskBytes: number
    seconds: number
    templates: number
    lookups: number
    sources: number
  }
}

const EPHEMERAL_LO = 1024

export async function generateCorpus(o: CorpusOptions): Promise<CorpusResult> {
  return new Generator(o).run()
}

/** What the synchronous emit loop needs from its async driver before it can go on. */
const DONE = 0
const ROTATE = 1
const FLUSH = 2
/** Files whose closing may overlap with generation. */
const MAX_CLOSING = 6

class Generator {
  private readonly t0 = performance.now()
  private readonly preset: Preset | null
  private readonly seed: number
  private readonly startIso: string
  private readonly endIso: string
  private readonly startDay: number
  private readonly days: number
  private readonly sensorSpecs: readonly SensorSpec[]
  private readonly nSensors: number
  private readonly layout: 'sensors' | 'single'
  private readonly noiseRatio: number
  private readonly exact: number | undefined
  private readonly targetKept: number
  private readonly prefixes: Array<{ v4: Prefix; v6: Prefix }>
  private readonly rotations: Rotation[]
  private readonly gzipLevel: number
  private readonly bufferSize: number
  private readonly originSec: number
  private readonly profiles: ReturnType<typeof resolveProfiles>
  private readonly profileResponder: Uint8Array
  private readonly sources: Source[]
  private readonly missingCountries: string[]
  private readonly lookups: number
  private readonly noisePool: Buffer[]
  private readonly countryList: string[]
  private readonly sourceCountry: Int32Array
  private readonly truth: TruthBuilder
  private readonly store: TemplateStore
  private readonly expectedPerDay: Float64Array
  private readonly expectedAfter: Float64Array
  private readonly eventRng: Rng
  private readonly pktRng: Rng
  private readonly fileRng: Rng
  private readonly open: Array<OpenFile | null>
  private readonly files: FileTruth[] = []
  private readonly ev = new DayEvents()
  private readonly dst4 = Buffer.alloc(4)
  private readonly dst6 = Buffer.alloc(16)
  private records = 0
  private keptEvents = 0
  private keptFrames = 0
  private bytes = 0
  private diskBytes = 0
  private closing: Array<Promise<void>> = []
  private closeFailure: unknown = null
  private readonly pool = new BufferPool()
  /** Emit loop position within the current day, and what it waits for. */
  private cursor = 0
  private waitSlot = 0

  constructor(private readonly o: CorpusOptions) {
    this.preset = o.preset ?? null
    const defaults = PRESETS[this.preset ?? 'test']
    this.seed = (o.seed ?? DEFAULT_SEED) | 0
    this.startIso = o.start ?? DEFAULT_START
    this.endIso = o.end ?? DEFAULT_END
    this.startDay = dayNumber(this.startIso)
    this.days = dayNumber(this.endIso) - this.startDay + 1
    if (this.days < 1) throw new TeitenError('BAD_PARAMETER', `end ${this.endIso} is before start ${this.startIso}`)
    this.sensorSpecs = o.sensors ?? DEFAULT_SENSORS
    if (this.sensorSpecs.length < 1 || this.sensorSpecs.length > 8) {
      throw new TeitenError('BAD_PARAMETER', 'between 1 and 8 sensors')
    }
    this.nSensors = this.sensorSpecs.length
    this.layout = o.layout ?? (o.files !== undefined ? 'sensors' : defaults.layout)
    this.noiseRatio = o.noiseRatio ?? defaults.noiseRatio
    this.exact = o.packets ?? (this.preset === 'bench' ? DEFAULT_BENCH_PACKETS : undefined)
    if (this.exact !== undefined && (!Number.isInteger(this.exact) || this.exact < 1)) {
      throw new TeitenError('BAD_PARAMETER', 'packets must be a positive integer')
    }
    // With an exact record count the kept share is fixed up front and noise fills the rest.
    this.targetKept =
      o.targetKept ??
      (this.exact !== undefined ? Math.round(this.exact / (1 + this.noiseRatio) / 1.02) : defaults.targetKept)
    if (!(this.targetKept > 0)) throw new TeitenError('BAD_PARAMETER', 'targetKept must be positive')

    this.prefixes = this.sensorSpecs.map((s) => ({ v4: parseCidr(s.prefix4), v6: parseCidr(s.prefix6) }))
    for (const p of this.prefixes) {
      if (p.v4.v !== 4 || p.v6.v !== 6)
        throw new TeitenError('BAD_PARAMETER', 'sensor prefixes: prefix4 IPv4, prefix6 IPv6')
    }
    const excludedPrefixes: Prefix[] = this.prefixes.flatMap((p) => [p.v4, p.v6])

    if (o.files !== undefined) {
      const hours = (this.days * 24 * this.nSensors) / Math.max(1, o.files)
      const r: Rotation = { seconds: Math.max(1, Math.round(hours)) * 3600, shiftSeconds: 0 }
      this.rotations = this.sensorSpecs.map(() => r)
    } else if (o.rotation) {
      const r = o.rotation
      this.rotations = this.sensorSpecs.map(() => r)
    } else {
      const presetRot = defaults.rotations(this.nSensors, this.days)
      this.rotations = this.sensorSpecs.map((s, i) => s.rotation ?? presetRot[i])
    }
    for (const r of this.rotations) {
      if (!(r.seconds >= 1)) throw new TeitenError('BAD_PARAMETER', 'rotation must be at least one second')
    }
    this.gzipLevel = o.gzipLevel ?? defaults.gzipLevel
    // Many small files: smaller buffers; one big file: fewer, larger writes.
    this.bufferSize = this.layout === 'single' ? 8 << 20 : 1 << 20
    this.originSec = this.startDay * 86_400

    const catalog = buildPayloadCatalog(Rng.derive(this.seed, 'payloads'))
    this.profiles = resolveProfiles(catalog)
    this.profileResponder = Uint8Array.from(this.profiles.map((p) => (p.profile.responder ? 1 : 0)))
    const population = buildPopulation({
      seed: this.seed,
      days: this.days,
      startDay: this.startDay,
      sensors: this.nSensors,
      countryOf: o.countryOf,
      countries: o.countries ?? DEFAULT_COUNTRIES,
      surge: o.surge === undefined ? DEFAULT_SURGE : o.surge,
      targetKept: this.targetKept,
      excluded: excludedPrefixes,
    })
    this.sources = population.sources
    this.missingCountries = population.missingCountries
    this.lookups = population.lookups
    this.noisePool = buildNoisePool(this.seed, 4096, excludedPrefixes)
    this.countryList = [...new Set(this.sources.map((s) => s.country))].sort()
    const countryIdx = new Map(this.countryList.map((c, i) => [c, i]))
    this.sourceCountry = Int32Array.from(this.sources.map((s) => countryIdx.get(s.country) ?? 0))
    this.truth = new TruthBuilder(this.days, this.countryList.length, this.sources.length)
    this.store = new TemplateStore(this.seed, catalog, this.prefixes)

    // Expected kept events per day, for the noise steering of the exact-count mode.
    const days = this.days
    const perDay = new Float64Array(days + 1)
    for (const s of this.sources) {
      const first = Math.max(0, s.firstDay)
      const last = Math.min(days - 1, s.lastDay)
      if (last < first) continue
      const mean = s.rate * s.activeProb * popcount(s.sensorMask)
      perDay[first] += mean
      perDay[last + 1] -= mean
    }
    for (let d = 1; d <= days; d++) perDay[d] += perDay[d - 1]
    const after = new Float64Array(days + 1)
    for (let d = days - 1; d >= 0; d--) after[d] = after[d + 1] + Math.max(0, perDay[d])
    this.expectedPerDay = perDay
    this.expectedAfter = after

    this.eventRng = Rng.derive(this.seed, 'events')
    this.pktRng = Rng.derive(this.seed, 'packets')
    this.fileRng = Rng.derive(this.seed, 'files')
    this.open = new Array(this.layout === 'single' ? 1 : this.nSensors).fill(null)
    mkdirSync(o.outDir, { recursive: true })
  }

  async run(): Promise<CorpusResult> {
    try {
      await this.generate()
    } catch (err) {
      await this.abandon()
      throw err
    }
    return this.finish()
  }

  private async generate(): Promise<void> {
    for (let day = 0; day < this.days; day++) {
      this.generateDay(day)
      this.cursor = 0
      for (;;) {
        const need = this.emit(day)
        if (need === DONE) break
        if (need === ROTATE) await this.closeFile(this.waitSlot)
        else await (this.open[this.waitSlot] as OpenFile).writer.flush()
      }
      this.o.onProgress?.({ day, days: this.days, records: this.records })
    }
    await this.closeAll()
  }

  private finish(): CorpusResult {
    this.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    const result = buildTruth({
      seed: this.seed,
      preset: this.preset,
      startIso: this.startIso,
      endIso: this.endIso,
      startDay: this.startDay,
      days: this.days,
      sensors: this.sensorSpecs,
      rotations: this.rotations,
      countryList: this.countryList,
      truth: this.truth,
      files: this.files,
      missing: this.missingCountries,
    })
    let truthPath: string | null = null
    const truthFile = this.o.truthFile === undefined ? 'truth.json' : this.o.truthFile
    if (truthFile !== null) {
      truthPath = resolve(this.o.outDir, truthFile)
      mkdirSync(dirname(truthPath), { recursive: true })
      writeFileSync(truthPath, serializeTruth(result))
    }
    return {
      truth: result,
      truthPath,
      stats: {
        records: this.records,
        bytes: this.bytes,
        diskBytes: this.diskBytes,
        seconds: (performance.now() - this.t0) / 1000,
        templates: this.store.built,
        lookups: this.lookups,
        sources: this.sources.length,
      },
    }
  }

  /** All of a day's events (kept and noise), sorted by time. */
  private generateDay(day: number): void {
    const ev = this.ev
    const rng = this.eventRng
    const sources = this.sources
    const nSensors = this.nSensors
    ev.reset()
    let dayKeptFrames = 0
    for (let s = 0; s < sources.length; s++) {
      const src = sources[s]
      if (day < src.firstDay || day > src.lastDay) continue
      if (!rng.chance(src.activeProb)) continue
      const prof = this.profiles[src.profile]
      const v6 = src.v === 6
      const netCum = v6 ? NET_V6_CUM : NET_V4_CUM
      for (let sensor = 0; sensor < nSensors; sensor++) {
        if ((src.sensorMask & (1 << sensor)) === 0) continue
        const n = rng.poisson(src.rate)
        for (let k = 0; k < n; k++) {
          const sec = sessionSecond(src, rng)
          const variant = prof.variants[rng.weighted(prof.cumulative)]
          const net = rng.weighted(netCum)
          const frames = this.store.frameCount(variant, v6, net)
          ev.push(sec, sensor, s, variant, net, frames)
          dayKeptFrames += frames
        }
      }
    }
    // Noise: a steady rate, or in exact mode whatever makes the total come out right.
    if (this.exact !== undefined) {
      const remaining = this.exact - this.records
      let noise: number
      if (day === this.days - 1) noise = Math.max(0, remaining - dayKeptFrames)
      else {
        const framesPerEvent = this.keptEvents > 0 ? this.keptFrames / this.keptEvents : 1.02
        const ahead = this.expectedAfter[day]
        const keptAhead = ahead * framesPerEvent
        const share = ahead > 0 ? Math.max(0, this.expectedPerDay[day]) / ahead : 1 / (this.days - day)
        noise = Math.max(0, Math.round((remaining - keptAhead) * share))
      }
      for (let k = 0; k < noise; k++) pushNoise(ev, rng, k % nSensors, this.noisePool)
    } else {
      const mean = (this.noiseRatio * this.targetKept) / (this.days * nSensors)
      for (let sensor = 0; sensor < nSensors; sensor++) {
        const n = rng.poisson(mean)
        for (let k = 0; k < n; k++) pushNoise(ev, rng, sensor, this.noisePool)
      }
    }
    ev.sort()
  }

  /**
   * Writes the day's events from `cursor` on, synchronously, until the day is done or a file
   * must be closed (ROTATE) or flushed (FLUSH) first; `waitSlot` then names the file. Random
   * choices that do not depend on the file come first and in a fixed order, so whether the
   * packets go to one file or many, they are the same packets.
   */
  private emit(day: number): number {
    const ev = this.ev
    const pkt = this.pktRng
    const fileRng = this.fileRng
    const exact = this.exact ?? Number.POSITIVE_INFINITY
    const starts = ev.bucketStart
    const daySec = this.originSec + day * 86_400
    const single = this.layout === 'single'
    for (let j = this.cursor; j < ev.n; j++) {
      if (this.records >= exact) return DONE
      const e = ev.order[j]
      const second = ev.sec[e]
      const sensor = ev.sensor[e]
      const tsSec = daySec + second
      const slot = single ? 0 : sensor
      let f = this.open[slot]
      if (f !== null && tsSec >= f.windowEnd) {
        this.cursor = j
        this.waitSlot = slot
        return ROTATE
      }
      if (f === null) f = this.openFile(slot, sensor, tsSec)
      if (f.ng !== null && tsSec >= f.sectionEnd) this.advanceSection(f, tsSec)

      const b0 = starts[second]
      const nanos = Math.floor(((j - b0 + pkt.float()) * 1e9) / (starts[second + 1] - b0))
      const what = ev.what[e]
      const who = ev.who[e]
      const frames = ev.frames[e]
      const kept = what >= 0
      let src: Buffer
      let sport: number
      let dport: number
      let ttl: number
      let v6: boolean
      if (kept) {
        const s = this.sources[who]
        src = s.addr
        v6 = s.v === 6
        ttl = s.ttl
        sport = s.fixedSport >= 0 ? s.fixedSport : pkt.range(EPHEMERAL_LO, 65535)
        if (this.profileResponder[s.profile] === 1) dport = pkt.chance(0.05) ? 123 : pkt.range(EPHEMERAL_LO, 65535)
        else dport = 123
      } else {
        src = this.noisePool[who]
        v6 = src.length === 16
        ttl = 30 + (who % 200)
        sport = pkt.range(EPHEMERAL_LO, 65535)
        dport = pkt.range(EPHEMERAL_LO, 65535)
      }
      const pfx = this.prefixes[sensor]
      const dst = v6 ? this.dst6 : this.dst4
      randomInPrefix(v6 ? pfx.v6 : pfx.v4, pkt, dst)
      const ipId = pkt.u32()
      if (this.records + frames > exact) continue

      // File-dependent choices: interface, link variant, block type.
      const ng = f.ng
      const ifaceId = f.ifaces.length === 1 ? 0 : fileRng.weighted(f.ifaceCum)
      const useSpb = !kept && ng !== null && f.simplePackets && fileRng.chance(0.3)
      const iface = f.ifaces[useSpb ? 0 : ifaceId]
      const choice = iface.choice
      const linkVariant =
        choice.variants.length === 1 ? choice.variants[0] : choice.variants[fileRng.weighted(choice.cumulative)]
      let t: Template
      if (kept) {
        t = this.store.keptTemplate(what, v6, ev.net[e], linkVariant)
      } else {
        t = this.store.noiseTemplate(-1 - what, v6, linkVariant, sensor)
        if (t.sport >= 0) sport = t.sport
        if (t.dport >= 0) dport = t.dport
      }
      const access = kept && dport === 123
      const ft = f.truth
      const tf = t.frames
      for (let k = 0; k < tf.length; k++) {
        const fr = tf[k]
        const bytes = fr.bytes
        patchFrame(bytes, 0, fr.layout, src, dst, sport, dport, ipId, ttl)
        // Fragments follow each other within nanoseconds (and stay in time order).
        const ns = nanos + k < 1e9 ? nanos + k : 999_999_999
        if (ng === null) {
          ;(f.pcap as PcapWriter).writePacket(tsSec, ns, bytes, 0, fr.caplen, bytes.length)
        } else if (useSpb) {
          ng.writeSimplePacket(bytes, 0, bytes.length)
        } else if (f.extraBlocks && fileRng.chance(0.005)) {
          ng.writePacket(
            ifaceId,
            tsSec,
            ns,
            bytes,
            0,
            fr.caplen,
            bytes.length,
            fileRng.chance(0.5) ? EPB_INBOUND : EPB_COMMENT,
          )
        } else {
          ng.writePacket(ifaceId, tsSec, ns, bytes, 0, fr.caplen, bytes.length)
        }
        if (!useSpb) {
          if (f.firstSec < 0) f.firstSec = tsSec
          f.lastSec = tsSec
          f.lastNanos = ns
        }
        iface.received++
        this.records++
        ft.records++
        if (fr.kept) {
          ft.kept++
          if (access) ft.accesses++
          this.truth.add(day, this.sourceCountry[who], t.classId, who, access)
        } else {
          ft.dropped[fr.category ?? 'other']++
        }
      }
      if (kept) {
        this.keptEvents++
        this.keptFrames += tf.length
      }
      if (f.writer.shouldFlush) {
        this.cursor = j + 1
        this.waitSlot = slot
        return FLUSH
      }
    }
    return DONE
  }

  private openFile(slot: number, sensor: number, sec: number): OpenFile {
    let rel: string
    let format: FileFormat
    let windowStart: number
    let windowEnd: number
    if (this.layout === 'single') {
      format = FORMAT_SLOTS[this.o.singleFormat ?? 0]
      if (!format) throw new TeitenError('BAD_PARAMETER', `no format slot ${this.o.singleFormat}`)
      rel = `${this.o.singleName ?? 'bench'}${extensionOf(format)}`
      windowStart = this.originSec
      windowEnd = this.originSec + this.days * 86_400
    } else {
      const r = this.rotations[sensor]
      const w = Math.floor((sec - this.originSec + r.shiftSeconds) / r.seconds)
      windowStart = this.originSec - r.shiftSeconds + w * r.seconds
      windowEnd = windowStart + r.seconds
      const n = FORMAT_SLOTS.length
      format = FORMAT_SLOTS[(((sensor * 4 + w) % n) + n) % n]
      const name = this.sensorSpecs[sensor].name
      rel = `${name}/${name}-${stampOf(windowStart, r)}${zoneSuffix(r)}${extensionOf(format)}`
    }
    const path = join(this.o.outDir, rel)
    mkdirSync(dirname(path), { recursive: true })
    const outOpts = { gzip: format.gzip, gzipLevel: this.gzipLevel, bufferSize: this.bufferSize, bufferPool: this.pool }
    let pcap: PcapWriter | null = null
    let ng: PcapngWriter | null = null
    let ifaces: IfaceRuntime[] = []
    const linkTypes = new Set<number>()
    if (format.container === 'pcap') {
      const choice = LINK_CHOICES[format.link]
      pcap = PcapWriter.open(path, {
        ...outOpts,
        linkType: choice.linkType,
        nanos: format.nanos,
        bigEndian: format.bigEndian,
      })
      ifaces = [{ choice, received: 0 }]
      linkTypes.add(choice.linkType)
    } else {
      ng = PcapngWriter.open(path, outOpts)
    }
    const f: OpenFile = {
      truth: {
        path: rel,
        sensor: this.layout === 'single' ? null : this.sensorSpecs[sensor].name,
        format: describeFormat(format),
        gzip: format.gzip,
        linkTypes: [],
        records: 0,
        kept: 0,
        accesses: 0,
        dropped: emptyDropped(),
        first: null,
        last: null,
      },
      format,
      pcap,
      ng,
      writer: (pcap ?? ng) as PcapWriter | PcapngWriter,
      simplePackets: format.container === 'pcapng' && format.simplePackets,
      extraBlocks: format.container === 'pcapng' && format.extraBlocks,
      windowStart,
      windowEnd,
      section: -1,
      sectionEnd: windowEnd,
      ifaces,
      ifaceCum: cumulative([1]),
      linkTypes,
      lastSec: 0,
      lastNanos: 0,
      firstSec: -1,
    }
    if (ng) this.startSection(f, 0)
    this.open[slot] = f
    return f
  }

  private advanceSection(f: OpenFile, sec: number): void {
    const fmt = f.format as PcapngFormat
    while (sec >= f.sectionEnd && f.section < fmt.sections.length - 1) this.startSection(f, f.section + 1)
  }

  private endSection(f: OpenFile): void {
    const ng = f.ng
    if (!ng || f.section < 0 || !f.extraBlocks) return
    f.ifaces.forEach((iface, i) => {
      ng.writeInterfaceStatistics(i, f.lastSec, f.lastNanos, iface.received, 0)
    })
  }

  private startSection(f: OpenFile, k: number): void {
    const fmt = f.format as PcapngFormat
    const ng = f.ng as PcapngWriter
    this.endSection(f)
    const plan = fmt.sections[k]
    ng.startSection({
      bigEndian: plan.bigEndian,
      interfaces: plan.interfaces.map((i, n) => ({
        linkType: LINK_CHOICES[i.link].linkType,
        tsresol: i.tsresol,
        name: `eth${n}`,
        description: `${i.link} tap`,
      })),
      userAppl: 'teiten synth',
      os: 'Linux 3.2.0',
    })
    if (fmt.extraBlocks) {
      ng.writeNameResolution([{ address: this.prefixes[0].v4.bytes, names: ['dark.example'] }])
      ng.writeCustomBlock(32473, Buffer.from(`teiten synth section ${k}`, 'utf8'))
      // A block type no reader knows, and one from the local-use range: both must be skipped.
      ng.writeBlock(0x00000abc, Buffer.from('skip me: unknown block type'))
      ng.writeBlock(0x80000f01, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))
    }
    f.section = k
    const span = (f.windowEnd - f.windowStart) / fmt.sections.length
    f.sectionEnd = k === fmt.sections.length - 1 ? f.windowEnd : f.windowStart + Math.round(span * (k + 1))
    f.ifaces = plan.interfaces.map((i) => ({ choice: LINK_CHOICES[i.link], received: 0 }))
    f.ifaceCum = cumulative(plan.interfaces.map((i) => i.weight))
    for (const i of plan.interfaces) f.linkTypes.add(LINK_CHOICES[i.link].linkType)
  }

  /**
   * Finishes a file's truth and starts closing it; a few closes may be in flight at once (gzip's
   * last chunk compresses while the next file fills), the oldest is awaited beyond that.
   */
  private async closeFile(slot: number): Promise<void> {
    const f = this.open[slot]
    if (!f) return
    this.open[slot] = null
    this.endSection(f)
    this.bytes += f.writer.bytes
    f.truth.linkTypes = [...f.linkTypes].sort((a, b) => a - b)
    f.truth.first = f.firstSec >= 0 ? isoSecond(f.firstSec) : null
    f.truth.last = f.firstSec >= 0 ? isoSecond(f.lastSec) : null
    this.files.push(f.truth)
    const path = join(this.o.outDir, f.truth.path)
    this.closing.push(
      f.writer.close().then(
        () => {
          this.diskBytes += statSync(path).size
        },
        (err: unknown) => {
          this.closeFailure ??= err
        },
      ),
    )
    if (this.closing.length > MAX_CLOSING) await this.closing.shift()
    if (this.closeFailure !== null) throw this.closeFailure
  }

  private async closeAll(): Promise<void> {
    for (let slot = 0; slot < this.open.length; slot++) await this.closeFile(slot)
    await Promise.all(this.closing)
    this.closing = []
    if (this.closeFailure !== null) throw this.closeFailure
  }

  /** After a failure: close what is open (best effort) so no descriptor or stream is left. */
  private async abandon(): Promise<void> {
    const open = this.open.filter((f): f is OpenFile => f !== null)
    this.open.fill(null)
    await Promise.allSettled([...open.map((f) => f.writer.close()), ...this.closing])
  }
}

const EPB_INBOUND = { flags: 1 }
const EPB_COMMENT = { comment: 'synthetic' }

/** Second of the day of a source's packet: around its preferred time, wrapping at midnight. */
function sessionSecond(s: Source, rng: Rng): number {
  if (s.spreadSeconds >= 86_400) return rng.int(86_400)
  const x = Math.round(s.centerSecond + rng.normal() * s.spreadSeconds)
  return ((x % 86_400) + 86_400) % 86_400
}

function pushNoise(ev: DayEvents, rng: Rng, sensor: number, pool: readonly Buffer[]): void {
  const who = rng.int(pool.length)
  const v6 = pool[who].length === 16
  const kind = rng.weighted(v6 ? NOISE_CUM_V6 : NOISE_CUM_V4)
  ev.push(rng.int(86_400), sensor, who, -1 - kind, 0, 1)
}

interface TruthInput {
  seed: number
  preset: Preset | null
  startIso: string
  endIso: string
  startDay: number
  days: number
  sensors: readonly SensorSpec[]
  rotations: Rotation[]
  countryList: string[]
  truth: TruthBuilder
  files: FileTruth[]
  missing: string[]
}

function buildTruth(x: TruthInput): GroundTruth {
  const t = x.truth
  const C = x.countryList.length
  const byDayCountryClass: ClassRow[] = []
  const accessesByDayCountry: CountRow[] = []
  const keptByDayCountry: CountRow[] = []
  const byClass = Object.fromEntries(
    NTP_CLASSES.map((c) => [c, { packets: 0, sources: 0, accesses: 0, accessSources: 0 }]),
  ) as GroundTruth['totals']['byClass']
  const byCountry: Record<string, { packets: number; accesses: number }> = {}
  for (let d = 0; d < x.days; d++) {
    const day = isoDay(x.startDay + d)
    for (let c = 0; c < C; c++) {
      const dc = d * C + c
      const country = x.countryList[c]
      for (let k = 0; k < NCLASS; k++) {
        const g = dc * NCLASS + k
        if (t.keptPk[g] === 0) continue
        byDayCountryClass.push({
          day,
          country,
          class: NTP_CLASSES[k],
          packets: t.keptPk[g],
          sources: t.keptSrc[g],
          accesses: t.accPk[g],
          accessSources: t.accSrc[g],
        })
        byClass[NTP_CLASSES[k]].packets += t.keptPk[g]
        byClass[NTP_CLASSES[k]].accesses += t.accPk[g]
      }
      if (t.dcKeptPk[dc] > 0) {
        keptByDayCountry.push({ day, country, packets: t.dcKeptPk[dc], sources: t.dcKeptSrc[dc] })
        const bc = byCountry[country] ?? { packets: 0, accesses: 0 }
        bc.packets += t.dcKeptPk[dc]
        bc.accesses += t.dcAccPk[dc]
        byCountry[country] = bc
      }
      if (t.dcAccPk[dc] > 0)
        accessesByDayCountry.push({ day, country, packets: t.dcAccPk[dc], sources: t.dcAccSrc[dc] })
    }
  }
  for (let s = 0; s < t.sources; s++) {
    for (let k = 0; k < NCLASS; k++) {
      byClass[NTP_CLASSES[k]].sources += t.everClass[s * NCLASS + k]
      byClass[NTP_CLASSES[k]].accessSources += t.everAccClass[s * NCLASS + k]
    }
  }
  let sources = 0
  let accessSources = 0
  for (let s = 0; s < t.sources; s++) {
    sources += t.everKept[s]
    accessSources += t.everAcc[s]
  }
  const dropped = emptyDropped()
  let records = 0
  let kept = 0
  let accesses = 0
  for (const f of x.files) {
    records += f.records
    kept += f.kept
    accesses += f.accesses
    for (const c of DROP_CATEGORIES) dropped[c] += f.dropped[c]
  }
  const notes: string[] = []
  if (x.missing.length > 0) {
    notes.push(`countries with no address in the lookup, left out: ${x.missing.join(', ')}`)
  }
  if (x.countryList.includes(UNKNOWN)) notes.push("'--' holds bogon sources and addresses the lookup does not know")
  return {
    format: 'teiten-synth-truth/1',
    seed: x.seed,
    preset: x.preset,
    range: { start: x.startIso, end: x.endIso, days: x.days },
    sensors: x.sensors.map((s, i) => ({
      name: s.name,
      prefix4: s.prefix4,
      prefix6: s.prefix6,
      rotation: x.rotations[i],
    })),
    definitions: DEFINITIONS,
    classes: NTP_CLASSES,
    byDayCountryClass,
    accessesByDayCountry,
    keptByDayCountry,
    files: x.files,
    totals: {
      files: x.files.length,
      records,
      kept,
      accesses,
      dropped,
      sources,
      accessSources,
      byClass,
      byCountry,
    },
    notes,
  }
}

/**
 * JSON with one row per line: readable, diffable, and a fraction of the size of fully indented
 * output (the test corpus has tens of thousands of rows).
 */
export function serializeTruth(t: GroundTruth): string {
  const lines: string[] = ['{']
  const entries = Object.entries(t)
  entries.forEach(([key, value], i) => {
    const comma = i < entries.length - 1 ? ',' : ''
    if (Array.isArray(value) && value.length > 0 && typeof value[0] === 'object') {
      lines.push(`  ${JSON.stringify(key)}: [`)
      value.forEach((row, j) => {
        lines.push(`    ${JSON.stringify(row)}${j < value.length - 1 ? ',' : ''}`)
      })
      lines.push(`  ]${comma}`)
    } else {
      lines.push(`  ${JSON.stringify(key)}: ${JSON.stringify(value)}${comma}`)
    }
  })
  lines.push('}')
  return `${lines.join('\n')}\n`
}
