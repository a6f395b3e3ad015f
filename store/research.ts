import { isIP } from 'node:net'
import { z } from 'zod'
import { TeitenError } from '../core/errors.js'
import { NTP_CLASSES } from '../core/event.js'
import { csvList, dayTerms, filterShape, filterTerms, isoDay, READ_SETTINGS } from './queries.js'
import { freshWholeWeeks, sourceRowsSql, weeklyTableFor } from './rollup.js'
import { DARK_ADDRESSES_SQL, EVENT_COLUMNS, MIGRATIONS } from './schema.js'
import type { QueryParams, Settings, Store } from './store.js'

/**
 * Queries behind the dashboard API and the researcher CLI (`teiten sources`, `sql`, `export`).
 * Every value from a user travels as a ClickHouse query parameter; the only text spliced into
 * SQL comes from the fixed tables in this file. Filters live in an inner subquery so that
 * output aliases named like columns (country, first_seen, …) never capture the WHERE clause.
 */

// ---------------------------------------------------------------------------------------------
// Parameters

const intParam = (min: number, max: number) =>
  z
    .union([
      z.number(),
      z
        .string()
        .regex(/^\d{1,12}$/, 'expected a whole number')
        .transform(Number),
    ])
    .pipe(z.number().int().min(min).max(max))

const rangeShape = { from: isoDay.optional(), to: isoDay.optional() }
const rangeOrdered = (q: { from?: string; to?: string }) => !q.from || !q.to || q.from <= q.to

function parseWith<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new TeitenError('BAD_PARAMETER', `${where}${issue.message}`)
  }
  return parsed.data
}

export const HOURLY_KEYS = ['hour', 'sensor', 'country', 'class'] as const
export const HourlyQuerySchema = z
  .object({ day: isoDay, by: csvList(z.enum(HOURLY_KEYS)).default(['hour', 'country']), ...filterShape })
  .strict()
  .refine((q) => new Set(q.by).size === q.by.length, { message: 'a key appears twice in by' })
export type HourlyQuery = z.output<typeof HourlyQuerySchema>
export const parseHourlyQuery = (input: unknown): HourlyQuery => parseWith(HourlyQuerySchema, input)

/**
 * Orderings of the top-sources list. `sources` is the contract's name for ranking by how many
 * distinct monitored (dark) addresses a source reached: the breadth of its scan.
 */
export const SOURCE_ORDERS = {
  packets: 'packets',
  sources: 'dark_addresses',
  dark_addresses: 'dark_addresses',
  days_active: 'days_active',
  first_seen: 'first_seen_ns',
  last_seen: 'last_seen_ns',
} as const
export type SourceOrder = keyof typeof SOURCE_ORDERS

export const SourcesQuerySchema = z
  .object({
    ...rangeShape,
    ...filterShape,
    limit: intParam(1, 10_000).default(50),
    order: z.enum(Object.keys(SOURCE_ORDERS) as [SourceOrder, ...SourceOrder[]]).default('packets'),
    dir: z.enum(['asc', 'desc']).default('desc'),
  })
  .strict()
  .refine(rangeOrdered, { message: 'from is after to' })
export type SourcesQuery = z.output<typeof SourcesQuerySchema>
export const parseSourcesQuery = (input: unknown): SourcesQuery => parseWith(SourcesQuerySchema, input)

const address = z
  .string()
  .max(64)
  .refine((s) => isIP(s) !== 0, { message: 'expected an IPv4 or IPv6 address' })

export const SourceHistoryQuerySchema = z
  .object({ addr: address, ...rangeShape, ...filterShape })
  .strict()
  .refine(rangeOrdered, { message: 'from is after to' })
export type SourceHistoryQuery = z.output<typeof SourceHistoryQuerySchema>
export const parseSourceHistoryQuery = (input: unknown): SourceHistoryQuery =>
  parseWith(SourceHistoryQuerySchema, input)

export const EXPORT_FORMATS = ['csv', 'parquet'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]
export const ExportQuerySchema = z
  .object({ from: isoDay, to: isoDay, format: z.enum(EXPORT_FORMATS).default('csv'), ...filterShape })
  .strict()
  .refine(rangeOrdered, { message: 'from is after to' })
