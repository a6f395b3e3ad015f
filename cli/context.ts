import type { Command } from 'commander'
import { type Config, type ConfigInput, configFromEnv, readConfigFile, resolveConfig } from '../core/config.js'
import { createLogger, type Logger } from '../core/logger.js'
import { openStore } from '../store/open.js'
import type { Store } from '../store/store.js'

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

export interface CommandContext {
  config: Config
  logger: Logger
}

/** Merges defaults < --config file < TEITEN_* env < flags, and builds the logger. */
export function contextFrom(opts: Record<string, unknown>, flags: ConfigInput = {}): CommandContext {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : undefined
  const base: ConfigInput = {
    dataDir: opts.data as string | undefined,
    clickhouseUrl: opts.clickhouse as string | undefined,
    log: {
      level: opts.logLevel as Config['log']['level'] | undefined,
      format: opts.logFormat as Config['log']['format'] | undefined,
    },
  }
  const config = resolveConfig({ file, env: configFromEnv(process.env), flags: mergeFlags(base, flags) })
  const logger = createLogger({ level: config.log.level, format: config.log.format })
  return { config, logger }
}

function mergeFlags(a: ConfigInput, b: ConfigInput): ConfigInput {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue
    const prev = out[k]
    out[k] =
      typeof v === 'object' && v !== null && !Array.isArray(v) && typeof prev === 'object' && prev !== null
        ? { ...(prev as object), ...(v as object) }
        : v
  }
  return out as ConfigInput
}

export function openStoreFor(ctx: CommandContext, role: string): Promise<Store> {
  return openStore({
    dataDir: ctx.config.dataDir,
    clickhouseUrl: ctx.config.clickhouseUrl,
    logger: ctx.logger,
    role,
    retentionDays: ctx.config.retentionDays,
  })
}
