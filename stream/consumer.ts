/**
 * The storage worker (`teiten sink`): consumes the events topic into ClickHouse.
 *
 * Exactly-once in effect, from at-least-once delivery plus idempotent inserts:
 * - every events message is inserted with its deterministic token (file id, batch number,
 *   part: stream/codec.ts); ClickHouse drops a block whose token it has seen (materialized
 *   views included), so a message stored twice — redelivered after a crash, a rebalance, or
 *   published twice by a sensor — counts once;
 * - offsets are committed only after the messages before them are stored, so a crash loses
 *   nothing: it re-reads from the last commit and the tokens absorb the repeats.
 *
 * ClickHouse down: the message in hand is retried with capped exponential backoff and jitter,
 * forever while the worker runs; the consumer neither commits past it nor fetches further (the
 * kafkajs fetch loop waits for the handler), so memory stays at one fetch (maxBytes) while the
 * lag grows in Kafka. A message that cannot be decoded is parked: copied to the dead-letter
 * topic (or, without one, logged and counted), then committed past, so it cannot stall the
 * partition.
 */
import { Counter, Gauge } from 'prom-client'
import { isTeitenError, type TeitenError, wrapError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics } from '../core/metrics.js'
import { recordFile } from '../store/ledger.js'
import { EVENT_STRUCTURE } from '../store/schema.js'
import type { Store } from '../store/store.js'
import { decodeMessage, partToken } from './codec.js'
import type {
  BatchControl,
  ConsumerOptions,
  IncomingBatch,
  IncomingMessage,
  KafkaAdmin,
  KafkaProducer,
  KafkaTransport,
} from './kafka.js'
import { DEFAULT_PARTITIONS } from './producer.js'

export interface RetryPolicy {
  /** First delay (ms); doubled per attempt up to maxMs; each delay is drawn from [d/2, d]. */
  initialMs: number
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { initialMs: 250, maxMs: 30_000 }

/**
 * What one fetch may bring in: with ~1 MB messages gzip'd ~4x, 1 MiB per partition is ~4
 * messages (~35,000 events) in hand per partition, and 4 MiB per fetch bounds all partitions.
 */
export const DEFAULT_FETCH: Required<Pick<ConsumerOptions, 'maxBytes' | 'maxBytesPerPartition'>> = {
  maxBytes: 4 * 1024 * 1024,
  maxBytesPerPartition: 1024 * 1024,
}

export interface SinkWorkerOptions {
  transport: KafkaTransport
  store: Store
  topic: string
  group: string
  logger: Logger
  metrics?: Metrics
  /** Stop once every assigned partition has been caught up (lag 0) for this long. */
  exitWhenIdleMs?: number
  /** Stop gracefully: the message in hand is finished, stored offsets committed. */
  signal?: AbortSignal
  /** Where bad messages go; null: log, count and skip them. Default `<topic>.dlq`. */
  deadLetterTopic?: string | null
  retry?: RetryPolicy
  /** Progress log line period (ms). Default 10 s. */
  reportIntervalMs?: number
  /** How often lag is read from the broker (ms). Default 1 s, or exitWhenIdleMs / 4 if smaller. */
  lagIntervalMs?: number
  /** Commit at least this often within a long batch (ms). Default 1 s. */
  commitIntervalMs?: number
  consumer?: Partial<Omit<ConsumerOptions, 'groupId'>>
  /** Partitions if the sink has to create the topic. */
  partitions?: number
  now?: () => number
  random?: () => number
}

export interface SinkSummary {
  /** Events messages stored (a redelivered message counts again: the store deduplicates). */
  messages: number
  rows: number
  files: number
  parked: number
  storeRetries: number
  /** Most bytes of message values held at once by the batch in hand. */
  maxBufferedBytes: number
  stoppedBy: 'signal' | 'idle' | 'fatal'
}

interface SinkExtraMetrics {
  parked: Counter<'reason'>
  retries: Counter<never>
  buffered: Gauge<never>
}

const extraMetrics = new WeakMap<Metrics, SinkExtraMetrics>()

/** Sink-only series, registered once per Metrics (core/metrics.ts holds the shared ones). */
function sinkMetrics(metrics: Metrics): SinkExtraMetrics {
  let m = extraMetrics.get(metrics)
  if (!m) {
    const registers = [metrics.registry]
    m = {
      parked: new Counter({
        name: 'teiten_kafka_messages_parked_total',
        help: 'Kafka messages that could not be decoded, parked (dead-letter topic or skipped), by error code',
        labelNames: ['reason'] as const,
        registers,
      }),
      retries: new Counter({
        name: 'teiten_kafka_sink_store_retries_total',
        help: 'failed ClickHouse writes of the Kafka sink that were retried',
        registers,
      }),
      buffered: new Gauge({
        name: 'teiten_kafka_sink_buffered_bytes',
        help: 'bytes of consumed messages held by the Kafka sink and not yet stored',
        registers,
      }),
    }
    m.parked.inc({ reason: 'KAFKA_BAD_MESSAGE' }, 0)
    extraMetrics.set(metrics, m)
  }
  return m
}

class Stopped extends Error {}

export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number): number {
  const d = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt - 1, 30))
  return d / 2 + (random() * d) / 2
}

