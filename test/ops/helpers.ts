/**
 * Test captures with known content, written here byte by byte (24-byte pcap header, 16-byte
 * record headers, Ethernet/IPv4/UDP/NTP), their ground truth, and the real pipeline pieces the
 * ops tests drive: the store, the enricher (real classification and bogon check; a GeoIP stub
 * keyed on the first octet so the truth is known without a database), and the CLI.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import type { Enrichment, UdpPacket } from '../../core/event.js'
import { enrich } from '../../enrich/enrich.js'
import type { Enricher } from '../../pipeline/ingest.js'
import type { Store } from '../../store/store.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = join(ROOT, 'bin', 'teiten.js')

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: small, seedable, good enough to pick test cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

/** First octet of the source -> country, for the GeoIP stub. All public, none bogon. */
export const COUNTRY_OF_OCTET: Record<number, string> = { 1: 'JP', 5: 'DE', 8: 'US', 31: 'NL', 45: 'BR', 61: 'CN' }
const OCTETS = Object.keys(COUNTRY_OF_OCTET).map(Number)

const MONLIST = Buffer.from([0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0])
const CLIENT = Buffer.concat([Buffer.from([0x1b]), Buffer.alloc(47)])

function ipChecksum(b: Buffer, off: number, len: number): number {
  let sum = 0
  for (let i = 0; i < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

/** Ethernet + IPv4 + UDP (or TCP when proto is 6) around `payload`. */
export function frame(src: number[], dst: number[], sport: number, dport: number, payload: Buffer, proto = 17): Buffer {
  const l4 = proto === 17 ? 8 : 20
  const b = Buffer.alloc(14 + 20 + l4 + payload.length)
  b.fill(0x02, 0, 6)
  b.fill(0x04, 6, 12)
  b.writeUInt16BE(0x0800, 12)
  const ip = 14
  b[ip] = 0x45
  b.writeUInt16BE(20 + l4 + payload.length, ip + 2)
  b[ip + 8] = 64
  b[ip + 9] = proto
  Buffer.from(src).copy(b, ip + 12)
  Buffer.from(dst).copy(b, ip + 16)
  b.writeUInt16BE(ipChecksum(b, ip, 20), ip + 10)
  const u = ip + 20
  b.writeUInt16BE(sport, u)
  b.writeUInt16BE(dport, u + 2)
  if (proto === 17) b.writeUInt16BE(8 + payload.length, u + 4)
  else b[u + 12] = 0x50
  payload.copy(b, u + l4)
  return b
}

export interface GenPacket {
  sec: number
  usec: number
  data: Buffer
}

export interface Truth {
  /** Records in the capture. */
  records: number
  /** UDP/123 datagrams (either direction). */
  kept: number
  /** Accesses (dst port 123) per "day|country". */
  access: Record<string, number>
  /** Every kept datagram per "day|country". */
  all: Record<string, number>
  /** Records dropped, by reason. */
  dropped: Record<string, number>
}

export function emptyTruth(): Truth {
  return { records: 0, kept: 0, access: {}, all: {}, dropped: {} }
}

export function addTruth(into: Truth, t: Truth): Truth {
  into.records += t.records
  into.kept += t.kept
  for (const k of ['access', 'all', 'dropped'] as const) {
    for (const [key, n] of Object.entries(t[k])) into[k][key] = (into[k][key] ?? 0) + n
  }
  return into
}

export interface GenOptions {
  seed: number
  packets: number
  /** First timestamp (seconds); packets spread over `days` days from here. */
  startSec?: number
  days?: number
  /** Share of records that are not UDP/123 (DNS and TCP). */
  noise?: number
}

/**
 * Packets of a darknet day: monlist probes and client requests to port 123 from a few thousand
 * sources in six "countries", some backscatter from port 123, some DNS and TCP noise.
 */
export function generate(o: GenOptions): { packets: GenPacket[]; truth: Truth } {
  const r = rng(o.seed)
  const start = o.startSec ?? Date.UTC(2024, 0, 1) / 1000
  const span = (o.days ?? 1) * 86_400
  const truth = emptyTruth()
  const packets: GenPacket[] = []
  const dst = [203, 0, 113, 7]
  for (let i = 0; i < o.packets; i++) {
    const sec = start + Math.floor((i / o.packets) * span)
    const octet = OCTETS[Math.floor(r() * OCTETS.length)]!
    const src = [octet, Math.floor(r() * 4), Math.floor(r() * 32), 1 + Math.floor(r() * 200)]
    const x = r()
    const day = new Date(sec * 1000).toISOString().slice(0, 10)
    const key = `${day}|${COUNTRY_OF_OCTET[octet]}`
    let data: Buffer
    if (x < (o.noise ?? 0.1) / 2) {
      data = frame(src, dst, 40000 + (i % 1000), 53, Buffer.from('dns?'))
      truth.dropped.not_port_123 = (truth.dropped.not_port_123 ?? 0) + 1
    } else if (x < (o.noise ?? 0.1)) {
      data = frame(src, dst, 40000, 123, Buffer.alloc(0), 6)
      truth.dropped.not_udp = (truth.dropped.not_udp ?? 0) + 1
    } else {
      const backscatter = x > 0.97
      const payload = r() < 0.7 ? MONLIST : CLIENT
      data = backscatter
        ? frame(src, dst, 123, 50000 + (i % 100), payload)
        : frame(src, dst, 30000 + (i % 5000), 123, payload)
      truth.kept++
      truth.all[key] = (truth.all[key] ?? 0) + 1
      if (!backscatter) truth.access[key] = (truth.access[key] ?? 0) + 1
    }
    truth.records++
    packets.push({ sec, usec: i % 1_000_000, data })
  }
  return { packets, truth }
}

/** A classic pcap (microseconds, little-endian, Ethernet). */
export function pcap(packets: GenPacket[]): Buffer {
  const size = 24 + packets.reduce((n, p) => n + 16 + p.data.length, 0)
  const b = Buffer.alloc(size)
  b.writeUInt32LE(0xa1b2c3d4, 0)
  b.writeUInt16LE(2, 4)
  b.writeUInt16LE(4, 6)
  b.writeUInt32LE(262144, 16)
  b.writeUInt32LE(1, 20)
  let at = 24
  for (const p of packets) {
    b.writeUInt32LE(p.sec, at)
    b.writeUInt32LE(p.usec, at + 4)
    b.writeUInt32LE(p.data.length, at + 8)
    b.writeUInt32LE(p.data.length, at + 12)
    p.data.copy(b, at + 16)
    at += 16 + p.data.length
  }
  return b
}

/** A pcapng (one section, one Ethernet interface, microsecond EPBs). */
export function pcapng(packets: GenPacket[]): Buffer {
  const parts: Buffer[] = []
  const shb = Buffer.alloc(28)
  shb.writeUInt32LE(0x0a0d0d0a, 0)
  shb.writeUInt32LE(28, 4)
  shb.writeUInt32LE(0x1a2b3c4d, 8)
  shb.writeUInt16LE(1, 12)
  shb.writeBigInt64LE(-1n, 16)
  shb.writeUInt32LE(28, 24)
  parts.push(shb)
  const idb = Buffer.alloc(20)
  idb.writeUInt32LE(1, 0)
  idb.writeUInt32LE(20, 4)
  idb.writeUInt16LE(1, 8)
  idb.writeUInt32LE(0, 12)
  idb.writeUInt32LE(20, 16)
  parts.push(idb)
  for (const p of packets) {
    const padded = (p.data.length + 3) & ~3
    const len = 32 + padded
    const epb = Buffer.alloc(len)
    epb.writeUInt32LE(6, 0)
    epb.writeUInt32LE(len, 4)
    const ts = BigInt(p.sec) * 1_000_000n + BigInt(p.usec)
    epb.writeUInt32LE(Number(ts >> 32n), 12)
    epb.writeUInt32LE(Number(ts & 0xffffffffn), 16)
    epb.writeUInt32LE(p.data.length, 20)
    epb.writeUInt32LE(p.data.length, 24)
    p.data.copy(epb, 28)
    epb.writeUInt32LE(len, len - 4)
    parts.push(epb)
  }
  return Buffer.concat(parts)
}

export const gzip = (b: Buffer) => gzipSync(b, { level: 1 })

// ---------------------------------------------------------------------------------------------
// Pipeline pieces

/** The real enrich stage with a GeoIP stub: country from the source's first octet. */
export function testEnricher(): Enricher & { lookups: number } {
  const geo = {
    lookups: 0,
    country(addr16: Buffer): string {
      geo.lookups++
      return COUNTRY_OF_OCTET[addr16[12]!] ?? '--'
    },
  }
  return {
    get lookups() {
      return geo.lookups
    },
    enrich: (packet: UdpPacket, out: Enrichment) => {
      enrich(packet, out, geo)
    },
  }
}

/** Accesses per "day|country" and every kept datagram per "day|country", from the aggregates. */
export async function storedCounts(
  store: Store,
  where = '1',
): Promise<{ access: Record<string, number>; all: Record<string, number> }> {
  const rows = await store.query<{ day: string; country: string; access: boolean; n: string }>(
    `SELECT toString(day) AS day, country, access, toString(sum(packets)) AS n FROM daily_agg WHERE ${where}
     GROUP BY day, country, access`,
  )
  const access: Record<string, number> = {}
  const all: Record<string, number> = {}
  for (const r of rows) {
    const key = `${r.day}|${r.country}`
    all[key] = (all[key] ?? 0) + Number(r.n)
    if (r.access) access[key] = (access[key] ?? 0) + Number(r.n)
  }
  return { access, all }
}

/** Raw events, and events stored more than once (same file, same record). */
export async function eventStats(store: Store, where = '1'): Promise<{ events: number; duplicates: number }> {
  const [row] = await store.query<{ events: string; distinct: string }>(
    `SELECT toString(count()) AS events, toString(uniqExact(file_id, record)) AS distinct FROM events WHERE ${where}`,
  )
  return { events: Number(row!.events), duplicates: Number(row!.events) - Number(row!.distinct) }
}

export async function truncateAll(store: Store): Promise<void> {
  for (const t of ['events', 'daily_agg', 'hourly_agg', 'source_daily', 'ingested_files']) {
    await store.command(`TRUNCATE TABLE ${t}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Temp dirs and the CLI

export function tempDir(prefix = 'teiten-ops-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

export function writeCapture(path: string, bytes: Buffer): string {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, bytes)
  return path
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Env for a spawned CLI: no TEITEN_* from the caller's shell leaks in. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TEITEN_')) env[k] = v
  return { ...env, ...extra }
}

export interface Spawned {
  child: ReturnType<typeof spawn>
  stdout: () => string
  stderr: () => string
  /** Resolves when stderr has a line matching `re` (JSON log lines are parsed into `line`). */
  waitFor(re: RegExp): Promise<string>
  done: Promise<CliResult>
}

export function startCli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = []
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    const before = err.length
    err += d.toString()
    const fresh = err.slice(err.lastIndexOf('\n', before) + 1)
    for (const line of fresh.split('\n')) {
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.re.test(line)) {
          waiters[i]!.resolve(line)
          waiters.splice(i, 1)
        }
      }
    }
  })
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => {
      for (const w of waiters) w.resolve('')
      resolve({ code, signal, stdout: out, stderr: err })
    })
  })
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(re) {
      const hit = err.split('\n').find((l) => re.test(l))
      if (hit !== undefined) return Promise.resolve(hit)
      return new Promise((resolve) => waiters.push({ re, resolve }))
    },
    done,
  }
}

export function runCli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<CliResult> {
  return startCli(args, env, cwd).done
}

/** JSON log lines of a pino stderr (other lines, e.g. "teiten: ..." errors, are left out). */
export function logLines(stderr: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line) as Record<string, unknown>)
    } catch {}
  }
  return out
}
