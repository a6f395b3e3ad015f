/**
 * Prometheus metrics shared by every long-running teiten process (ingest --watch, serve, the
 * Kafka sink). One `Metrics` object per process, created by the CLI and handed to core modules
 * as an argument (tests create their own: the registry is never the prom-client global one).
 *
 * Labels are bounded by construction: reasons, outcomes and sink kinds are fixed enums, Kafka
 * partitions are few. File names, sensors' addresses and source addresses are never labels: a
 * label value per file would grow the registry (and every scrape) without bound over months.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { EventSink } from '../pipeline/sink.js'
import { TeitenError } from './errors.js'
import type { Logger } from './logger.js'

export type SinkKind = 'store' | 'kafka'
export type FileOutcomeLabel = 'ingested' | 'skipped' | 'failed'
/** Why the spool watcher reported a file instead of (or after) ingesting it. */
export type WatchReportReason =
  | 'renamed'
  | 'deleted'
  | 'unreadable'
  | 'changed_while_reading'
  | 'grew_after_ingest'
  | 'capture_error'

export const WATCH_REPORT_REASONS: readonly WatchReportReason[] = [
  'renamed',
  'deleted',
  'unreadable',
  'changed_while_reading',
  'grew_after_ingest',
  'capture_error',
]

export interface Metrics {
  readonly registry: Registry
  /** Packet records read from captures (every link-layer record, kept or not). */
  readonly packetsRead: Counter<never>
  /** UDP datagrams from or to port 123, enriched and sent to the sink. */
  readonly packetsKept: Counter<never>
  /** Records not kept, by decoder status name (ingest/decode-status.ts DECODE_STATUS_NAMES). */
  readonly packetsDropped: Counter<'reason'>
  /** Capture files by outcome: ingested, skipped (already in the ledger), failed. */
  readonly files: Counter<'outcome'>
  /** Bytes of capture files read (on-disk size, compressed for gzip). */
  readonly captureBytes: Counter<never>
  /** Time to store one batch, per sink. Set by instrumentSink. */
  readonly batchSeconds: Histogram<'sink'>
  /** Rows handed to the sink and acknowledged, per sink. */
  readonly sinkRows: Counter<'sink'>
  /** Batches acknowledged / failed, per sink. */
  readonly sinkBatches: Counter<'sink' | 'result'>
  /** GeoIP address cache lookups: hit or miss. */
  readonly geoipCacheLookups: Counter<'result'>
  /** Kafka consumer lag (messages behind the high watermark), per topic and partition. */
  readonly kafkaLag: Gauge<'topic' | 'partition'>
  /** Messages produced to / consumed from Kafka. */
  readonly kafkaMessages: Counter<'direction'>
  /** Files the spool watcher reported and skipped, by reason. */
  readonly watchReported: Counter<'reason'>
  /** `teiten serve`: requests by route pattern (never the raw URL) and status class. */
  readonly httpRequests: Counter<'route' | 'status'>
  readonly httpSeconds: Histogram<'route'>
  /** Complete files waiting to be ingested after the last scan. */
  readonly watchPending: Gauge<never>
  /** Files seen but not yet complete (still growing, or newest in their folder and not settled). */
  readonly watchGrowing: Gauge<never>
  /** Unix time of the last spool scan; alert when it stops moving. */
  readonly watchLastScan: Gauge<never>
  /** Unix time a file was last ingested; alert when no new data arrived for hours. */
  readonly lastFileIngested: Gauge<never>
}

/** Seconds; an embedded insert of 65,536 rows takes tens of milliseconds, a slow server seconds. */
const BATCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export interface CreateMetricsOptions {
  /** Process CPU, memory, file descriptors and event-loop lag (prefixed teiten_). Default true. */
  defaultMetrics?: boolean
  /** Reported as teiten_build_info{version}. */
  version?: string
}

