import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { isIP } from 'node:net'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { TeitenError } from '../../core/errors.js'

/**
 * How many addresses each sensor watches, for "packets per monitored address per day": the
 * measure that makes sensors of different sizes (a /24 and a /16) comparable. Either a count,
 * or the prefixes the sensor listens on, from which the count is computed (overlaps once).
 *
 *   sensors:
 *     sensor-a: { addresses: 256 }
 *     sensor-b: { prefixes: ["198.51.100.0/24", "203.0.113.0/25"] }
 */
export interface SensorInfo {
  addresses: number
  prefixes?: string[]
}

export interface SensorsConfig {
  /** File name only: the dashboard shows where the numbers come from, never a full path. */
  source: string
  sensors: Record<string, SensorInfo>
}

interface Cidr {
  version: 4 | 6
  start: bigint
  end: bigint
}

function ipv4ToBigInt(text: string): bigint {
  return text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n)
}

function ipv6ToBigInt(text: string): bigint {
  let t = text
  const tail: string[] = []
  if (t.includes('.')) {
    const cut = t.lastIndexOf(':')
    const v4 = ipv4ToBigInt(t.slice(cut + 1))
    tail.push((v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16))
    t = t.slice(0, cut + 1)
    if (!t.endsWith('::')) t = t.slice(0, -1)
  }
  const split = (s: string) => (s === '' ? [] : s.split(':'))
  const double = t.indexOf('::')
  let groups: string[]
  if (double >= 0) {
    const l = split(t.slice(0, double))
    const r = split(t.slice(double + 2))
    groups = [...l, ...Array(8 - l.length - r.length - tail.length).fill('0'), ...r, ...tail]
  } else {
    groups = [...split(t), ...tail]
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n)
}

export function parseCidr(text: string): Cidr {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text.trim())
  const version = m ? isIP(m[1]!) : 0
  if (!m || version === 0) throw new Error(`${text}: expected a CIDR prefix such as 198.51.100.0/24`)
  const bits = version === 4 ? 32 : 128
  const len = Number(m[2])
  if (len > bits) throw new Error(`${text}: prefix length beyond /${bits}`)
  const value = version === 4 ? ipv4ToBigInt(m[1]!) : ipv6ToBigInt(m[1]!)
  const size = 1n << BigInt(bits - len)
  if (value % size !== 0n)
    throw new Error(`${text}: host bits are set (did you mean ${text.split('/')[0]} with a longer prefix?)`)
  return { version: version as 4 | 6, start: value, end: value + size - 1n }
}

/** Distinct addresses covered by the prefixes: overlapping or repeated prefixes count once. */
export function countPrefixAddresses(prefixes: string[]): number {
  let total = 0n
  for (const version of [4, 6] as const) {
    const ranges = prefixes
      .map(parseCidr)
      .filter((c) => c.version === version)
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    let curStart = -1n
    let curEnd = -2n
    for (const r of ranges) {
      if (r.start > curEnd + 1n) {
        if (curEnd >= curStart && curStart >= 0n) total += curEnd - curStart + 1n
        curStart = r.start
        curEnd = r.end
      } else if (r.end > curEnd) curEnd = r.end
    }
    if (curStart >= 0n) total += curEnd - curStart + 1n
  }
  return Number(total)
}

const SensorEntry = z.union([
  z.object({ addresses: z.number().int().positive() }).strict(),
  z.object({ prefixes: z.array(z.string()).min(1) }).strict(),
])
const SensorsFileSchema = z.object({ sensors: z.record(z.string().min(1).max(128), SensorEntry) }).strict()

export function parseSensorsConfig(data: unknown, source: string): SensorsConfig {
  const parsed = SensorsFileSchema.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new TeitenError(
      'CONFIG_INVALID',
      `${where}${issue.message} (expected sensors: { NAME: { addresses: N } | { prefixes: [CIDR, …] } })`,
      { file: source },
    )
  }
  const sensors: Record<string, SensorInfo> = {}
  for (const [name, entry] of Object.entries(parsed.data.sensors)) {
    if ('addresses' in entry) {
      sensors[name] = { addresses: entry.addresses }
      continue
    }
    try {
      sensors[name] = { addresses: countPrefixAddresses(entry.prefixes), prefixes: entry.prefixes }
    } catch (err) {
      throw new TeitenError('CONFIG_INVALID', `sensors.${name}.prefixes: ${(err as Error).message}`, { file: source })
    }
  }
  return { source: basename(source), sensors }
}

/** Reads a sensors file (YAML or JSON: JSON is YAML). */
export function loadSensorsFile(path: string): SensorsConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new TeitenError(
      'CONFIG_INVALID',
      `cannot read the sensors file: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    )
  }
  let data: unknown
  try {
    data = parseYaml(text)
  } catch (err) {
    throw new TeitenError(
      'CONFIG_INVALID',
      `cannot parse the sensors file: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    )
  }
  return parseSensorsConfig(data, path)
}
