/**
 * The Kafka sink in process, on the real broker and a real embedded chDB store (one per test
 * process: every test uses its own captures, so its own file ids, tokens and sensors). Each test
 * checks exact counts against what a direct ingest of the same files stores (the pipeline run
 * into memory): events, the three aggregates, the file ledger. A transport wrapper checks on
 * every commit that no offset is committed past a message that is not stored.
 */
import { join } from 'node:path'
import kafkajs from 'kafkajs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../core/config.js'
import { TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { createMetrics } from '../../core/metrics.js'
import { makeEnricher } from '../../enrich/enrich.js'
import { GeoIp } from '../../enrich/geoip.js'
import { expandPaths } from '../../pipeline/files.js'
import { type Enricher, ingestFiles } from '../../pipeline/ingest.js'
import type { EventBatch } from '../../pipeline/sink.js'
import { eventsRowBinaryToNative } from '../../store/native.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import {
  decodeMessage,
  encodeBatch,
  encodeFileMessage,
  insertGroup,
  insertToken,
  MAX_PART_BODY_BYTES,
  PARTS_PER_INSERT,
} from '../../stream/codec.js'
import { INSERTS_IN_FLIGHT, runSink, type SinkSummary, type SinkWorkerOptions } from '../../stream/consumer.js'
import type { KafkaConsumer, KafkaProducer, KafkaTransport } from '../../stream/kafka.js'
import { kafkajsTransport } from '../../stream/kafka.js'
import { createKafkaSink } from '../../stream/producer.js'
import { tempDir } from '../helpers/tmp.js'
import { type TestKafka, testKafka } from './kafka-helper.js'
import { type Corpus, type Expected, expectedOf, makeCorpus, sleep, uniqueName, waitFor } from './stream-helper.js'

const dir = tempDir('teiten-sink-')
let k: TestKafka
let store: Store
let transport: KafkaTransport
let enricher: Enricher
let startError: unknown = null

beforeAll(async () => {
  try {
    k = await testKafka()
    store = await openStore({ dataDir: join(dir.path, 'store'), logger: silentLogger, host: false })
    transport = kafkajsTransport({ brokers: k.brokers, clientId: 'teiten-sink-test', logger: silentLogger })
    enricher = { enrich: makeEnricher(await GeoIp.open()) }
  } catch (err) {
    startError = err
  }
}, 600_000)

// A broker that cannot start fails every test: never a skip.
beforeEach(() => {
  if (startError) throw startError
})

afterAll(async () => {
  await store?.close()
  await k?.close()
  dir.cleanup()
})

let corpusSeq = 0
async function corpus(prefix: string, kept: number, sensors = 3): Promise<{ corpus: Corpus; expected: Expected }> {
  const c = await makeCorpus(join(dir.path, `corpus-${++corpusSeq}`), { seed: 1000 + corpusSeq, kept, prefix, sensors })
  return { corpus: c, expected: await expectedOf([c.dir]) }
}

async function publish(paths: string[], topic: string, o: { ledgerDir?: string; kafka?: KafkaTransport } = {}) {
  const config = resolveConfig({
    flags: { dataDir: o.ledgerDir ?? join(dir.path, `ledger-${topic}`), kafka: { brokers: k.brokers, topic } },
  })
  const sink = await createKafkaSink({ config, logger: silentLogger, kafka: o.kafka ?? transport })
  try {
    const summary = await ingestFiles(await expandPaths(paths), { sink, enricher, logger: silentLogger })
    return { summary, stats: sink.stats }
  } finally {
    await sink.close()
  }
}

function sink(topic: string, group: string, extra: Partial<SinkWorkerOptions> = {}): Promise<SinkSummary> {
  return runSink({
    transport,
    store,
    topic,
    group,
    logger: silentLogger,
    exitWhenIdleMs: 1500,
    lagIntervalMs: 100,
    retry: { initialMs: 20, maxMs: 200 },
    ...extra,
  })
}

interface Counts {
  events: number
  distinct: number
  daily: number
  hourly: number
  sources: number
  files: number
  filesKept: number
}