export type ExportQuery = z.output<typeof ExportQuerySchema>
export const parseExportQuery = (input: unknown): ExportQuery => parseWith(ExportQuerySchema, input)

// ---------------------------------------------------------------------------------------------
// Shared SQL pieces

const whereClause = (terms: string[]) => (terms.length > 0 ? ` WHERE ${terms.join(' AND ')}` : '')

/** IPv4 is stored IPv4-mapped; analysts read it dotted. */
const ADDRESS_SQL = (column: string) => `replaceRegexpOne(IPv6NumToString(${column}), '^::ffff:', '')`

/** '2013-12-01 01:00:00.500000000' (ClickHouse text of a UTC DateTime64) -> ISO 8601 with Z. */
function isoTs(text: string): string {
  return `${text.replace(' ', 'T')}Z`
}

const SOURCE_AGGREGATES = [
  'argMax(country, last_seen) AS c_country',
  'groupUniqArray(country) AS c_countries',
  'max(bogon) AS c_bogon',
  'toString(min(first_seen)) AS c_first_seen',
  'toString(max(last_seen)) AS c_last_seen',
  'toInt64(toUnixTimestamp64Nano(min(first_seen))) AS first_seen_ns',
  'toInt64(toUnixTimestamp64Nano(max(last_seen))) AS last_seen_ns',
  'sum(packets) AS packets',
  `${DARK_ADDRESSES_SQL} AS dark_addresses`,
  'arraySort(groupUniqArray(toString(class))) AS c_classes',
  'arraySort(groupUniqArray(sensor)) AS c_sensors',
  'uniqExact(day) AS days_active',
].join(', ')

interface RawSourceAggregate {
  c_country: string
  c_countries: string[]
  c_bogon: boolean | number
  c_first_seen: string
  c_last_seen: string
  packets: number | string
  dark_addresses: number | string
  c_classes: string[]
  c_sensors: string[]
  days_active: number | string
}

export interface SourceSummary {
  country: string
  bogon: boolean
  first_seen: string
  last_seen: string
  packets: number
  dark_addresses: number
  classes: string[]
  sensors: string[]
  days_active: number
}

function summary(r: RawSourceAggregate): SourceSummary {
  return {
    country: r.c_country,
    bogon: r.c_bogon === true || Number(r.c_bogon) === 1,
    first_seen: isoTs(r.c_first_seen),
    last_seen: isoTs(r.c_last_seen),
    packets: Number(r.packets),
    dark_addresses: Number(r.dark_addresses),
    classes: sortClasses(r.c_classes),
    sensors: r.c_sensors,
    days_active: Number(r.days_active),
  }
}

/** Classes in their canonical order (monlist first), not alphabetically. */
function sortClasses(classes: string[]): string[] {
  return [...classes].sort(
    (a, b) =>
      NTP_CLASSES.indexOf(a as (typeof NTP_CLASSES)[number]) - NTP_CLASSES.indexOf(b as (typeof NTP_CLASSES)[number]),
  )
}

// ---------------------------------------------------------------------------------------------
// Hourly

/**
 * Where a store keeps its hourly distinct sources: as a set per hour in `hourly_agg` (stores
 * made before schema v15, or that held data when it came), or as the hours of the source-day
 * rows. A store keeps one layout for good: v15 recreates the views only in a store without data,
 * and nothing changes them after.
 */
export type HourlyLayout = 'hourly_sets' | 'source_days'

const layouts = new WeakMap<Store, Promise<HourlyLayout>>()

export function hourlyLayoutOf(store: Store): Promise<HourlyLayout> {
  let layout = layouts.get(store)
  if (!layout) {
    const kept = MIGRATIONS.find((m) => m.version === 15)!.kept
    layout = store
      .query<{ d: string }>('SELECT description AS d FROM schema_migrations WHERE version = 15')
      .then((rows) => (rows.some((r) => r.d === kept) ? 'hourly_sets' : 'source_days'))
    layout.catch(() => layouts.delete(store))
    layouts.set(store, layout)
  }
  return layout
}

