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

/** TEITEN_* environment variables, mapped onto the schema. */
export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v))
  const out: Record<string, unknown> = {
    dataDir: env.TEITEN_DATA || undefined,
    clickhouseUrl: env.TEITEN_CLICKHOUSE_URL || undefined,
    geoip: env.TEITEN_GEOIP || undefined,
    sensor: env.TEITEN_SENSOR || undefined,
    retentionDays: num(env.TEITEN_RETENTION_DAYS),
    metricsPort: num(env.TEITEN_METRICS_PORT),
    log: { level: env.TEITEN_LOG_LEVEL || undefined, format: env.TEITEN_LOG_FORMAT || undefined },
    kafka: {
      brokers: env.TEITEN_KAFKA_BROKERS ? env.TEITEN_KAFKA_BROKERS.split(',').map((s) => s.trim()) : undefined,
      topic: env.TEITEN_KAFKA_TOPIC || undefined,
      group: env.TEITEN_KAFKA_GROUP || undefined,
    },
    serve: { token: env.TEITEN_TOKEN || undefined },
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
      `cannot parse config file: ${(err as Error).message}`,
      { file: path },
      {
        cause: err,
      },
    )
  }
}

export function resolveConfig(layers: { file?: ConfigInput; env?: ConfigInput; flags?: ConfigInput }): Config {
  let merged: Record<string, unknown> = {}
  for (const layer of [layers.file, layers.env, layers.flags]) {
    if (layer) merged = merge(merged, layer as Record<string, unknown>)
  }
  const parsed = ConfigSchema.safeParse(merged)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new TeitenError('CONFIG_INVALID', `${issue.path.join('.') || 'config'}: ${issue.message}`)
  }
  return parsed.data
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
