/**
 * Configuration through the built CLI (`npm run build` first): every setting of the schema can be
 * given in the config file, in its TEITEN_* variable and as its flag, and `config print` shows
 * the merged result; an invalid setting is reported in one line, exit 2, CONFIG_INVALID, naming
 * where it came from: the file (path and key), the environment variable, or the flag.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { stringify as toYaml } from 'yaml'
import { CONFIG_KEYS } from '../../core/config.js'
import { runCli, tempDir } from './helpers.js'

const work = tempDir('teiten-config-')
afterAll(() => work.cleanup())

let fileNo = 0
function configFile(text: string): string {
  const path = join(work.path, `teiten-${fileNo++}.yaml`)
  writeFileSync(path, text)
  return path
}

/** A valid value of every setting, unlike its default. */
const SAMPLE: Record<string, unknown> = {
  dataDir: '/srv/teiten',
  clickhouseUrl: 'http://ch.example:8123/teiten',
  geoip: '/srv/GeoLite2-Country.mmdb',
  sensor: 'tokyo-1',
  retentionDays: 90,
  'log.level': 'debug',
  'log.format': 'pretty',
  'kafka.brokers': ['k1.example:9092', 'k2.example:9092'],
  'kafka.topic': 'ntp.events',
  'kafka.group': 'sinks',
  'kafka.clientId': 'sensor-7',
  'serve.host': '0.0.0.0',
  'serve.port': 9000,
  'serve.token': 'a-secret-token',
  metricsPort: 9464,
  sensorsFile: '/srv/sensors.yaml',
  'watch.settleMs': 12_000,
  'watch.pollIntervalMs': 250,
  'report.outDir': '/srv/reports',
  'report.at': '07:30',
}

const text = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v))

function nested(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [path, value] of entries) {
    const keys = path.split('.')
    let at = out
    for (const k of keys.slice(0, -1)) {
      at[k] ??= {}
      at = at[k] as Record<string, unknown>
    }
    at[keys[keys.length - 1]!] = value
  }
  return out
}