export interface HourlyTerms {
  /** Restrict `hour` (hourly_agg). */
  hours: string[]
  /** Restrict `day` to the same span (source_daily). */
  days: string[]
  /** Terms on sensor, country, class and access, which both tables have. */
  filters: string[]
}

/**
 * Packets and distinct sources per hour, grouped by `keys` (expression, alias) over hour,
 * sensor, country, class and access: one row per group, `packets` and `sources` as counts.
 * With source-day hours the day's distinct sources are counted once, at the grouping asked
 * for, as 128-bit numbers: uniqExact of an IPv6 value hashes it with SipHash128 first, of a
 * UInt128 it does not, and the two are the same addresses one to one. The 1e9-event bench
 * store's busiest day (5M source-hours) by hour x country, warm: 300-410 ms against 560-670 ms
 * for uniqExact(src), and ~950 ms for a state per hour, sensor, country, class and direction
 * merged afterwards.
 */
export function hourlySql(layout: HourlyLayout, keys: [string, string][], t: HourlyTerms): string {
  const select = (aggregates: string[]) => [...keys.map(([e, a]) => `${e} AS ${a}`), ...aggregates].join(', ')
  const hourly = ` FROM hourly_agg${whereClause([...t.hours, ...t.filters])} GROUP BY ALL`
  if (layout === 'hourly_sets') {
    return `SELECT ${select(['toUInt64(sum(packets)) AS packets', 'toUInt64(uniqExactMerge(sources)) AS sources'])}${hourly}`
  }
  const sourceHours =
    " FROM (SELECT toDateTime(day, 'UTC') + toIntervalHour(h) AS hour, src, sensor, country, class, access" +
    ` FROM source_daily ARRAY JOIN bitPositionsToArray(hours) AS h${whereClause(['hours != 0', ...t.days, ...t.filters])})` +
    ' GROUP BY ALL'
  const outer = [...keys.map(([, a]) => a), 'sum(packets) AS packets', 'sum(sources) AS sources'].join(', ')
  return (
    `SELECT ${outer} FROM (` +
    `SELECT ${select(['toUInt64(sum(packets)) AS packets', 'toUInt64(0) AS sources'])}${hourly}` +
    ` UNION ALL SELECT ${select(['toUInt64(0) AS packets', 'toUInt64(uniqExact(toUInt128(src))) AS sources'])}${sourceHours}` +
    ') GROUP BY ALL'
  )
}

export type HourlyRow = Record<string, string | number>

export async function queryHourly(store: Store, q: HourlyQuery): Promise<HourlyRow[]> {
  const params: QueryParams = { day: q.day }
  const terms = {
    hours: ["hour >= toDateTime({day:Date}, 'UTC')", "hour < toDateTime({day:Date}, 'UTC') + INTERVAL 1 DAY"],
    days: ['day = {day:Date}'],
    filters: filterTerms(q, params),
  }
  const keys = q.by.map((k): [string, string] =>
    k === 'hour' ? ['toUnixTimestamp(hour)', 'k_hour'] : k === 'class' ? ['toString(class)', 'k_class'] : [k, `k_${k}`],
  )
  const order = [
    ...(q.by.includes('hour') ? ['k_hour ASC'] : []),
    'packets DESC',
    ...keys
      .map(([, a]) => a)
      .filter((k) => k !== 'k_hour')
      .map((k) => `${k} ASC`),
  ]
  const sql = `${hourlySql(await hourlyLayoutOf(store), keys, terms)} ORDER BY ${order.join(', ')}`
  const rows = await store.query<Record<string, string | number>>(sql, params, READ_SETTINGS)
  return rows.map((r) => {
    const out: HourlyRow = {}
    for (const k of q.by) {
      out[k] =
        k === 'hour' ? new Date(Number(r.k_hour) * 1000).toISOString().replace('.000Z', 'Z') : String(r[`k_${k}`])
    }
    out.packets = Number(r.packets)
    out.sources = Number(r.sources)
    return out
  })
}

