import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { TeitenError } from './errors.js'

/**
 * The one configuration schema. Sources, lowest precedence first: defaults, the file named by
 * --config (YAML or JSON), TEITEN_* environment variables, command-line flags. Unknown keys
 * are rejected so a typo never silently falls back to a default.
 */
export const ConfigSchema = z
  .object({
    dataDir: z.string().min(1).default('./teiten-data'),
    clickhouseUrl: z.string().url().optional(),
    geoip: z.string().min(1).optional(),
    sensor: z.string().min(1).max(128).optional(),
    retentionDays: z.number().int().min(0).optional(),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        format: z.enum(['json', 'pretty']).default('json'),
      })
      .strict()
      .default({ level: 'info', format: 'json' }),
    kafka: z
      .object({
        brokers: z.array(z.string().regex(/^[^:,\s]+:\d+$/, 'expected host:port')).optional(),
        topic: z.string().min(1).default('teiten.ntp.events'),
        group: z.string().min(1).default('teiten-sink'),
        clientId: z.string().min(1).default('teiten'),
      })
      .strict()
      .default({ topic: 'teiten.ntp.events', group: 'teiten-sink', clientId: 'teiten' }),
    serve: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        token: z.string().min(1).optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080 }),
    metricsPort: z.number().int().min(0).max(65535).optional(),
    /** Monitored addresses per sensor (YAML/JSON) for the dashboard's per-address measure. */
    sensorsFile: z.string().min(1).optional(),
    watch: z
      .object({
        settleMs: z.number().int().min(0).default(30_000),
        pollIntervalMs: z.number().int().min(50).default(1_000),
      })
      .strict()
      .default({ settleMs: 30_000, pollIntervalMs: 1_000 }),
    report: z
      .object({
        outDir: z.string().min(1).default('./reports'),
        at: z
          .string()
          .regex(/^\d{2}:\d{2}$/)
          .default('06:00'),
      })
      .strict()
      .default({ outDir: './reports', at: '06:00' }),
  })
  .strict()

export type Config = z.output<typeof ConfigSchema>
type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K]
}
export type ConfigInput = DeepPartial<Config>

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v
  }
  return out
}

/**
 * Where each setting can come from besides the config file: its TEITEN_* environment variable and
 * its command-line flag (the commands that use a setting accept its flag). Error messages name
 * these; docs/operations.md lists them.
 */
export const CONFIG_KEYS: readonly { path: string; env: string; flag: string; kind: 'string' | 'int' | 'list' }[] = [
  { path: 'dataDir', env: 'TEITEN_DATA', flag: '--data', kind: 'string' },
  { path: 'clickhouseUrl', env: 'TEITEN_CLICKHOUSE_URL', flag: '--clickhouse', kind: 'string' },
  { path: 'geoip', env: 'TEITEN_GEOIP', flag: '--geoip', kind: 'string' },
  { path: 'sensor', env: 'TEITEN_SENSOR', flag: '--sensor', kind: 'string' },
  { path: 'retentionDays', env: 'TEITEN_RETENTION_DAYS', flag: '--retention-days', kind: 'int' },
  { path: 'log.level', env: 'TEITEN_LOG_LEVEL', flag: '--log-level', kind: 'string' },
  { path: 'log.format', env: 'TEITEN_LOG_FORMAT', flag: '--log-format', kind: 'string' },
  { path: 'kafka.brokers', env: 'TEITEN_KAFKA_BROKERS', flag: '--kafka', kind: 'list' },
  { path: 'kafka.topic', env: 'TEITEN_KAFKA_TOPIC', flag: '--topic', kind: 'string' },
  { path: 'kafka.group', env: 'TEITEN_KAFKA_GROUP', flag: '--group', kind: 'string' },
  { path: 'kafka.clientId', env: 'TEITEN_KAFKA_CLIENT_ID', flag: '--kafka-client-id', kind: 'string' },
  { path: 'serve.host', env: 'TEITEN_SERVE_HOST', flag: '--host', kind: 'string' },
  { path: 'serve.port', env: 'TEITEN_SERVE_PORT', flag: '--port', kind: 'int' },
  { path: 'serve.token', env: 'TEITEN_TOKEN', flag: '--token', kind: 'string' },
  { path: 'metricsPort', env: 'TEITEN_METRICS_PORT', flag: '--metrics-port', kind: 'int' },
  { path: 'sensorsFile', env: 'TEITEN_SENSORS_FILE', flag: '--sensors', kind: 'string' },
  { path: 'watch.settleMs', env: 'TEITEN_SETTLE_MS', flag: '--settle-ms', kind: 'int' },
  { path: 'watch.pollIntervalMs', env: 'TEITEN_POLL_INTERVAL_MS', flag: '--poll-interval-ms', kind: 'int' },
  { path: 'report.outDir', env: 'TEITEN_REPORT_DIR', flag: '--out', kind: 'string' },
  { path: 'report.at', env: 'TEITEN_REPORT_AT', flag: '--at', kind: 'string' },
]

function setPath(into: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let at = into
  for (const k of keys.slice(0, -1)) {
    if (!isPlainObject(at[k])) at[k] = {}
    at = at[k] as Record<string, unknown>
  }
  at[keys[keys.length - 1]!] = value
}

