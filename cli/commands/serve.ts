import type { Command } from 'commander'
import type { ConfigInput } from '../../core/config.js'
import { TeitenError } from '../../core/errors.js'
import type { MetricsServer } from '../../core/metrics.js'
import { DEFAULT_EXPORT_MAX_ROWS } from '../../core/defaults.js'
import { addCommonOptions, addSettingFlags, addStoreOptions, contextFrom, openStoreFor } from '../context.js'

function parsePort(value: unknown): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^\d{1,5}$/.test(String(value)) || n > 65535)
    throw new TeitenError('USAGE', `--port must be 0-65535, got ${String(value)}`)
  return n
}

function parseCount(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,12}$/.test(String(value)) || Number(value) < 1)
    throw new TeitenError('USAGE', `${flag} must be a positive whole number`)
  return Number(value)
}

/** Settings `serve` takes as flags besides those serveFlags parses. */
const SERVE_SETTINGS = ['metricsPort']

/** The flags of `teiten serve` as a config layer (flags beat TEITEN_* and the config file). */
export function serveFlags(opts: Record<string, unknown>): ConfigInput {
  return {
    serve: {
      host: opts.host as string | undefined,
      port: parsePort(opts.port),
      token: opts.token as string | undefined,
    },
    sensorsFile: opts.sensors as string | undefined,
  }
}

/** For tests: learn the URL once listening, and stop without a signal to the process. */
export interface ServeHooks {
  onListening?(url: string): void
  stop?: AbortSignal
}

export function registerServe(program: Command, hooks: ServeHooks = {}): void {
  const cmd = program
    .command('serve')
    .description('the dashboard (Figure 2 by source country, drill-down by day and source) and its JSON API')
    .option('--host <address>', 'address to bind (default 127.0.0.1; anything else should come with --token)')
    .option('--port <n>', 'TCP port (default 8080; 0 = any free port)')
    .option('--token <token>', 'require Authorization: Bearer <token> on /api/ (env TEITEN_TOKEN)')
    .option(
      '--sensors <file>',
      'YAML/JSON with each sensor\'s monitored addresses: enables "packets per monitored address"',
    )
    .option('--export-max-rows <n>', `largest /api/export in events (default ${DEFAULT_EXPORT_MAX_ROWS})`)
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  addSettingFlags(cmd, SERVE_SETTINGS)
  cmd.action(async (opts: Record<string, unknown>) => {
    const exportMaxRows = parseCount(opts.exportMaxRows, '--export-max-rows')
    const ctx = contextFrom(opts, serveFlags(opts), SERVE_SETTINGS)
    const { host, port, token } = ctx.config.serve
    const [{ startDashboard }, { loadSensorsFile }, { createMetrics, startMetricsServer }] = await Promise.all([
      import('../../dashboards/server/app.js'),
      import('../../dashboards/server/sensors.js'),
      import('../../core/metrics.js'),
    ])
    const sensors = ctx.config.sensorsFile ? loadSensorsFile(ctx.config.sensorsFile) : undefined
    const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.')
    if (!loopback && !token) {
      ctx.logger.warn(
        { host },
        'serving beyond loopback without a token: anyone who can reach this port can query the store',
      )
    }
    const store = await openStoreFor(ctx, 'teiten serve')
    const metrics = ctx.config.metricsPort !== undefined ? createMetrics({ version: program.version() }) : undefined
    let dashboard: Awaited<ReturnType<typeof startDashboard>>
    let metricsServer: MetricsServer | undefined
    try {
      dashboard = await startDashboard({
        store,
        logger: ctx.logger,
        host,
        port,
        token,
        sensors,
        exportMaxRows,
        metrics,
      })
    } catch (err) {
      await store.close()
      throw new TeitenError('USAGE', `cannot listen on ${host}:${port}: ${(err as Error).message}`, {}, { cause: err })
    }
    if (metrics) {
      try {
        metricsServer = await startMetricsServer(metrics, { port: ctx.config.metricsPort!, logger: ctx.logger })
      } catch (err) {
        await dashboard.close()
        await store.close()
        throw err
      }
    }
    ctx.logger.info(
      { url: dashboard.url, store: store.kind, token: Boolean(token), sensors: sensors?.source },
      'dashboard listening',
    )
    process.stderr.write(`teiten: dashboard at ${dashboard.url}${token ? ' (token required)' : ''}\n`)
    hooks.onListening?.(dashboard.url)
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        hooks.stop?.removeEventListener('abort', stop)
        resolve()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      hooks.stop?.addEventListener('abort', stop)
    })
    ctx.logger.info({}, 'shutting down')
    await metricsServer?.close()
    await dashboard.close()
    await store.close()
  })
}
