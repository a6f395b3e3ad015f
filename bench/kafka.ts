/**
 * Benchmarks of the Kafka path (not tests):
 *
 * - benchCodec: the message format, binary (stream/codec.ts) against JSON, with and without
 *   gzip: bytes per event, encode and decode cost. Real events: a synthetic bench corpus read
 *   by the real pipeline.
 * - benchKafka: events/s from capture to ClickHouse through the broker (`teiten ingest --kafka`
 *   and `teiten sink` as separate processes, as on separate machines), against the embedded
 *   path (`teiten ingest --data`) on the same capture; message bytes per event.
 *
 *   npm run build && node dist/bench/kafka.js [--codec-only] [--packets N] [--brokers host:port]
 *
 * Without --brokers a private broker is started (scripts/kafka-broker.mjs, needs java).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { gunzipSync, gzipSync } from 'node:zlib'
import { CLASS_ID, type Enrichment, NTP_CLASSES, type NtpClassId, type UdpPacket } from '../core/event.js'
import { silentLogger } from '../core/logger.js'
import { makeEnricher } from '../enrich/enrich.js'
import { GeoIp } from '../enrich/geoip.js'
import { expandPaths } from '../pipeline/files.js'
import { ingestFiles } from '../pipeline/ingest.js'
import { BATCH_ROWS, type EventBatch, type EventSink } from '../pipeline/sink.js'
import type * as BrokerModule from '../scripts/kafka-broker.mjs'
import { EventRowEncoder } from '../store/rowbinary.js'
import { decodeMessage, encodeBatch, MAX_PART_BODY_BYTES, walkRows } from '../stream/codec.js'
import { kafkajsTransport } from '../stream/kafka.js'
import { generateCorpus } from '../synth/corpus.js'
import { openCountryLookup } from '../synth/geo.js'
import { settleWrites, warmInputs } from './disk.js'
import { formatIp, parseIp } from '../synth/frames.js'

/** The repository root: the folder above bench/ (sources) or dist/bench/ (compiled). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'teiten.js'))) return dir
    dir = dirname(dir)
  }
  throw new Error('cannot find the teiten repository root')
}

// ---------------------------------------------------------------------------------------------
// Events of a real pipeline run

interface HeldEvent {
  p: UdpPacket
  e: Enrichment
  record: number
}

/** Runs the pipeline over `paths` and keeps the batches it would store. */
async function pipelineBatches(paths: string[]): Promise<EventBatch[]> {
  const batches: EventBatch[] = []
  const sink: EventSink = {
    identityScheme: async () => 'sha256', // as a Kafka sensor's
    batchRows: async () => BATCH_ROWS,
    lookupFile: async () => undefined,
    writeBatch: async (b) => {
      batches.push(b)
    },
    finishFile: async () => {},
    close: async () => {},
  }
  const geoip = await GeoIp.open()
  // A sensor id of typical length: it is repeated in every row.
  await ingestFiles(await expandPaths(paths, 'sensor-01'), {
    sink,
    enricher: { enrich: makeEnricher(geoip) },
    logger: silentLogger,
  })
  return batches
}

/** Turns RowBinary rows back into the objects the encoder takes (the bench's input). */
function heldEvents(batches: EventBatch[], limit: number): { events: HeldEvent[]; sensor: string; fileId: string } {
  const events: HeldEvent[] = []
  for (const b of batches) {
    const body = b.body
    walkRows(body, (start) => {
      if (events.length >= limit) return
      let o = start
      const lo = body.readUInt32LE(o)
      const hi = body.readInt32LE(o + 4)
      const ns = hi * 4294967296 + lo
      o += 8
      o += 1 + body[o]!
      const p: UdpPacket = {
        tsSec: Math.floor(ns / 1e9),
        tsNanos: ns % 1e9,
        src: Buffer.from(body.subarray(o, o + 16)),
        srcPort: body.readUInt16LE(o + 16),
        dst: Buffer.from(body.subarray(o + 18, o + 34)),
        dstPort: body.readUInt16LE(o + 34),
        ipVersion: body[o + 36] as 4 | 6,
        ttl: body[o + 37]!,
        ipLength: body.readUInt16LE(o + 38),
        udpLength: body.readUInt16LE(o + 40),
        payload: Buffer.alloc(body.readUInt16LE(o + 42)),
        wireLength: body.readUInt32LE(o + 44),
      }
      o += 48
      const e: Enrichment = {
        classId: (body[o]! - 1) as NtpClassId,
        ntpVersion: body[o + 1]!,
        ntpMode: body[o + 2]!,
        ntpCode: body[o + 3]!,
        ntpImpl: body[o + 4]!,
        country: body.toString('latin1', o + 6, o + 6 + body[o + 5]!),
        bogon: false,
      }
      o += 6 + body[o + 5]!
      e.bogon = body[o] === 1
      o += 2 + body[o + 1]!
      events.push({ p, e, record: body.readUInt32LE(o) })
    })
    if (events.length >= limit) break
  }
  return { events, sensor: batches[0]!.sensor, fileId: batches[0]!.fileId }
}