function getPath(from: unknown, path: readonly PropertyKey[]): unknown {
  let at = from
  for (const k of path) {
    if (typeof at !== 'object' || at === null) return undefined
    at = (at as Record<PropertyKey, unknown>)[k]
  }
  return at
}

/**
 * A setting's text (from the environment or a flag) as the schema wants it. A malformed number
 * stays text, so the schema rejects it and the error names where it came from.
 */
export function configValue(kind: 'string' | 'int' | 'list', text: string): unknown {
  if (kind === 'int') return /^\d{1,15}$/.test(text) ? Number(text) : text
  if (kind === 'list')
    return text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  return text
}

/** TEITEN_* environment variables, mapped onto the schema (an empty variable is unset). */
export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: Record<string, unknown> = {}
  for (const key of CONFIG_KEYS) {
    const text = env[key.env]
    if (text !== undefined && text !== '') setPath(out, key.path, configValue(key.kind, text))
  }
  return out as ConfigInput
}

/** Commander's name of a setting's flag: --poll-interval-ms -> pollIntervalMs. */
export function optionName(flag: string): string {
  return flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())
}

/**
 * The given settings' flags, from commander's parsed options, as a config layer. Only the
 * settings a command names: the same flag can mean something else elsewhere (`export --out FILE`,
 * `daily --sensor LIST`).
 */
export function configFromFlags(opts: Record<string, unknown>, paths: readonly string[]): ConfigInput {
  const out: Record<string, unknown> = {}
  for (const key of CONFIG_KEYS) {
    if (!paths.includes(key.path)) continue
    const value = opts[optionName(key.flag)]
    if (value === undefined || typeof value === 'boolean') continue
    setPath(out, key.path, typeof value === 'string' ? configValue(key.kind, value) : value)
  }
  return out as ConfigInput
}

export function readConfigFile(path: string): ConfigInput {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new TeitenError(
      'CONFIG_INVALID',
      `cannot read config file: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    )
  }
  try {
    const parsed = parseYaml(text) ?? {}
    if (!isPlainObject(parsed)) throw new Error('the top level must be a mapping')
    return parsed as ConfigInput
  } catch (err) {
    throw new TeitenError(
      'CONFIG_INVALID',
      `cannot parse config file: ${(err as Error).message.split('\n')[0]}`,
      { file: path },
      {
        cause: err,
      },
    )
  }
}

export interface ConfigLayers {
  file?: ConfigInput
  /** The path of the config file, for error messages. */
  filePath?: string
  env?: ConfigInput
  flags?: ConfigInput
}

/**
 * Merges the layers and validates the result. An invalid setting is reported, in one line, as
 * coming from the layer that supplied it: the config file (its path and the key), the
 * environment (the variable) or the command line (the flag).
 */
export function resolveConfig(layers: ConfigLayers): Config {
  let merged: Record<string, unknown> = {}
  for (const layer of [layers.file, layers.env, layers.flags]) {
    if (layer) merged = merge(merged, layer as Record<string, unknown>)
  }
  const parsed = ConfigSchema.safeParse(merged)
  if (!parsed.success) throw configError(parsed.error.issues[0]!, layers)
  return parsed.data
}

function configError(issue: z.core.$ZodIssue, layers: ConfigLayers): TeitenError {
  const unknown = issue.code === 'unrecognized_keys'
  const path = unknown ? [...issue.path, issue.keys[0]!] : issue.path
  const key = path.map(String).join('.') || 'config'
  let message = unknown ? 'unknown key' : issue.message.split('\n')[0]!
  const has = (layer: ConfigInput | undefined) => layer !== undefined && getPath(layer, path) !== undefined
  // The setting holding the bad value (kafka.brokers.0 is in kafka.brokers).
  const known = CONFIG_KEYS.find((k) => key === k.path || key.startsWith(`${k.path}.`))
  const given = getPath(layers.flags, path) ?? getPath(layers.env, path) ?? getPath(layers.file, path)
  // A number that did not parse: say so, with the text (numbers are never secrets).
  if (known?.kind === 'int' && typeof given === 'string')
    message = `expected a whole number, got ${JSON.stringify(given)}`
  if (has(layers.flags) && known) {
    return new TeitenError('CONFIG_INVALID', `${known.flag}: ${message} (setting ${key})`, {
      source: 'flag',
      flag: known.flag,
      key,
    })
  }
  if (has(layers.env) && known) {
    return new TeitenError('CONFIG_INVALID', `${known.env}: ${message} (setting ${key})`, {
      source: 'env',
      env: known.env,
      key,
    })
  }
  if (has(layers.file) && layers.filePath !== undefined) {
    return new TeitenError('CONFIG_INVALID', `${key}: ${message}`, { source: 'file', file: layers.filePath, key })
  }
  return new TeitenError('CONFIG_INVALID', `${key}: ${message}`, { key })
}

/** For `teiten config print`: secrets are never shown. */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, unknown>
  if (typeof copy.clickhouseUrl === 'string')
    copy.clickhouseUrl = copy.clickhouseUrl.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
  const serve = copy.serve as Record<string, unknown>
  if (serve?.token) serve.token = '***'
  return copy
}
