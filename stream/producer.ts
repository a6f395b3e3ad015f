/**
 * The sensor side of the Kafka path: an EventSink that publishes instead of storing.
 *
 * - writeBatch cuts the batch (a Native block) deterministically (stream/codec.ts) into
 *   messages under the broker's default 1 MB limit and publishes them in order, keyed by sensor: one sensor's
 *   files stay in one partition, in order, and the file record published by finishFile comes
 *   after the file's events, so a sink writes the ledger row only after the events are stored.
 * - Each message says which batch it belongs to (file id, batch number, part i of n): the sink
 *   stores a batch whole once all its parts are in, with the batch's dedup token, so a batch
 *   published twice (a producer retry, a re-run after a crash) is stored once.
 * - lookupFile/finishFile use the local ledger (stream/ledger.ts): a re-run does not
 *   republish files that were published completely.
 */
import type { Config } from '../core/config.js'
import { TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics } from '../core/metrics.js'
import { BATCH_ROWS, type EventBatch, type EventSink, type FileRecord } from '../pipeline/sink.js'
import { encodeBatchAsync, encodeFileMessage, MAX_PART_BODY_BYTES } from './codec.js'
import { type KafkaProducer, type KafkaTransport, kafkajsTransport } from './kafka.js'
import { LocalLedger } from './ledger.js'

/**
 * Most bytes of message values (plus RECORD_OVERHEAD_BYTES and the key each) in one produce
 * request. Under the broker's default limit on a record batch (message.max.bytes, 1,048,588),
 * with room for the batch header (61 bytes).
 */
export const MAX_REQUEST_BYTES = 1_000_000
/** A record's own bytes besides key and value: length, attributes, deltas, header count (varints). */
const RECORD_OVERHEAD_BYTES = 32

/** Partitions of a topic the sensor creates (the compose deployment creates its own: 8). */
export const DEFAULT_PARTITIONS = 8

export interface KafkaSinkOptions {
  config: Config
  logger: Logger
  /** The Kafka client; default kafkajs on config.kafka.brokers. */
  kafka?: KafkaTransport
  metrics?: Metrics
  /** Partitions when the topic has to be created. */
  partitions?: number
  /** Folder of the local ledger (default config.dataDir). */
  ledgerDir?: string
  /** Create the topic when missing (default true). */
  createTopic?: boolean
  clock?: () => Date
  /**
   * How long start-up (connect, topic creation) is retried before the sensor gives up with
   * KAFKA_UNAVAILABLE. Default 2 minutes, like the sink's.
   */
  startupTimeoutMs?: number
  random?: () => number
}

export interface KafkaSink extends EventSink {
  /** Messages and value bytes acknowledged by the broker so far. */
  readonly stats: { messages: number; bytes: number; rows: number }
}

