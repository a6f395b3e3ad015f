/**
 * `npm run bench`: the speed and memory figures of the issue tracker's targets, on this machine.
 *
 *   npm run bench                         # 20M-packet capture (generated once into .cache/bench/)
 *   npm run bench -- --packets 2000000    # quick run
 *   npm run bench -- --json               # one JSON object for scripts
 *   npm run bench -- --kafka              # also the Kafka path (starts a private broker)
 *
 * Stages: tcpdump (libpcap + BPF, the reference), decode (readCapture + decodeFrame), decode +
 * classify + enrich (no storage), end to end into embedded ClickHouse (the real CLI in a child
 * process, its peak RSS sampled from /proc), and the main queries on the store it produced.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Enrichment } from '../core/event.js'
import { makeEnricher, newEnrichment } from '../enrich/enrich.js'
import { GeoIp } from '../enrich/geoip.js'
import { readCapture } from '../ingest/capture.js'
import { createUdpPacket, decodeFrame } from '../ingest/decode.js'
import { generateCorpus } from '../synth/corpus.js'
import { openCountryLookup } from '../synth/geo.js'
import { benchDecode } from './decode.js'

const ROOT = join(import.meta.dirname, '..', '..')

interface StageFigure {
  stage: string
  seconds: number
  packetsPerSecond: number
  ratioToTcpdump: number | null
  peakRssMiB: number | null
  note?: string
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

async function ensureCapture(packets: number): Promise<string> {
  const dir = join(ROOT, '.cache', 'bench', String(packets))
  const file = join(dir, 'bench.pcap')
  if (existsSync(file)) return file
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  process.stderr.write(`generating a ${packets}-packet capture in ${dir} …\n`)
  await generateCorpus({
    outDir: dir,
    preset: 'bench',
    packets,
    layout: 'single',
    singleName: 'bench.pcap',
    countryOf: openCountryLookup(),
    truthFile: null,
  })
  if (!existsSync(file)) {
    const found = readdirSync(dir).find((f) => f.endsWith('.pcap'))
    if (!found) throw new Error(`the generator wrote no capture into ${dir}`)
    return join(dir, found)
  }
  return file
}

function tcpdump(file: string): number | null {
  const start = performance.now()
  const r = spawnSync('tcpdump', ['-r', file, '-w', '/dev/null', 'udp port 123'], { stdio: 'ignore' })
  if (r.error || r.status !== 0) return null
  return (performance.now() - start) / 1000
}

async function enrichStage(file: string, withGeoIp: boolean): Promise<{ seconds: number; records: number }> {
  // Without a database, enrich() classifies and flags bogons only: the classify stage.
  const enrich = makeEnricher(withGeoIp ? await GeoIp.open() : null)
  const packet = createUdpPacket()
  const out: Enrichment = newEnrichment()
  const start = performance.now()
  const stats = await readCapture(file, (frame) => {
    if (decodeFrame(frame, packet)) enrich(packet, out)
  })
  return { seconds: (performance.now() - start) / 1000, records: stats.records }
}

/** Runs a command, sampling its peak resident set (VmHWM) until it exits. */
function runMeasured(
  args: string[],
): Promise<{ seconds: number; peakRssMiB: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const start = performance.now()
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    let peakKiB = 0
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]))
      } catch {}
    }
    const timer = setInterval(sample, 50)
    child.on('close', (code) => {
      clearInterval(timer)
      resolve({ seconds: (performance.now() - start) / 1000, peakRssMiB: peakKiB / 1024, code, stderr })
    })
  })
}

async function main(): Promise<void> {
  const packets = Number(arg('--packets') ?? 20_000_000)
  const json = process.argv.includes('--json')
  const file = await ensureCapture(packets)
  const figures: StageFigure[] = []
  const ref = tcpdump(file)
  const ratio = (s: number) => (ref ? s / ref : null)
  if (ref !== null) {
    figures.push({
      stage: 'tcpdump -r FILE -w /dev/null udp port 123',
      seconds: ref,
      packetsPerSecond: packets / ref,
      ratioToTcpdump: 1,
      peakRssMiB: null,
    })
  }
  // In-process stages: their peak RSS is this process's peak so far.
  const inProcess = (stage: string, seconds: number, records: number) =>
    figures.push({
      stage,
      seconds,
      packetsPerSecond: records / seconds,
      ratioToTcpdump: ratio(seconds),
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    })
  const decode = await benchDecode(file)
  inProcess('decode (read + link/IP/UDP)', decode.seconds, decode.records)
  const classified = await enrichStage(file, false)
  inProcess('decode + classify (+ bogon flag)', classified.seconds, classified.records)
  const enriched = await enrichStage(file, true)
  inProcess('decode + classify + enrich (GeoIP)', enriched.seconds, enriched.records)
  const data = join(ROOT, '.cache', 'bench', `data-${packets}`)
  rmSync(data, { recursive: true, force: true })
  const e2e = await runMeasured([
    join(ROOT, 'bin', 'teiten.js'),
    'ingest',
    file,
    '--data',
    data,
    '--no-progress',
    '--log-level',
    'warn',
  ])
  if (e2e.code !== 0) throw new Error(`teiten ingest exited ${e2e.code}: ${e2e.stderr.slice(-2000)}`)
  figures.push({
    stage: 'end to end into embedded ClickHouse (teiten ingest)',
    seconds: e2e.seconds,
    packetsPerSecond: packets / e2e.seconds,
    ratioToTcpdump: ratio(e2e.seconds),
    peakRssMiB: e2e.peakRssMiB,
  })

  let queries: unknown = null
  if (existsSync(join(ROOT, 'dist', 'bench', 'queries.js'))) {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'queries.js'), data, '5'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    if (r.status === 0) queries = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  }
  let kafka: unknown = null
  if (process.argv.includes('--kafka')) {
    const { benchKafka } = await import('./kafka.js')
    kafka = await benchKafka({ paths: [file], log: (m) => process.stderr.write(`${m}\n`) })
  }
  const result = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    packets,
    capture: file,
    stages: figures,
    queries,
    kafka,
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return
  }
  process.stdout.write(`CPU: ${result.cpu} (${result.cores} cores); capture: ${packets} packets\n\n`)
  const rows = figures.map((f) => [
    f.stage,
    f.seconds.toFixed(2),
    Math.round(f.packetsPerSecond).toLocaleString('en-US'),
    f.ratioToTcpdump === null ? 'n/a' : `${f.ratioToTcpdump.toFixed(2)}x`,
    f.peakRssMiB === null ? '' : `${Math.round(f.peakRssMiB)} MiB`,
  ])
  const head = ['stage', 'seconds', 'packets/s', 'vs tcpdump', 'peak RSS']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  for (const r of [head, ...rows])
    process.stdout.write(`${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`)
  if (queries) {
    process.stdout.write('\nqueries (ms per run, first run cold):\n')
    for (const q of (queries as { queries: { name: string; ms: number[] }[] }).queries) {
      process.stdout.write(`  ${q.name}: ${q.ms.map((m) => Math.round(m)).join(', ')}\n`)
    }
  }
  if (kafka) process.stdout.write(`\nkafka: ${JSON.stringify(kafka)}\n`)
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