// ---------------------------------------------------------------------------------------------
// The JSON alternative: sensor and file id once per message, one object per event.

const V4_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])

function ipText(addr: Buffer): string {
  return addr.compare(V4_PREFIX, 0, 12, 0, 12) === 0 ? formatIp(addr, 12, 4) : formatIp(addr, 0, 16)
}

function ipBytes(text: string, out: Buffer): void {
  const b = parseIp(text)
  if (b.length === 4) {
    V4_PREFIX.copy(out, 0)
    b.copy(out, 12)
  } else b.copy(out, 0)
}

function tsText(sec: number, nanos: number): string {
  return `${new Date(sec * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}Z`
}

function jsonMessage(sensor: string, fileId: string, batchNo: number, part: number, events: HeldEvent[]): Buffer {
  const list = events.map(({ p, e, record }) => ({
    ts: tsText(p.tsSec, p.tsNanos),
    src: ipText(p.src),
    src_port: p.srcPort,
    dst: ipText(p.dst),
    dst_port: p.dstPort,
    ip_version: p.ipVersion,
    ttl: p.ttl,
    ip_len: p.ipLength,
    udp_len: p.udpLength,
    payload_len: p.payload.length,
    wire_len: p.wireLength,
    class: NTP_CLASSES[e.classId],
    ntp_version: e.ntpVersion,
    ntp_mode: e.ntpMode,
    ntp_code: e.ntpCode,
    ntp_impl: e.ntpImpl,
    country: e.country,
    bogon: e.bogon,
    record,
  }))
  return Buffer.from(JSON.stringify({ v: 1, sensor, fileId, batchNo, part, events: list }))
}

interface JsonEvent {
  ts: string
  src: string
  src_port: number
  dst: string
  dst_port: number
  ip_version: 4 | 6
  ttl: number
  ip_len: number
  udp_len: number
  payload_len: number
  wire_len: number
  class: (typeof NTP_CLASSES)[number]
  ntp_version: number
  ntp_mode: number
  ntp_code: number
  ntp_impl: number
  country: string
  bogon: boolean
  record: number
}

/** What a sink would do with a JSON message: parse it and encode RowBinary for the insert. */
function jsonToRowBinary(value: Buffer, enc: EventRowEncoder, payloads: Buffer[]): Buffer {
  const m = JSON.parse(value.toString('utf8')) as { sensor: string; fileId: string; events: JsonEvent[] }
  enc.setFile(m.sensor, m.fileId)
  const p: UdpPacket = {
    tsSec: 0,
    tsNanos: 0,
    ipVersion: 4,
    src: Buffer.alloc(16),
    dst: Buffer.alloc(16),
    srcPort: 0,
    dstPort: 0,
    ttl: 0,
    ipLength: 0,
    udpLength: 0,
    payload: payloads[0]!,
    wireLength: 0,
  }
  const e: Enrichment = { classId: 0, ntpVersion: 0, ntpMode: 0, ntpCode: 0, ntpImpl: 0, country: '--', bogon: false }
  for (const j of m.events) {
    const ms = Date.parse(`${j.ts.slice(0, 19)}Z`)
    p.tsSec = ms / 1000
    p.tsNanos = Number(j.ts.slice(20, 29))
    ipBytes(j.src, p.src)
    ipBytes(j.dst, p.dst)
    p.srcPort = j.src_port
    p.dstPort = j.dst_port
    p.ipVersion = j.ip_version
    p.ttl = j.ttl
    p.ipLength = j.ip_len
    p.udpLength = j.udp_len
    p.payload = payloads[j.payload_len] ?? Buffer.alloc(j.payload_len)
    p.wireLength = j.wire_len
    e.classId = CLASS_ID[j.class]
    e.ntpVersion = j.ntp_version
    e.ntpMode = j.ntp_mode
    e.ntpCode = j.ntp_code
    e.ntpImpl = j.ntp_impl
    e.country = j.country
    e.bogon = j.bogon
    enc.add(p, e, j.record)
  }
  return enc.take()
}

