import type { Command } from 'commander'
import { TeitenError } from '../../core/errors.js'
import type { MetricsServer } from '../../core/metrics.js'
import { DEFAULT_SESSION_TIMEOUT_MS } from '../../core/defaults.js'
import { ROLLUP_REFRESH_INTERVAL_MS, startRollupRefresher } from '../../store/rollup.js'
import { addCommonOptions, addSettingFlags, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { identitySchemeOf } from '../../store/schema.js'

function wholeNumber(value: unknown, flag: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,15}$/.test(String(value)) || Number(value) > max) {
    throw new TeitenError(
      'USAGE',
      `${flag} must be a whole number${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ''}`,
    )
  }
  return Number(value)
}

/** Settings `sink` reads from flags it does not parse itself. */
const SINK_SETTINGS = ['kafka.clientId', 'retentionDays']

export function registerSink(program: Command): void {
  const cmd = program
    .command('sink')
    .description('storage worker: consume enriched events from Kafka into ClickHouse (exactly once in effect)')
    .option('--kafka <brokers>', 'Kafka brokers host:port[,host:port] (env TEITEN_KAFKA_BROKERS)')
    .option('--topic <topic>', 'events topic (default teiten.ntp.events; env TEITEN_KAFKA_TOPIC)')
    .option('--group <group>', 'consumer group shared by all sinks (default teiten-sink; env TEITEN_KAFKA_GROUP)')
    .option('--exit-when-idle <ms>', 'exit 0 once every assigned partition has been caught up for this long')
    .option('--dead-letter-topic <topic>', 'where undecodable messages are parked (default <topic>.dlq)')
    .option('--no-dead-letter', 'log and skip undecodable messages instead of parking them in a topic')
    .option('--metrics-port <n>', 'serve Prometheus metrics on 127.0.0.1:<n>/metrics (env TEITEN_METRICS_PORT)')
    .option('--report-interval <ms>', 'progress log line period', '10000')
    .option(
      '--session-timeout <ms>',
      'how long the group waits for a silent sink before giving its partitions to the others',
      String(DEFAULT_SESSION_TIMEOUT_MS),
    )
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  addSettingFlags(cmd, SINK_SETTINGS)
  cmd.action(async (opts: Record<string, unknown>) => {
    const exitWhenIdleMs = wholeNumber(opts.exitWhenIdle, '--exit-when-idle')
    const reportIntervalMs = wholeNumber(opts.reportInterval, '--report-interval')
    const sessionTimeout = wholeNumber(opts.sessionTimeout, '--session-timeout')
    const [{ parseBrokers, kafkajsTransport }, { runSink }, { createMetrics, startMetricsServer }] = await Promise.all([
      import('../../stream/kafka.js'),
      import('../../stream/consumer.js'),
      import('../../core/metrics.js'),
    ])
    const ctx = contextFrom(
      opts,
      {
        kafka: {
          brokers: typeof opts.kafka === 'string' ? parseBrokers(opts.kafka) : undefined,
          topic: opts.topic as string | undefined,
          group: opts.group as string | undefined,
        },
        metricsPort: wholeNumber(opts.metricsPort, '--metrics-port', 65535),
      },
      SINK_SETTINGS,
    )
    const { brokers, topic, group, clientId } = ctx.config.kafka
    if (!brokers?.length)
      throw new TeitenError('USAGE', 'teiten sink needs --kafka host:port (or TEITEN_KAFKA_BROKERS)')
    const deadLetterTopic =
      opts.deadLetter === false ? null : ((opts.deadLetterTopic as string | undefined) ?? `${topic}.dlq`)

    // Signals before the store is open must not leave a half-opened directory behind.
    const controller = new AbortController()
    const onSignal = () => controller.abort()
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const metrics = createMetrics({ version: process.env.npm_package_version })
    let server: MetricsServer | undefined
    try {
      if (ctx.config.metricsPort !== undefined) {
        server = await startMetricsServer(metrics, { port: ctx.config.metricsPort, logger: ctx.logger })
      }
      const store = await openStoreFor(ctx, 'teiten sink')
      if ((await identitySchemeOf(store)) === 'xxh128') {
        // The sensors' SHA-256 ids and the store's XXH3-128 ids never meet: a capture both
        // published and ingested directly would be two files to the ledger.
        ctx.logger.warn(
          { store: ctx.config.clickhouseUrl ? 'server' : ctx.config.dataDir },
          'this store was made by teiten ingest and names files by XXH3-128; Kafka sensors name them by SHA-256: do not also ingest directly the captures the sensors publish, or they count twice',
        )
      }
      const rollup = startRollupRefresher(store, { intervalMs: ROLLUP_REFRESH_INTERVAL_MS, logger: ctx.logger })
      try {
        if (controller.signal.aborted) return
        const summary = await runSink({
          transport: kafkajsTransport({ brokers, clientId: `${clientId}-sink`, logger: ctx.logger }),
          store,
          topic,
          group,
          logger: ctx.logger,
          metrics,
          exitWhenIdleMs,
          signal: controller.signal,
          deadLetterTopic,
          reportIntervalMs,
          consumer: {
            sessionTimeout,
            heartbeatInterval: Math.max(100, Math.floor((sessionTimeout ?? DEFAULT_SESSION_TIMEOUT_MS) / 5)),
          },
        })
        process.stderr.write(
          `teiten sink: stored ${summary.rows} events from ${summary.messages} messages, ${summary.files} file records` +
            `${summary.parked ? `, ${summary.parked} bad messages parked` : ''} (${summary.stoppedBy === 'idle' ? 'caught up' : 'stopped'})\n`,
        )
      } finally {
        await rollup.stop()
        await store.close()
      }
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await server?.close()
      // kafkajs can leave a socket or a timer behind after a broker restart; everything is
      // stored and committed by now, so the process must not linger (with main's exit code).
      setTimeout(() => process.exit(), 5000).unref()
    }
  })
}