// ---------------------------------------------------------------------------------------------
// Sources

export interface SourceRow extends SourceSummary {
  address: string
}

export const SOURCE_COLUMNS = [
  'address',
  'country',
  'bogon',
  'first_seen',
  'last_seen',
  'packets',
  'dark_addresses',
  'classes',
  'sensors',
  'days_active',
] as const

/**
 * Orderings that a cheap aggregate decides: the ranking is done on it alone, and the full
 * summary (the dark-address state merge above all) is computed for the `limit` winners only.
 * Top 15 of 90 days on the 20M-packet bench store: 760-910 ms in one pass, 200-230 ms in two.
 */
const CHEAP_ORDERS: Partial<Record<SourceOrder, string>> = {
  packets: 'sum(packets)',
  first_seen: 'toInt64(toUnixTimestamp64Nano(min(first_seen)))',
  last_seen: 'toInt64(toUnixTimestamp64Nano(max(last_seen)))',
  days_active: 'uniqExact(day)',
}

export async function querySources(store: Store, q: SourcesQuery): Promise<SourceRow[]> {
  const params: QueryParams = { limit: q.limit }
  const days = dayTerms(q, params)
  const filters = filterTerms(q, params)
  const where = [...days, ...filters]
  const order = SOURCE_ORDERS[q.order]
  const dir = q.dir === 'asc' ? 'ASC' : 'DESC'
  const cheap = CHEAP_ORDERS[q.order]
  // Ranked by packets, the whole weeks of the range come from a weekly rollup (store/rollup.ts):
  // a row per source and week instead of per day. Top 15 of 90 days, 1e9-event bench store:
  // the ranking 0.87-1.04 s from source_daily alone, 0.38-0.47 s with source_weekly (round 10's
  // host), 368-438 ms against 807-926 with source_weekly_totals where no filter needs the
  // sensor, country or class (round 13's, slower host).
  const table = weeklyTableFor(q)
  const weeks = q.order === 'packets' ? await freshWholeWeeks(store, q, table) : []
  const ranked = sourceRowsSql({ days, filters }, weeks, params, true, table)
  // The same key and tie-break as the outer ORDER BY: the same `limit` sources win.
  const winners = cheap
    ? [
        ...where,
        q.order === 'packets'
          ? `src IN (SELECT src FROM (${ranked}) GROUP BY src ORDER BY sum(packets) ${dir}, src ASC LIMIT {limit:UInt32})`
          : `src IN (SELECT src FROM source_daily${whereClause(where)} GROUP BY src ORDER BY ${cheap} ${dir}, src ASC LIMIT {limit:UInt32})`,
      ]
    : where
  const sql =
    `SELECT ${ADDRESS_SQL('src')} AS c_address, ${SOURCE_AGGREGATES}` +
    ` FROM (SELECT * FROM source_daily${whereClause(winners)})` +
    ` GROUP BY src ORDER BY ${order} ${dir}, src ASC LIMIT {limit:UInt32}`
  const rows = await store.query<RawSourceAggregate & { c_address: string }>(sql, params, READ_SETTINGS)
  return rows.map((r) => ({ address: r.c_address, ...summary(r) }))
}

export interface SourceDay extends SourceSummary {
  day: string
}

export interface SourceHistory {
  address: string
  totals: SourceSummary & { countries: string[] }
  days: SourceDay[]
}

