/**
 * The small Kafka interface teiten's stream code is written against, and its one
 * implementation on kafkajs 2.2.4. kafkajs has been unmaintained since 2023: everything it is
 * asked to do is here, so replacing it (e.g. by a librdkafka binding) touches this file only.
 * Tests wrap a real transport to inject faults (a producer that sends twice, a slow store).
 */
import { promisify } from 'node:util'
import { gzip, unzip, constants as zlibConstants, zstdCompress, zstdDecompress } from 'node:zlib'
import type { Admin, Consumer, EachBatchPayload, Producer } from 'kafkajs'
// Before kafkajs: its record batches' CRC-32C in WebAssembly (see the module).
import './kafkajs-crc32c.js'
// kafkajs is CommonJS and not every export is visible to Node's named-import detection.
import kafkajs from 'kafkajs'
import { TeitenError, wrapError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'

const { CompressionCodecs, CompressionTypes, Kafka, logLevel, Partitioners } = kafkajs

export interface OutgoingMessage {
  /** Partitioning key: messages with one key stay in one partition, in order. */
  key: string | Buffer | null
  value: Buffer
  headers?: Record<string, string>
}

export interface KafkaProducer {
  connect(): Promise<void>
  /** Resolves once every in-sync replica has the messages (acks=all). Idempotent; one record batch per partition. */
  send(topic: string, messages: OutgoingMessage[]): Promise<void>
  disconnect(): Promise<void>
}

export interface PartitionOffsets {
  partition: number
  /** Log start offset. */
  low: number
  /** High watermark: the offset the next message will get. */
  high: number
}

export interface KafkaAdmin {
  connect(): Promise<void>
  /** Creates the topic when it does not exist; true when it was created. */
  ensureTopic(topic: string, partitions: number, config?: Record<string, string>): Promise<boolean>
  topicOffsets(topic: string): Promise<PartitionOffsets[]>
  /** Committed offset per partition of `topic` for `group` (-1: nothing committed). */
  groupOffsets(group: string, topic: string): Promise<Map<number, number>>
  disconnect(): Promise<void>
}

export interface IncomingMessage {
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string>
}

export interface IncomingBatch {
  topic: string
  partition: number
  highWatermark: string
  messages: IncomingMessage[]
}

/** What a batch handler may do while it works through a batch. */
export interface BatchControl {
  /** Marks a message done: the next fetch of this partition starts after it. */
  resolveOffset(offset: string): void
  /** Keeps the group membership alive during long work (throws when the group rebalances). */
  heartbeat(): Promise<void>
  /** False once the consumer is stopping: leave the batch, nothing more is resolved. */
  isRunning(): boolean
  /** True when the partition was reassigned or sought: the rest of the batch is not ours. */
  isStale(): boolean
  /**
   * Commits `offset` (the next one to read) for the batch's partition. Works while the consumer
   * is stopping too, so the last stored messages are committed before it leaves the group.
   */
  commit(offset: string): Promise<void>
}

export interface ConsumerOptions {
  groupId: string
  /** Bounds what one fetch brings into memory: the sink never holds more than this. */
  maxBytes?: number
  maxBytesPerPartition?: number
  maxWaitTimeInMs?: number
  sessionTimeout?: number
  heartbeatInterval?: number
}

export interface KafkaConsumer {
  connect(): Promise<void>
  subscribe(topic: string, fromBeginning: boolean): Promise<void>
  /** Starts consuming; batches of one partition are handled one at a time, in order. */
  run(handler: (batch: IncomingBatch, control: BatchControl) => Promise<void>): Promise<void>
  /** Commits outside a batch handler (only while the consumer runs). */
  commit(offsets: Array<{ topic: string; partition: number; offset: string }>): Promise<void>
  /** Partitions assigned after each join; null when a rebalance starts. */
  onAssignment(listener: (assignment: Map<string, number[]> | null) => void): void
  /** The consumer stopped for good (kafkajs gave up restarting it). */
  onFatal(listener: (err: Error) => void): void
  disconnect(): Promise<void>
}

export interface KafkaTransport {
  producer(): KafkaProducer
  consumer(options: ConsumerOptions): KafkaConsumer
  admin(): KafkaAdmin
}

export interface KafkaTransportOptions {
  brokers: string[]
  clientId: string
  logger: Logger
  /** kafkajs' own retries per request (exponential, 300 ms to 30 s). Default 10. */
  retries?: number
}

const gzipAsync = promisify(gzip)
const unzipAsync = promisify(unzip)
const zstdAsync = promisify(zstdCompress)
const unzstdAsync = promisify(zstdDecompress)
// Output chunks of 256 KiB / 1 MiB instead of zlib's 16 KiB: a record batch (~1 MB, ~200 KB
// compressed) comes out in one or two chunks, not 13-64 callbacks and a concatenation each.
const ZSTD_COMPRESS = { params: { [zlibConstants.ZSTD_c_compressionLevel]: 1 }, chunkSize: 256 * 1024 }
const ZSTD_DECOMPRESS = { chunkSize: 1024 * 1024 }
let codecInstalled = false

/**
 * Compression: teiten's events messages carry zstd bodies (stream/codec.ts, format version 2), so
 * the producer sends record batches uncompressed. Codecs are still installed for reading: record
 * batches written by older sensors (gzip level 1 inside kafkajs) and by other producers (zstd),
 * and for a producer that asks for them. Measured on 60 messages (511,892 events) of the bench
 * corpus, CPU per event, +-10% between runs:
 *
 *   codec    bytes/event  compress  decompress
 *   gzip -1         27.5    490-530     195-210 ns
 *   zstd 1          23.0    210-215     135-155 ns
 *   zstd 3          22.3    250-280     125-150 ns
 *
 * zstd 1 costs less than half of gzip on the sensor, less on the sink, and is 16% smaller: the
 * codec of version 2 bodies. kafkajs ships gzip only and keeps one codec table per process:
 * installed once. Output chunks sized to a record batch (~1 MB) instead of zlib's 16 KiB.
 */
function installCodecs(): void {
  if (codecInstalled) return
  codecInstalled = true
  const codecs = CompressionCodecs as Record<number, () => unknown>
  const gzipCodec = {
    compress: (encoder: { buffer: Buffer }) => gzipAsync(encoder.buffer, { level: 1 }),
    decompress: (buffer: Buffer) => unzipAsync(buffer),
  }
  const zstdCodec = {
    compress: (encoder: { buffer: Buffer }) => zstdAsync(encoder.buffer, ZSTD_COMPRESS),
    decompress: (buffer: Buffer) => unzstdAsync(buffer, ZSTD_DECOMPRESS),
  }
  codecs[CompressionTypes.GZIP] = () => gzipCodec
  codecs[CompressionTypes.ZSTD] = () => zstdCodec
}

/**
 * kafkajs logs through ours. Its errors are retried before they reach teiten (and those that
 * are not surface as exceptions), so they are warnings; per-request protocol errors (a
 * coordinator still loading, a broker restarting) are retried by kafkajs and only debug. The
 * idempotent producer's warning about bounded retries does not apply: teiten's dedup tokens,
 * not the producer, make a re-send harmless.
 */
function logCreator(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' })
  return () =>
    ({ namespace, level, log: entry }: { namespace: string; level: number; log: Record<string, unknown> }) => {
      const { message, timestamp: _t, logger: _l, ...extra } = entry
      const text = String(message)
      const obj = { namespace, ...extra }
      const routine =
        (namespace === 'Connection' && text.startsWith('Response ')) ||
        text.startsWith('Limiting retries for the idempotent')
      if ((level === logLevel.ERROR || level === logLevel.WARN) && !routine) log.warn(obj, text)
      else log.debug(obj, text)
    }
}

function headersOf(h: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (!h) return out
  for (const [k, v] of Object.entries(h))
    if (v !== undefined) out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
  return out
}

function unavailable(err: unknown, what: string): TeitenError {
  const e = wrapError(err, 'KAFKA_UNAVAILABLE')
  if (!(err instanceof TeitenError)) e.message = `${what}: ${e.message}`
  return e
}

class KafkajsProducer implements KafkaProducer {
  constructor(private readonly p: Producer) {}
  async connect() {
    try {
      await this.p.connect()
    } catch (err) {
      throw unavailable(err, 'cannot connect the producer')
    }
  }
  async send(topic: string, messages: OutgoingMessage[]) {
    try {
      // No Kafka-level compression: teiten's events messages carry zstd bodies already (stream/
      // codec.ts), so the broker appends them without decompressing to validate, and the
      // sensor knows each message's size on the wire before it packs a request.
      await this.p.send({ topic, acks: -1, compression: CompressionTypes.None, messages })
    } catch (err) {
      throw unavailable(err, `cannot publish to ${topic}`)
    }
  }
  disconnect() {
    return this.p.disconnect()
  }
}

class KafkajsConsumer implements KafkaConsumer {
  constructor(private readonly c: Consumer) {}
  async connect() {
    try {
      await this.c.connect()
    } catch (err) {
      throw unavailable(err, 'cannot connect the consumer')
    }
  }
  subscribe(topic: string, fromBeginning: boolean) {
    return this.c.subscribe({ topics: [topic], fromBeginning })
  }
  run(handler: (batch: IncomingBatch, control: BatchControl) => Promise<void>) {
    return this.c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async (p: EachBatchPayload) => {
        const batch: IncomingBatch = {
          topic: p.batch.topic,
          partition: p.batch.partition,
          highWatermark: p.batch.highWatermark,
          messages: p.batch.messages.map((m) => ({
            offset: m.offset,
            key: m.key,
            value: m.value,
            headers: headersOf(m.headers as Record<string, unknown> | undefined),
          })),
        }
        await handler(batch, {
          resolveOffset: p.resolveOffset,
          heartbeat: p.heartbeat,
          isRunning: p.isRunning,
          isStale: p.isStale,
          // Not consumer.commitOffsets: kafkajs drops that one silently once stop() has begun.
          commit: (offset) =>
            p.commitOffsetsIfNecessary({
              topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset }] }],
            }),
        })
      },
    })
  }
  commit(offsets: Array<{ topic: string; partition: number; offset: string }>) {
    return this.c.commitOffsets(offsets)
  }
  onAssignment(listener: (assignment: Map<string, number[]> | null) => void) {
    this.c.on(this.c.events.GROUP_JOIN, (e) => {
      listener(new Map(Object.entries(e.payload.memberAssignment)))
    })
    this.c.on(this.c.events.REBALANCING, () => listener(null))
  }
  onFatal(listener: (err: Error) => void) {
    this.c.on(this.c.events.CRASH, (e) => {
      if (!e.payload.restart) listener(e.payload.error)
    })
  }
  disconnect() {
    return this.c.disconnect()
  }
}