export async function runSink(options: SinkWorkerOptions): Promise<SinkSummary> {
  const { transport, store, topic, group, metrics } = options
  const log = options.logger.child({ component: 'kafka-sink', topic, group })
  const now = options.now ?? (() => performance.now())
  const random = options.random ?? Math.random
  const retry = options.retry ?? DEFAULT_RETRY
  const dlqTopic = options.deadLetterTopic === undefined ? `${topic}.dlq` : options.deadLetterTopic
  const commitIntervalMs = options.commitIntervalMs ?? 1000
  const reportIntervalMs = options.reportIntervalMs ?? 10_000
  const lagIntervalMs =
    options.lagIntervalMs ?? Math.max(50, Math.min(1000, options.exitWhenIdleMs ? options.exitWhenIdleMs / 4 : 1000))
  const extra = metrics ? sinkMetrics(metrics) : undefined

  const summary: SinkSummary = {
    messages: 0,
    rows: 0,
    files: 0,
    parked: 0,
    storeRetries: 0,
    maxBufferedBytes: 0,
    stoppedBy: 'signal',
  }
  let buffered = 0
  const stopping = new AbortController()

  const admin: KafkaAdmin = transport.admin()
  await admin.connect()
  let dlq: KafkaProducer | undefined
  try {
    if (await admin.ensureTopic(topic, options.partitions ?? DEFAULT_PARTITIONS)) log.info({}, 'topic created')
    if (dlqTopic) {
      await admin.ensureTopic(dlqTopic, 1)
      dlq = transport.producer()
      await dlq.connect()
    }
  } catch (err) {
    await admin.disconnect().catch(() => {})
    throw err
  }

  const consumer = transport.consumer({
    groupId: group,
    ...DEFAULT_FETCH,
    ...options.consumer,
  })

  /** Sleeps in slices, heartbeating so the group keeps this member; ends early on stop. */
  const pause = async (ms: number, control: BatchControl) => {
    const until = now() + ms
    while (true) {
      const left = until - now()
      if (left <= 0) return
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000))
        stopping.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t)
            resolve()
          },
          { once: true },
        )
      })
      if (stopping.signal.aborted || !control.isRunning() || control.isStale()) throw new Stopped()
      await control.heartbeat()
    }
  }

  /** Runs `work` until it succeeds; throws Stopped when the worker stops or loses the partition. */
  const untilDone = async (what: string, control: BatchControl, context: Record<string, unknown>, work: () => Promise<void>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await work()
        if (attempt > 1) log.info({ ...context, attempts: attempt }, `${what}: succeeded after retries`)
        return
      } catch (err) {
        if (stopping.signal.aborted || !control.isRunning() || control.isStale()) throw new Stopped()
        summary.storeRetries++
        extra?.retries.inc()
        metrics?.sinkBatches.inc({ sink: 'store', result: 'error' })
        const delayMs = Math.round(backoffDelay(attempt, retry, random))
        const e = isTeitenError(err) ? err : wrapError(err, 'STORE_INSERT_FAILED')
        log.warn({ ...context, attempt, delayMs, code: e.code, error: e.message }, `${what} failed: retrying`)
        await pause(delayMs, control)
      }
    }
  }

  const park = async (batch: IncomingBatch, m: IncomingMessage, err: TeitenError, control: BatchControl) => {
    summary.parked++
    extra?.parked.inc({ reason: err.code })
    const where = { partition: batch.partition, offset: m.offset, bytes: m.value?.length ?? 0 }
    log.error({ ...where, code: err.code, error: err.message, deadLetterTopic: dlqTopic }, 'bad message parked')
    if (!dlq || !dlqTopic) return
    const producer = dlq
    await untilDone('dead-letter publish', control, where, () =>
      producer.send(dlqTopic, [
        {
          key: m.key,
          value: m.value ?? Buffer.alloc(0),
          headers: {
            ...m.headers,
            'teiten-error': err.message.slice(0, 1000),
            'teiten-error-code': err.code,
            'teiten-source-topic': batch.topic,
            'teiten-source-partition': String(batch.partition),
            'teiten-source-offset': m.offset,
          },
        },
      ]),
    )
  }

  const handleMessage = async (batch: IncomingBatch, m: IncomingMessage, control: BatchControl) => {
    let decoded: ReturnType<typeof decodeMessage>
    try {
      decoded = decodeMessage(m.value)
    } catch (err) {
      await park(batch, m, isTeitenError(err) ? err : wrapError(err, 'KAFKA_BAD_MESSAGE'), control)
      return
    }
    const where = { partition: batch.partition, offset: m.offset }
    if (decoded.kind === 'file') {
      const record = decoded.record
      await untilDone('ledger write', control, { ...where, fileId: record.fileId }, () => recordFile(store, record))
      summary.files++
      return
    }
    const token = partToken(decoded.fileId, decoded.batchNo, decoded.part)
    const t0 = now()
    await untilDone('insert', control, { ...where, token }, () =>
      store.insertRowBinary('events', EVENT_STRUCTURE, decoded.body, token),
    )
    summary.messages++
    summary.rows += decoded.rows
    metrics?.batchSeconds.observe({ sink: 'store' }, (now() - t0) / 1000)
    metrics?.sinkBatches.inc({ sink: 'store', result: 'ok' })
    metrics?.sinkRows.inc({ sink: 'store' }, decoded.rows)
  }

  const handler = async (batch: IncomingBatch, control: BatchControl) => {
    const { partition } = batch
    let toCommit: string | undefined
    let lastCommit = now()
    const commit = async () => {
      if (toCommit === undefined) return
      const offset = toCommit
      toCommit = undefined
      lastCommit = now()
      try {
        await consumer.commit([{ topic: batch.topic, partition, offset }])
      } catch (err) {
        // Lost the partition or the broker: the next owner re-reads from the previous commit and
        // the tokens absorb the repeats.
        log.warn({ partition, offset, error: (err as Error).message }, 'offset commit failed')
      }
    }
    buffered = batch.messages.reduce((n, m) => n + (m.value?.length ?? 0), 0)
    summary.maxBufferedBytes = Math.max(summary.maxBufferedBytes, buffered)
    extra?.buffered.set(buffered)
    try {
      for (const m of batch.messages) {
        if (stopping.signal.aborted || !control.isRunning() || control.isStale()) break
        await handleMessage(batch, m, control)
        metrics?.kafkaMessages.inc({ direction: 'consumed' })
        control.resolveOffset(m.offset)
        toCommit = String(Number(m.offset) + 1)
        buffered -= m.value?.length ?? 0
        extra?.buffered.set(buffered)
        if (now() - lastCommit >= commitIntervalMs) await commit()
      }
    } catch (err) {
      if (!(err instanceof Stopped)) {
        await commit()
        throw err
      }
    } finally {
      buffered = 0
      extra?.buffered.set(0)
    }
    await commit()
  }

  // Lag and idleness, read from the broker: committed offsets against high watermarks of the
  // partitions this member owns.
  let assignment: Map<string, number[]> | null = null
  let lagTotal = -1
  let idleSince: number | undefined
  let fatal: Error | undefined
  let lagTimer: NodeJS.Timeout | undefined
  let reportTimer: NodeJS.Timeout | undefined
  const reported = new Set<number>()
  consumer.onAssignment((a) => {
    assignment = a
    idleSince = undefined
    if (a) log.info({ partitions: a.get(topic) ?? [] }, 'partitions assigned')
  })

  let resolveDone!: () => void
  const done = new Promise<void>((r) => {
    resolveDone = r
  })
  const stop = async (by: SinkSummary['stoppedBy']) => {
    if (stopping.signal.aborted) return
    summary.stoppedBy = by
    stopping.abort()
    clearTimeout(lagTimer)
    clearInterval(reportTimer)
    try {
      await consumer.disconnect()
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'consumer disconnect failed')
    }
    resolveDone()
  }
  consumer.onFatal((err) => {
    fatal = err
    log.error({ error: err.message }, 'consumer stopped for good')
    void stop('fatal')
  })

  const pollLag = async () => {
    if (stopping.signal.aborted) return
    try {
      const owned = assignment?.get(topic)
      if (assignment && owned) {
        const [ends, committed] = await Promise.all([admin.topicOffsets(topic), admin.groupOffsets(group, topic)])
        let total = 0
        const mine = new Set(owned)
        for (const e of ends) {
          if (!mine.has(e.partition)) continue
          const c = committed.get(e.partition) ?? -1
          const lag = Math.max(0, e.high - (c < 0 ? e.low : c))
          total += lag
          metrics?.kafkaLag.set({ topic, partition: String(e.partition) }, lag)
          reported.add(e.partition)
        }
        for (const p of reported) {
          if (!mine.has(p)) {
            metrics?.kafkaLag.remove({ topic, partition: String(p) })
            reported.delete(p)
          }
        }
        lagTotal = total
        if (total === 0 && buffered === 0) idleSince ??= now()
        else idleSince = undefined
      } else if (assignment) {
        // A member with no partition (more sinks than partitions) has nothing to catch up on.
        lagTotal = 0
        idleSince ??= now()
      } else idleSince = undefined
      if (options.exitWhenIdleMs !== undefined && idleSince !== undefined && now() - idleSince >= options.exitWhenIdleMs) {
        log.info({ idleMs: Math.round(now() - idleSince) }, 'caught up: exiting')
        void stop('idle')
        return
      }
    } catch (err) {
      log.debug({ error: (err as Error).message }, 'lag poll failed')
    }
    if (!stopping.signal.aborted) lagTimer = setTimeout(pollLag, lagIntervalMs)
  }

  let lastRows = 0
  let lastAt = now()
  const report = () => {
    const t = now()
    const rate = ((summary.rows - lastRows) * 1000) / Math.max(1, t - lastAt)
    lastRows = summary.rows
    lastAt = t
    log.info(
      {
        rowsPerSecond: Math.round(rate),
        rows: summary.rows,
        messages: summary.messages,
        files: summary.files,
        parked: summary.parked,
        lag: lagTotal,
        partitions: assignment?.get(topic) ?? [],
      },
      'sink progress',
    )
  }

  try {
    await consumer.connect()
    await consumer.subscribe(topic, true)
    await consumer.run(handler)
  } catch (err) {
    await consumer.disconnect().catch(() => {})
    await dlq?.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
    throw isTeitenError(err) ? err : wrapError(err, 'KAFKA_UNAVAILABLE')
  }
  log.info({ deadLetterTopic: dlqTopic, exitWhenIdleMs: options.exitWhenIdleMs }, 'consuming')
  const onAbort = () => void stop('signal')
  if (options.signal?.aborted) onAbort()
  else options.signal?.addEventListener('abort', onAbort, { once: true })
  lagTimer = setTimeout(pollLag, lagIntervalMs)
  reportTimer = setInterval(report, reportIntervalMs)
  reportTimer.unref()

  await done
  options.signal?.removeEventListener('abort', onAbort)
  report()
  await dlq?.disconnect().catch(() => {})
  await admin.disconnect().catch(() => {})
  if (fatal) throw wrapError(fatal, 'KAFKA_UNAVAILABLE')
  log.info({ ...summary }, 'sink stopped')
  return summary
}