/** One source's days; undefined when the store has never seen it (with these filters). */
export async function querySourceHistory(store: Store, q: SourceHistoryQuery): Promise<SourceHistory | undefined> {
  const params: QueryParams = { addr: q.addr }
  const where = ['src = toIPv6({addr:String})', ...dayTerms(q, params), ...filterTerms(q, params)]
  const inner = ` FROM (SELECT * FROM source_daily${whereClause(where)})`
  const [totalsRows, dayRows] = await Promise.all([
    store.query<RawSourceAggregate & { c_address: string; n: number | string }>(
      `SELECT ${ADDRESS_SQL('any(src)')} AS c_address, count() AS n, ${SOURCE_AGGREGATES}${inner}`,
      params,
      READ_SETTINGS,
    ),
    store.query<RawSourceAggregate & { c_day: string }>(
      `SELECT toString(day) AS c_day, ${SOURCE_AGGREGATES}${inner} GROUP BY day ORDER BY day ASC`,
      params,
      READ_SETTINGS,
    ),
  ])
  const t = totalsRows[0]
  if (!t || Number(t.n) === 0) return undefined
  return {
    address: t.c_address,
    totals: { ...summary(t), countries: [...t.c_countries].sort() },
    days: dayRows.map((r) => ({ day: r.c_day, ...summary(r) })),
  }
}

// ---------------------------------------------------------------------------------------------
// Meta

export interface Meta {
  range: { from: string; to: string } | null
  packets: { access: number; all: number }
  sensors: { sensor: string; packets: number; from: string; to: string }[]
  countries: { country: string; packets: number }[]
  classes: { class: string; packets: number }[]
}

export async function queryMeta(store: Store): Promise<Meta> {
  const [totals, sensors, countries, classes] = await Promise.all([
    store.query<{ n: number | string; f: string; t: string; a: number | string; p: number | string }>(
      'SELECT count() AS n, toString(min(day)) AS f, toString(max(day)) AS t, sumIf(packets, access) AS a, sum(packets) AS p FROM daily_agg',
      {},
      READ_SETTINGS,
    ),
    store.query<{ s: string; p: number | string; f: string; t: string }>(
      'SELECT sensor AS s, sum(packets) AS p, toString(min(day)) AS f, toString(max(day)) AS t FROM daily_agg GROUP BY sensor ORDER BY sensor',
      {},
      READ_SETTINGS,
    ),
    store.query<{ c: string; p: number | string }>(
      'SELECT country AS c, sum(packets) AS p FROM daily_agg WHERE access GROUP BY country ORDER BY p DESC, c ASC',
      {},
      READ_SETTINGS,
    ),
    store.query<{ c: string; p: number | string }>(
      'SELECT toString(class) AS c, sum(packets) AS p FROM daily_agg GROUP BY c',
      {},
      READ_SETTINGS,
    ),
  ])
  const t = totals[0]!
  const byClass = new Map(classes.map((r) => [r.c, Number(r.p)]))
  return {
    range: Number(t.n) > 0 ? { from: t.f, to: t.t } : null,
    packets: { access: Number(t.a), all: Number(t.p) },
    sensors: sensors.map((r) => ({ sensor: r.s, packets: Number(r.p), from: r.f, to: r.t })),
    countries: countries.map((r) => ({ country: r.c, packets: Number(r.p) })),
    classes: NTP_CLASSES.map((c) => ({ class: c, packets: byClass.get(c) ?? 0 })),
  }
}

// ---------------------------------------------------------------------------------------------
// Export

/** Event columns as exported: addresses as text, the class by name; everything else as stored. */
const EXPORT_SELECT = EVENT_COLUMNS.map(([name]) => {
  if (name === 'src' || name === 'dst') return `${ADDRESS_SQL(name)} AS ${name}`
  if (name === 'class') return 'toString(class) AS class'
  return name
}).join(', ')

function exportWhere(q: Omit<ExportQuery, 'format'>, from: string, to: string, params: QueryParams): string {
  params.from = from
  params.to = to
  const terms = [
    "ts >= toDateTime64({from:Date}, 9, 'UTC')",
    "ts < toDateTime64({to:Date} + 1, 9, 'UTC')",
    ...filterTerms(q, params, 'dst_port = 123'),
  ]
  return whereClause(terms)
}

/** The number of events an export of `q` holds, counted from the daily aggregate (cheap). */
export async function countExportRows(store: Store, q: Omit<ExportQuery, 'format'>): Promise<number> {
  const params: QueryParams = {}
  const where = [...dayTerms(q, params), ...filterTerms(q, params)]
  const [row] = await store.query<{ n: number | string }>(
    `SELECT sum(packets) AS n FROM daily_agg${whereClause(where)}`,
    params,
    READ_SETTINGS,
  )
  return Number(row?.n ?? 0)
}

