import { z } from 'zod'
import { NTP_CLASSES } from '../core/event.js'
import { TeitenError } from '../core/errors.js'
import { freshWholeWeeks, rollupPlan, sourceRowsSql, staleRollupDays, weeklyTableFor } from './rollup.js'
import type { Store } from './store.js'

export const DAILY_KEYS = ['day', 'sensor', 'country', 'class'] as const
export type DailyKey = (typeof DAILY_KEYS)[number]

export const isoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD')
  .refine(
    (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s),
    {
      message: 'not a calendar date',
    },
  )

export const csvList = <T extends z.ZodType<string, string>>(item: T) =>
  z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter((s) => s.length > 0))
    .pipe(z.array(item))

export const COUNTRY = z.string().regex(/^([A-Z]{2}|--)$/, 'expected ISO 3166-1 alpha-2 in capitals or --')

/** The filters `teiten daily` has, shared by every research query (store/research.ts). */
export const filterShape = {
  all: z.boolean().default(false),
  sensor: csvList(z.string().min(1).max(128)).optional(),
  class: csvList(z.enum(NTP_CLASSES)).optional(),
  country: csvList(COUNTRY).optional(),
}

export type Filters = { all: boolean; sensor?: string[]; class?: string[]; country?: string[] }

/** WHERE terms for the aggregate tables; every value travels as a query parameter. */
export function filterTerms(q: Filters, params: Record<string, unknown>, access = 'access'): string[] {
  const where: string[] = []
  if (!q.all) where.push(access)
  if (q.sensor?.length) {
    where.push('sensor IN {sensors:Array(String)}')
    params.sensors = q.sensor
  }
  if (q.class?.length) {
    where.push('toString(class) IN {classes:Array(String)}')
    params.classes = q.class
  }
  if (q.country?.length) {
    where.push('country IN {countries:Array(String)}')
    params.countries = q.country
  }
  return where
}

/** WHERE terms of a day range; `terms` bind {from:Date} and {to:Date} to other columns. */
export function dayTerms(
  q: { from?: string; to?: string },
  params: Record<string, unknown>,
  terms: { from: string; to: string } = { from: 'day >= {from:Date}', to: 'day <= {to:Date}' },
): string[] {
  const where: string[] = []
  if (q.from) {
    where.push(terms.from)
    params.from = q.from
  }
  if (q.to) {
    where.push(terms.to)
    params.to = q.to
  }
  return where
}

/** The parameters of `teiten daily` and `GET /api/daily`: one schema, so both answer alike. */
export const DailyQuerySchema = z
  .object({
    from: isoDay.optional(),
    to: isoDay.optional(),
    by: csvList(z.enum(DAILY_KEYS)).default(['day', 'country']),
    ...filterShape,
  })
  .strict()
  .refine((q) => !q.from || !q.to || q.from <= q.to, { message: 'from is after to' })
  .refine((q) => new Set(q.by).size === q.by.length, { message: 'a key appears twice in by' })

export type DailyQuery = z.output<typeof DailyQuerySchema>
export type DailyRow = Record<string, string | number>

export function parseDailyQuery(input: unknown): DailyQuery {
  const parsed = DailyQuerySchema.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new TeitenError('BAD_PARAMETER', `${where}${issue.message}`)
  }
  return parsed.data
}

/** Settings for every read: plain numbers for counts (< 2^53), read-only. */
export const READ_SETTINGS = { output_format_json_quote_64bit_integers: 0, readonly: 2 } as const

/** `teiten daily` from `daily_agg`'s states. */
export function dailySql(q: DailyQuery): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {}
  return { sql: `${dailyStatesSelect(q, params)} ORDER BY ${dailyOrder(q)}`, params }
}

/** The unordered SELECT of dailySql; with `days`, of those days only (bound as {stale}). */
function dailyStatesSelect(q: DailyQuery, params: Record<string, unknown>, days?: string[]): string {
  const where = [...dayTerms(q, params), ...filterTerms(q, params)]
  if (days) {
    where.push('day IN {stale:Array(Date)}')
    params.stale = days
  }
  const keys = q.by.map((k) => (k === 'class' ? 'toString(class) AS class' : k))
  const select = [...keys, 'sum(packets) AS packets', 'uniqExactMerge(sources) AS sources'].join(', ')
  return (
    `SELECT ${select} FROM daily_agg` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    (q.by.length > 0 ? ` GROUP BY ${q.by.join(', ')}` : '')
  )
}

