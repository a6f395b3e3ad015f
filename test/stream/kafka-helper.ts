/**
 * A Kafka broker for stream tests: the one named by TEITEN_TEST_KAFKA_BROKERS (set by
 * scripts/test.mjs, which starts one broker for the whole suite) or TEITEN_KAFKA_BROKERS when
 * set, otherwise a private broker (scripts/kafka-broker.mjs) on free loopback ports in a
 * temporary folder, stopped and removed by close(). A broker that cannot start makes the
 * caller fail, never skip.
 */
import { rmSync } from 'node:fs'
import net from 'node:net'
import type { BrokerHandle } from '../../scripts/kafka-broker.mjs'
import { startBroker } from '../../scripts/kafka-broker.mjs'
import { tempDir } from '../helpers/tmp.js'

export interface TestKafka {
  brokers: string[]
  /** The private broker, or null when TEITEN_KAFKA_BROKERS names an outside one. */
  own: BrokerHandle | null
  close(): Promise<void>
}

/** A TCP port nobody listens on right now (loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** The brokers named by the environment, or null. */
export function outsideBrokers(): string[] | null {
  const list = (process.env.TEITEN_TEST_KAFKA_BROKERS || process.env.TEITEN_KAFKA_BROKERS || '').trim()
  return list ? list.split(',').map((s) => s.trim()) : null
}

/** The broker of the environment if there is one, else a private broker. */
export async function testKafka(): Promise<TestKafka> {
  const outside = outsideBrokers()
  if (outside) return { brokers: outside, own: null, close: async () => {} }
  return privateKafka()
}

/** Always a private broker (for tests that restart or stop it). */
export async function privateKafka(): Promise<TestKafka> {
  const dir = tempDir('teiten-kafka-')
  const port = await freePort()
  let controllerPort = await freePort()
  while (controllerPort === port) controllerPort = await freePort()
  try {
    const own = await startBroker({ dir: dir.path, port, controllerPort, log: (m) => console.log(`kafka: ${m}`) })
    return {
      brokers: own.brokers,
      own,
      close: async () => {
        await own.stop()
        rmSync(dir.path, { recursive: true, force: true })
      },
    }
  } catch (err) {
    dir.cleanup()
    throw err
  }
}