function exportSql(q: Omit<ExportQuery, 'format'>, from: string, to: string): { sql: string; params: QueryParams } {
  const params: QueryParams = {}
  const sql = `SELECT ${EXPORT_SELECT} FROM (SELECT * FROM events${exportWhere(q, from, to, params)}) ORDER BY ts, sensor, file_id, record`
  return { sql, params }
}

function exportLimitSettings(maxRows: number): Settings {
  return { ...READ_SETTINGS, max_result_rows: maxRows, result_overflow_mode: 'throw' }
}

/** Refuses an export larger than `maxRows` before reading a single event. */
export async function assertExportSize(store: Store, q: Omit<ExportQuery, 'format'>, maxRows: number): Promise<number> {
  const rows = await countExportRows(store, q)
  if (rows > maxRows) {
    throw new TeitenError(
      'QUERY_REJECTED',
      `the export holds ${rows} events, more than the limit of ${maxRows}: narrow the date range or the filters`,
      { rows, maxRows },
    )
  }
  return rows
}

/** The whole range in one piece (Parquet cannot be concatenated); bounded by `maxRows`. */
export async function exportEvents(store: Store, q: ExportQuery, maxRows: number): Promise<Buffer> {
  await assertExportSize(store, q, maxRows)
  const { sql, params } = exportSql(q, q.from, q.to)
  return store.queryRaw(sql, params, q.format === 'parquet' ? 'Parquet' : 'CSVWithNames', exportLimitSettings(maxRows))
}

export function* daysBetween(from: string, to: string): Generator<string> {
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    yield new Date(t).toISOString().slice(0, 10)
  }
}

/**
 * CSV one day at a time: memory stays bounded by the busiest day, whatever the range. The
 * header comes once, from the first day (CSVWithNames writes it even for an empty day).
 */
export async function* exportCsvByDay(
  store: Store,
  q: Omit<ExportQuery, 'format'>,
  maxRowsPerDay: number,
): AsyncGenerator<Buffer> {
  let first = true
  for (const day of daysBetween(q.from, q.to)) {
    const { sql, params } = exportSql(q, day, day)
    // A failed query's leftover output is absorbed by the store itself (store/store.ts).
    yield await store.queryRaw(sql, params, first ? 'CSVWithNames' : 'CSV', exportLimitSettings(maxRowsPerDay))
    first = false
  }
}

// ---------------------------------------------------------------------------------------------
// Read-only SQL for researchers

export interface SqlLimits {
  maxExecutionSeconds: number
  maxMemoryBytes: number
  maxResultRows: number
  maxResultBytes: number
}

export const DEFAULT_SQL_LIMITS: SqlLimits = {
  maxExecutionSeconds: 30,
  maxMemoryBytes: 2 * 1024 ** 3,
  maxResultRows: 10_000,
  maxResultBytes: 64 * 1024 ** 2,
}

export const MAX_SQL_LENGTH = 64 * 1024

/** Table functions a SELECT may read from: generators that touch nothing outside the query. */
export const ALLOWED_TABLE_FUNCTIONS = new Set(
  ['numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'values', 'generate_series', 'generateSeries', 'primes'].map((s) =>
    s.toLowerCase(),
  ),
)

/**
 * Functions refused anywhere in the query: everything that reads files, URLs, other servers or
 * the host (the scalar `file()` reads any path even under readonly=1), plus the table functions
 * of that kind, so that no spelling of them slips through in a scalar position either.
 */
