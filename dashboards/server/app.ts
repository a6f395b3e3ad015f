import { createHash, timingSafeEqual } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { isTeitenError, TeitenError } from '../../core/errors.js'
import type { Logger } from '../../core/logger.js'
import type { Metrics } from '../../core/metrics.js'
import { parseDailyQuery, queryDaily } from '../../store/queries.js'
import {
  assertExportSize,
  DEFAULT_SQL_LIMITS,
  exportCsvByDay,
  exportEvents,
  parseExportQuery,
  parseHourlyQuery,
  parseSourceHistoryQuery,
  parseSourcesQuery,
  queryHourly,
  queryMeta,
  querySourceHistory,
  querySources,
  runReadOnlySql,
  type SqlLimits,
} from '../../store/research.js'
import type { Store } from '../../store/store.js'
import { openApiDocument } from './openapi.js'
import { DEFAULT_EXPORT_MAX_ROWS } from '../../core/defaults.js'
import type { SensorsConfig } from './sensors.js'

export interface DashboardOptions {
  store: Store
  logger: Logger
  /** When set, every /api/ request needs `Authorization: Bearer <token>`. */
  token?: string
  /** Monitored addresses per sensor, for "packets per monitored address per day". */
  sensors?: SensorsConfig
  /** The address the server binds: on loopback, requests must name a loopback host (DNS rebinding). */
  host?: string
  /** Largest export the API produces, in events (default 1,000,000). */
  exportMaxRows?: number
  sqlLimits?: SqlLimits
  /** Request counts and latencies (`serve --metrics-port`). */
  metrics?: Metrics
}

export { DEFAULT_EXPORT_MAX_ROWS }

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])

/** HTTP status per error code; anything else is the server's fault. */
function statusOf(err: unknown): number {
  if (isTeitenError(err)) {
    if (err.code === 'BAD_PARAMETER' || err.code === 'QUERY_REJECTED' || err.code === 'USAGE') return 400
    if (err.code === 'STORE_QUERY_FAILED' && err.context.userSql === true) return 400
    if (err.code === 'STORE_UNAVAILABLE' || err.code === 'STORE_LOCKED') return 503
    return 500
  }
  const status = (err as { statusCode?: number })?.statusCode
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500
}

function errorBody(code: string, message: string) {
  return { error: { code, message } }
}

/** Query strings carry `all` as text: exactly 1|true|0|false, anything else is a bad parameter. */
function withBooleanAll(query: unknown): Record<string, unknown> {
  const q: Record<string, unknown> = { ...(query as Record<string, unknown>) }
  if ('all' in q) {
    const v = q.all
    if (v === '1' || v === 'true') q.all = true
    else if (v === '0' || v === 'false') q.all = false
    else throw new TeitenError('BAD_PARAMETER', 'all: expected 1, true, 0 or false')
  }
  return q
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** Compares digests so neither the token's length nor its prefix leaks through timing. */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '')
  const given = m ? m[1]!.trim() : ''
  return timingSafeEqual(sha256(expected), sha256(given)) && given.length > 0
}

function hostnameOf(hostHeader: string | undefined): string {
  if (!hostHeader) return ''
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1).toLowerCase()
  return hostHeader.split(':')[0]!.toLowerCase()
}

function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return true
  return LOOPBACK_NAMES.has(host) || host.startsWith('127.')
}

interface Asset {
  type: string
  body: Buffer
}

/** The page's files: dashboards/web next to this module (source) or two levels up (dist/). */
function webRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const candidates = [join(here, '..', 'web'), join(here, '..', '..', '..', 'dashboards', 'web')]
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')))
  if (!found)
    throw new TeitenError('CONFIG_INVALID', `the dashboard page is missing (looked in ${candidates.join(', ')})`)
  return found
}

/**
 * A fixed table of files read once at start: no request path ever reaches the file system.
 * ECharts comes from node_modules, so the page works offline with no CDN.
 */
