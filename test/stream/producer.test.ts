/**
 * The sensor side (stream/producer.ts) on the real broker: messages fit the broker's default
 * 1 MB limit, stay in order per sensor with the file record last, the topic is created when
 * missing, and the local ledger is written only after the broker acknowledged the file.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import kafkajs from 'kafkajs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../core/config.js'
import { isTeitenError, TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { makeEnricher } from '../../enrich/enrich.js'
import { GeoIp } from '../../enrich/geoip.js'
import { expandPaths } from '../../pipeline/files.js'
import { type Enricher, ingestFiles } from '../../pipeline/ingest.js'
import { type DecodedMessage, decodeMessage, MAX_PART_BODY_BYTES } from '../../stream/codec.js'
import { type KafkaTransport, kafkajsTransport } from '../../stream/kafka.js'
import { LOCAL_LEDGER_FILE } from '../../stream/ledger.js'
import { createKafkaSink, DEFAULT_PARTITIONS } from '../../stream/producer.js'
import { tempDir } from '../helpers/tmp.js'
import { type TestKafka, testKafka } from './kafka-helper.js'
import { expectedOf, makeCorpus, uniqueName, waitFor } from './stream-helper.js'

const dir = tempDir('teiten-producer-')
let k: TestKafka
let transport: KafkaTransport
let enricher: Enricher
let startError: unknown = null

beforeAll(async () => {
  try {
    k = await testKafka()
    transport = kafkajsTransport({ brokers: k.brokers, clientId: 'teiten-producer-test', logger: silentLogger })
    enricher = { enrich: makeEnricher(await GeoIp.open()) }
  } catch (err) {
    startError = err
  }
}, 600_000)

beforeEach(() => {
  if (startError) throw startError
})

afterAll(async () => {
  await k?.close()
  dir.cleanup()
})

function configFor(topic: string, dataDir: string) {
  return resolveConfig({ flags: { dataDir, kafka: { brokers: k.brokers, topic } } })
}

interface Read {
  partition: number
  offset: number
  value: Buffer
  msg: DecodedMessage
}

/** Every message of `topic`, decoded, by partition and offset. */
async function readTopic(topic: string): Promise<Read[]> {
  const admin = transport.admin()
  await admin.connect()
  const ends = await admin.topicOffsets(topic)
  await admin.disconnect()
  const total = ends.reduce((n, e) => n + e.high, 0)
  const out: Read[] = []
  const c = transport.consumer({ groupId: uniqueName('reader') })
  await c.connect()
  await c.subscribe(topic, true)
  await c.run(async (batch, control) => {
    for (const m of batch.messages) {
      out.push({ partition: batch.partition, offset: Number(m.offset), value: m.value!, msg: decodeMessage(m.value) })
      control.resolveOffset(m.offset)
    }
  })
  await waitFor(`${total} messages of ${topic}`, async () => (out.length >= total ? true : undefined))
  await c.disconnect()
  return out.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
}