export const DENIED_FUNCTIONS = new Set(
  [
    'file',
    'fileCluster',
    'filesystem',
    'url',
    'urlCluster',
    's3',
    's3Cluster',
    'gcs',
    'oss',
    'cosn',
    'remote',
    'remoteSecure',
    'cluster',
    'clusterAllReplicas',
    'mysql',
    'postgresql',
    'jdbc',
    'odbc',
    'hdfs',
    'hdfsCluster',
    'input',
    'executable',
    'azureBlobStorage',
    'azureBlobStorageCluster',
    'mongodb',
    'redis',
    'sqlite',
    'ytsaurus',
    'arrowFlight',
    'arrowflight',
    'python',
    'dictionary',
    'merge',
    'loop',
    'eval',
    'catboostEvaluate',
    'addressToLine',
    'addressToLineWithInlines',
    'addressToSymbol',
    'demangle',
    'filesystemAvailable',
    'filesystemCapacity',
    'filesystemUnreserved',
    'getServerSetting',
  ].map((s) => s.toLowerCase()),
)
const DENIED_FUNCTION_FAMILIES = ['iceberg', 'deltalake', 'hudi', 'paimon']

/** Databases a query may not name: server internals (users, query logs, settings). */
export const DENIED_DATABASES = new Set(['system', 'information_schema'])

interface AstNode {
  depth: number
  kind: string
  rest: string
}

function parseAstRows(rows: string[]): AstNode[] {
  return rows.map((line) => {
    const indent = line.length - line.trimStart().length
    const body = line.trimStart()
    const space = body.indexOf(' ')
    return space < 0
      ? { depth: indent, kind: body, rest: '' }
      : { depth: indent, kind: body.slice(0, space), rest: body.slice(space + 1) }
  })
}

function reject(message: string): never {
  throw new TeitenError('QUERY_REJECTED', message)
}

/** The rules, applied to the parser's own tree of the statement (EXPLAIN AST). */
export function checkAst(rows: string[]): void {
  const nodes = parseAstRows(rows)
  const root = nodes[0]
  if (root?.kind !== 'SelectWithUnionQuery') reject('only a single SELECT (or WITH … SELECT) statement is allowed')
  const stack: AstNode[] = []
  for (const node of nodes) {
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= node.depth) stack.pop()
    const parent = stack[stack.length - 1]
    stack.push(node)
    if (node === root) continue
    if (parent === root && node.kind !== 'ExpressionList') {
      // What else hangs off the root: INTO OUTFILE (a Literal), FORMAT (an Identifier).
      reject('FORMAT, INTO OUTFILE and similar clauses are not allowed')
    }
    if (node.kind === 'Set') reject('a SETTINGS clause is not allowed: the limits are fixed')
    if (node.kind === 'Function') {
      const name = (node.rest.split(' ')[0] ?? '').toLowerCase()
      const inTable = parent?.kind === 'TableExpression'
      if (DENIED_FUNCTIONS.has(name) || DENIED_FUNCTION_FAMILIES.some((f) => name.startsWith(f))) {
        reject(`the function ${name}() reads outside the store and is not allowed`)
      }
      if (inTable && !ALLOWED_TABLE_FUNCTIONS.has(name)) {
        reject(
          `the table function ${name}() is not allowed; read the tables events, daily_agg, hourly_agg, source_daily, daily_rollup, source_weekly, source_weekly_totals`,
        )
      }
    }
    if (node.kind === 'TableIdentifier' || node.kind === 'Identifier') {
      const name = node.rest.split(' ')[0] ?? ''
      const dot = name.indexOf('.')
      // system.one is the engine's own stand-in for a SELECT without FROM.
      if (dot > 0 && DENIED_DATABASES.has(name.slice(0, dot).toLowerCase()) && name.toLowerCase() !== 'system.one') {
        reject(`the database ${name.slice(0, dot)} is not readable here`)
      }
    }
  }
}

/**
 * Accepts exactly one read-only SELECT and returns it in the engine's canonical spelling.
 *
 * The user's text never reaches the engine as SQL: chDB runs every statement of a
 * multi-statement text, so `SELECT 1; DROP TABLE events` must not be concatenated anywhere.
 * Instead the text is a query parameter of formatQuerySingleLine(), which parses it with the
 * real ClickHouse parser, refuses several statements and returns one canonical statement with
 * the comments gone. Formatting that output again must give the same text (so it is one
 * statement that means what it says); then the parser's tree of the canonical text (EXPLAIN
 * AST) is checked against the rules in checkAst, and that canonical text is what runs.
 */