async function counts(sensors: string[]): Promise<Counts> {
  const p = { s: sensors }
  const one = async (sql: string) => (await store.query<Record<string, string>>(sql, p))[0]!
  const e = await one(
    'SELECT count() AS n, uniqExact(file_id, record) AS d FROM events WHERE sensor IN {s:Array(String)}',
  )
  const sum = async (t: string) =>
    Number((await one(`SELECT sum(packets) AS p FROM ${t} WHERE sensor IN {s:Array(String)}`)).p)
  const f = await one('SELECT count() AS n, sum(kept) AS k FROM ingested_files FINAL WHERE sensor IN {s:Array(String)}')
  return {
    events: Number(e.n),
    distinct: Number(e.d),
    daily: await sum('daily_agg'),
    hourly: await sum('hourly_agg'),
    sources: await sum('source_daily'),
    files: Number(f.n),
    filesKept: Number(f.k),
  }
}

async function expectExact(c: Corpus, expected: Expected): Promise<void> {
  const exact: Counts = {
    events: expected.rows,
    distinct: expected.rows,
    daily: expected.rows,
    hourly: expected.rows,
    sources: expected.rows,
    files: expected.files,
    filesKept: expected.rows,
  }
  expect(await counts(c.sensors)).toEqual(exact)
  const byFile = await store.query<{ f: string; n: string }>(
    'SELECT file_id AS f, count() AS n FROM events WHERE sensor IN {s:Array(String)} GROUP BY f',
    { s: c.sensors },
  )
  expect(new Map(byFile.map((r) => [r.f, Number(r.n)]))).toEqual(expected.rowsByFile)
}

/** A store whose writes fail while `failing()` says so (ClickHouse down), counting attempts. */
function flakyStore(inner: Store, failing: () => boolean) {
  const state = { failures: 0, stored: new Set<string>() }
  const fail = () => {
    state.failures++
    throw new TeitenError('STORE_UNAVAILABLE', 'injected: ClickHouse is down')
  }
  const wrapped: Store = {
    kind: inner.kind,
    query: (sql, params, settings) => inner.query(sql, params, settings),
    queryRaw: (sql, params, format, settings) => inner.queryRaw(sql, params, format, settings),
    async command(sql, params, settings) {
      if (failing()) fail()
      await inner.command(sql, params, settings)
      if (sql.includes('INSERT INTO ingested_files')) state.stored.add(`file:${String(params?.file_id)}`)
    },
    async insertRowBinary(table, structure, body, token, options) {
      if (failing()) fail()
      await inner.insertRowBinary(table, structure, body, token, options)
      state.stored.add(token ?? '')
    },
    close: () => inner.close(),
  }
  return { store: wrapped, state }
}

/**
 * Wraps a transport so every commit is checked: all messages of the partition below the
 * committed offset must be stored (their token, or their file record) or be bad messages.
 */
function commitChecker(inner: KafkaTransport, stored: Set<string>) {
  const seen = new Map<number, Map<number, string>>()
  const result = { commits: 0, violations: [] as string[] }
  const identity = (value: Buffer | null): string => {
    try {
      const d = decodeMessage(value)
      return d.kind === 'file'
        ? `file:${d.record.fileId}`
        : insertToken(d.fileId, d.batchNo, d.parts, insertGroup(d.part, d.parts).group)
    } catch {
      return 'bad'
    }
  }
  const check = (partition: number, offset: string) => {
    result.commits++
    for (const [o, id] of seen.get(partition) ?? []) {
      if (o < Number(offset) && id !== 'bad' && !stored.has(id)) {
        result.violations.push(`partition ${partition}: committed ${offset} past unstored offset ${o} (${id})`)
      }
    }
  }
  const wrap = (c: KafkaConsumer): KafkaConsumer => ({
    connect: () => c.connect(),
    // Commits outside a handler: partitions whose insert finished after their handler returned.
    async commit(offsets) {
      for (const o of offsets) check(o.partition, o.offset)
      await c.commit(offsets)
    },
    subscribe: (t, b) => c.subscribe(t, b),
    run: (handler) =>
      c.run((batch, control) => {
        const p = seen.get(batch.partition) ?? new Map<number, string>()
        seen.set(batch.partition, p)
        for (const m of batch.messages) p.set(Number(m.offset), identity(m.value))
        return handler(batch, {
          ...control,
          async commit(offset) {
            check(batch.partition, offset)
            await control.commit(offset)
          },
        })
      }),
    onAssignment: (l) => c.onAssignment(l),
    onFatal: (l) => c.onFatal(l),
    disconnect: () => c.disconnect(),
  })
  const transport: KafkaTransport = {
    producer: () => inner.producer(),
    admin: () => inner.admin(),
    consumer: (o) => wrap(inner.consumer(o)),
  }
  return { transport, result }
}

