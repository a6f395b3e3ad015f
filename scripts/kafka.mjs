#!/usr/bin/env node
// Local Kafka for development: `node scripts/kafka.mjs start|stop|status|restart|logs|fetch`.
//
// Environment: TEITEN_KAFKA_DIR (data, config, log, pid; default .kafka/), TEITEN_KAFKA_PORT
// (default 9092; the controller listens on PORT+1 or TEITEN_KAFKA_CONTROLLER_PORT),
// TEITEN_KAFKA_VERSION, TEITEN_KAFKA_CACHE (jars; default .cache/kafka/), TEITEN_KAFKA_HEAP
// (default 512m), TEITEN_KAFKA_START_TIMEOUT (seconds, default 120), TEITEN_KAFKA_JAVA_OPTS.
import { relative } from 'node:path'
import {
  brokerStatus,
  DEFAULT_HOST,
  ensureKafka,
  envOptions,
  logTail,
  paths,
  probeBroker,
  startBroker,
  stopBroker,
} from './kafka-broker.mjs'

const USAGE = `usage: node scripts/kafka.mjs <command>

  start    fetch Kafka if needed (first run: Maven Central), format storage, start the broker
           in the background and wait until it accepts clients
  stop     stop the broker (SIGTERM, then SIGKILL after 30 s); does nothing when none runs
  restart  stop, then start
  status   say whether the broker runs (exit 0) or not (exit 3)
  logs     print the end of the broker log
  fetch    only fetch the jars into the cache`

const rel = (p) => relative(process.cwd(), p) || '.'
const say = (msg) => process.stderr.write(`kafka: ${msg}\n`)

async function start(o) {
  const st = brokerStatus(o.dir)
  if (st && !st.stale) {
    say(`already running (pid ${st.pid}, ${DEFAULT_HOST}:${st.port}, Kafka ${st.version})`)
    console.log(`${DEFAULT_HOST}:${st.port}`)
    return 0
  }
  const t0 = Date.now()
  const b = await startBroker({ ...o, detached: true, log: say })
  const total = ((Date.now() - t0) / 1000).toFixed(1)
  say(
    `Kafka ${b.version} ready on ${b.brokers[0]} (pid ${b.pid}) in ${total} s` +
      (b.fetched ? ` (fetch ${(b.fetchMs / 1000).toFixed(1)} s, broker ${(b.startMs / 1000).toFixed(1)} s)` : '') +
      `; data ${rel(b.dir)}, log ${rel(b.logFile)}`,
  )
  console.log(b.brokers[0])
  return 0
}

async function main(argv) {
  const cmd = argv[2]
  const o = envOptions()
  switch (cmd) {
    case 'start':
      return start(o)
    case 'stop': {
      const st = brokerStatus(o.dir)
      const stopped = await stopBroker({ dir: o.dir })
      say(stopped ? `stopped (pid ${st?.pid})` : 'not running')
      return 0
    }
    case 'restart':
      await stopBroker({ dir: o.dir })
      return start(o)
    case 'status': {
      const st = brokerStatus(o.dir)
      if (!st || st.stale) {
        say(`not running${st?.stale ? ' (stale pid file)' : ''} (${rel(o.dir)})`)
        return 3
      }
      const probe = await probeBroker(DEFAULT_HOST, st.port)
      say(
        `running: pid ${st.pid}, Kafka ${st.version}, ${DEFAULT_HOST}:${st.port}, since ${st.started}, ` +
          (probe ? `serving (brokers ${probe.brokers.join(', ')})` : 'NOT answering clients') +
          `; log ${rel(paths(o.dir).logFile)}`,
      )
      return probe ? 0 : 1
    }
    case 'logs':
      console.log(logTail(paths(o.dir).logFile, Number(argv[3]) || 60))
      return 0
    case 'fetch': {
      const r = ensureKafka({ version: o.version, cacheDir: o.cacheDir, log: say })
      if (!r.fetched) say(`Kafka ${o.version} already cached in ${rel(r.libDir)}`)
      return 0
    }
    default:
      console.error(USAGE)
      return cmd === undefined || cmd === '-h' || cmd === '--help' ? 0 : 2
  }
}

main(process.argv).then(
  (code) => process.exit(code),
  (err) => {
    say(`error: ${err?.message ?? err}`)
    process.exit(1)
  },
)
