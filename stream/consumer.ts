/**
 * The storage worker (`teiten sink`): consumes the events topic into ClickHouse.
 *
 * Exactly-once in effect, from at-least-once delivery plus idempotent inserts:
 * - the sink joins each batch's messages (parts 0..n-1, stream/codec.ts) in fixed groups of
 *   PARTS_PER_INSERT parts and inserts each group at once with its deterministic token
 *   (codec insertToken): `teiten:<fileId>:<batchNo>` for a batch of one group — the very token
 *   a direct `teiten ingest` gives it — else with `:g<group>` appended. ClickHouse drops a
 *   block whose token it has seen (materialized views included), so a group stored twice —
 *   redelivered after a crash or a rebalance, published twice by a sensor — counts once;
 * - a group is inserted only when complete: the parts of a producer that died mid-group are
 *   never stored on their own (its re-run publishes the batch again, whole);
 * - offsets are committed only below the first message not yet stored: below every open
 *   (incomplete) group's first part, and below the message in hand. A crash loses nothing:
 *   the sink re-reads from the last commit, rebuilds the open groups, and the tokens absorb
 *   whatever is inserted again.
 *
 * Why groups of parts and not one insert per message: a message is under 1 MB (~8,600 events),
 * a group up to ~275,000; ClickHouse pays a fixed cost per insert (a part per table, the three
 * materialized views, merges later): on the embedded store 8,000-row inserts ran at ~280k
 * events/s against ~600k for 65,536-row ones, and the sink alone went from 90-157k to ~290k
 * events/s (bench/kafka.ts); on a server, per-message inserts would make 8-30x the parts.
 *
 * Memory: the fetch in hand (maxBytes) plus the open groups — at most one per producer session
 * publishing into the partition at that point of the log, whatever the lag, since a sensor
 * sends a batch's parts back to back; a group is at most PARTS_PER_INSERT x 1 MB.
 *
 * ClickHouse down: the group in hand is retried with capped exponential backoff and jitter, forever while the worker runs; the consumer
 * neither commits past it nor fetches further (the kafkajs fetch loop waits for the handler),
 * so the lag grows in Kafka, not in memory. A message that cannot be decoded is parked: copied
 * to the dead-letter topic (or, without one, logged and counted), then committed past, so it
 * cannot stall the partition.
 */
import { Counter, Gauge } from 'prom-client'
import { BufferPool } from '../core/buffer-pool.js'
import { isTeitenError, type TeitenError, wrapError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics } from '../core/metrics.js'
import type { BodyFormat } from '../pipeline/sink.js'
import { recordFile } from '../store/ledger.js'
import { type EventsBlock, writeEventsBlock } from '../store/native-blocks.js'
import { EVENT_STRUCTURE } from '../store/schema.js'
import type { Store } from '../store/store.js'
import { decodeMessage, type EventsMessage, insertGroup, insertToken } from './codec.js'
import type {
  BatchControl,
  ConsumerOptions,
  IncomingBatch,
  IncomingMessage,
  KafkaAdmin,
  KafkaConsumer,
  KafkaProducer,
  KafkaTransport,
} from './kafka.js'
import { DEFAULT_PARTITIONS } from './producer.js'
import { DEFAULT_SESSION_TIMEOUT_MS } from '../core/defaults.js'

export interface RetryPolicy {
  /** First delay (ms); doubled per attempt up to maxMs; each delay is drawn from [d/2, d]. */
  initialMs: number
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { initialMs: 250, maxMs: 30_000 }

export { DEFAULT_SESSION_TIMEOUT_MS }

/** Inserts that may run at once (see runSink: `running`). */
export const INSERTS_IN_FLIGHT = 2

/**
 * What one fetch may bring in: with ~1 MB parts compressed ~5x (zstd, format version 2), 1 MiB
 * per partition is ~5 messages (~43,000 events) in hand per partition, and 4 MiB per fetch
 * bounds all partitions.
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
  /**
   * An incomplete batch whose next part has not come for this long is given up (its producer
   * died; its re-run publishes it again, whole), so it stops holding back the commits. Default
   * 10 minutes: far beyond kafkajs' own retries of a send.
   */
  abandonAfterMs?: number
  /** How long start-up (connect, topics, join) is retried before the sink gives up. Default 2 min. */
  startupTimeoutMs?: number
  /** A member with no partitions this long is replaced by a new consumer. Default 30 s or 2 sessions. */
  joinTimeoutMs?: number
  /** Called with this member's partitions after each join (empty while rebalancing). */
  onAssignment?: (partitions: number[]) => void
  now?: () => number
  random?: () => number
}