// ---------------------------------------------------------------------------------------------
// benchCodec

export interface CodecFigures {
  format: 'json' | 'binary'
  events: number
  messages: number
  bytesPerEvent: number
  gzip1BytesPerEvent: number
  gzip6BytesPerEvent: number
  /** Building the message values from the pipeline's events (ns per event). */
  encodeNs: number
  /** Message value to an insertable RowBinary body, validated (ns per event). */
  decodeNs: number
  gzip1Ns: number
  gzip6Ns: number
  gunzipNs: number
}

function timeNs(fn: () => void, events: number, rounds = 3): number {
  let best = Number.POSITIVE_INFINITY
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    fn()
    best = Math.min(best, performance.now() - t0)
  }
  return (best * 1e6) / events
}

function gzipFigures(values: Buffer[], events: number) {
  const sizes = (level: number) => values.reduce((n, v) => n + gzipSync(v, { level }).length, 0) / events
  const zipped = values.map((v) => gzipSync(v, { level: 1 }))
  return {
    gzip1BytesPerEvent: sizes(1),
    gzip6BytesPerEvent: sizes(6),
    gzip1Ns: timeNs(() => {
      for (const v of values) gzipSync(v, { level: 1 })
    }, events),
    gzip6Ns: timeNs(() => {
      for (const v of values) gzipSync(v, { level: 6 })
    }, events),
    gunzipNs: timeNs(() => {
      for (const z of zipped) gunzipSync(z)
    }, events),
  }
}

export async function benchCodec(
  opts: { events?: number; workDir?: string; log?: (msg: string) => void } = {},
): Promise<CodecFigures[]> {
  const want = opts.events ?? 200_000
  const log = opts.log ?? (() => {})
  const dir = opts.workDir ?? join(tmpdir(), `teiten-bench-codec-${process.pid}`)
  mkdirSync(dir, { recursive: true })
  try {
    await generateCorpus({
      outDir: dir,
      preset: 'bench',
      packets: Math.ceil(want * 1.25),
      countryOf: openCountryLookup(),
      truthFile: null,
      singleName: 'codec',
    })
    const batches = await pipelineBatches([dir])
    const { events, sensor, fileId } = heldEvents(batches, want)
    log(`codec bench: ${events.length} events`)
    // Message-sized chunks, as the producer cuts them.
    const enc = new EventRowEncoder(MAX_PART_BODY_BYTES * 2)
    enc.setFile(sensor, fileId)
    const encodeBinary = (): Buffer[] => {
      const out: Buffer[] = []
      for (let i = 0; i < events.length; i += 65_536) {
        for (let j = i; j < Math.min(events.length, i + 65_536); j++)
          enc.add(events[j]!.p, events[j]!.e, events[j]!.record)
        const rows = enc.rows
        const batch: EventBatch = { fileId, sensor, batchNo: i / 65_536, rows, body: enc.take() }
        for (const m of encodeBatch(batch)) out.push(m.value)
      }
      return out
    }
    const binary = encodeBinary()
    const rowsPerMessage = Math.round(events.length / binary.length)
    const encodeJson = (): Buffer[] => {
      const out: Buffer[] = []
      for (let i = 0; i < events.length; i += rowsPerMessage) {
        out.push(jsonMessage(sensor, fileId, 0, out.length, events.slice(i, i + rowsPerMessage)))
      }
      return out
    }
    const json = encodeJson()
    const payloads = Array.from({ length: 1500 }, (_, n) => Buffer.alloc(n))
    const total = (values: Buffer[]) => values.reduce((n, v) => n + v.length, 0)
    const figures: CodecFigures[] = [
      {
        format: 'json',
        events: events.length,
        messages: json.length,
        bytesPerEvent: total(json) / events.length,
        encodeNs: timeNs(() => encodeJson(), events.length),
        decodeNs: timeNs(() => {
          for (const v of json) jsonToRowBinary(v, enc, payloads)
        }, events.length),
        ...gzipFigures(json, events.length),
      },
      {
        format: 'binary',
        events: events.length,
        messages: binary.length,
        bytesPerEvent: total(binary) / events.length,
        encodeNs: timeNs(() => encodeBinary(), events.length),
        decodeNs: timeNs(() => {
          for (const v of binary) decodeMessage(v)
        }, events.length),
        ...gzipFigures(binary, events.length),
      },
    ]
    return figures
  } finally {
    if (!opts.workDir) rmSync(dir, { recursive: true, force: true })
  }
}

