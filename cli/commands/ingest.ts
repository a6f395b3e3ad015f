import type { Command } from 'commander'
import { NTP_CLASSES } from '../../core/event.js'
import { TeitenError } from '../../core/errors.js'
import { expandPaths } from '../../pipeline/files.js'
import { type IngestSummary, ingestFiles } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
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

export function registerIngest(program: Command): void {
  const cmd = program
    .command('ingest')
    .description('read captures (files or directories), classify UDP/123 packets and store them')
    .argument('<paths...>', 'capture files or directories (searched recursively)')
    .option('--geoip <mmdb>', 'MaxMind GeoIP2/GeoLite2 Country or City database (env TEITEN_GEOIP)')
    .option('--sensor <id>', 'sensor id (default: the name of the directory holding each file)')
    .option('--kafka <brokers>', 'publish to Kafka instead of storing (host:port[,host:port])')
    .option('--topic <topic>', 'Kafka topic (default teiten.ntp.events)')
    .option('--no-progress', 'no progress bar')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (paths: string[], opts: Record<string, unknown>) => {
    const ctx = contextFrom(opts, {
      geoip: opts.geoip as string | undefined,
      sensor: opts.sensor as string | undefined,
      kafka: {
        brokers: typeof opts.kafka === 'string' ? opts.kafka.split(',').map((s) => s.trim()) : undefined,
        topic: opts.topic as string | undefined,
      },
    })
    const files = await expandPaths(paths, ctx.config.sensor)
    if (files.length === 0) throw new TeitenError('USAGE', `no files found under ${paths.join(' ')}`)
    const enricher = await openEnricher(ctx.config.geoip, ctx.logger)
    let sink: EventSink
    let closeStore = async () => {}
    if (ctx.config.kafka.brokers?.length) {
      const { createKafkaSink } = await import('../../stream/producer.js')
      sink = await createKafkaSink({ config: ctx.config, logger: ctx.logger })
    } else {
      const store = await openStoreFor(ctx, 'teiten ingest')
      sink = new StoreSink(store)
      closeStore = () => store.close()
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
        signal: controller.signal,
        onProgress: progress?.update,
        onFileDone: (outcome) => {
          progress?.fileDone(outcome)
          if (outcome.error) process.stderr.write(`teiten: ${outcome.error.toLine()}\n`)
        },
      })
    } finally {
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
