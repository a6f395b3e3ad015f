import type { Command } from 'commander'
import { NTP_CLASSES } from '../../core/event.js'
import { TeitenError } from '../../core/errors.js'
import type { Logger } from '../../core/logger.js'
import type { Metrics, MetricsServer } from '../../core/metrics.js'
import { type CaptureFile, expandPaths } from '../../pipeline/files.js'
import { CONTENT_BUDGET_BYTES, FileIdentities, IDENTITY_GZIP_LIMITS } from '../../pipeline/identity.js'
import { type Enricher, IDENTITY_LOOKAHEAD, type IngestSummary, ingestFiles } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
import { ROLLUP_REFRESH_INTERVAL_MS, startRollupRefresher } from '../../store/rollup.js'
import { checkSpool, defaultStatePath, SpoolWatcher } from '../../pipeline/watch.js'
import { StoreSink } from '../../store/ledger.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { openEnricher } from '../enricher.js'
import { createProgress } from '../progress.js'

export function formatSummary(s: IngestSummary): string {
  const lines = [
    `files        ${s.files} (${s.filesIngested} ingested, ${s.filesSkipped} already ingested, ${s.filesFailed} failed)`,
    `records read ${s.records}`,
    `UDP/123 kept ${s.kept}`,
    ...NTP_CLASSES.map((c) => `  ${c.padEnd(14)} ${s.byClass[c]}`),
    `countries    ${s.countries}`,
    `time range   ${s.firstTs ? `${s.firstTs}Z .. ${s.lastTs}Z` : '-'}`,
  ]
  return `${lines.join('\n')}\n`
}

/** The settings `ingest` takes as flags (core/config.ts CONFIG_KEYS). */
const INGEST_SETTINGS = [
  'geoip',
  'sensor',
  'kafka.brokers',
  'kafka.topic',
  'kafka.clientId',
  'retentionDays',
  'metricsPort',
  'watch.settleMs',
  'watch.pollIntervalMs',
]