export async function createKafkaSink(options: KafkaSinkOptions): Promise<KafkaSink> {
  const { config, logger, metrics } = options
  const topic = config.kafka.topic
  const brokers = config.kafka.brokers ?? []
  const log = logger.child({ component: 'kafka-producer', topic })
  const transport =
    options.kafka ??
    (() => {
      if (brokers.length === 0) throw new TeitenError('USAGE', 'no Kafka brokers given (--kafka host:port)')
      return kafkajsTransport({ brokers, clientId: config.kafka.clientId, logger })
    })()
  const ledger = LocalLedger.open(options.ledgerDir ?? config.dataDir, logger)
  const clock = options.clock ?? (() => new Date())

  // Start-up is retried like the sink's: a broker just started or restarted, or on a loaded
  // machine, can answer a topic creation late (kafkajs gives up waiting for the new partitions'
  // leaders after its timeout, though the topic exists), and a sensor started together with its
  // sink races it to create the topic. Giving up on the first such error made the sensor exit 1
  // before publishing anything.
  const startupDeadline = performance.now() + (options.startupTimeoutMs ?? 120_000)
  const random = options.random ?? Math.random
  const withStartupRetries = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        if (performance.now() > startupDeadline) throw err
        const d = Math.min(15_000, 1000 * 2 ** Math.min(attempt - 1, 10))
        const delayMs = Math.round(d / 2 + (random() * d) / 2)
        log.warn({ attempt, delayMs, error: (err as Error).message }, `${what} failed: retrying`)
        await new Promise((r) => setTimeout(r, delayMs))
      }
    }
  }
  if (options.createTopic !== false) {
    await withStartupRetries('creating the topic', async () => {
      const admin = transport.admin()
      try {
        await admin.connect()
        const created = await admin.ensureTopic(topic, options.partitions ?? DEFAULT_PARTITIONS)
        if (created) log.info({ partitions: options.partitions ?? DEFAULT_PARTITIONS }, 'topic created')
      } finally {
        await admin.disconnect().catch(() => {})
      }
    })
  }
  const producer: KafkaProducer = transport.producer()
  await withStartupRetries('connecting the producer', () => producer.connect())
  log.info({ brokers, ledger: ledger.path, filesInLedger: ledger.size }, 'publishing to Kafka')

  const stats = { messages: 0, bytes: 0, rows: 0 }
  // ingestFiles keeps two batches in flight; publishing them one after the other keeps every
  // file's messages in order in its partition.
  let tail: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn)
    tail = run.catch(() => {})
    return run
  }

  /** Settles once the last batch handed to writeBatch has begun to be sent (see writeBatch). */
  let sendingStarted: Promise<void> = Promise.resolve()

  const publish = async (key: string, messages: Array<{ value: Buffer; rows: number }>) => {
    // A request's messages for one partition form one record batch: the broker's size limit
    // (and MAX_REQUEST_BYTES) is on their sum.
    await producer.send(
      topic,
      messages.map((m) => ({ key, value: m.value })),
    )
    for (const m of messages) {
      stats.messages++
      stats.bytes += m.value.length
      stats.rows += m.rows
      metrics?.kafkaMessages.inc({ direction: 'produced' })
    }
  }

  return {
    stats,
    // Batches come as Native blocks (store/native-encoder.ts), cut into version 3 parts.
    acceptsNative: true,
    // Storage workers record the sensors' ids as they come: every sensor names files alike, in
    // the scheme every teiten before schema v17 used (pipeline/identity-core.ts).
    identityScheme: async () => 'sha256',
    // Every sensor cuts files alike, as every teiten before schema v18 did (pipeline/sink.ts).
    batchRows: async () => BATCH_ROWS,
    async lookupFile(fileId: string): Promise<FileRecord | undefined> {
      return ledger.lookup(topic, fileId)
    },
    writeBatch(batch: EventBatch): Promise<void> {
      // The batch is cut and its parts compressed (in the libuv pool) once the batch ahead has
      // begun to be sent: one batch compressed while another is sent, but not every batch an
      // early read held (pipeline/ingest.ts, ~12) cut at once when its file's id comes: that
      // burst took the sensor of the 20M-packet bench capture from 310 to 910 MiB peak RSS.
      const ahead = sendingStarted
      let startSending!: () => void
      sendingStarted = new Promise<void>((resolve) => {
        startSending = resolve
      })
      const prepared = ahead.then(() => {
        const parts = encodeBatchAsync(batch, MAX_PART_BODY_BYTES)
        for (const p of parts) p.catch(() => {}) // awaited below; not unhandled if a send fails first
        // A Native batch's parts are copies: the encoder may have its block back at once.
        if (batch.format === 'Native') batch.onBodyRead?.()
        return parts
      })
      prepared.catch(() => {}) // awaited below
      return serial(async () => {
        startSending()
        const parts = await prepared
        // Consecutive parts share a request while their values fit MAX_REQUEST_BYTES: ~5
        // compressed parts per round trip instead of one, same order.
        const overhead = RECORD_OVERHEAD_BYTES + Buffer.byteLength(batch.sensor)
        let pending: Array<{ value: Buffer; rows: number }> = []
        let bytes = 0
        for (const p of parts) {
          const m = await p
          if (pending.length > 0 && bytes + m.value.length + overhead > MAX_REQUEST_BYTES) {
            await publish(batch.sensor, pending)
            pending = []
            bytes = 0
          }
          pending.push(m)
          bytes += m.value.length + overhead
        }
        if (pending.length > 0) await publish(batch.sensor, pending)
      })
    },
    finishFile(record: FileRecord): Promise<void> {
      return serial(async () => {
        await publish(record.sensor, [{ value: encodeFileMessage(record), rows: 0 }])
        ledger.record(topic, record, clock())
      })
    },
    async close(): Promise<void> {
      await tail
      await producer.disconnect().catch((err) => log.warn({ err }, 'producer disconnect failed'))
    },
  }
}
