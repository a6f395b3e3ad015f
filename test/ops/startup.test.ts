/**
 * What a command loads before it starts working. `teiten ingest` hashes its captures (their
 * identities, which every insert's token names) on a worker from the moment it knows the files;
 * whatever the CLI imports before that delays the first insert. Kafka, the dashboard's server,
 * the metrics registry and the ClickHouse client are loaded by the commands that use them, when
 * they use them (cli/main.ts).
 */
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BIN, cliEnv, generate, pcap, tempDir, writeCapture } from './helpers.js'

/** Loaded with --import: prints every module URL the process resolved, at exit. */
const RECORDER = `import { registerHooks } from 'node:module'
const seen = new Set()
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r } })
process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify([...seen]) + '\\n'))
`

function packagesLoaded(dir: string, args: string[]): { status: number | null; packages: Set<string>; stderr: string } {
  const recorder = join(dir, 'recorder.mjs')
  writeFileSync(recorder, RECORDER)
  const r = spawnSync(process.execPath, ['--import', recorder, BIN, ...args], { env: cliEnv(), encoding: 'utf8' })
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '))
  const urls = JSON.parse(line?.slice('LOADED '.length) ?? '[]') as string[]
  const packages = new Set<string>()
  for (const url of urls) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
    if (m) packages.add(m[1]!)
  }
  return { status: r.status, packages, stderr: r.stderr }
}

const LOADED_BY_THEIR_COMMANDS = ['kafkajs', 'fastify', 'prom-client', '@clickhouse/client', 'chdb']

describe('CLI startup', () => {
  it('teiten --version loads none of the store, Kafka, dashboard or metrics packages', () => {
    const dir = tempDir('teiten-startup-')
    try {
      const r = packagesLoaded(dir.path, ['--version'])
      expect(r.status).toBe(0)
      expect(r.packages.has('commander')).toBe(true) // the recorder saw the CLI's own imports
      for (const name of LOADED_BY_THEIR_COMMANDS) expect(r.packages.has(name), name).toBe(false)
    } finally {
      dir.cleanup()
    }
  })

  it('a one-shot ingest into the embedded store loads the store but neither Kafka, the dashboard nor metrics', () => {
    const dir = tempDir('teiten-startup-')
    try {
      const { packets } = generate({ seed: 5, packets: 50 })
      const file = writeCapture(join(dir.path, 's1', 'a.pcap'), pcap(packets))
      const r = packagesLoaded(dir.path, ['ingest', file, '--data', join(dir.path, 'data'), '--no-progress'])
      expect(r.status, r.stderr).toBe(0)
      expect(r.packages.has('@clickhouse/client')).toBe(true)
      for (const name of ['kafkajs', 'fastify', 'prom-client']) expect(r.packages.has(name), name).toBe(false)
    } finally {
      dir.cleanup()
    }
  })
})