export function registerIngest(program: Command): void {
  const cmd = program
    .command('ingest')
    .description('read captures (files or directories), classify UDP/123 packets and store them')
    .argument('[paths...]', 'capture files or directories (searched recursively)')
    .option('--watch <dir>', 'follow a spool (one folder per sensor) until SIGTERM or SIGINT, instead of paths')
    .option('--settle-ms <n>', 'with --watch: a file unchanged this long is complete without a newer one (30000)')
    .option(
      '--poll-interval-ms <n>',
      'with --watch: how often the spool is scanned (1000; env TEITEN_POLL_INTERVAL_MS)',
    )
    .option('--metrics-port <n>', 'with --watch: Prometheus metrics on http://127.0.0.1:N/metrics (0: any free port)')
    .option('--retention-days <n>', 'raw events expire after N days (0: never); the daily aggregates keep everything')
    .option('--geoip <mmdb>', 'MaxMind GeoIP2/GeoLite2 Country or City database (env TEITEN_GEOIP)')
    .option('--sensor <id>', 'sensor id (default: the name of the directory holding each file)')
    .option('--kafka <brokers>', 'publish to Kafka instead of storing (host:port[,host:port])')
    .option('--topic <topic>', 'Kafka topic (default teiten.ntp.events)')
    .option('--kafka-client-id <id>', 'Kafka client id (default teiten; env TEITEN_KAFKA_CLIENT_ID)')
    .option('--no-progress', 'no progress bar')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (paths: string[], opts: Record<string, unknown>) => {
    const spool = opts.watch as string | undefined
    if (spool !== undefined && paths.length > 0)
      throw new TeitenError('USAGE', 'give capture paths or --watch DIR, not both')
    if (spool === undefined && paths.length === 0)
      throw new TeitenError('USAGE', 'missing capture paths (or --watch DIR)')
    const ctx = contextFrom(opts, {}, INGEST_SETTINGS)
    let files: CaptureFile[] = []
    if (spool !== undefined) await checkSpool(spool)
    else {
      files = await expandPaths(paths, ctx.config.sensor)
      if (files.length === 0) throw new TeitenError('USAGE', `no files found under ${paths.join(' ')}`)
    }
    // Hashing the captures (their identities) needs neither GeoIP nor the store: it starts now,
    // in the scheme of stores this command makes (schema v17; Kafka sensors keep SHA-256);
    // ingestFiles begins again in SHA-256 for a store that names files so (IdentityScheme in
    // pipeline/identity-core.ts).
    const identities =
      files.length > 0
        ? new FileIdentities(
            files.map((f) => f.path),
            IDENTITY_LOOKAHEAD,
            IDENTITY_GZIP_LIMITS,
            CONTENT_BUDGET_BYTES,
            ctx.config.kafka.brokers?.length ? 'sha256' : 'xxh128',
          )
        : undefined
    identities?.startEarly()
    const opened = await openEnricher(ctx.config.geoip, ctx.logger)
    const enricher: Enricher = { enrich: opened.enrich, cacheStats: () => opened.geoip.cacheStats() }
    // Only a long-running watch serves metrics; a one-shot run reports its summary instead.
    const metrics =
      spool !== undefined
        ? (await import('../../core/metrics.js')).createMetrics({ version: program.version() ?? 'unknown' })
        : undefined
    let sink: EventSink
    let closeStore = async () => {}
    let nudgeRollup: (() => void) | undefined
    if (ctx.config.kafka.brokers?.length) {
      const { createKafkaSink } = await import('../../stream/producer.js')
      sink = await createKafkaSink({ config: ctx.config, logger: ctx.logger, metrics })
    } else {
      const store = await openStoreFor(ctx, 'teiten ingest', { newStoreIdentity: 'xxh128' })
      sink = new StoreSink(store)
      // The rollups (store/rollup.ts) catch up with what this run stored: periodically while a spool is
      // watched, and once at the end (also after an interrupted run: it is derived data).
      const rollup = startRollupRefresher(store, {
        intervalMs: spool !== undefined ? ROLLUP_REFRESH_INTERVAL_MS : undefined,
        logger: ctx.logger,
      })
      nudgeRollup = rollup.nudge
      closeStore = async () => {
        await rollup.stop()
        await store.close()
      }
    }
    if (spool !== undefined && metrics) {
      await watchSpool(spool, {
        sink,
        metrics,
        sinkKind: ctx.config.kafka.brokers?.length ? 'kafka' : 'store',
        enricher,
        logger: ctx.logger,
        config: ctx.config,
        close: async () => {
          await sink.close()
          await closeStore()
        },
      })
      return
    }
    const progress = opts.progress !== false ? createProgress(files) : undefined
    const controller = new AbortController()
    const onSignal = () => controller.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    let summary: IngestSummary
    try {
      summary = await ingestFiles(files, {
        sink,
        enricher,
        logger: ctx.logger,
        identities,
        signal: controller.signal,
        onProgress: progress?.update,
        onAllRead: nudgeRollup,
        onFileDone: (outcome) => {
          progress?.fileDone(outcome)
          if (outcome.error) process.stderr.write(`teiten: ${outcome.error.toLine()}\n`)
        },
      })
    } finally {
      identities?.close()
      progress?.stop()
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await sink.close()
      await closeStore()
    }
    process.stdout.write(formatSummary(summary))
    if (controller.signal.aborted) process.exitCode = 130
    else if (summary.filesFailed > 0) process.exitCode = 1
  })
}

/**
 * `ingest --watch`: runs until a signal. The first SIGTERM/SIGINT finishes the file in hand; a
 * second one stops at the next chunk boundary (that file is read again on the next start).
 * Either way the exit code is 0: what was stored is complete and the next run resumes.
 */
async function watchSpool(
  root: string,
  o: {
    sink: EventSink
    sinkKind: 'store' | 'kafka'
    enricher: Enricher
    logger: Logger
    config: ReturnType<typeof contextFrom>['config']
    metrics: Metrics
    close: () => Promise<void>
  },
): Promise<void> {
  const { metrics } = o
  const stop = new AbortController()
  const abort = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      o.logger.info({ signal }, 'stopping after the file in hand (signal again to stop at once)')
      stop.abort()
    } else if (!abort.signal.aborted) {
      o.logger.warn({ signal }, 'stopping now: the file in hand is read again on the next start')
      abort.abort()
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const { instrumentSink, startMetricsServer } = await import('../../core/metrics.js')
  let server: MetricsServer | undefined
  try {
    if (o.config.metricsPort !== undefined) {
      server = await startMetricsServer(metrics, { port: o.config.metricsPort, logger: o.logger })
    }
    const watcher = new SpoolWatcher({
      root,
      sink: instrumentSink(o.sink, metrics, o.sinkKind),
      enricher: o.enricher,
      logger: o.logger,
      settleMs: o.config.watch.settleMs,
      pollIntervalMs: o.config.watch.pollIntervalMs,
      sensor: o.config.sensor,
      statePath: defaultStatePath(o.config.dataDir, root),
      metrics,
      stop: stop.signal,
      abort: abort.signal,
    })
    await watcher.run()
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await server?.close()
    await o.close()
  }
}