function dailyOrder(q: DailyQuery): string {
  return [
    ...(q.by.includes('day') ? ['day ASC'] : []),
    'packets DESC',
    ...q.by.filter((k) => k !== 'day').map((k) => `${k} ASC`),
  ].join(', ')
}

/**
 * A per-day query from the finished figures of `daily_rollup` (store/rollup.ts), with the days
 * whose rollup is stale computed from `daily_agg` in the same statement. Undefined when the
 * query has no rollup form (not per day, or a union of several values of a dimension it does
 * not group by).
 */
export function dailyRollupSql(
  q: DailyQuery,
  staleDays: string[],
): { sql: string; params: Record<string, unknown> } | undefined {
  const plan = rollupPlan(q)
  if (!plan) return undefined
  const params: Record<string, unknown> = { scope: q.all ? 'all' : 'access', keys: plan.keys }
  const where = [...dayTerms(q, params), 'scope = {scope:String}', 'keys = {keys:UInt8}']
  for (const [dim, list] of [
    ['sensor', q.sensor],
    ['country', q.country],
    ['class', q.class],
  ] as const) {
    const pinned = plan.pinned[dim]
    if (pinned !== undefined) {
      where.push(`${dim} = {pin_${dim}:String}`)
      params[`pin_${dim}`] = pinned
    } else if (list?.length) {
      where.push(`${dim} IN {in_${dim}:Array(String)}`)
      params[`in_${dim}`] = list
    }
  }
  if (staleDays.length > 0) {
    where.push('day NOT IN {stale:Array(Date)}')
    params.stale = staleDays
  }
  const columns = [...q.by, 'packets', 'sources'].join(', ')
  let sql = `SELECT ${columns} FROM daily_rollup FINAL WHERE ${where.join(' AND ')}`
  if (staleDays.length > 0) {
    // The states part binds the same parameter names to the same values (from, to, filters).
    sql = `SELECT ${columns} FROM (${sql} UNION ALL ${dailyStatesSelect(q, params, staleDays)})`
  }
  return { sql: `${sql} ORDER BY ${dailyOrder(q)}`, params }
}

/**
 * Totals of a range (`by` empty: the dashboard's headline figures): packets from `daily_agg`,
 * distinct sources by a GROUP BY on the address alone over a weekly rollup for the range's
 * whole weeks and `source_daily` for the other days. Merging `daily_agg`'s source sets runs on
 * one core, a GROUP BY with a 128-bit key on both, over 3.8x fewer rows where weeks are whole.
 * 90 days of the 1e9-event bench store: 1,000-1,060 ms merging sets, 820-920 ms grouping
 * source_daily alone, 366-490 ms with source_weekly (round 10's host); without sensor, country
 * or class filters `source_weekly_totals`, 291-317 ms against 478-593 (round 13's host).
 */
export function totalsSql(q: DailyQuery, weeks: string[]): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {}
  const days = dayTerms(q, params)
  const filters = filterTerms(q, params)
  const where = [...days, ...filters]
  const rows = sourceRowsSql({ days, filters }, weeks, params, false, weeklyTableFor(q))
  const sql =
    `SELECT (SELECT toUInt64(sum(packets)) FROM daily_agg${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}) AS packets,` +
    ` (SELECT count() FROM (SELECT src FROM (${rows}) GROUP BY src)) AS sources`
  return { sql, params }
}

export async function queryDaily(store: Store, q: DailyQuery): Promise<DailyRow[]> {
  let statement: { sql: string; params: Record<string, unknown> } | undefined
  const plan = rollupPlan(q)
  if (plan) statement = dailyRollupSql(q, await staleRollupDays(store, q, plan.keys))
  else if (q.by.length === 0) statement = totalsSql(q, await freshWholeWeeks(store, q, weeklyTableFor(q)))
  statement ??= dailySql(q)
  const rows = await store.query<DailyRow>(statement.sql, statement.params, READ_SETTINGS)
  // Exactly the keys asked for, then packets and sources, in that order.
  return rows.map((r) => {
    const out: DailyRow = {}
    for (const k of q.by) out[k] = r[k] as string
    out.packets = Number(r.packets)
    out.sources = Number(r.sources)
    return out
  })
}
