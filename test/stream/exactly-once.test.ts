/**
 * Exactly-once in effect, end to end with the real CLI: `teiten ingest --kafka` (sensors) and
 * `teiten sink` (storage workers) as separate processes, on the real broker and embedded chDB.
 * Every scenario ends with a data directory whose fingerprint (counts and hashes of events, the
 * three aggregates and the file ledger: test/stream/fingerprint.mjs) equals that of a direct
 * `teiten ingest --data` of the same captures.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { type KafkaTransport, kafkajsTransport } from '../../stream/kafka.js'
import { tempDir } from '../helpers/tmp.js'
import { privateKafka, type TestKafka, testKafka } from './kafka-helper.js'
import {
  type Corpus,
  type Fingerprint,
  fingerprint,
  makeCorpus,
  sleep,
  teiten,
  teitenOk,
  uniqueName,
  waitFor,
  within,
} from './stream-helper.js'

const murmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (
  key: string,
) => number
const partitionOf = (key: string, partitions = 8) => (murmur2(key) & 0x7fffffff) % partitions

const dir = tempDir('teiten-eo-')
let k: TestKafka
let corpus: Corpus
let baseline: Fingerprint
let startError: unknown = null

beforeAll(async () => {
  try {
    // Sensor names whose partitions fall in both halves of 8: with two sinks in a group (range
    // assignment, 0-3 and 4-7) both get data in the scale-out test.
    let prefix = ''
    for (let i = 0; ; i++) {
      const parts = ['a', 'b', 'c'].map((s) => partitionOf(`eo${i}-sensor-${s}`))
      if (new Set(parts).size === 3 && parts.some((p) => p < 4) && parts.some((p) => p >= 4)) {
        prefix = `eo${i}`
        break
      }
    }
    const [kafka, c] = await Promise.all([
      testKafka(),
      makeCorpus(join(dir.path, 'corpus'), { seed: 4242, kept: 400_000, prefix, days: 3 }),
    ])
    k = kafka
    corpus = c
    // The store made first by another command, as a Kafka deployment's store is made by `teiten
    // sink`: its file ids are SHA-256, the sensors' scheme (a store that `teiten ingest` makes
    // names files by XXH3-128: docs/operations.md, File identity).
    await teitenOk(['daily', '--data', join(dir.path, 'baseline')])
    await teitenOk(['ingest', corpus.dir, '--data', join(dir.path, 'baseline'), '--no-progress'])
    baseline = await fingerprint(join(dir.path, 'baseline'))
    expect(Number(baseline.events!.n_rows)).toBeGreaterThan(350_000)
    expect(baseline.events!.n_distinct).toBe(baseline.events!.n_rows)
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

async function committedAndEnd(transport: KafkaTransport, topic: string, group: string) {
  const admin = transport.admin()
  await admin.connect()
  try {
    const [ends, committed] = await Promise.all([admin.topicOffsets(topic), admin.groupOffsets(group, topic)])
    return {
      committed: [...committed.values()].reduce((n, o) => n + Math.max(0, o), 0),
      end: ends.reduce((n, e) => n + e.high, 0),
    }
  } finally {
    await admin.disconnect()
  }
}

describe('exactly once, with the CLI processes', () => {
  it('(a) a sink killed with SIGKILL mid-stream, restarted with --exit-when-idle: same data as a direct ingest', async () => {
    const brokers = k.brokers.join(',')
    const topic = uniqueName('eo-kill')
    const group = uniqueName('eo-kill')
    const sinkDir = join(dir.path, 'sink-kill')
    await teitenOk([
      'ingest',
      corpus.dir,
      '--kafka',
      brokers,
      '--topic',
      topic,
      '--data',
      join(dir.path, 'sensor-kill'),
      '--no-progress',
    ])
    const transport = kafkajsTransport({ brokers: k.brokers, clientId: 'eo-test', logger: silentLogger })

    // A short session: the restarted sink gets the dead one's partitions after 6 s, not 15.
    const common = [
      '--kafka',
      brokers,
      '--topic',
      topic,
      '--group',
      group,
      '--data',
      sinkDir,
      '--session-timeout',
      '6000',
    ]
    const first = teiten(['sink', ...common])
    const atKill = await waitFor('a first commit', async () => {
      const o = await committedAndEnd(transport, topic, group)
      return o.committed > 0 ? o : undefined
    })
    first.child.kill('SIGKILL')
    const killed = await first.done
    expect(killed.signal).toBe('SIGKILL')
    // Killed in the middle: some offsets committed, not all.
    expect(atKill.committed).toBeLessThan(atKill.end)

    const second = await teiten(['sink', ...common, '--exit-when-idle', '1500']).done
    expect(second.code, second.stderr).toBe(0)
    expect(second.stderr).toMatch(/caught up/)
    const after = await committedAndEnd(transport, topic, group)
    expect(after.committed).toBe(after.end)
    expect(await fingerprint(sinkDir)).toEqual(baseline)
  }, 180_000)

  it('(b) the broker restarted mid-stream: sensor and sink carry on, same data as a direct ingest', async () => {
    const pk = await privateKafka()
    try {
      const brokers = pk.brokers.join(',')
      const topic = uniqueName('eo-restart')
      const group = uniqueName('eo-restart')
      const sinkDir = join(dir.path, 'sink-restart')
      const sensorDir = join(dir.path, 'sensor-restart')
      const transport = kafkajsTransport({ brokers: pk.brokers, clientId: 'eo-test', logger: silentLogger })
      const sink = teiten([
        'sink',
        '--kafka',
        brokers,
        '--topic',
        topic,
        '--group',
        group,
        '--data',
        sinkDir,
        '--exit-when-idle',
        '3000',
      ])
      const sensor = teiten([
        'ingest',
        corpus.dir,
        '--kafka',
        brokers,
        '--topic',
        topic,
        '--data',
        sensorDir,
        '--no-progress',
      ])
      // Restart once the sensor has published some messages. The probe gives up a request
      // quickly (kafkajs' default retries of a missing topic back off for up to two minutes),
      // and a sensor that exits before publishing fails the test with its own error instead of
      // a bare timeout (that is how a sensor giving up on topic creation showed, see
      // producer.test.ts).
      const probe = kafkajsTransport({ brokers: pk.brokers, clientId: 'eo-probe', logger: silentLogger, retries: 1 })
      await waitFor(
        'the first published messages',
        async () => {
          const o = await committedAndEnd(probe, topic, group).catch(() => undefined)
          if (o && o.end > 0) return true
          if (sensor.child.exitCode === 0) return true
          if (sensor.child.exitCode !== null)
            throw new Error(
              `the sensor exited ${sensor.child.exitCode} before publishing:\n${sensor.stderr().slice(-2000)}`,
            )
          return undefined
        },
        120_000,
      )
      await pk.own!.restart()
      let produced = await sensor.done
      if (produced.code !== 0) {
        // The operator's answer to a sensor that gave up: run it again (the ledger did not
        // claim the unfinished files; the sinks absorb what is published twice).
        console.log(
          `sensor exited ${produced.code} across the restart; running it again:\n${produced.stderr.slice(-800)}`,
        )
        produced = await teiten([
          'ingest',
          corpus.dir,
          '--kafka',
          brokers,
          '--topic',
          topic,
          '--data',
          sensorDir,
          '--no-progress',
        ]).done
      }
      expect(produced.code, produced.stderr).toBe(0)
      const stored = await within(sink, 150_000)
      const notable = stored.stderr
        .split('\n')
        .filter((l) => !l.includes('"level":30') || /assigned|exiting|stopped|crash/i.test(l))
        .join('\n')
      expect(stored.code, notable.slice(-6000)).toBe(0)
      const after = await committedAndEnd(transport, topic, group)
      expect(after.committed).toBe(after.end)
      expect(await fingerprint(sinkDir)).toEqual(baseline)
    } finally {
      await pk.close()
    }
  }, 240_000)

  it('(e) scale-out: two sink processes share the group and one store (the second through the first), three sensors at once', async () => {
    const brokers = k.brokers.join(',')
    const topic = uniqueName('eo-scale')
    const group = uniqueName('eo-scale')
    const sinkDir = join(dir.path, 'sink-scale')
    const transport = kafkajsTransport({ brokers: k.brokers, clientId: 'eo-test', logger: silentLogger })
    const args = [
      'sink',
      '--kafka',
      brokers,
      '--topic',
      topic,
      '--group',
      group,
      '--data',
      sinkDir,
      '--log-level',
      'info',
    ]
    const holder = teiten(args)
    // The holder owns the embedded directory before the second sink opens it (and delegates).
    await waitFor('the first sink to hold the store', async () =>
      /partitions assigned/.test(holder.stderr()) ? true : undefined,
    )
    const delegate = teiten(args)
    const assigned = (run: ReturnType<typeof teiten>) => {
      const lines = run
        .stderr()
        .split('\n')
        .filter((l) => l.includes('"partitions assigned"'))
      const last = lines.at(-1)
      return last ? (JSON.parse(last).partitions as number[]) : []
    }
    await waitFor('both sinks to hold partitions', async () => {
      const a = assigned(holder)
      const b = assigned(delegate)
      return a.length > 0 && b.length > 0 && a.length + b.length === 8 ? true : undefined
    })
    expect(delegate.stderr()).toMatch(/working through it/)

    const sensors = corpus.sensors.map((s) =>
      teiten([
        'ingest',
        join(corpus.dir, s),
        '--kafka',
        brokers,
        '--topic',
        topic,
        '--data',
        join(dir.path, `sensor-scale-${s}`),
        '--no-progress',
      ]),
    )
    for (const s of sensors) {
      const r = await s.done
      expect(r.code, r.stderr).toBe(0)
    }
    await waitFor(
      'the group to catch up',
      async () => {
        const o = await committedAndEnd(transport, topic, group)
        return o.committed === o.end ? true : undefined
      },
      120_000,
    )
    // The one working through the other stops first.
    delegate.child.kill('SIGTERM')
    const d = await delegate.done
    expect(d.code, d.stderr).toBe(0)
    holder.child.kill('SIGTERM')
    const h = await holder.done
    expect(h.code, h.stderr).toBe(0)
    const rows = (r: { stderr: string }) => Number(/stored (\d+) events/.exec(r.stderr)?.[1] ?? -1)
    expect(rows(d)).toBeGreaterThan(0)
    expect(rows(h)).toBeGreaterThan(0)
    expect(rows(d) + rows(h)).toBeGreaterThanOrEqual(Number(baseline.events!.n_rows))
    await sleep(100)
    expect(await fingerprint(sinkDir)).toEqual(baseline)
  }, 240_000)
})