async function printed(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await runCli(['config', 'print', '--format', 'json', ...args], env)
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

function valueAt(config: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((at, k) => (at as Record<string, unknown>)?.[k], config)
}

describe('every setting', () => {
  it('has a sample here (a new setting needs one, and an env var and a flag)', () => {
    expect(Object.keys(SAMPLE).sort()).toEqual(CONFIG_KEYS.map((k) => k.path).sort())
    expect(new Set(CONFIG_KEYS.map((k) => k.env)).size).toBe(CONFIG_KEYS.length)
    expect(new Set(CONFIG_KEYS.map((k) => k.flag)).size).toBe(CONFIG_KEYS.length)
  })

  const expectAll = (config: Record<string, unknown>) => {
    for (const [path, value] of Object.entries(SAMPLE)) {
      expect({ path, value: valueAt(config, path) }).toEqual({
        path,
        value: path === 'serve.token' ? '***' : value,
      })
    }
  }

  it('is read from the config file', async () => {
    expectAll(await printed(['--config', configFile(toYaml(nested(Object.entries(SAMPLE))))]))
  })

  it('is read from its environment variable', async () => {
    const env = Object.fromEntries(CONFIG_KEYS.map((k) => [k.env, text(SAMPLE[k.path])]))
    expectAll(await printed([], env))
  })

  it('is read from its flag', async () => {
    expectAll(await printed(CONFIG_KEYS.flatMap((k) => [k.flag, text(SAMPLE[k.path])])))
  })

  it('has its flag on the commands that use it', async () => {
    const uses: [string, string[]][] = [
      [
        'ingest',
        [
          'geoip',
          'sensor',
          'retentionDays',
          'kafka.brokers',
          'kafka.topic',
          'kafka.clientId',
          'metricsPort',
          'watch.settleMs',
          'watch.pollIntervalMs',
        ],
      ],
      ['sink', ['kafka.brokers', 'kafka.topic', 'kafka.group', 'kafka.clientId', 'metricsPort', 'retentionDays']],
      ['serve', ['serve.host', 'serve.port', 'serve.token', 'sensorsFile']],
      ['schedule', ['report.outDir', 'report.at']],
      ['report', ['report.outDir']],
    ]
    for (const [command, paths] of uses) {
      const help = (await runCli([command, '--help'])).stdout
      for (const path of [...paths, 'dataDir', 'clickhouseUrl', 'log.level', 'log.format']) {
        const flag = CONFIG_KEYS.find((k) => k.path === path)!.flag
        expect({ command, flag, listed: help.includes(`${flag} `) }).toEqual({ command, flag, listed: true })
      }
    }
  })

  it('is taken from the flag over the environment over the file', async () => {
    const file = configFile('watch: { pollIntervalMs: 5 }\n') // invalid, but overridden
    const env = { TEITEN_POLL_INTERVAL_MS: '300' }
    expect(valueAt(await printed(['--config', file], env), 'watch.pollIntervalMs')).toBe(300)
    const flag = await printed(['--config', file, '--poll-interval-ms', '400'], env)
    expect(valueAt(flag, 'watch.pollIntervalMs')).toBe(400)
  })
})

describe('an invalid setting', () => {
  const never = join(work.path, 'never')
  // [what, config file text or null, env, flags, what stderr names]
  const cases: [string, string | null, Record<string, string>, string[], string[]][] = [
    ['unknown top-level key in the file', 'dataDri: /x\n', {}, [], ['dataDri', 'unknown key']],
    ['unknown nested key in the file', 'watch: { settle: 5 }\n', {}, [], ['watch.settle', 'unknown key']],
    ['wrong type in the file', 'watch: { pollIntervalMs: fast }\n', {}, [], ['watch.pollIntervalMs', '"fast"']],
    ['out of range in the file', 'serve: { port: 70000 }\n', {}, [], ['serve.port']],
    ['bad enum in the file', 'log: { level: loud }\n', {}, [], ['log.level']],
    ['unparsable file', 'log:\n  level: [\n', {}, [], ['cannot parse']],
    ['malformed number in the env', null, { TEITEN_POLL_INTERVAL_MS: 'fast' }, [], ['TEITEN_POLL_INTERVAL_MS']],
    ['out of range in the env', null, { TEITEN_SERVE_PORT: '70000' }, [], ['TEITEN_SERVE_PORT', 'serve.port']],
    ['bad enum in the env', null, { TEITEN_LOG_LEVEL: 'loud' }, [], ['TEITEN_LOG_LEVEL']],
    ['bad broker in the env', null, { TEITEN_KAFKA_BROKERS: 'nohost' }, [], ['TEITEN_KAFKA_BROKERS']],
    ['env over a valid file', 'retentionDays: 3\n', { TEITEN_RETENTION_DAYS: '-1' }, [], ['TEITEN_RETENTION_DAYS']],
    ['too small a flag', null, {}, ['--poll-interval-ms', '10'], ['--poll-interval-ms', 'watch.pollIntervalMs']],
    ['malformed number flag', null, {}, ['--settle-ms', 'soon'], ['--settle-ms', '"soon"']],
    ['bad enum flag', null, {}, ['--log-format', 'xml'], ['--log-format']],
    ['bad URL flag', null, {}, ['--clickhouse', 'not a url'], ['--clickhouse']],
    ['flag over a valid env', null, { TEITEN_METRICS_PORT: '9100' }, ['--metrics-port', '70000'], ['--metrics-port']],
  ]
  it.each(cases)('%s: one line naming its source, CONFIG_INVALID, exit 2', async (_what, file, env, flags, named) => {
    const path = file === null ? undefined : configFile(file)
    const config = path === undefined ? [] : ['--config', path]
    for (const args of [
      ['config', 'print', ...config, ...flags],
      ['ingest', '--watch', work.path, '--data', never, ...config, ...flags],
    ]) {
      const r = await runCli(args, env)
      expect({ args, code: r.code }).toEqual({ args, code: 2 })
      const lines = r.stderr.split('\n').filter(Boolean)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^teiten: .*\[CONFIG_INVALID\]$/)
      for (const n of named) expect(lines[0]).toContain(n)
      // The source and only it: the file's path only when the file is at fault.
      if (path !== undefined) expect(lines[0]!.includes(path)).toBe(Object.keys(env).length === 0 && flags.length === 0)
      for (const name of Object.keys(env)) {
        expect(lines[0]!.includes(name)).toBe(flags.length === 0)
      }
    }
  })
})