async function groupLag(topic: string, group: string): Promise<number> {
  const admin = transport.admin()
  await admin.connect()
  try {
    const [ends, committed] = await Promise.all([admin.topicOffsets(topic), admin.groupOffsets(group, topic)])
    return ends.reduce((n, e) => n + e.high - Math.max(e.low, committed.get(e.partition) ?? -1), 0)
  } finally {
    await admin.disconnect()
  }
}

describe('teiten sink (in process, real broker, embedded chDB)', () => {
  it('stores every event once, writes the file ledger, reports lag and rows, exits when caught up', async () => {
    const { corpus: c, expected } = await corpus('basic', 120_000)
    const topic = uniqueName('sink-basic')
    const published = await publish([c.dir], topic)
    expect(published.summary.filesIngested).toBe(expected.files)
    expect(published.stats.rows).toBe(expected.rows)
    const metrics = createMetrics({ defaultMetrics: false })
    const summary = await sink(topic, uniqueName('g'), { metrics })
    expect(summary).toMatchObject({
      rows: expected.rows,
      files: expected.files,
      parked: 0,
      storeRetries: 0,
      stoppedBy: 'idle',
    })
    await expectExact(c, expected)
    const text = await metrics.registry.metrics()
    expect(text).toMatch(new RegExp(`teiten_sink_rows_total\\{sink="store"\\} ${expected.rows}\\b`))
    expect(text).toMatch(/teiten_kafka_consumer_lag\{topic="[^"]+",partition="\d+"\} 0/)
    expect(text).toMatch(/teiten_kafka_messages_total\{direction="consumed"\} \d+/)
  }, 120_000)

  it('(c) ClickHouse down for a while: retries with backoff, commits nothing past unstored rows, counts exact', async () => {
    const { corpus: c, expected } = await corpus('flaky', 100_000)
    const topic = uniqueName('sink-flaky')
    await publish([c.dir], topic)
    // Down from the first write for 2 s, then up; then down again for the 12th-15th writes.
    let firstWrite = 0
    let writes = 0
    const { store: flaky, state } = flakyStore(store, () => {
      writes++
      firstWrite ||= Date.now()
      return Date.now() - firstWrite < 2000 || (writes >= 12 && writes < 16)
    })
    const checker = commitChecker(transport, state.stored)
    const group = uniqueName('g')
    const summary = await sink(topic, group, { store: flaky, transport: checker.transport })
    expect(state.failures).toBeGreaterThanOrEqual(8)
    expect(summary.storeRetries).toBe(state.failures)
    expect(checker.result.violations).toEqual([])
    expect(checker.result.commits).toBeGreaterThan(0)
    expect(await groupLag(topic, group)).toBe(0)
    await expectExact(c, expected)
  }, 120_000)

  it('(d) a producer that sends every message twice, then a re-run that lost its ledger: counts unchanged', async () => {
    const { corpus: c, expected } = await corpus('twice', 80_000)
    const topic = uniqueName('sink-twice')
    // The retry kafkajs would make after a lost acknowledgement, made on purpose.
    const doubling: KafkaTransport = {
      ...transport,
      admin: () => transport.admin(),
      consumer: (o) => transport.consumer(o),
      producer: (): KafkaProducer => {
        const p = transport.producer()
        return {
          connect: () => p.connect(),
          disconnect: () => p.disconnect(),
          async send(t, messages) {
            await p.send(t, messages)
            await p.send(t, messages)
          },
        }
      },
    }
    const first = await publish([c.dir], topic, { kafka: doubling, ledgerDir: join(dir.path, 'twice-1') })
    const again = await publish([c.dir], topic, { ledgerDir: join(dir.path, 'twice-2') })
    expect(again.summary.filesIngested).toBe(expected.files)
    expect(again.stats.messages).toBe(first.stats.messages)
    const summary = await sink(topic, uniqueName('g'))
    // Every message arrived three times (a request of several parts sent again whole, as a
    // retry after a lost acknowledgement does): copies of parts were ignored or started their
    // group over and completed it again, and ClickHouse stored each batch once.
    expect(summary.messages).toBe(3 * (first.stats.messages - expected.files))
    expect(summary.rows).toBeGreaterThanOrEqual(2 * expected.rows)
    await expectExact(c, expected)
  }, 120_000)

  it('a re-run with its ledger publishes nothing new', async () => {
    const { corpus: c, expected } = await corpus('rerun', 30_000, 1)
    const topic = uniqueName('sink-rerun')
    const ledgerDir = join(dir.path, 'rerun-ledger')
    await publish([c.dir], topic, { ledgerDir })
    const admin = transport.admin()
    await admin.connect()
    const before = await admin.topicOffsets(topic)
    const again = await publish([c.dir], topic, { ledgerDir })
    expect(again.summary).toMatchObject({ filesIngested: 0, filesSkipped: expected.files })
    expect(again.stats.messages).toBe(0)
    expect(await admin.topicOffsets(topic)).toEqual(before)
    await admin.disconnect()
  }, 60_000)

  it('bad messages are parked in the dead-letter topic (or skipped) and never stall the partition', async () => {
    const { corpus: c, expected } = await corpus('poison', 40_000, 1)
    const topic = uniqueName('sink-poison')
    const raw = new kafkajs.Kafka({ clientId: 'poison', brokers: k.brokers, logLevel: kafkajs.logLevel.NOTHING })
    const producer = raw.producer()
    await producer.connect()
    // Bad messages first, in every partition the sensor's key could use, then the real data.
    const good = encodeBatch(expected.batches[0]!)[0]!.value
    const v3 = Buffer.from(good)
    v3[3] = 3
    const bad = [Buffer.from('{"hello":"json"}'), good.subarray(0, good.length - 7), v3]
    await publish([], topic) // creates the topic
    await producer.send({ topic, messages: bad.map((value) => ({ key: c.sensors[0]!, value })) })
    await publish([c.dir], topic)
    await producer.send({ topic, messages: [{ key: c.sensors[0]!, value: Buffer.from('trailing garbage') }] })
    await producer.disconnect()

    const metrics = createMetrics({ defaultMetrics: false })
    const summary = await sink(topic, uniqueName('g'), { metrics })
    expect(summary.parked).toBe(4)
    await expectExact(c, expected)
    expect(await metrics.registry.metrics()).toMatch(
      /teiten_kafka_messages_parked_total\{reason="KAFKA_BAD_MESSAGE"\} 4/,
    )

    const dlq: Array<{ headers: Record<string, string>; value: Buffer | null }> = []
    const consumer = transport.consumer({ groupId: uniqueName('dlq-reader') })
    await consumer.connect()
    await consumer.subscribe(`${topic}.dlq`, true)
    await consumer.run(async (batch, control) => {
      for (const m of batch.messages) {
        dlq.push({ headers: m.headers, value: m.value })
        control.resolveOffset(m.offset)
      }
    })
    await waitFor('the dead-letter messages', async () => (dlq.length >= 4 ? true : undefined), 30_000)
    await consumer.disconnect()
    expect(dlq.map((m) => m.headers['teiten-error-code'])).toEqual(Array(4).fill('KAFKA_BAD_MESSAGE'))
    expect(dlq.map((m) => m.headers['teiten-source-topic'])).toEqual(Array(4).fill(topic))
    expect(dlq.map((m) => m.value?.toString('latin1'))).toEqual(
      [...bad, Buffer.from('trailing garbage')].map((b) => b.toString('latin1')),
    )
    expect(dlq[1]!.headers['teiten-error']).toMatch(/body is|truncated/)

    // Without a dead-letter topic: logged, counted, skipped.
    const skipped = await sink(topic, uniqueName('g'), { deadLetterTopic: null })
    expect(skipped.parked).toBe(4)
    await expectExact(c, expected)
  }, 120_000)

  it('(e) scale-out: two sinks in one group share the partitions, three sensors publish at once', async () => {
    const { corpus: c, expected } = await corpus('scale', 150_000)
    const topic = uniqueName('sink-scale')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopic(topic, 8)
    await admin.disconnect()
    const group = uniqueName('g')
    const assigned: number[][] = [[], []]
    const controller = new AbortController()
    const workers = [0, 1].map((i) =>
      sink(topic, group, {
        exitWhenIdleMs: undefined,
        signal: controller.signal,
        onAssignment: (p) => {
          assigned[i] = p
        },
      }),
    )
    await waitFor('both sinks to hold partitions', async () =>
      assigned[0]!.length > 0 && assigned[1]!.length > 0 && assigned[0]!.length + assigned[1]!.length === 8
        ? true
        : undefined,
    )
    expect(new Set([...assigned[0]!, ...assigned[1]!]).size).toBe(8)
    // One producer per sensor, all at once.
    await Promise.all(
      c.sensors.map((s) => publish([join(c.dir, s)], topic, { ledgerDir: join(dir.path, `scale-${s}`) })),
    )
    await waitFor('all events stored', async () =>
      (await counts(c.sensors)).files === expected.files ? true : undefined,
    )
    await waitFor('lag 0', async () => ((await groupLag(topic, group)) === 0 ? true : undefined))
    controller.abort()
    const [a, b] = await Promise.all(workers)
    expect(a!.stoppedBy).toBe('signal')
    expect(a!.rows + b!.rows).toBeGreaterThanOrEqual(expected.rows)
    // Which sink got the sensors' partitions depends on their keys' hashes; both held partitions.
    await expectExact(c, expected)
  }, 180_000)

  it('(f) backpressure: a slow store makes lag grow, not memory (one bounded fetch in hand)', async () => {
    const { corpus: c, expected } = await corpus('slow', 200_000, 1)
    const topic = uniqueName('sink-slow')
    const group = uniqueName('g')
    let slow = true
    const { store: passthrough } = flakyStore(store, () => false)
    const slowStore: Store = {
      ...passthrough,
      async insertRowBinary(table, structure, body, token, options) {
        if (slow) await sleep(1500)
        await passthrough.insertRowBinary(table, structure, body, token, options)
      },
    }
    const controller = new AbortController()
    const maxBytesPerPartition = 256 * 1024
    const worker = sink(topic, group, {
      store: slowStore,
      exitWhenIdleMs: undefined,
      signal: controller.signal,
      consumer: { maxBytes: 512 * 1024, maxBytesPerPartition },
    })
    const published = await publish([c.dir], topic)
    const lagWhileSlow = await groupLag(topic, group)
    // The sensor published ~25 MB in ~25 messages: the slow sink is far behind.
    expect(lagWhileSlow).toBeGreaterThan(published.stats.messages / 2)
    await sleep(1500)
    const lagLater = await groupLag(topic, group)
    expect(lagLater).toBeGreaterThan(0)
    slow = false
    await waitFor('lag 0', async () => ((await groupLag(topic, group)) === 0 ? true : undefined), 90_000)
    controller.abort()
    const summary = await worker
    // In hand: one fetch (record batches of compressed messages, up to the per-partition limit
    // plus the first whatever its size), the groups being inserted (INSERTS_IN_FLIGHT) and the
    // one being reassembled, whatever the lag. A group is at most PARTS_PER_INSERT parts.
    expect(summary.largestInsertBytes).toBeGreaterThan(0)
    expect(summary.largestInsertBytes).toBeLessThanOrEqual(PARTS_PER_INSERT * MAX_PART_BODY_BYTES)
    expect(summary.maxBufferedBytes).toBeGreaterThan(0)
    expect(summary.maxBufferedBytes).toBeLessThanOrEqual(
      (INSERTS_IN_FLIGHT + 1) * summary.largestInsertBytes + 2 * 1_000_000,
    )
    console.log(
      `backpressure: ${published.stats.messages} messages (${(published.stats.bytes / 1e6).toFixed(1)} MB) published, ` +
        `lag ${lagWhileSlow} then ${lagLater} while slow; at most ${(summary.maxBufferedBytes / 1e6).toFixed(2)} MB in hand`,
    )
    await expectExact(c, expected)
  }, 180_000)

  it('graceful stop mid-stream: stored offsets committed, the restart finishes with exact counts', async () => {
    const { corpus: c, expected } = await corpus('stop', 150_000)
    const topic = uniqueName('sink-stop')
    await publish([c.dir], topic)
    const group = uniqueName('g')
    const { store: tracking, state } = flakyStore(store, () => false)
    const checker = commitChecker(transport, state.stored)
    const controller = new AbortController()
    let messages = 0
    const worker = sink(topic, group, {
      store: {
        ...tracking,
        async insertRowBinary(table, structure, body, token, options) {
          await tracking.insertRowBinary(table, structure, body, token, options)
          // SIGTERM after the fifth batch: the worker finishes what it holds and commits.
          if (++messages === 5) controller.abort()
        },
      },
      transport: checker.transport,
      exitWhenIdleMs: undefined,
      signal: controller.signal,
    })
    const first = await worker
    expect(first.stoppedBy).toBe('signal')
    // The insert that stopped it and any other one already running (INSERTS_IN_FLIGHT) finish;
    // none starts after the signal.
    expect(first.batches).toBeGreaterThanOrEqual(5)
    expect(first.batches).toBeLessThanOrEqual(4 + INSERTS_IN_FLIGHT)
    expect(checker.result.violations).toEqual([])
    const lag = await groupLag(topic, group)
    expect(lag).toBeGreaterThan(0)
    const second = await sink(topic, group)
    expect(first.rows + second.rows).toBe(expected.rows)
    await expectExact(c, expected)
  }, 120_000)

  describe('batches reassembled from their parts', () => {
    /**
     * The messages of one run of a sensor over the corpus: parts of every batch, then the file
     * record. Format version 3 (Native parts, what sensors send) or 2 (RowBinary, older sensors).
     */
    const runOf = (e: Expected, version: 2 | 3 = 3) =>
      e.batches.map((b) => ({ batch: b, parts: encodeBatch(inVersion(b, version)).map((m) => m.value) }))
    const inVersion = (b: EventBatch, version: 2 | 3): EventBatch =>
      version === 3 ? { ...b, format: 'Native', body: eventsRowBinaryToNative(b.body) } : b

    async function send(topic: string, key: string, values: Buffer[]) {
      const raw = new kafkajs.Kafka({ clientId: 'reassembly', brokers: k.brokers, logLevel: kafkajs.logLevel.NOTHING })
      const p = raw.producer({ idempotent: true, maxInFlightRequests: 1 })
      await p.connect()
      for (const value of values) await p.send({ topic, messages: [{ key, value }] })
      await p.disconnect()
    }

    it.each<[string, 2 | 3, 2 | 3]>([
      ['version 3 parts', 3, 3],
      ['version 2 parts (an older sensor)', 2, 2],
      ['a sensor upgraded in between (version 2 parts, then version 3)', 2, 3],
    ])(
      'a sensor that died mid-batch, then its re-run, %s: the partial batch is replaced, counts exact',
      async (name, before, after) => {
        const { corpus: c, expected } = await corpus(`remid${before}${after}`, 140_000, 1)
        const topic = uniqueName('sink-remid')
        await publish([], topic)
        const runA = runOf(expected, before)
        const runB = runOf(expected, after)
        const multi = runA.find((r) => r.parts.length > 2)!
        // Run A: every batch before `multi`, then half of `multi`'s parts, then it died.
        const upTo = runA.indexOf(multi)
        const a = [
          ...runA.slice(0, upTo).flatMap((r) => r.parts),
          ...multi.parts.slice(0, Math.floor(multi.parts.length / 2)),
        ]
        // Run B: the whole file again, and the file records.
        const b = [...runB.flatMap((r) => r.parts), ...expected.records.map(encodeFileMessage)]
        await send(topic, c.sensors[0]!, [...a, ...b])
        const summary = await sink(topic, uniqueName('g'))
        expect(summary.abandoned, name).toBe(0)
        await expectExact(c, expected)
      },
      120_000,
    )

    it('two runs of a sensor interleaved part by part: counts exact', async () => {
      const { corpus: c, expected } = await corpus('reint', 100_000, 1)
      const topic = uniqueName('sink-reint')
      await publish([], topic)
      const parts = runOf(expected).flatMap((r) => r.parts)
      const interleaved = parts.flatMap((v) => [v, v])
      await send(topic, c.sensors[0]!, [...interleaved, ...expected.records.map(encodeFileMessage)])
      const summary = await sink(topic, uniqueName('g'))
      expect(summary.ignored).toBeGreaterThan(0)
      await expectExact(c, expected)
    }, 120_000)

    it.each([3, 2] as const)(
      'a batch of more than PARTS_PER_INSERT version %i parts is stored in groups, also when a re-run restarts mid-way',
      async (version) => {
        const { corpus: c, expected } = await corpus(`regroup${version}`, 60_000, 1)
        const topic = uniqueName('sink-regroup')
        await publish([], topic)
        // Small parts (a test split: the producer's is fixed) so one batch spans three groups.
        const split = expected.batches.map((b) => encodeBatch(inVersion(b, version), 6_000).map((m) => m.value))
        expect(Math.max(...split.map((p) => p.length))).toBeGreaterThan(2 * PARTS_PER_INSERT)
        const died = split[0]!.slice(0, PARTS_PER_INSERT + 5)
        await send(topic, c.sensors[0]!, [...died, ...split.flat(), ...expected.records.map(encodeFileMessage)])
        const metrics = createMetrics({ defaultMetrics: false })
        const summary = await sink(topic, uniqueName('g'), { metrics })
        // The first group of the died run was stored, and again from the re-run (deduplicated) —
        // unless the re-run's copy arrived while the first was still being inserted: then it was
        // ignored like any copy of a group in hand.
        const groups = split.reduce((n, p) => n + Math.ceil(p.length / PARTS_PER_INSERT), 0)
        expect([groups, groups + 1]).toContain(summary.batches)
        await expectExact(c, expected)
      },
      120_000,
    )

    it('a sensor that died mid-batch and never came back: the partial batch is given up and committed past', async () => {
      const { corpus: c, expected } = await corpus('regone', 100_000, 1)
      const topic = uniqueName('sink-regone')
      await publish([], topic)
      const run = runOf(expected)
      const multi = run.find((r) => r.parts.length > 2)!
      const complete = run.filter((r) => r !== multi && r.batch.fileId !== multi.batch.fileId)
      await send(topic, c.sensors[0]!, [...complete.flatMap((r) => r.parts), ...multi.parts.slice(0, 2)])
      const group = uniqueName('g')
      const summary = await sink(topic, group, { abandonAfterMs: 1000, exitWhenIdleMs: 1500 })
      expect(summary.abandoned).toBe(1)
      expect(await groupLag(topic, group)).toBe(0)
      const rows = complete.reduce((n, r) => n + r.batch.rows, 0)
      expect((await counts(c.sensors)).events).toBe(rows)
      expect((await counts(c.sensors)).distinct).toBe(rows)
    }, 120_000)
  })
})