export function createMetrics(options: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'teiten_' })
  const registers = [registry]
  new Gauge({
    name: 'teiten_build_info',
    help: 'teiten version (value is always 1)',
    labelNames: ['version'],
    registers,
  }).set({ version: options.version ?? 'unknown' }, 1)

  const geoipCacheLookups = new Counter({
    name: 'teiten_geoip_cache_lookups_total',
    help: 'GeoIP address cache lookups by result (hit|miss)',
    labelNames: ['result'] as const,
    registers,
  })
  const metrics: Metrics = {
    registry,
    packetsRead: new Counter({
      name: 'teiten_packets_read_total',
      help: 'packet records read from captures',
      registers,
    }),
    packetsKept: new Counter({
      name: 'teiten_packets_kept_total',
      help: 'UDP datagrams from or to port 123 kept and sent to the sink',
      registers,
    }),
    packetsDropped: new Counter({
      name: 'teiten_packets_dropped_total',
      help: 'packet records not kept, by decoder reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    files: new Counter({
      name: 'teiten_files_total',
      help: 'capture files by outcome (ingested|skipped|failed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    captureBytes: new Counter({ name: 'teiten_capture_bytes_total', help: 'bytes of capture files read', registers }),
    batchSeconds: new Histogram({
      name: 'teiten_batch_insert_seconds',
      help: 'time to store one batch of events, per sink (store|kafka)',
      labelNames: ['sink'] as const,
      buckets: BATCH_BUCKETS,
      registers,
    }),
    sinkRows: new Counter({
      name: 'teiten_sink_rows_total',
      help: 'event rows acknowledged by the sink (store|kafka)',
      labelNames: ['sink'] as const,
      registers,
    }),
    sinkBatches: new Counter({
      name: 'teiten_sink_batches_total',
      help: 'batches sent to the sink, by result (ok|error)',
      labelNames: ['sink', 'result'] as const,
      registers,
    }),
    geoipCacheLookups,
    kafkaLag: new Gauge({
      name: 'teiten_kafka_consumer_lag',
      help: 'messages behind the high watermark, per topic and partition',
      labelNames: ['topic', 'partition'] as const,
      registers,
    }),
    kafkaMessages: new Counter({
      name: 'teiten_kafka_messages_total',
      help: 'Kafka messages by direction (produced|consumed)',
      labelNames: ['direction'] as const,
      registers,
    }),
    watchReported: new Counter({
      name: 'teiten_watch_files_reported_total',
      help: 'spool files reported and skipped, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    httpRequests: new Counter({
      name: 'teiten_http_requests_total',
      help: 'dashboard/API requests by route pattern and status class (2xx|3xx|4xx|5xx)',
      labelNames: ['route', 'status'] as const,
      registers,
    }),
    httpSeconds: new Histogram({
      name: 'teiten_http_request_seconds',
      help: 'dashboard/API response time by route pattern',
      labelNames: ['route'] as const,
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers,
    }),
    watchPending: new Gauge({ name: 'teiten_watch_files_pending', help: 'complete files not yet ingested', registers }),
    watchGrowing: new Gauge({
      name: 'teiten_watch_files_incomplete',
      help: 'spool files still being written or not yet settled',
      registers,
    }),
    watchLastScan: new Gauge({
      name: 'teiten_watch_last_scan_timestamp_seconds',
      help: 'unix time of the last spool scan',
      registers,
    }),
    lastFileIngested: new Gauge({
      name: 'teiten_last_file_ingested_timestamp_seconds',
      help: 'unix time a capture file was last ingested',
      registers,
    }),
  }
  // A ratio is what dashboards show; Prometheus could derive it, but a scrape of one process
  // (curl during an incident) should answer on its own.
  new Gauge({
    name: 'teiten_geoip_cache_hit_ratio',
    help: 'share of GeoIP lookups answered by the address cache since start',
    registers,
    async collect() {
      const values = (await geoipCacheLookups.get()).values
      let hits = 0
      let total = 0
      for (const v of values) {
        total += v.value
        if (v.labels.result === 'hit') hits += v.value
      }
      this.set(total > 0 ? hits / total : 0)
    },
  })
  // Series that exist from the first scrape, so rate() and absent() work before the first event.
  for (const outcome of ['ingested', 'skipped', 'failed'] satisfies FileOutcomeLabel[])
    metrics.files.inc({ outcome }, 0)
  for (const reason of WATCH_REPORT_REASONS) metrics.watchReported.inc({ reason }, 0)
  for (const result of ['hit', 'miss']) geoipCacheLookups.inc({ result }, 0)
  return metrics
}

/**
 * Wraps a sink so every batch is timed and counted; the other calls pass through. `now` is
 * injectable for tests (milliseconds).
 */
export function instrumentSink(
  sink: EventSink,
  metrics: Metrics,
  kind: SinkKind,
  now: () => number = () => performance.now(),
): EventSink {
  const timed = async (rows: number, write: () => Promise<void>) => {
    const t0 = now()
    try {
      await write()
    } catch (err) {
      metrics.sinkBatches.inc({ sink: kind, result: 'error' })
      throw err
    }
    metrics.batchSeconds.observe({ sink: kind }, (now() - t0) / 1000)
    metrics.sinkBatches.inc({ sink: kind, result: 'ok' })
    metrics.sinkRows.inc({ sink: kind }, rows)
  }
  const out: EventSink = {
    acceptsNative: sink.acceptsNative,
    identityScheme: () => sink.identityScheme(),
    batchRows: () => sink.batchRows(),
    lookupFile: (fileId) => sink.lookupFile(fileId),
    finishFile: (record) => sink.finishFile(record),
    close: () => sink.close(),
    writeBatch: (batch) => timed(batch.rows, () => sink.writeBatch(batch)),
  }
  // The optional capabilities pass through: without lookupFiles, ingestFiles cannot see (and
  // complete) a group insert that a crash interrupted (pipeline/ingest.ts).
  if (sink.lookupFiles) out.lookupFiles = (ids) => sink.lookupFiles!(ids)
  if (sink.groupMembers) out.groupMembers = (groups) => sink.groupMembers!(groups)
  if (sink.legacyPartial) out.legacyPartial = (ids) => sink.legacyPartial!(ids)
  if (sink.ledgerIds) out.ledgerIds = (limit) => sink.ledgerIds!(limit)
  if (sink.finishFiles) out.finishFiles = (records) => sink.finishFiles!(records)
  if (sink.writeGroup) out.writeGroup = (group) => timed(group.rows, () => sink.writeGroup!(group))
  return out
}

export interface MetricsServer {
  readonly host: string
  readonly port: number
  readonly url: string
  close(): Promise<void>
}

/**
 * Serves GET /metrics on loopback only: the counters say what a sensor sees, which is not for
 * the network at large; scrape through a local agent or a reverse proxy. Port 0 picks a free one.
 */
export async function startMetricsServer(
  metrics: Metrics,
  options: { port: number; host?: string; logger?: Logger },
): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1'
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n')
      return
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (err: unknown) => {
        options.logger?.warn({ err }, 'metrics collection failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n')
      },
    )
  })
  // A slow or stuck scraper must not hold a socket (and the process's exit) forever.
  server.requestTimeout = 10_000
  server.headersTimeout = 10_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'is in use' : `cannot be opened (${err.message})`
      reject(new TeitenError('BAD_PARAMETER', `metrics port ${options.port} on ${host} ${why}`, {}, { cause: err }))
    })
    server.listen(options.port, host, () => {
      server.removeAllListeners('error')
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const url = `http://${host}:${port}/metrics`
  options.logger?.info({ endpoint: url }, 'metrics served')
  return {
    host,
    port,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