export function formatCodecFigures(figures: CodecFigures[]): string {
  const lines = [
    'format   bytes/event  gzip-1  gzip-6  encode ns/ev  decode ns/ev  gzip-1 ns/ev  gzip-6 ns/ev  gunzip ns/ev',
  ]
  for (const f of figures) {
    lines.push(
      `${f.format.padEnd(8)} ${f.bytesPerEvent.toFixed(1).padStart(11)} ${f.gzip1BytesPerEvent.toFixed(1).padStart(7)} ` +
        `${f.gzip6BytesPerEvent.toFixed(1).padStart(7)} ${f.encodeNs.toFixed(0).padStart(13)} ${f.decodeNs.toFixed(0).padStart(13)} ` +
        `${f.gzip1Ns.toFixed(0).padStart(13)} ${f.gzip6Ns.toFixed(0).padStart(13)} ${f.gunzipNs.toFixed(0).padStart(13)}`,
    )
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// benchKafka

export interface KafkaBenchOptions {
  /** Brokers to use; default: a private broker started (and stopped) by the bench. */
  brokers?: string[]
  /** Records in the synthetic capture (default 2,000,000; ~85% are kept as events). */
  packets?: number
  /** Capture files or folders to use instead of a synthetic capture. */
  paths?: string[]
  workDir?: string
  log?: (msg: string) => void
}

export interface KafkaBenchFigures {
  events: number
  /** `teiten ingest --data` (embedded chDB), process start to exit. */
  embedded: { seconds: number; eventsPerSecond: number }
  /** Sensor and sink started together; until the sink has committed everything. */
  kafka: { seconds: number; eventsPerSecond: number }
  /** `teiten ingest --kafka` alone, start to exit. */
  producer: { seconds: number; eventsPerSecond: number }
  /** A second sink (new group) over the full topic, start to caught up. */
  sinkOnly: { seconds: number; eventsPerSecond: number }
  /** Kafka message value bytes per event as published (header + zstd-compressed body). */
  messageBytesPerEvent: number
  /** Bytes per event in the broker's log segments (record batches), private broker only. */
  storedBytesPerEvent: number | null
  messages: number
  /** kafka.eventsPerSecond / embedded.eventsPerSecond. */
  ratio: number
  /**
   * CPU seconds (user + sys): the embedded ingest; sensor + sink of the end-to-end run, and the
   * broker JVM meanwhile (private broker only); the sink alone. On one shared machine the total
   * per event is what bounds the end-to-end rate.
   */
  cpu: {
    embedded: number
    sensorAndSink: number
    broker: number | null
    sinkOnly: number
    /** The broker during the warm-up pass (a fresh JVM compiling), before the timed runs. */
    brokerWarmUp: number | null
  }
}

/** utime + stime (own) and cutime + cstime (waited-for children) of a process, in seconds. */
function procCpu(pid: number | 'self'): { own: number; children: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Clock ticks: 100 per second on Linux.
    return { own: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 }
  } catch {
    return null
  }
}
/** CPU of this process's finished (reaped) children: the teiten processes of a phase. */
const childrenCpu = () => procCpu('self')?.children ?? 0

interface Proc {
  done: Promise<{ code: number | null; stderr: string }>
  kill(signal?: NodeJS.Signals): void
  /** What it has written to stderr so far (its warnings: --log-level warn). */
  stderr(): string
}

/**
 * A sink that stores nothing for this long is stuck, not slow: it retries a failing insert
 * forever (a full disk: "ENOSPC", "Cannot reserve 18.25 MiB, not enough space"), and the bench
 * would wait for it forever without a word.
 */
const SINK_STALL_MS = 180_000

function teiten(root: string, args: string[]): Proc {
  const child = spawn(process.execPath, [join(root, 'bin', 'teiten.js'), ...args, '--log-level', 'warn'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, TEITEN_KAFKA_BROKERS: '' },
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  const done = new Promise<{ code: number | null; stderr: string }>((res) => {
    child.on('close', (code) => res({ code, stderr }))
  })
  return { done, kill: (signal = 'SIGTERM') => child.kill(signal), stderr: () => stderr }
}

async function must(p: Proc, what: string): Promise<void> {
  const r = await p.done
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.slice(-2000)}`)
}

export async function benchKafka(opts: KafkaBenchOptions = {}): Promise<KafkaBenchFigures> {
  const root = repoRoot()
  const log = opts.log ?? (() => {})
  const work = opts.workDir ?? join(tmpdir(), `teiten-bench-kafka-${process.pid}`)
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  let stopBroker = async () => {}
  let brokerDataDir: string | null = null
  let brokerPid: number | null = null
  try {
    let brokers = opts.brokers
    if (!brokers) {
      const { startBroker, brokerStatus } = (await import(
        pathToFileURL(join(root, 'scripts', 'kafka-broker.mjs')).href
      )) as typeof BrokerModule
      const port = await freePort()
      let controllerPort = await freePort()
      while (controllerPort === port) controllerPort = await freePort()
      const b = await startBroker({ dir: join(work, 'kafka'), port, controllerPort })
      brokers = b.brokers
      brokerDataDir = join(b.dir, 'data')
      brokerPid = brokerStatus(b.dir)?.pid ?? null
      stopBroker = () => b.stop()
      log(`private broker on ${brokers.join(',')}`)
    }
    let paths = opts.paths
    if (!paths) {
      const corpus = join(work, 'corpus')
      await generateCorpus({
        outDir: corpus,
        preset: 'bench',
        packets: opts.packets ?? 2_000_000,
        countryOf: openCountryLookup(),
        truthFile: null,
      })
      paths = [corpus]
    }

    settleWrites()
    warmInputs(paths)
    const c0 = childrenCpu()
    const t0 = performance.now()
    await must(teiten(root, ['ingest', ...paths, '--data', join(work, 'embedded'), '--no-progress']), 'embedded ingest')
    const embeddedS = (performance.now() - t0) / 1000
    const embeddedCpu = childrenCpu() - c0
    log(`embedded: ${embeddedS.toFixed(2)} s`)

    const topic = `bench-${Date.now().toString(36)}`
    const transport = kafkajsTransport({ brokers, clientId: 'teiten-bench', logger: silentLogger })
    const admin = transport.admin()
    await admin.connect()
    try {
      await admin.ensureTopic(topic, 8)
      /** Resolves when `group` has committed up to the high watermark of every partition. */
      const caughtUp = async (group: string, after: Promise<unknown>, sink: Proc) => {
        await after
        let progress = ''
        let progressAt = performance.now()
        while (true) {
          const [ends, committed] = await Promise.all([admin.topicOffsets(topic), admin.groupOffsets(group, topic)])
          if (ends.every((e) => e.high === 0 || (committed.get(e.partition) ?? -1) >= e.high)) return performance.now()
          const now = JSON.stringify([...committed.entries()])
          if (now !== progress) {
            progress = now
            progressAt = performance.now()
          } else if (performance.now() - progressAt > SINK_STALL_MS) {
            sink.kill('SIGTERM')
            throw new Error(
              `the sink (group ${group}) committed nothing for ${SINK_STALL_MS / 1000} s; its last warnings:\n${sink.stderr().slice(-2000)}`,
            )
          }
          await new Promise((r) => setTimeout(r, 50))
        }
      }
      const sinkArgs = (group: string, data: string) => [
        'sink',
        '--kafka',
        brokers.join(','),
        '--topic',
        topic,
        '--group',
        group,
        '--data',
        data,
        '--no-dead-letter',
      ]

      // A broker runs for weeks; this one has just started, and its JVM compiles the produce and
      // fetch paths during the first run through them (2-3 CPU s on this machine, more than the
      // broker's steady-state cost for the whole capture). One pass through a warm-up topic first.
      const wb0 = brokerPid ? procCpu(brokerPid)?.own : undefined
      const warmTopic = `${topic}-warmup`
      await admin.ensureTopic(warmTopic, 8)
      await must(
        teiten(root, [
          'ingest',
          ...paths,
          '--kafka',
          brokers.join(','),
          '--topic',
          warmTopic,
          '--data',
          join(work, 'warmup'),
          '--no-progress',
        ]),
        'warm-up ingest',
      )
      await topicBytes(transport, warmTopic)
      const wb1 = brokerPid ? procCpu(brokerPid)?.own : undefined
      const warmUpBrokerCpu = wb0 !== undefined && wb1 !== undefined ? wb1 - wb0 : null
      log(`broker warm-up: ${warmUpBrokerCpu?.toFixed(1) ?? '-'} CPU s`)

      // Sensor and sink together, as in production.
      settleWrites()
      warmInputs(paths)
      const kc0 = childrenCpu()
      const kb0 = brokerPid ? procCpu(brokerPid)?.own : undefined
      const k0 = performance.now()
      const producer = teiten(root, [
        'ingest',
        ...paths,
        '--kafka',
        brokers.join(','),
        '--topic',
        topic,
        '--data',
        join(work, 'sensor'),
        '--no-progress',
      ])
      const sink = teiten(root, sinkArgs('bench-e2e', join(work, 'sink-e2e')))
      let producerS = 0
      const producerDone = must(producer, 'kafka ingest').then(() => {
        producerS = (performance.now() - k0) / 1000
      })
      const kEnd = await caughtUp('bench-e2e', producerDone, sink)
      const kb1 = brokerPid ? procCpu(brokerPid)?.own : undefined
      sink.kill('SIGTERM')
      await must(sink, 'sink')
      const kafkaCpu = childrenCpu() - kc0
      const brokerCpu = kb0 !== undefined && kb1 !== undefined ? kb1 - kb0 : null
      const kafkaS = (kEnd - k0) / 1000
      log(`kafka end to end: ${kafkaS.toFixed(2)} s (producer ${producerS.toFixed(2)} s)`)

      // The sink alone over a full topic.
      settleWrites()
      const sc0 = childrenCpu()
      const s0 = performance.now()
      const sink2 = teiten(root, sinkArgs('bench-sink-only', join(work, 'sink-only')))
      const sEnd = await caughtUp('bench-sink-only', new Promise((r) => setTimeout(r, 200)), sink2)
      sink2.kill('SIGTERM')
      await must(sink2, 'sink (alone)')
      const sinkCpu = childrenCpu() - sc0
      const sinkS = (sEnd - s0) / 1000
      log(`sink alone: ${sinkS.toFixed(2)} s`)

      // Message bytes: read the topic once.
      const count = await topicBytes(transport, topic)
      let stored: number | null = null
      if (brokerDataDir) {
        stored = 0
        for (const d of readdirSync(brokerDataDir).filter(
          (n) => n.startsWith(`${topic}-`) && !n.startsWith(warmTopic),
        )) {
          for (const f of readdirSync(join(brokerDataDir, d)).filter((n) => n.endsWith('.log')))
            stored += statSync(join(brokerDataDir, d, f)).size
        }
      }
      const events = count.rows
      const rate = (s: number) => events / s
      return {
        events,
        embedded: { seconds: embeddedS, eventsPerSecond: rate(embeddedS) },
        kafka: { seconds: kafkaS, eventsPerSecond: rate(kafkaS) },
        producer: { seconds: producerS, eventsPerSecond: rate(producerS) },
        sinkOnly: { seconds: sinkS, eventsPerSecond: rate(sinkS) },
        messageBytesPerEvent: count.bytes / events,
        storedBytesPerEvent: stored === null ? null : stored / events,
        messages: count.messages,
        ratio: embeddedS / kafkaS,
        cpu: {
          embedded: embeddedCpu,
          sensorAndSink: kafkaCpu,
          broker: brokerCpu,
          sinkOnly: sinkCpu,
          brokerWarmUp: warmUpBrokerCpu,
        },
      }
    } finally {
      await admin.disconnect()
    }
  } finally {
    await stopBroker()
    if (!opts.workDir) rmSync(work, { recursive: true, force: true })
  }
}

function freePort(): Promise<number> {
  return new Promise<number>((res, rej) => {
    const srv = createServer()
    srv.once('error', rej)
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address()
      const port = typeof a === 'object' && a ? a.port : 0
      srv.close(() => res(port))
    })
  })
}

/** Reads the whole topic once: events messages, their rows and value bytes. */
async function topicBytes(transport: ReturnType<typeof kafkajsTransport>, topic: string) {
  const admin = transport.admin()
  await admin.connect()
  const ends = await admin.topicOffsets(topic)
  await admin.disconnect()
  const total = ends.reduce((n, e) => n + e.high - e.low, 0)
  const consumer = transport.consumer({
    groupId: `bench-read-${Date.now().toString(36)}`,
    maxBytes: 16 << 20,
    maxBytesPerPartition: 4 << 20,
  })
  const out = { messages: 0, rows: 0, bytes: 0 }
  let seen = 0
  await consumer.connect()
  await consumer.subscribe(topic, true)
  await new Promise<void>((res) => {
    void consumer.run(async (batch, control) => {
      for (const m of batch.messages) {
        seen++
        control.resolveOffset(m.offset)
        const d = decodeMessage(m.value)
        if (d.kind === 'events') {
          out.messages++
          out.rows += d.rows
          out.bytes += m.value?.length ?? 0
        }
      }
      if (seen >= total) res()
    })
  })
  await consumer.disconnect()
  return out
}

export function formatKafkaFigures(f: KafkaBenchFigures): string {
  const r = (x: { seconds: number; eventsPerSecond: number }) =>
    `${Math.round(x.eventsPerSecond).toLocaleString('en-US').padStart(10)} events/s (${x.seconds.toFixed(2)} s)`
  return [
    `events                  ${f.events.toLocaleString('en-US')} in ${f.messages} messages`,
    `embedded ingest         ${r(f.embedded)}`,
    `kafka, end to end       ${r(f.kafka)}   = ${(f.ratio * 100).toFixed(0)}% of embedded`,
    `  sensor (ingest)       ${r(f.producer)}`,
    `  sink alone            ${r(f.sinkOnly)}`,
    `CPU s (user+sys)        embedded ${f.cpu.embedded.toFixed(1)}; kafka sensor+sink ${f.cpu.sensorAndSink.toFixed(1)} + broker ${f.cpu.broker === null ? '-' : f.cpu.broker.toFixed(1)}; sink alone ${f.cpu.sinkOnly.toFixed(1)}; broker warm-up pass ${f.cpu.brokerWarmUp === null ? '-' : f.cpu.brokerWarmUp.toFixed(1)}`,
    `CPU us/event            embedded ${((f.cpu.embedded / f.events) * 1e6).toFixed(2)}; kafka ${(((f.cpu.sensorAndSink + (f.cpu.broker ?? 0)) / f.events) * 1e6).toFixed(2)} (with broker)`,
    `message bytes/event     ${f.messageBytesPerEvent.toFixed(1)} (value), ${f.storedBytesPerEvent === null ? '-' : f.storedBytesPerEvent.toFixed(1)} (broker log)`,
  ].join('\n')
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv.slice(2),
    options: {
      'codec-only': { type: 'boolean' },
      packets: { type: 'string' },
      brokers: { type: 'string' },
      events: { type: 'string' },
    },
  })
  const log = (m: string) => process.stderr.write(`${m}\n`)
  const codec = await benchCodec({ events: values.events ? Number(values.events) : undefined, log })
  process.stdout.write(`${formatCodecFigures(codec)}\n`)
  if (values['codec-only']) return
  const figures = await benchKafka({
    brokers: values.brokers?.split(','),
    packets: values.packets ? Number(values.packets) : undefined,
    log,
  })
  process.stdout.write(`${formatKafkaFigures(figures)}\n${JSON.stringify(figures)}\n`)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench/kafka: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