export async function guardReadOnlySql(store: Store, sql: string): Promise<string> {
  if (typeof sql !== 'string' || sql.trim().length === 0) throw new TeitenError('BAD_PARAMETER', 'sql: empty query')
  if (sql.length > MAX_SQL_LENGTH)
    throw new TeitenError('BAD_PARAMETER', `sql: longer than ${MAX_SQL_LENGTH} characters`)
  if (sql.includes('\0')) throw new TeitenError('BAD_PARAMETER', 'sql: contains a NUL character')
  const format = async (text: string): Promise<string> => {
    try {
      const [row] = await store.query<{ q: string }>(
        'SELECT formatQuerySingleLine({sql:String}) AS q',
        { sql: text },
        READ_SETTINGS,
      )
      return row!.q
    } catch (err) {
      throw new TeitenError('QUERY_REJECTED', `not a single valid statement: ${engineMessage(err)}`, {}, { cause: err })
    }
  }
  const canonical = await format(sql)
  if ((await format(canonical)) !== canonical) reject('the statement does not survive a round trip through the parser')
  let ast: string[]
  try {
    // As a subquery, EXPLAIN's own output format is the caller's (and the engine itself refuses
    // anything but a SELECT there, and FORMAT or INTO OUTFILE inside it).
    const rows = await store.query<{ explain: string }>(
      `SELECT explain FROM (EXPLAIN AST ${canonical})`,
      undefined,
      READ_SETTINGS,
    )
    ast = rows.map((r) => r.explain)
  } catch (err) {
    throw new TeitenError('QUERY_REJECTED', `not an allowed statement: ${engineMessage(err)}`, {}, { cause: err })
  }
  checkAst(ast)
  return canonical
}

function engineMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/\s*In scope SELECT formatQuerySingleLine\(.*$/s, '').slice(0, 500)
}

export function sqlSettings(limits: SqlLimits): Settings {
  return {
    max_execution_time: limits.maxExecutionSeconds,
    max_memory_usage: limits.maxMemoryBytes,
    max_result_rows: limits.maxResultRows,
    max_result_bytes: limits.maxResultBytes,
    result_overflow_mode: 'throw',
    // Exact 64-bit integers: JSON numbers would round above 2^53.
    output_format_json_quote_64bit_integers: 1,
    // readonly=1, stricter than the 2 of the fixed queries: no setting can change, no table
    // function that needs write access (file, url, …) even if one slipped past the checks.
    readonly: 1,
  }
}

export interface SqlResult {
  columns: { name: string; type: string }[]
  rows: unknown[][]
  statistics?: { elapsed?: number; rows_read?: number; bytes_read?: number }
}

/** Guards, then runs a researcher's SELECT with the read-only limits. */
export async function runReadOnlySql(
  store: Store,
  sql: string,
  limits: SqlLimits = DEFAULT_SQL_LIMITS,
): Promise<SqlResult> {
  const canonical = await guardReadOnlySql(store, sql)
  let raw: Buffer
  try {
    raw = await store.queryRaw(canonical, undefined, 'JSONCompact', sqlSettings(limits))
  } catch (err) {
    const message = engineMessage(err)
    if (/Limit for result exceeded/i.test(message)) {
      throw new TeitenError(
        'QUERY_REJECTED',
        `the result has more than ${limits.maxResultRows} rows or ${limits.maxResultBytes} bytes: add a LIMIT or aggregate`,
        { userSql: true },
        { cause: err },
      )
    }
    throw new TeitenError('STORE_QUERY_FAILED', message, { userSql: true }, { cause: err })
  }
  const parsed = JSON.parse(raw.toString('utf8')) as {
    meta: { name: string; type: string }[]
    data: unknown[][]
    statistics?: SqlResult['statistics']
  }
  return { columns: parsed.meta, rows: parsed.data, statistics: parsed.statistics }
}

/** Rows as objects keyed by column name (later duplicates win), for table/CSV/JSON rendering. */
export function sqlRowsAsObjects(result: SqlResult): Record<string, unknown>[] {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c.name, row[i]])))
}