const CREATE_TOPIC_TIMEOUT_MS = 30_000

class KafkajsAdmin implements KafkaAdmin {
  constructor(private readonly a: Admin) {}
  async connect() {
    try {
      await this.a.connect()
    } catch (err) {
      throw unavailable(err, 'cannot connect to the broker')
    }
  }
  async ensureTopic(topic: string, partitions: number, config: Record<string, string> = {}) {
    if ((await this.a.listTopics()).includes(topic)) return false
    const { brokers } = await this.a.describeCluster()
    try {
      return await this.a.createTopics({
        waitForLeaders: true,
        // The broker's timeout and kafkajs' wait for the new partitions' leaders (default 5 s,
        // which a loaded machine or a broker just started can exceed; kafkajs then throws
        // although the topic exists).
        timeout: CREATE_TOPIC_TIMEOUT_MS,
        topics: [
          {
            topic,
            numPartitions: partitions,
            replicationFactor: Math.min(3, brokers.length),
            configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
          },
        ],
      })
    } catch (err) {
      // Another sensor or sink created it in the meantime.
      if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return false
      if (/already exists/i.test(String((err as Error).message))) return false
      throw unavailable(err, `cannot create topic ${topic}`)
    }
  }
  async topicOffsets(topic: string) {
    const offs = await this.a.fetchTopicOffsets(topic)
    return offs.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) }))
  }
  async groupOffsets(group: string, topic: string) {
    const res = await this.a.fetchOffsets({ groupId: group, topics: [topic] })
    const out = new Map<number, number>()
    for (const p of res[0]?.partitions ?? []) out.set(p.partition, Number(p.offset))
    return out
  }
  disconnect() {
    return this.a.disconnect()
  }
}