function loadAssets(): Map<string, Asset> {
  const root = webRoot()
  const require = createRequire(import.meta.url)
  const files: [string, string, string][] = [
    ['/', join(root, 'index.html'), 'text/html; charset=utf-8'],
    ['/app.js', join(root, 'app.js'), 'text/javascript; charset=utf-8'],
    ['/style.css', join(root, 'style.css'), 'text/css; charset=utf-8'],
    ['/favicon.svg', join(root, 'favicon.svg'), 'image/svg+xml'],
    ['/vendor/echarts.min.js', require.resolve('echarts/dist/echarts.min.js'), 'text/javascript; charset=utf-8'],
  ]
  return new Map(files.map(([route, path, type]) => [route, { type, body: readFileSync(path) }]))
}

const SECURITY_HEADERS: Record<string, string> = {
  // ECharts writes style attributes into its tooltips; scripts come from this server only.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
}

export function buildDashboardApp(options: DashboardOptions): FastifyInstance {
  const { logger } = options
  // The store runs embedded statements one at a time per connection and flushes after failures (store/store.ts).
  const store = options.store
  const exportMaxRows = options.exportMaxRows ?? DEFAULT_EXPORT_MAX_ROWS
  const sqlLimits = options.sqlLimits ?? DEFAULT_SQL_LIMITS
  const assets = loadAssets()
  const app = Fastify({ logger: false, bodyLimit: 256 * 1024, return503OnClosing: true })

  app.addHook('onRequest', async (req, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v)
    // A page on another site whose name resolves to 127.0.0.1 must not read the API (DNS
    // rebinding): on a loopback bind only loopback host names are served.
    if (isLoopbackHost(options.host) && !isLoopbackHost(hostnameOf(req.headers.host))) {
      return reply.code(421).send(errorBody('BAD_PARAMETER', 'this server answers to localhost only'))
    }
    if (options.token && (req.url === '/api' || req.url.startsWith('/api/'))) {
      if (!tokenMatches(options.token, req.headers.authorization)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="teiten"')
          .send(errorBody('UNAUTHORIZED', 'this server needs Authorization: Bearer <token> (teiten serve --token)'))
      }
    }
  })

  app.addHook('onResponse', async (req, reply) => {
    if (options.metrics) {
      // The route pattern, not the URL: labels stay a fixed set whatever clients ask for.
      const route = req.routeOptions.url ?? 'unmatched'
      options.metrics.httpRequests.inc({ route, status: `${Math.floor(reply.statusCode / 100)}xx` })
      options.metrics.httpSeconds.observe({ route }, reply.elapsedTime / 1000)
    }
    logger.debug(
      { method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    )
  })

  app.setErrorHandler(async (err, req, reply) => {
    const status = statusOf(err)
    if (status >= 500) logger.error({ err, url: req.url.split('?')[0] }, 'request failed')
    const code = isTeitenError(err)
      ? err.code === 'STORE_QUERY_FAILED' && status < 500
        ? 'STORE_QUERY_FAILED'
        : err.code
      : status === 401
        ? 'UNAUTHORIZED'
        : status === 404
          ? 'NOT_FOUND'
          : status < 500
            ? 'BAD_PARAMETER'
            : 'INTERNAL'
    const message = status >= 500 && !isTeitenError(err) ? 'internal error' : (err as Error).message
    return reply.code(status).send(errorBody(code, message))
  })

  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send(errorBody('NOT_FOUND', `no such resource: ${req.method} ${req.url.split('?')[0]}`)),
  )

  for (const [route, asset] of assets) {
    // The page keeps its state in the query string, which the server ignores.
    app.get(route, async (_req, reply) => {
      return reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body)
    })
  }

  app.get('/api/openapi.json', async (req) => {
    if (Object.keys(req.query as object).length > 0)
      throw new TeitenError('BAD_PARAMETER', 'this endpoint takes no parameters')
    return openApiDocument({ tokenRequired: Boolean(options.token) })
  })

  app.get('/api/meta', async (req) => {
    if (Object.keys(req.query as object).length > 0)
      throw new TeitenError('BAD_PARAMETER', 'this endpoint takes no parameters')
    const meta = await queryMeta(store)
    const configured = options.sensors?.sensors ?? {}
    const missing = meta.sensors.map((s) => s.sensor).filter((s) => configured[s] === undefined)
    return {
      ...meta,
      sensors: meta.sensors.map((s) => ({ ...s, addresses: configured[s.sensor]?.addresses ?? null })),
      sensorsConfig: options.sensors
        ? { configured: true, source: options.sensors.source, sensors: configured, missing }
        : { configured: false, missing },
      store: store.kind,
      limits: { exportMaxRows, sqlMaxRows: sqlLimits.maxResultRows, sqlTimeoutSeconds: sqlLimits.maxExecutionSeconds },
    }
  })

  app.get('/api/daily', async (req) => queryDaily(store, parseDailyQuery(withBooleanAll(req.query))))

  app.get('/api/hourly', async (req) => queryHourly(store, parseHourlyQuery(withBooleanAll(req.query))))

  app.get('/api/sources', async (req) => querySources(store, parseSourcesQuery(withBooleanAll(req.query))))

  app.get('/api/source/:addr', async (req: FastifyRequest<{ Params: { addr: string } }>, reply: FastifyReply) => {
    const addr = req.params.addr
    if (isIP(addr) === 0) throw new TeitenError('BAD_PARAMETER', 'addr: expected an IPv4 or IPv6 address')
    const query = withBooleanAll(req.query)
    if ('addr' in query) throw new TeitenError('BAD_PARAMETER', 'addr: give the address in the path only')
    const history = await querySourceHistory(store, parseSourceHistoryQuery({ ...query, addr }))
    if (!history)
      return reply.code(404).send(errorBody('NOT_FOUND', `no packets from ${addr} in the store (with these filters)`))
    return history
  })

  app.post('/api/sql', async (req) => {
    if (Object.keys(req.query as object).length > 0)
      throw new TeitenError('BAD_PARAMETER', 'this endpoint takes no query parameters')
    const body = req.body as unknown
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new TeitenError('BAD_PARAMETER', 'expected a JSON body {"sql": "SELECT …"}')
    }
    const extra = Object.keys(body).filter((k) => k !== 'sql')
    if (extra.length > 0) throw new TeitenError('BAD_PARAMETER', `unknown field ${extra[0]}`)
    const sql = (body as { sql?: unknown }).sql
    if (typeof sql !== 'string') throw new TeitenError('BAD_PARAMETER', 'sql: expected a string')
    return runReadOnlySql(store, sql, sqlLimits)
  })

  app.get('/api/export', async (req, reply) => {
    const q = parseExportQuery(withBooleanAll(req.query))
    const name = `teiten-events_${q.from}_${q.to}.${q.format}`
    reply.header('content-disposition', `attachment; filename="${name}"`)
    if (q.format === 'parquet') {
      const body = await exportEvents(store, q, exportMaxRows)
      return reply.type('application/vnd.apache.parquet').send(body)
    }
    await assertExportSize(store, q, exportMaxRows)
    return reply.type('text/csv; charset=utf-8').send(Readable.from(exportCsvByDay(store, q, exportMaxRows)))
  })

  return app
}

export interface RunningDashboard {
  app: FastifyInstance
  url: string
  close(): Promise<void>
}

/** Starts the dashboard on host:port (port 0 = any free port); the caller owns the store. */
export async function startDashboard(options: DashboardOptions & { port: number }): Promise<RunningDashboard> {
  const host = options.host ?? '127.0.0.1'
  const app = buildDashboardApp({ ...options, host })
  await app.listen({ host, port: options.port })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  const shown = host.includes(':') ? `[${host}]` : host
  return { app, url: `http://${shown}:${port}/`, close: () => app.close() }
}
