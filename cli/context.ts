import type { Command } from 'commander'
import {
  CONFIG_KEYS,
  type Config,
  type ConfigInput,
  configFromEnv,
  configFromFlags,
  readConfigFile,
  resolveConfig,
} from '../core/config.js'
import { createLogger, type Logger } from '../core/logger.js'
import type { Store } from '../store/store.js'
import type { OpenStoreOptions } from '../store/open.js'

/** Options every command that touches the store accepts. */
export function addStoreOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'embedded data directory (env TEITEN_DATA)', undefined)
    .option('--clickhouse <url>', 'a ClickHouse server instead of the embedded engine (env TEITEN_CLICKHOUSE_URL)')
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'configuration file (YAML or JSON)')
    .option('--log-level <level>', 'trace|debug|info|warn|error|silent')
    .option('--log-format <format>', 'json|pretty')
}

/**
 * Registers the flags of these settings (core/config.ts CONFIG_KEYS) that the command does not
 * declare itself; contextFrom reads them when given the same paths.
 */
export function addSettingFlags(cmd: Command, paths: readonly string[]): Command {
  const declared = new Set(cmd.options.map((o) => o.long))
  for (const key of CONFIG_KEYS) {
    if (!paths.includes(key.path) || declared.has(key.flag)) continue
    const arg = key.kind === 'int' ? '<n>' : key.kind === 'list' ? '<list>' : '<value>'
    cmd.option(`${key.flag} ${arg}`, `setting ${key.path} (env ${key.env})`)
  }
  return cmd
}

/** Every setting: `config print` takes them all. */
export const ALL_SETTINGS = CONFIG_KEYS.map((k) => k.path)

export interface CommandContext {
  config: Config
  logger: Logger
}

/**
 * Merges defaults < --config file < TEITEN_* env < flags, and builds the logger. `flags` are
 * the command's own flag values; `settings` the paths of settings whose flags (addSettingFlags)
 * are read from `opts` as they are.
 */
export function contextFrom(
  opts: Record<string, unknown>,
  flags: ConfigInput = {},
  settings: readonly string[] = [],
): CommandContext {
  const filePath = typeof opts.config === 'string' ? opts.config : undefined
  const file = filePath !== undefined ? readConfigFile(filePath) : undefined
  const base: ConfigInput = {
    dataDir: opts.data as string | undefined,
    clickhouseUrl: opts.clickhouse as string | undefined,
    log: {
      level: opts.logLevel as Config['log']['level'] | undefined,
      format: opts.logFormat as Config['log']['format'] | undefined,
    },
  }
  const fromFlags = mergeFlags(mergeFlags(configFromFlags(opts, settings), base), flags)
  const config = resolveConfig({ file, filePath, env: configFromEnv(process.env), flags: fromFlags })
  const logger = createLogger({ level: config.log.level, format: config.log.format })
  return { config, logger }
}

/** b over a, recursively; undefined never replaces a value. */
function mergeFlags(a: ConfigInput, b: ConfigInput): ConfigInput {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
  const merge = (x: Record<string, unknown>, y: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...x }
    for (const [k, v] of Object.entries(y)) {
      if (v === undefined) continue
      out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v
    }
    return out
  }
  return merge(a as Record<string, unknown>, b as Record<string, unknown>) as ConfigInput
}

export async function openStoreFor(
  ctx: CommandContext,
  role: string,
  extra: Pick<OpenStoreOptions, 'newStoreIdentity'> = {},
): Promise<Store> {
  // Loaded here, not at startup: see cli/main.ts buildProgram.
  const { openStore } = await import('../store/open.js')
  return openStore({
    dataDir: ctx.config.dataDir,
    clickhouseUrl: ctx.config.clickhouseUrl,
    logger: ctx.logger,
    role,
    retentionDays: ctx.config.retentionDays,
    ...extra,
  })
}
