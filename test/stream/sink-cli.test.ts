/**
 * `teiten sink` as the deployment runs it: usage errors, the /metrics endpoint the compose
 * healthcheck polls, lag and rows in the metrics, a graceful SIGTERM (exit 0), and the warning
 * about a store whose file ids are not its sensors'.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { REPO_ROOT } from '../../scripts/kafka-broker.mjs'
import { tempDir } from '../helpers/tmp.js'
import { freePort, type TestKafka, testKafka } from './kafka-helper.js'
import { makeCorpus, teiten, teitenOk, uniqueName, waitFor } from './stream-helper.js'

const dir = tempDir('teiten-sink-cli-')
let k: TestKafka
let startError: unknown = null

beforeAll(async () => {
  try {
    k = await testKafka()
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

describe('teiten sink (CLI)', () => {
  it('without brokers: a usage error, exit 2', async () => {
    const r = await teiten(['sink', '--data', join(dir.path, 'unused')]).done
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/needs --kafka/)
    const bad = await teiten(['sink', '--kafka', 'nohost', '--data', join(dir.path, 'unused')]).done
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/host:port/)
  })

  it('serves /metrics where the compose healthcheck looks, reports rows and lag, stops on SIGTERM with exit 0', async () => {
    // The compose healthcheck fetches the port the sink is told to serve metrics on.
    const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, unknown>; healthcheck?: { test: string[] } }>
    }
    const sinkService = compose.services['teiten-sink']!
    const port = String(sinkService.environment?.TEITEN_METRICS_PORT)
    expect(sinkService.healthcheck!.test.join(' ')).toContain(`http://127.0.0.1:${port}/metrics`)

    const c = await makeCorpus(join(dir.path, 'corpus'), { seed: 77, kept: 30_000, prefix: 'cli', days: 1, sensors: 2 })
    const brokers = k.brokers.join(',')
    const topic = uniqueName('sink-cli')
    await teitenOk([
      'ingest',
      c.dir,
      '--kafka',
      brokers,
      '--topic',
      topic,
      '--data',
      join(dir.path, 'sensor'),
      '--no-progress',
    ])
    const metricsPort = await freePort()
    const sink = teiten(
      ['sink', '--kafka', brokers, '--topic', topic, '--group', uniqueName('g'), '--data', join(dir.path, 'store')],
      {
        TEITEN_METRICS_PORT: String(metricsPort),
      },
    )
    const text = await waitFor('all rows in the metrics', async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).catch(() => undefined)
      if (!res?.ok) return undefined
      const body = await res.text()
      const lags = [...body.matchAll(/^teiten_kafka_consumer_lag\{[^}]*\} (\d+)$/gm)].map((m) => Number(m[1]))
      return lags.length === 8 &&
        lags.every((n) => n === 0) &&
        /teiten_sink_rows_total\{sink="store"\} [1-9]/.test(body)
        ? body
        : undefined
    })
    expect(text).toMatch(/teiten_kafka_sink_buffered_bytes 0/)
    expect(text).toMatch(/teiten_kafka_messages_parked_total\{reason="KAFKA_BAD_MESSAGE"\} 0/)
    sink.child.kill('SIGTERM')
    const r = await sink.done
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/teiten sink: stored \d+ events from \d+ messages, 2 file records \(stopped\)/)
    // The store this sink made names files as its sensors do: nothing to warn about.
    expect(r.stderr).not.toMatch(/XXH3-128/)
  }, 120_000)

  it('warns when it writes into a store teiten ingest made (file ids in another scheme than its sensors)', async () => {
    const c = await makeCorpus(join(dir.path, 'direct'), { seed: 78, kept: 2_000, prefix: 'dir', days: 1 })
    const store = join(dir.path, 'made-by-ingest')
    await teitenOk(['ingest', c.dir, '--data', store, '--no-progress'])
    const common = ['--kafka', k.brokers.join(','), '--topic', uniqueName('empty'), '--group', uniqueName('g')]
    const r = await teiten(['sink', ...common, '--data', store, '--exit-when-idle', '500']).done
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/names files by XXH3-128; Kafka sensors name them by SHA-256/)
  }, 120_000)
})
