/**
 * The sensor side of the Kafka path: an EventSink that publishes instead of storing.
 *
 * - writeBatch splits the batch deterministically (stream/codec.ts) into messages under the
 *   broker's default 1 MB limit and publishes them in order, keyed by sensor: one sensor's
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
import type { EventBatch, EventSink, FileRecord } from '../pipeline/sink.js'
import { encodeBatch, encodeFileMessage, MAX_PART_BODY_BYTES } from './codec.js'
import { type KafkaProducer, type KafkaTransport, kafkajsTransport } from './kafka.js'
import { LocalLedger } from './ledger.js'

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

  if (options.createTopic !== false) {
    const admin = transport.admin()
    await admin.connect()
    try {
      const created = await admin.ensureTopic(topic, options.partitions ?? DEFAULT_PARTITIONS)
      if (created) log.info({ partitions: options.partitions ?? DEFAULT_PARTITIONS }, 'topic created')
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }
  const producer: KafkaProducer = transport.producer()
  await producer.connect()
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

  const publish = async (key: string, value: Buffer, rows: number) => {
    // One message per request: a request's messages for one partition form one record batch,
    // and the broker's size limit is on the record batch.
    await producer.send(topic, [{ key, value }])
    stats.messages++
    stats.bytes += value.length
    stats.rows += rows
    metrics?.kafkaMessages.inc({ direction: 'produced' })
  }

  return {
    stats,
    async lookupFile(fileId: string): Promise<FileRecord | undefined> {
      return ledger.lookup(topic, fileId)
    },
    writeBatch(batch: EventBatch): Promise<void> {
      return serial(async () => {
        for (const m of encodeBatch(batch, MAX_PART_BODY_BYTES)) await publish(batch.sensor, m.value, m.rows)
      })
    },
    finishFile(record: FileRecord): Promise<void> {
      return serial(async () => {
        await publish(record.sensor, encodeFileMessage(record), 0)
        ledger.record(topic, record, clock())
      })
    },
    async close(): Promise<void> {
      await tail
      await producer.disconnect().catch((err) => log.warn({ err }, 'producer disconnect failed'))
    },
  }
}