export interface SinkSummary {
  /** Events messages consumed (a redelivered message counts again). */
  messages: number
  /** Batches inserted and their rows (a batch inserted again counts again: the store deduplicates). */
  batches: number
  rows: number
  files: number
  parked: number
  /** Parts of batches already complete or not continuing one: copies of what is stored anyway. */
  ignored: number
  /** Incomplete batches given up (abandonAfterMs). */
  abandoned: number
  storeRetries: number
  /** Consumers replaced because kafkajs gave up or a member stayed without partitions. */
  consumerRestarts: number
  /** Most bytes of message values held at once: the fetch in hand and the open batches. */
  maxBufferedBytes: number
  /** The largest insert (bytes of rows): what one open group can hold. */
  largestInsertBytes: number
  stoppedBy: 'signal' | 'idle'
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

/** Parts of one insert group (codec insertGroup) received so far. */
interface OpenBatch {
  fileId: string
  batchNo: number
  parts: number
  /** Index of the group's first part, and how many parts it has. */
  first: number
  count: number
  token: string
  /** How its parts carry rows: a group is joined from parts of one format (a re-run by a newer sensor starts it over). */
  format: BodyFormat
  bodies: Buffer[]
  /** Version 3 parts as read (format Native): joined into one block for the insert. */
  blocks: EventsBlock[]
  rows: number
  bytes: number
  /** Offset of its first part: commits stay below it until the batch is stored. */
  firstOffset: number
  touchedAt: number
  /** Complete and being inserted: stays open (holding the commit) until stored; never given up. */
  inserting: boolean
}

interface PartitionState {
  open: Map<string, OpenBatch>
  /** Offset after the last message handled (stored, buffered, parked or ignored); -1: none. */
  nextOffset: number
  heldBytes: number
  /** A batch handler is working on this partition. */
  active: boolean
  committed: number
}

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
    batches: 0,
    rows: 0,
    files: 0,
    parked: 0,
    ignored: 0,
    abandoned: 0,
    storeRetries: 0,
    consumerRestarts: 0,
    maxBufferedBytes: 0,
    largestInsertBytes: 0,
    stoppedBy: 'signal',
  }
  const abandonAfterMs = options.abandonAfterMs ?? 10 * 60_000
  /** Per partition: open batches and how far it is processed. Rebuilt from the commit after a join. */
  const partitions = new Map<number, PartitionState>()
  const state = (partition: number) => {
    let st = partitions.get(partition)
    if (!st) {
      st = { open: new Map(), nextOffset: -1, heldBytes: 0, active: false, committed: -1 }
      partitions.set(partition, st)
    }
    return st
  }
  /** Bytes of the fetch in hand not yet processed. */
  let inHand = 0
  const buffered = () => {
    let n = inHand
    for (const st of partitions.values()) n += st.heldBytes
    return n
  }
  const noteBuffered = () => {
    const n = buffered()
    summary.maxBufferedBytes = Math.max(summary.maxBufferedBytes, n)
    extra?.buffered.set(n)
  }
  const stopping = new AbortController()

  const admin: KafkaAdmin = transport.admin()
  let dlq: KafkaProducer | undefined
  /**
   * Start-up steps are retried for a while: a broker restarting just then (topic creation
   * answered by a broker still electing leaders) is not a reason to give up.
   */
  const startupDeadline = now() + (options.startupTimeoutMs ?? 120_000)
  const withStartupRetries = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        if (now() > startupDeadline || options.signal?.aborted)
          throw isTeitenError(err) ? err : wrapError(err, 'KAFKA_UNAVAILABLE')
        const delayMs = Math.round(backoffDelay(attempt, { initialMs: 1000, maxMs: 15_000 }, random))
        log.warn({ attempt, delayMs, error: (err as Error).message }, `${what} failed: retrying`)
        await new Promise((r) => setTimeout(r, delayMs))
      }
    }
  }
  try {
    await withStartupRetries('connecting to Kafka', () => admin.connect())
    const created = await withStartupRetries('creating the topic', () =>
      admin.ensureTopic(topic, options.partitions ?? DEFAULT_PARTITIONS),
    )
    if (created) log.info({}, 'topic created')
    if (dlqTopic) {
      await withStartupRetries('creating the dead-letter topic', () => admin.ensureTopic(dlqTopic, 1))
      const producer = transport.producer()
      await withStartupRetries('connecting the dead-letter producer', () => producer.connect())
      dlq = producer
    }
  } catch (err) {
    await admin.disconnect().catch(() => {})
    throw err
  }

  const consumerOptions: ConsumerOptions = {
    groupId: group,
    ...DEFAULT_FETCH,
    sessionTimeout: DEFAULT_SESSION_TIMEOUT_MS,
    heartbeatInterval: DEFAULT_SESSION_TIMEOUT_MS / 5,
    ...Object.fromEntries(Object.entries(options.consumer ?? {}).filter(([, v]) => v !== undefined)),
  }
  /** A member without partitions this long is stuck (kafkajs after a coordinator move): replaced. */
  const joinTimeoutMs = options.joinTimeoutMs ?? Math.max(30_000, 2 * (consumerOptions.sessionTimeout ?? 0))
  let consumer!: KafkaConsumer

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
  const untilDone = async (
    what: string,
    control: BatchControl,
    context: Record<string, unknown>,
    work: () => Promise<void>,
  ) => {
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

  /**
   * Inserts run while the worker goes on: fetching and decoding the next group's parts overlaps
   * ClickHouse storing the last one, and two inserts may run at once, as in the embedded path
   * (pipeline/ingest.ts keeps two batches in flight). Measured in docs/kafka.md. A running insert
   * never rejects: a failure can only be Stopped (the worker stops or lost the partition), and
   * its group then stays open, holding the commit below it, so the next owner reads it again.
   */
  const running = new Set<Promise<void>>()
  /** Joined Native blocks (~19 MB each) used again: one per insert that may run, one being joined. */
  const joinedBlocks = new BufferPool(INSERTS_IN_FLIGHT + 1)
  /**
   * Waits until another insert may start (`all`: until none runs, e.g. before a file's ledger
   * row); throws Stopped when the worker is stopping meanwhile.
   */
  const settle = async (control: BatchControl, all = false) => {
    while (running.size >= (all ? 1 : INSERTS_IN_FLIGHT)) await Promise.race(running)
    if (stopping.signal.aborted || !control.isRunning() || control.isStale()) throw new Stopped()
  }
  const allInserts = () => Promise.all(running)
  const startInsert = (work: () => Promise<void>) => {
    const p: Promise<void> = work()
      .catch((err: unknown) => {
        if (!(err instanceof Stopped)) log.error({ error: (err as Error).message }, 'insert failed')
      })
      .finally(() => running.delete(p))
    running.add(p)
  }

  const insertBatch = async (
    token: string,
    rows: number,
    body: Buffer,
    format: BodyFormat,
    control: BatchControl,
    where: Record<string, unknown>,
  ) => {
    const t0 = now()
    try {
      await untilDone('insert', control, { ...where, token, rows }, () =>
        store.insertRowBinary('events', EVENT_STRUCTURE, body, token, { format }),
      )
    } finally {
      // Not before: a failed insert is tried again with the same bytes.
      joinedBlocks.give(body)
    }
    summary.batches++
    summary.rows += rows
    summary.largestInsertBytes = Math.max(summary.largestInsertBytes, body.length)
    metrics?.batchSeconds.observe({ sink: 'store' }, (now() - t0) / 1000)
    metrics?.sinkBatches.inc({ sink: 'store', result: 'ok' })
    metrics?.sinkRows.inc({ sink: 'store' }, rows)
  }

  const dropOpen = (st: PartitionState, key: string) => {
    const b = st.open.get(key)
    if (!b) return
    st.open.delete(key)
    st.heldBytes -= b.bytes
  }

  /** Adds a part to its batch; inserts the batch once its last part is in. */
  const handleEvents = async (
    st: PartitionState,
    offset: number,
    m: EventsMessage,
    control: BatchControl,
    where: Record<string, unknown>,
  ) => {
    summary.messages++
    const { group, first, count } = insertGroup(m.part, m.parts)
    const token = insertToken(m.fileId, m.batchNo, m.parts, group)
    if (count === 1) {
      await settle(control)
      await insertBatch(token, m.rows, m.body, m.format, control, where)
      return
    }
    const key = `${m.fileId}:${m.batchNo}:${group}`
    let b = st.open.get(key)
    if (m.part === first) {
      // A copy of a group being inserted (a re-sent request, a re-run): its parts are ignored
      // like those of a group already stored.
      if (b?.inserting) {
        summary.ignored++
        return
      }
      // A first part while the group is open: a new run of the sensor started it over (the old
      // one died mid-batch). Parts are deterministic, so either copy's later parts fit.
      if (b) dropOpen(st, key)
      b = {
        fileId: m.fileId,
        batchNo: m.batchNo,
        parts: m.parts,
        count,
        first,
        token,
        format: m.format,
        bodies: [],
        blocks: [],
        rows: 0,
        bytes: 0,
        firstOffset: offset,
        touchedAt: now(),
        inserting: false,
      }
      st.open.set(key, b)
    } else if (!b || b.parts !== m.parts || b.format !== m.format || b.bodies.length !== m.part - first) {
      // A copy of a part already in (a second run interleaved, a re-sent message), or a part of
      // a group already stored: the group is stored from the other copy.
      summary.ignored++
      return
    }
    b.bodies.push(m.body)
    if (m.block) b.blocks.push(m.block)
    b.rows += m.rows
    b.bytes += m.body.length
    b.touchedAt = now()
    st.heldBytes += m.body.length
    if (b.bodies.length < b.count) return
    await settle(control)
    // Still open while it is inserted: a commit meanwhile stays below its first part.
    const full = b
    full.inserting = true
    // Native parts as the one block they were cut from; RowBinary rows back to back.
    const body =
      full.format === 'Native'
        ? writeEventsBlock(
            full.blocks.map((block) => ({ block, from: 0, to: block.rows })),
            joinedBlocks,
          )
        : Buffer.concat(full.bodies)
    startInsert(async () => {
      await insertBatch(full.token, full.rows, body, full.format, control, { ...where, parts: full.count })
      // Not a group a re-run started over meanwhile under the same key.
      if (st.open.get(key) === full) dropOpen(st, key)
      noteBuffered()
      // Its handler has returned: commit now rather than at the next lag poll.
      if (!st.active && !stopping.signal.aborted)
        await commitIdle().catch((err: unknown) => log.warn({ error: (err as Error).message }, 'offset commit failed'))
    })
  }

  const handleMessage = async (batch: IncomingBatch, st: PartitionState, m: IncomingMessage, control: BatchControl) => {
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
      // The file's events are stored before its ledger row.
      await settle(control, true)
      await untilDone('ledger write', control, { ...where, fileId: record.fileId }, () => recordFile(store, record))
      summary.files++
      return
    }
    await handleEvents(st, Number(m.offset), decoded, control, where)
  }

  /** Gives up incomplete batches whose producer went silent; true when one was dropped. */
  const abandonStale = (partition: number, st: PartitionState): boolean => {
    let dropped = false
    for (const [key, b] of st.open) {
      if (b.inserting || now() - b.touchedAt < abandonAfterMs) continue
      dropOpen(st, key)
      dropped = true
      summary.abandoned++
      log.warn(
        {
          partition,
          fileId: b.fileId,
          batchNo: b.batchNo,
          partsIn: b.bodies.length,
          parts: b.parts,
          firstOffset: b.firstOffset,
        },
        'incomplete batch given up: its sensor stopped mid-batch (a re-run of the sensor publishes it again)',
      )
    }
    return dropped
  }

  /** The next offset to read: below every open batch and the message in hand. */
  const commitPoint = (st: PartitionState): number => {
    let c = st.nextOffset
    for (const b of st.open.values()) c = Math.min(c, b.firstOffset)
    return c
  }

  const handler = async (batch: IncomingBatch, control: BatchControl) => {
    const { partition } = batch
    const st = state(partition)
    st.active = true
    let lastCommit = now()
    const commit = async () => {
      const offset = commitPoint(st)
      if (offset < 0 || offset === st.committed) return
      lastCommit = now()
      try {
        await control.commit(String(offset))
        st.committed = offset
      } catch (err) {
        // Lost the partition or the broker: the next owner re-reads from the previous commit and
        // the tokens absorb the repeats.
        log.warn({ partition, offset, error: (err as Error).message }, 'offset commit failed')
      }
    }
    inHand = batch.messages.reduce((n, m) => n + (m.value?.length ?? 0), 0)
    noteBuffered()
    try {
      for (const m of batch.messages) {
        if (stopping.signal.aborted || !control.isRunning() || control.isStale()) break
        await handleMessage(batch, st, m, control)
        metrics?.kafkaMessages.inc({ direction: 'consumed' })
        control.resolveOffset(m.offset)
        st.nextOffset = Number(m.offset) + 1
        inHand -= m.value?.length ?? 0
        abandonStale(partition, st)
        noteBuffered()
        if (now() - lastCommit >= commitIntervalMs) await commit()
      }
    } catch (err) {
      if (!(err instanceof Stopped)) {
        await commit()
        throw err
      }
    } finally {
      inHand = 0
      st.active = false
      noteBuffered()
    }
    // Stopping: the insert in hand finishes and is committed before the worker leaves.
    if (stopping.signal.aborted || !control.isRunning()) await allInserts()
    await commit()
    // The rest of a stale batch is another member's now: it re-reads from the commit.
    if (control.isStale()) partitions.delete(partition)
  }

  // Lag and idleness, read from the broker: committed offsets against high watermarks of the
  // partitions this member owns.
  let assignment: Map<string, number[]> | null = null
  /** Since when this member has had no assignment (started, or rebalancing). */
  let unassignedSince = now()
  let lagTotal = -1
  let idleSince: number | undefined
  let lagTimer: NodeJS.Timeout | undefined
  let reportTimer: NodeJS.Timeout | undefined
  const reported = new Set<number>()
  /** Events of replaced consumers are ignored. */
  let generation = 0
  let restarting = false

  const quietDisconnect = async (c: KafkaConsumer) => {
    let timer: NodeJS.Timeout | undefined
    try {
      // kafkajs can wait forever on a member that lost its coordinator.
      await Promise.race([c.disconnect(), new Promise((r) => (timer = setTimeout(r, 10_000)))])
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'consumer disconnect failed')
    } finally {
      clearTimeout(timer)
    }
  }

  const startConsumer = async () => {
    const gen = ++generation
    const c = transport.consumer(consumerOptions)
    consumer = c
    assignment = null
    unassignedSince = now()
    c.onAssignment((a) => {
      if (gen !== generation) return
      assignment = a
      idleSince = undefined
      if (!a) unassignedSince = now()
      // After a join kafkajs fetches from the committed offsets: open batches are rebuilt.
      partitions.clear()
      inHand = 0
      noteBuffered()
      if (a) log.info({ partitions: a.get(topic) ?? [] }, 'partitions assigned')
      options.onAssignment?.(a?.get(topic) ?? [])
    })
    c.onFatal((err) => {
      if (gen !== generation) return
      log.error({ error: err.message }, 'the Kafka consumer gave up: starting a new one')
      void restartConsumer()
    })
    try {
      await c.connect()
      await c.subscribe(topic, true)
      await c.run(handler)
    } catch (err) {
      await quietDisconnect(c)
      throw isTeitenError(err) ? err : wrapError(err, 'KAFKA_UNAVAILABLE')
    }
  }

  /** Replaces a consumer kafkajs gave up on or that is stuck; state is rebuilt from the commits. */
  const restartConsumer = async () => {
    if (restarting || stopping.signal.aborted) return
    restarting = true
    summary.consumerRestarts++
    const old = consumer
    generation++
    assignment = null
    idleSince = undefined
    partitions.clear()
    await quietDisconnect(old)
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        await startConsumer()
        break
      } catch (err) {
        const delayMs = Math.round(backoffDelay(attempt, { initialMs: 1000, maxMs: 30_000 }, random))
        log.warn({ attempt, delayMs, error: (err as Error).message }, 'cannot start a Kafka consumer: retrying')
        await new Promise<void>((r) => {
          const t = setTimeout(r, delayMs)
          stopping.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t)
              r()
            },
            { once: true },
          )
        })
      }
    }
    restarting = false
  }

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
    await allInserts()
    await commitIdle().catch((err: unknown) =>
      log.warn({ error: (err as Error).message }, 'offset commit failed while stopping'),
    )
    await quietDisconnect(consumer)
    resolveDone()
  }

  /**
   * Commits partitions no handler is working on (no new messages): a commit that failed, the
   * point an abandoned batch held back, or a group whose insert finished after its handler.
   */
  const commitIdle = async () => {
    for (const [partition, st] of partitions) {
      if (st.active) continue
      if (abandonStale(partition, st)) noteBuffered()
      const offset = commitPoint(st)
      if (offset >= 0 && offset !== st.committed) {
        await consumer.commit([{ topic, partition, offset: String(offset) }])
        st.committed = offset
      }
    }
  }

  const pollLag = async () => {
    if (stopping.signal.aborted) return
    try {
      if (!assignment && !restarting && now() - unassignedSince > joinTimeoutMs) {
        log.warn(
          { ms: Math.round(now() - unassignedSince) },
          'no partitions assigned for too long: starting a new Kafka consumer',
        )
        void restartConsumer()
      }
      const owned = assignment?.get(topic)
      await commitIdle()
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
        if (total === 0 && buffered() === 0) idleSince ??= now()
        else idleSince = undefined
      } else if (assignment) {
        // A member with no partition (more sinks than partitions) has nothing to catch up on.
        lagTotal = 0
        idleSince ??= now()
      } else idleSince = undefined
      if (
        options.exitWhenIdleMs !== undefined &&
        idleSince !== undefined &&
        now() - idleSince >= options.exitWhenIdleMs
      ) {
        log.info({ idleMs: Math.round(now() - idleSince) }, 'caught up: exiting')
        void stop('idle')
        return
      }
    } catch (err) {
      // Unknown is not idle: a broker restart must not look like a caught-up topic.
      idleSince = undefined
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
        batches: summary.batches,
        messages: summary.messages,
        bufferedBytes: buffered(),
        files: summary.files,
        parked: summary.parked,
        lag: lagTotal,
        partitions: assignment?.get(topic) ?? [],
      },
      'sink progress',
    )
  }

  try {
    await withStartupRetries('starting the consumer', startConsumer)
  } catch (err) {
    await dlq?.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
    throw err
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
  log.info({ ...summary }, 'sink stopped')
  return summary
}
