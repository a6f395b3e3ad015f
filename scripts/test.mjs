#!/usr/bin/env node
// The whole test suite, as the README and .ci/run call it: build, start a real Kafka broker,
// run every test, stop the broker. A broker that cannot start fails the run: Kafka tests
// are never skipped.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)
const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  console.error(
    `teiten tests need Node 24 (the project's node_modules/.bin/node); this is ${process.version}. Run them with npm test.`,
  )
  process.exit(1)
}

if (run(bin('tsc'), ['-p', '.']) !== 0) process.exit(1)

const port = process.env.TEITEN_KAFKA_PORT ?? '19092'
const brokers = `127.0.0.1:${port}`
const kafkaEnv = { TEITEN_KAFKA_PORT: port, TEITEN_KAFKA_DIR: join(root, '.kafka', 'test') }
if (run(process.execPath, [join(root, 'scripts', 'kafka.mjs'), 'start'], kafkaEnv) !== 0) {
  console.error('teiten: the Kafka broker did not start; the Kafka tests cannot run, so the suite fails.')
  process.exit(1)
}
let status = 1
try {
  const report = join(root, 'test-output', 'vitest.json')
  status = run(
    bin('vitest'),
    ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
    { ...kafkaEnv, TEITEN_TEST_KAFKA_BROKERS: brokers },
  )
  try {
    // The plain closing line CI reads, whatever the runner prints above it.
    const r = JSON.parse(readFileSync(report, 'utf8'))
    console.log(
      `tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`,
    )
  } catch {}
} finally {
  run(process.execPath, [join(root, 'scripts', 'kafka.mjs'), 'stop'], kafkaEnv)
}
process.exit(status)
