/**
 * The watcher's sink is pluggable: `ingest --watch --kafka` publishes each complete file once
 * (Kafka metrics included), a restart republishes nothing, and `teiten sink` stores every event
 * exactly once. Uses the suite's broker (TEITEN_TEST_KAFKA_BROKERS) or starts a private one.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type TestKafka, testKafka } from '../stream/kafka-helper.js'
import {
  addTruth,
  emptyTruth,
  generate,
  gzip,
  logLines,
  pcap,
  runCli,
  startCli,
  tempDir,
  writeCapture,
} from './helpers.js'

const work = tempDir('teiten-kafka-watch-')
let kafka: TestKafka
beforeAll(async () => {
  kafka = await testKafka()
}, 180_000)
afterAll(async () => {
  await kafka?.close()
  work.cleanup()
})

it('publishes each complete file once, and the Kafka sink stores every event once', async () => {
  const spool = join(work.path, 'spool')
  const a = generate({ seed: 80, packets: 3000 })
  const b = generate({ seed: 81, packets: 2000, startSec: Date.UTC(2024, 0, 2) / 1000 })
  writeCapture(join(spool, 'tokyo', 'a.pcap'), pcap(a.packets))
  writeCapture(join(spool, 'osaka', 'b.pcap.gz'), gzip(pcap(b.packets)))
  const truth = addTruth(addTruth(emptyTruth(), a.truth), b.truth)
  const config = join(work.path, 'poll.yaml')
  writeFileSync(config, 'watch: { pollIntervalMs: 50, settleMs: 0 }\n')
  const topic = `teiten-ops-${randomBytes(4).toString('hex')}`
  const brokers = kafka.brokers.join(',')
  const args = ['ingest', '--watch', spool, '--kafka', brokers, '--topic', topic, '--data', join(work.path, 'sensor')]

  const run = startCli([...args, '--config', config, '--metrics-port', '0'])
  const { endpoint } = JSON.parse(await run.waitFor(/"metrics served"/)) as { endpoint: string }
  while (logLines(run.stderr()).filter((l) => l.msg === 'file ingested').length < 2) {
    await run.waitFor(/"file ingested"/)
    await new Promise((r) => setTimeout(r, 50))
  }
  const text = await (await fetch(endpoint)).text()
  const value = (series: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${series} `))
        ?.split(' ')[1],
    )
  expect(value('teiten_sink_rows_total{sink="kafka"}')).toBe(truth.kept)
  expect(value('teiten_batch_insert_seconds_count{sink="kafka"}')).toBe(2)
  expect(value('teiten_kafka_messages_total{direction="produced"}')).toBeGreaterThanOrEqual(4) // 2 batches, 2 file records
  run.child.kill('SIGTERM')
  expect((await run.done).code).toBe(0)

  // Restarted: both files are answered by the state file and the local ledger, nothing is sent.
  const again = startCli([...args, '--config', config, '--log-level', 'debug'])
  while (logLines(again.stderr()).filter((l) => l.msg === 'already ingested (state file): skipped').length < 2) {
    await again.waitFor(/already ingested \(state file\)/)
    await new Promise((r) => setTimeout(r, 50))
  }
  again.child.kill('SIGTERM')
  const second = await again.done
  expect(second.code).toBe(0)
  expect(logLines(second.stderr).filter((l) => l.msg === 'file ingested')).toEqual([])
  const stopped = logLines(second.stderr).find((l) => l.msg === 'spool watch stopped')
  expect(stopped).toMatchObject({ ingested: 0, skippedFromState: 2 })

  const data = join(work.path, 'store')
  const sink = await runCli([
    'sink',
    '--kafka',
    brokers,
    '--topic',
    topic,
    '--group',
    `${topic}-g`,
    '--data',
    data,
    '--exit-when-idle',
    '1500',
  ])
  expect(sink.code, sink.stderr).toBe(0)
  const daily = await runCli(['daily', '--data', data, '--by', 'day', '--all', '--format', 'json'])
  expect(daily.code, daily.stderr).toBe(0)
  const rows = JSON.parse(daily.stdout) as { packets: number }[]
  expect(rows.reduce((n, r) => n + Number(r.packets), 0)).toBe(truth.kept)
}, 120_000)