describe('createKafkaSink', () => {
  it('publishes under the default 1 MB limit, one partition per sensor, in order, file record last', async () => {
    const c = await makeCorpus(join(dir.path, 'order'), { seed: 31, kept: 160_000, prefix: 'order', days: 2 })
    const expected = await expectedOf([c.dir])
    const topic = uniqueName('producer-order')
    // The broker-wide limit of the test broker is 8 MiB; this topic has Kafka's default.
    const admin = transport.admin()
    await admin.connect()
    expect(await admin.ensureTopic(topic, 8, { 'max.message.bytes': '1048588' })).toBe(true)
    await admin.disconnect()
    const sink = await createKafkaSink({
      config: configFor(topic, join(dir.path, 'order-ledger')),
      logger: silentLogger,
      kafka: transport,
    })
    const summary = await ingestFiles(await expandPaths([c.dir]), { sink, enricher, logger: silentLogger })
    await sink.close()
    expect(summary.filesIngested).toBe(expected.files)

    const read = await readTopic(topic)
    const events = read.filter((r) => r.msg.kind === 'events')
    expect(events.reduce((n, r) => n + (r.msg.kind === 'events' ? r.msg.rows : 0), 0)).toBe(expected.rows)
    expect(read.length - events.length).toBe(expected.files)
    expect(Math.max(...read.map((r) => r.value.length))).toBeLessThanOrEqual(1_000_000)
    expect(events.some((r) => r.msg.kind === 'events' && r.msg.parts > 1)).toBe(true)
    expect(sink.stats.bytes).toBe(read.reduce((n, r) => n + r.value.length, 0))

    // Each sensor in one partition; within it, each file's parts in order and its record last.
    const partitionOf = new Map<string, number>()
    for (const r of read) {
      const sensor = r.msg.kind === 'events' ? r.msg.sensor : r.msg.record.sensor
      expect(partitionOf.get(sensor) ?? r.partition).toBe(r.partition)
      partitionOf.set(sensor, r.partition)
    }
    expect([...partitionOf.keys()].sort()).toEqual([...c.sensors].sort())
    const last = new Map<string, { batchNo: number; part: number; parts: number }>()
    const finished = new Set<string>()
    for (const r of read) {
      if (r.msg.kind === 'file') {
        const prev = last.get(r.msg.record.fileId)
        if (r.msg.record.kept > 0) expect(prev && prev.part === prev.parts - 1).toBe(true)
        finished.add(r.msg.record.fileId)
        continue
      }
      const m = r.msg
      expect(finished.has(m.fileId)).toBe(false)
      const prev = last.get(m.fileId)
      const next =
        prev === undefined
          ? m.batchNo === 0 && m.part === 0
          : (m.batchNo === prev.batchNo && m.part === prev.part + 1) ||
            (m.batchNo === prev.batchNo + 1 && m.part === 0 && prev.part === prev.parts - 1)
      expect(next, `${m.fileId} batch ${m.batchNo} part ${m.part} after ${JSON.stringify(prev)}`).toBe(true)
      last.set(m.fileId, m)
    }
    expect(finished.size).toBe(expected.files)
    expect(MAX_PART_BODY_BYTES).toBe(999_000)
  }, 120_000)

  it('start-up survives a topic creation that kafkajs reports as failed although the topic exists', async () => {
    // What a loaded machine or a broker just started does: the new partitions' leaders come later
    // than kafkajs waits (here a 1 ms timeout), kafkajs throws "Timed out while waiting for topic
    // leaders", the topic exists. The sensor used to exit 1 on it before publishing anything.
    const c = await makeCorpus(join(dir.path, 'late-leaders'), { seed: 37, kept: 4_000, prefix: 'late', days: 1 })
    const topic = uniqueName('producer-late-leaders')
    let attempts = 0
    const late: KafkaTransport = {
      ...transport,
      producer: () => transport.producer(),
      consumer: (o) => transport.consumer(o),
      admin() {
        const a = transport.admin()
        return {
          ...a,
          connect: () => a.connect(),
          disconnect: () => a.disconnect(),
          topicOffsets: (t) => a.topicOffsets(t),
          groupOffsets: (g, t) => a.groupOffsets(g, t),
          async ensureTopic(t, partitions, config) {
            if (++attempts > 1) return a.ensureTopic(t, partitions, config)
            const raw = new kafkajs.Kafka({ brokers: k.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin()
            await raw.connect()
            try {
              await raw.createTopics({
                waitForLeaders: true,
                timeout: 1,
                topics: [{ topic: t, numPartitions: partitions }],
              })
            } catch (err) {
              throw new TeitenError('KAFKA_UNAVAILABLE', `cannot create topic ${t}: ${(err as Error).message}`)
            } finally {
              await raw.disconnect()
            }
            throw new Error('kafkajs did not time out: the test does not reproduce the failure')
          },
        }
      },
    }
    const sink = await createKafkaSink({
      config: configFor(topic, join(dir.path, 'late-leaders-ledger')),
      logger: silentLogger,
      kafka: late,
      random: () => 0,
    })
    const summary = await ingestFiles(await expandPaths([c.dir]), { sink, enricher, logger: silentLogger })
    await sink.close()
    expect(attempts).toBe(2)
    expect(summary.filesIngested).toBeGreaterThan(0)
    const read = await readTopic(topic)
    expect(read.reduce((n, r) => n + (r.msg.kind === 'events' ? r.msg.rows : 0), 0)).toBe(summary.kept)
  }, 60_000)

  it('the default limit is in force on that topic: a 2 MB message is refused', async () => {
    const topic = uniqueName('producer-limit')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopic(topic, 1, { 'max.message.bytes': '1048588' })
    await admin.disconnect()
    const raw = new kafkajs.Kafka({ clientId: 'limit', brokers: k.brokers, logLevel: kafkajs.logLevel.NOTHING })
    const p = raw.producer({ retry: { retries: 0 } })
    await p.connect()
    const random = Buffer.alloc(2_000_000)
    for (let i = 0; i < random.length; i += 4) random.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i)
    await expect(p.send({ topic, messages: [{ value: random }] })).rejects.toThrow(/too large|larger/i)
    await p.disconnect()
  })

  it('creates a missing topic with the configured number of partitions', async () => {
    const topic = uniqueName('producer-create')
    const sink = await createKafkaSink({
      config: configFor(topic, join(dir.path, 'create-ledger')),
      logger: silentLogger,
      kafka: transport,
      partitions: 3,
    })
    await sink.close()
    const admin = transport.admin()
    await admin.connect()
    // Right after creation the broker may still answer "not the leader" for a partition it is
    // taking over (seen once in CI): asked again until it answers.
    const offsets = await waitFor(
      'the new topic’s offsets',
      () => admin.topicOffsets(topic).catch(() => undefined),
      10_000,
    )
    expect(offsets.map((o) => o.partition).sort()).toEqual([0, 1, 2])
    await admin.disconnect()
    expect(DEFAULT_PARTITIONS).toBe(8)
  })

  it('the local ledger is written only once the broker acknowledged the file record', async () => {
    const c = await makeCorpus(join(dir.path, 'ack'), { seed: 32, kept: 20_000, prefix: 'ack', days: 2, sensors: 1 })
    const topic = uniqueName('producer-ack')
    const ledgerDir = join(dir.path, 'ack-ledger')
    let refuseFileRecords = true
    const refusing: KafkaTransport = {
      admin: () => transport.admin(),
      consumer: (o) => transport.consumer(o),
      producer: () => {
        const p = transport.producer()
        return {
          connect: () => p.connect(),
          disconnect: () => p.disconnect(),
          async send(t, messages) {
            if (refuseFileRecords && messages.some((m) => m.value[4] === 2)) {
              throw new TeitenError('KAFKA_UNAVAILABLE', 'injected: no acknowledgement')
            }
            await p.send(t, messages)
          },
        }
      },
    }
    const files = await expandPaths([c.dir])
    const sink = await createKafkaSink({ config: configFor(topic, ledgerDir), logger: silentLogger, kafka: refusing })
    const err = await ingestFiles(files, { sink, enricher, logger: silentLogger }).catch((e: unknown) => e)
    await sink.close()
    expect(isTeitenError(err, 'KAFKA_UNAVAILABLE')).toBe(true)
    expect(() => readFileSync(join(ledgerDir, LOCAL_LEDGER_FILE), 'utf8')).toThrow()

    refuseFileRecords = false
    const again = await createKafkaSink({ config: configFor(topic, ledgerDir), logger: silentLogger, kafka: refusing })
    const summary = await ingestFiles(files, { sink: again, enricher, logger: silentLogger })
    await again.close()
    expect(summary.filesIngested).toBe(files.length)
    const lines = readFileSync(join(ledgerDir, LOCAL_LEDGER_FILE), 'utf8').trim().split('\n')
    expect(lines.map((l) => JSON.parse(l).topic)).toEqual(Array(files.length).fill(topic))
    // Same ledger, another topic: not published there yet.
    const other = await createKafkaSink({
      config: configFor(`${topic}-b`, ledgerDir),
      logger: silentLogger,
      kafka: transport,
    })
    const fileId = JSON.parse(lines[0]!).fileId as string
    expect(await other.lookupFile(fileId)).toBeUndefined()
    await other.close()
  }, 60_000)

  it('publishes a capture and its gzip twin once, and skips a .gz an older version published', async () => {
    const topic = uniqueName('producer-gz')
    const ledgerDir = join(dir.path, 'gz-ledger')
    const c = await makeCorpus(join(dir.path, 'gz'), { seed: 33, kept: 3000, prefix: 'gz', days: 1 })
    const [first, second] = await expandPaths([c.dir])
    const captureOf = (path: string) => {
      const b = readFileSync(path)
      return b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b
    }
    const plain = join(dir.path, 'gz-twins', 's', 'a.pcap')
    const gz = join(dir.path, 'gz-twins', 's', 'a.pcap.gz')
    const old = join(dir.path, 'gz-twins', 's', 'b.pcap.gz')
    mkdirSync(dirname(plain), { recursive: true })
    const content = captureOf(first!.path)
    writeFileSync(plain, content)
    writeFileSync(gz, gzipSync(content))
    // What a version before 0.3 recorded for b.pcap.gz: the hash of its bytes as its id.
    const oldBytes = gzipSync(captureOf(second!.path))
    writeFileSync(old, oldBytes)
    const rawId = createHash('sha256').update(oldBytes).digest('hex').slice(0, 32)
    mkdirSync(ledgerDir, { recursive: true })
    const legacy = { fileId: rawId, sensor: 's', path: old, bytes: oldBytes.length, records: 1, kept: 1 }
    writeFileSync(
      join(ledgerDir, LOCAL_LEDGER_FILE),
      `${JSON.stringify({ ...legacy, firstTs: null, lastTs: null, status: 'complete', error: '', topic, publishedAt: new Date().toISOString() })}\n`,
    )
    const sink = await createKafkaSink({ config: configFor(topic, ledgerDir), logger: silentLogger, kafka: transport })
    const one = await ingestFiles(await expandPaths([old, plain, gz]), { sink, enricher, logger: silentLogger })
    await sink.close()
    expect(one.outcomes.map((o) => [o.file.path, o.status])).toEqual([
      [old, 'skipped'],
      [plain, 'ingested'],
      [gz, 'skipped'],
    ])
    const again = await createKafkaSink({ config: configFor(topic, ledgerDir), logger: silentLogger, kafka: transport })
    const two = await ingestFiles(await expandPaths([gz]), { sink: again, enricher, logger: silentLogger })
    await again.close()
    expect(two.filesSkipped).toBe(1)
    // a.pcap's record, and b.pcap.gz's old record again under its capture's id; no events of either twin twice.
    const read = await readTopic(topic)
    expect(read.filter((r) => r.msg.kind === 'file')).toHaveLength(2)
    const rows = read.reduce((n, r) => n + (r.msg.kind === 'events' ? r.msg.rows : 0), 0)
    expect(rows).toBe(one.outcomes[1]!.kept)
  }, 60_000)
})