/** The real transport: kafkajs, idempotent producer, uncompressed record batches, explicit commits. */
export function kafkajsTransport(options: KafkaTransportOptions): KafkaTransport {
  installCodecs()
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: logLevel.WARN,
    logCreator: logCreator(options.logger),
    retry: { retries: options.retries ?? 10, initialRetryTime: 300, maxRetryTime: 30_000 },
  })
  return {
    producer: () =>
      new KafkajsProducer(
        kafka.producer({
          idempotent: true,
          // Idempotence in kafkajs needs one request in flight; order within a partition follows.
          maxInFlightRequests: 1,
          // Murmur2 like the Java client, so keys land where other Kafka tools expect them.
          createPartitioner: Partitioners.DefaultPartitioner,
          allowAutoTopicCreation: false,
        }),
      ),
    consumer: (o) =>
      new KafkajsConsumer(
        kafka.consumer({
          groupId: o.groupId,
          maxBytes: o.maxBytes,
          maxBytesPerPartition: o.maxBytesPerPartition,
          maxWaitTimeInMs: o.maxWaitTimeInMs ?? 1000,
          sessionTimeout: o.sessionTimeout ?? 30_000,
          heartbeatInterval: o.heartbeatInterval ?? 3000,
          allowAutoTopicCreation: false,
        }),
      ),
    admin: () => new KafkajsAdmin(kafka.admin()),
  }
}

export function parseBrokers(list: string | string[] | undefined): string[] {
  const items = (Array.isArray(list) ? list : (list ?? '').split(',')).map((s) => s.trim()).filter(Boolean)
  for (const b of items) {
    if (!/^[^:,\s]+:\d{1,5}$/.test(b)) throw new TeitenError('USAGE', `bad broker address ${b} (expected host:port)`)
  }
  return items
}
