import type { Logger } from '../core/logger.js'
import { type DailyQuery, dayTerms, READ_SETTINGS } from './queries.js'
import type { Store } from './store.js'

/**
 * Finished per-day figures (`daily_rollup`): for every day, the exact packet and unique-source
 * counts of every combination of sensor, country and class, each one either a value or "every",
 * for accesses and for all packets. `teiten daily` and the dashboard read their per-day
 * answers here instead of merging `daily_agg`'s source sets at query time.
 *
 * Why: a query's cost over `daily_agg` is the number of set elements it merges. Figure 2 over
 * the aggregates of 1e9 events merges 42M source-day elements: 1.0-1.4 s on this machine's two
 * cores (a hash insert each), whatever the schema of the states. Roaring bitmaps for the IPv4
 * sources (groupBitmap) were measured 6x slower still: random darknet sources make sparse
 * containers, and deserializing them dominates (8.8-9.5 s vs 1.35-1.7 s, 42.4M elements).
 *
 * Exactness: the rows of one grouping of one day carry `version`, that day's packet total in
 * `daily_agg` when they were computed, summed in the same scan as the counts (one statement, one
 * snapshot of its parts, while a sink may be inserting). The aggregates only ever grow, so a
 * day whose total moved on has new data: its rollup is stale, and queries compute that day from
 * `daily_agg` until the next refresh. A day's cells never disappear, so ReplacingMergeTree
 * (version) with FINAL keeps exactly the latest computation of every cell. Each statement's
 * rows are inserted as one block, hence one part: a crash leaves a grouping's day whole or
 * absent, never half-written under the new version.
 */

/** `keys` bits: which dimensions a row is grouped by (the others are "every", stored as ''). */
export const ROLLUP_SENSOR = 4
export const ROLLUP_COUNTRY = 2
export const ROLLUP_CLASS = 1
const GROUPINGS = [0, 1, 2, 3, 4, 5, 6, 7]

/**
 * Packets per refresh statement (whole days; at least one). A statement keeps one exact set per
 * cell of the eight groupings of its days, at most one element per packet: the bound holds for
 * the worst darknet day (backscatter of a spoofed flood: a new source every packet), and the
 * bench corpora need few statements (chDB costs ~14 ms per statement: 2M packets in 216
 * statements of 4 days x 1 grouping took 3.4 s).
 */
const PACKETS_PER_REFRESH = 2_000_000

/** One statement, one block: squash everything the SELECT gives into a single insert block. */
const ONE_BLOCK = {
  max_insert_threads: 1,
  min_insert_block_size_rows: 1_000_000_000_000,
  min_insert_block_size_bytes: 1_000_000_000_000,
}

/**
 * Every grouping of (sensor, country, class) of some days, in one scan of `daily_agg`: counts
 * and versions from one snapshot of its parts, inserted as one block (one part: the table is
 * not partitioned). ClickHouse's grouping() has the standard meaning: a bit is set where the
 * column is NOT grouped.
 */
const DAILY_REFRESH_SQL = `INSERT INTO daily_rollup (day, scope, keys, sensor, country, class, packets, sources, version)
SELECT day, s.1 AS scope, keys, sensor_k AS sensor, country_k AS country, class_k AS class,
       s.2 AS packets, s.3 AS sources, version
FROM (
  SELECT *, sum(pall) OVER (PARTITION BY day, keys) AS version
  FROM (
    SELECT day,
           toUInt8(7 - grouping(sensor, country, class)) AS keys,
           if(bitAnd(keys, ${ROLLUP_SENSOR}) != 0, toString(sensor), '') AS sensor_k,
           if(bitAnd(keys, ${ROLLUP_COUNTRY}) != 0, toString(country), '') AS country_k,
           if(bitAnd(keys, ${ROLLUP_CLASS}) != 0, toString(class), '') AS class_k,
           toUInt64(sumIf(packets, access)) AS pa, toUInt64(uniqExactMergeIf(sources, access)) AS sa,
           toUInt64(sum(packets)) AS pall, toUInt64(uniqExactMerge(sources)) AS sall
    FROM daily_agg
    WHERE day IN {days:Array(Date)}
    GROUP BY GROUPING SETS ((day), (day, sensor), (day, country), (day, class), (day, sensor, country),
                           (day, sensor, class), (day, country, class), (day, sensor, country, class))
  )
)
ARRAY JOIN [('access', pa, sa), ('all', pall, sall)] AS s
WHERE s.2 > 0`

/** Consecutive runs of `items` whose `packets` add up to at most `budget` (at least one each). */
function chunks<T extends { packets: number }>(items: T[], budget: number): T[][] {
  const out: T[][] = []
  let run: T[] = []
  let sum = 0
  for (const item of items) {
    if (run.length > 0 && sum + item.packets > budget) {
      out.push(run)
      run = []
      sum = 0
    }
    run.push(item)
    sum += item.packets
  }
  if (run.length > 0) out.push(run)
  return out
}

/**
 * (day, grouping) pairs whose rollup is missing or older than `daily_agg`, within [from, to]
 * when given, of one grouping when `keys` is given; with the day's packets.
 */
export async function staleRollup(
  store: Store,
  range: { from?: string; to?: string } = {},
  keys?: number,
): Promise<{ day: string; keys: number; packets: number }[]> {
  const params: Record<string, unknown> = { groupings: keys === undefined ? GROUPINGS : [keys] }
  const where = dayTerms(range, params)
  const and = where.map((w) => ` AND ${w}`).join('')
  const rows = await store.query<{ d: string; k: number; p: string }>(
    // NOT IN a set of the current versions rather than a LEFT JOIN: the same rows (a day's total
    // is never 0), 24-41 ms against 30-113 on the 20M-packet bench store (the join's every
    // fourth run took ~100 ms).
    `SELECT toString(day) AS d, toUInt8(k) AS k, toString(p) AS p
     FROM (SELECT day, k, p FROM (SELECT day, sum(packets) AS p FROM daily_agg WHERE 1${and} GROUP BY day)
           ARRAY JOIN {groupings:Array(UInt8)} AS k)
     WHERE (day, k, p) NOT IN (SELECT day, keys, max(version) FROM daily_rollup WHERE scope = 'all'${and} GROUP BY day, keys)
     ORDER BY d, k`,
    params,
  )
  return rows.map((r) => ({ day: r.d, keys: Number(r.k), packets: Number(r.p) }))
}

/**
 * Days whose rollup of grouping `keys` is stale (see staleRollup), for a query: answered from
 * memory while `daily_agg` and `daily_rollup` have the same parts (whileSameParts).
 */
export async function staleRollupDays(
  store: Store,
  range: { from?: string; to?: string },
  keys: number,
): Promise<string[]> {
  return whileSameParts(store, ['daily_agg', 'daily_rollup'], `daily:${keys}:${range.from}:${range.to}`, async () =>
    (await staleRollup(store, range, keys)).map((r) => r.day),
  )
}

/**
 * The active parts of some tables, as one string: any insert, merge, mutation or drop changes
 * it (every new part has a new name, and name, rows and modification time are hashed together
 * so that a table emptied and refilled after a server restart does not repeat it), and how many
 * of the tables have parts listed at all.
 */
const PARTS_FINGERPRINT_SQL = `SELECT toUInt32(uniqExact(table)) AS listed,
  concat(toString(count()), ':', toString(groupBitXor(cityHash64(table, name, rows, modification_time)))) AS f
FROM system.parts WHERE database = currentDatabase() AND active AND table IN {tables:Array(String)}`

/** Remembered answers per store: key -> the parts they were computed on. */
const answers = new WeakMap<Store, Map<string, { parts: string; answer: unknown }>>()
/** Distinct checks remembered per store (a dashboard asks a few ranges over and over). */
const MAX_REMEMBERED = 256

/**
 * `compute()` again only when `tables` changed since it last ran with this key, in this
 * process. Every per-day and ranking query first asks which rollup cells are stale; that check
 * scans `daily_agg` and the rollup's versions, 25-45 ms on the 20M-packet bench store (its
 * `daily_agg` keeps ~70 unmerged parts: schema v8), about a third of Figure 2 and of the
 * dashboard's four queries (one check each). The parts list costs ~5 ms to read. A check's
 * answer depends on the rows of these tables only, and rows change only with their parts, so an
 * answer computed after a fingerprint was read is current while the fingerprint is. The
 * answer then meets the query that uses it just as a fresh check's would: both are read before
 * the query and anything inserted after them is the query's race, as before.
 */
async function whileSameParts<T>(store: Store, tables: string[], key: string, compute: () => Promise<T>): Promise<T> {
  const [row] = await store.query<{ listed: number; f: string }>(PARTS_FINGERPRINT_SQL, { tables }, READ_SETTINGS)
  // A table without listed parts is empty (cheap to check) or not stored here (a Distributed
  // table's rows live on its shards): its changes would not show, so nothing is remembered.
  if (!row || Number(row.listed) < tables.length) return compute()
  const parts = row.f
  let memo = answers.get(store)
  if (!memo) {
    memo = new Map()
    answers.set(store, memo)
  }
  const known = memo.get(key)
  if (known && known.parts === parts) return known.answer as T
  const answer = await compute()
  if (memo.size >= MAX_REMEMBERED) memo.clear()
  memo.set(key, { parts, answer })
  return answer
}

/**
 * `source_weekly`: packets per (week, source, sensor, country, class, access), so that ranking
 * the sources of a long range reads a row per source and week instead of per day (3.8x fewer
 * rows on the bench corpus). Same exactness rule as the daily rollup: a week's rows carry its
 * packet total in `source_daily` from the same scan. Several weeks per statement, one part per
 * week (one partition each), each whole.
 */
const WEEKLY_REFRESH_SQL = `INSERT INTO source_weekly (week, src, sensor, country, class, access, packets, version)
SELECT week, src, sensor, country, class, access, packets, sum(packets) OVER (PARTITION BY week) AS version
FROM (
  SELECT toMonday(day) AS week, src, sensor, country, class, access, toUInt64(sum(packets)) AS packets
  FROM source_daily
  WHERE day >= {first:Date} AND day <= {last:Date} + 6 AND toMonday(day) IN {weeks:Array(Date)}
  GROUP BY week, src, sensor, country, class, access
)`

/**
 * `source_weekly_totals`: packets per (week, source, access), `source_weekly`'s rows summed over
 * sensor, country and class. A ranking or a range's distinct sources without those filters (the
 * dashboard's default view, `teiten sources` without filters) groups these instead: 90 days of
 * the 1e9-event bench store are 4.75M rows here against 10.6M there, and the cost of grouping by
 * a 128-bit address is its rows: the top 15 sources' ranking 368-438 ms against 807-926 ms, the
 * distinct sources of the range 291-317 against 478-593 ms (copies of that store's rows).
 * Rows of the days outside whole weeks still come from `source_daily`: collapsing those too
 * saved another 20-60 ms there, not worth a third rollup to refresh after every ingest.
 *
 * Summed from `source_weekly` (refreshed just before; 4x fewer rows than `source_daily`). Exact
 * for the same reason as the others: `version` is the sum of the week's rows themselves, so a
 * week whose `source_weekly` rows were behind reads as stale here too.
 */
const WEEKLY_TOTALS_REFRESH_SQL = `INSERT INTO source_weekly_totals (week, src, access, packets, version)
SELECT week, src, access, packets, sum(packets) OVER (PARTITION BY week) AS version
FROM (
  SELECT week, src, access, sum(packets) AS packets
  FROM source_weekly FINAL
  WHERE week >= {first:Date} AND week <= {last:Date} AND week IN {weeks:Array(Date)}
  GROUP BY week, src, access
)`

/** The weekly rollups: each is refreshed and checked for freshness on its own. */
export const WEEKLY_TABLES = ['source_weekly', 'source_weekly_totals'] as const
export type WeeklyTable = (typeof WEEKLY_TABLES)[number]
const WEEKLY_REFRESH: Record<WeeklyTable, string> = {
  source_weekly: WEEKLY_REFRESH_SQL,
  source_weekly_totals: WEEKLY_TOTALS_REFRESH_SQL,
}

/** The weekly rollup that holds the rows a query with these filters reads. */
export function weeklyTableFor(q: { sensor?: string[]; country?: string[]; class?: string[] }): WeeklyTable {
  return q.sensor?.length || q.country?.length || q.class?.length ? 'source_weekly' : 'source_weekly_totals'
}

/** Mondays of the weeks whose rows in `table` are missing or older than `source_daily`. */
export async function staleWeeks(
  store: Store,
  range: { from?: string; to?: string } = {},
  table: WeeklyTable = 'source_weekly',
): Promise<string[]> {
  return (await staleWeekTotals(store, range, table)).map((w) => w.week)
}

/** staleWeeks, with each week's packets. */
async function staleWeekTotals(
  store: Store,
  range: { from?: string; to?: string },
  table: WeeklyTable,
): Promise<{ week: string; packets: number }[]> {
  const params: Record<string, unknown> = {}
  const where = dayTerms(range, params, { from: 'day >= toMonday({from:Date})', to: 'day <= {to:Date}' })
  // The versions of the range's weeks only (1e9-event bench store, 90 days: 50-60 ms instead
  // of 70-150 reading the versions of every week).
  const versionWhere = dayTerms(range, {}, { from: 'week >= toMonday({from:Date})', to: 'week <= {to:Date}' })
  // The current totals from daily_agg: the same per-day sums as source_daily's (both views count
  // every event), read from thousands of rows instead of millions (1e9-event bench store, 90
  // days: 13-24 ms vs 230-255 ms). While an insert is between the two views the totals differ
  // for a moment: the week reads as stale, or as it was before that insert.
  const rows = await store.query<{ w: string; p: string }>(
    // NOT IN, as in staleRollup: 22-34 ms against 23-125 for a LEFT JOIN (20M-packet bench store).
    `SELECT toString(w) AS w, toString(p) AS p
     FROM (SELECT toMonday(day) AS w, sum(packets) AS p FROM daily_agg${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} GROUP BY w)
     WHERE (w, p) NOT IN (SELECT week, max(version) FROM ${table}${versionWhere.length > 0 ? ` WHERE ${versionWhere.join(' AND ')}` : ''} GROUP BY week)
     ORDER BY w`,
    params,
  )
  return rows.map((r) => ({ week: r.w, packets: Number(r.p) }))
}

/**
 * Brings every stale (day, grouping) of the daily rollup and every stale week of
 * `source_weekly` up to date; returns how many of them were refreshed.
 */
export async function refreshRollup(
  store: Store,
  logger?: Logger,
  options: { packetsPerStatement?: number } = {},
): Promise<number> {
  const budget = options.packetsPerStatement ?? PACKETS_PER_REFRESH
  const stale = await staleRollup(store)
  const started = Date.now()
  // A day with any stale grouping gets all eight again: one scan computes them together.
  const days = [...new Map(stale.map((s) => [s.day, { day: s.day, packets: s.packets }])).values()]
  for (const run of chunks(days, budget)) {
    await store.command(DAILY_REFRESH_SQL, { days: run.map((d) => d.day) }, ONE_BLOCK)
  }
  let weekCount = 0
  for (const table of WEEKLY_TABLES) {
    const weeks = await staleWeekTotals(store, {}, table)
    weekCount += weeks.length
    for (const run of chunks(weeks, budget)) {
      const list = run.map((w) => w.week)
      await store.command(WEEKLY_REFRESH[table], { weeks: list, first: list[0], last: list.at(-1) }, ONE_BLOCK)
    }
  }
  const refreshed = stale.length + weekCount
  if (refreshed > 0) {
    logger?.debug({ days: days.length, weeks: weekCount, ms: Date.now() - started }, 'rollups refreshed')
  }
  return refreshed
}

/**
 * The rows of `source_daily` a query selects, with its fresh whole weeks (freshWholeWeeks) read
 * from the weekly rollup `table` instead: columns src and packets. `final` merges a week's
 * refreshes (needed for sums; a set of addresses is the same without it: a newer refresh only
 * adds). `table` must hold the filters' columns (weeklyTableFor).
 */
export function sourceRowsSql(
  where: { days: string[]; filters: string[] },
  weeks: string[],
  params: Record<string, unknown>,
  final: boolean,
  table: WeeklyTable = 'source_weekly',
): string {
  const clause = (terms: string[]) => (terms.length > 0 ? ` WHERE ${terms.join(' AND ')}` : '')
  const daily = [...where.days, ...where.filters]
  if (weeks.length === 0) return `SELECT src, packets FROM source_daily${clause(daily)}`
  params.weeks = weeks
  return (
    `SELECT src, packets FROM ${table}${final ? ' FINAL' : ''}${clause(['week IN {weeks:Array(Date)}', ...where.filters])}` +
    ` UNION ALL SELECT src, packets FROM source_daily${clause([...daily, 'toMonday(day) NOT IN {weeks:Array(Date)}'])}`
  )
}

/**
 * The weeks a day range covers whole, and which of them the weekly rollup `table` has current:
 * the ranking of a range reads those from it and every other day from `source_daily`. Answered
 * from memory while `daily_agg` and `table` have the same parts (whileSameParts).
 */
export async function freshWholeWeeks(
  store: Store,
  range: { from?: string; to?: string },
  table: WeeklyTable = 'source_weekly',
): Promise<string[]> {
  return whileSameParts(store, ['daily_agg', table], `weeks:${table}:${range.from}:${range.to}`, () =>
    checkWholeWeeks(store, range, table),
  )
}

async function checkWholeWeeks(
  store: Store,
  range: { from?: string; to?: string },
  table: WeeklyTable,
): Promise<string[]> {
  const params: Record<string, unknown> = {}
  // Whole weeks only: from a Monday on or after `from`, to a Sunday on or before `to`.
  const where = dayTerms(range, params, { from: 'week >= {from:Date}', to: 'week + 6 <= {to:Date}' })
  const cond = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''
  const [known, stale] = await Promise.all([
    // One partition per week: the weeks present, from the parts list instead of a column scan
    // (1e9-event bench store: ~1 ms vs 60-90 ms).
    store.query<{ w: string }>(
      `SELECT DISTINCT toString(week) AS w FROM (
         SELECT toDate(partition) AS week FROM system.parts
         WHERE database = currentDatabase() AND table = {table:String} AND active)${cond} ORDER BY w`,
      { ...params, table },
    ),
    staleWeeks(store, range, table),
  ])
  const staleSet = new Set(stale)
  return known.map((r) => r.w).filter((w) => !staleSet.has(w))
}

/**
 * How a daily query maps onto the rollup, or undefined when it cannot: it must be per day, and
 * a dimension it does not group by may be filtered to one value at most (a union of several
 * values' sources is not in the rollup).
 */
export function rollupPlan(
  q: DailyQuery,
): { keys: number; pinned: Partial<Record<'sensor' | 'country' | 'class', string>> } | undefined {
  if (!q.by.includes('day')) return undefined
  let keys = 0
  const pinned: Partial<Record<'sensor' | 'country' | 'class', string>> = {}
  const dims = [
    ['sensor', ROLLUP_SENSOR, q.sensor],
    ['country', ROLLUP_COUNTRY, q.country],
    ['class', ROLLUP_CLASS, q.class],
  ] as const
  for (const [name, bit, filter] of dims) {
    if (q.by.includes(name)) keys |= bit
    else if (filter && new Set(filter).size === 1) {
      keys |= bit
      pinned[name] = filter[0]!
    } else if (filter && filter.length > 1) return undefined
  }
  return { keys, pinned }
}

/**
 * Keeps the rollup current while a long-running writer stores data (`sink`, `ingest --watch`):
 * a refresh every `intervalMs` (each one only recomputes the days that changed; none without
 * it), and a last one at stop. A failed refresh is logged and retried at the next tick: queries
 * stay exact without it (stale days and weeks are computed from the aggregates), only slower.
 */
export function startRollupRefresher(
  store: Store,
  options: { intervalMs?: number; logger: Logger },
): { stop(): Promise<void>; nudge(): void } {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()
  let stopped = false
  const refresh = () =>
    refreshRollup(store, options.logger).then(
      () => {},
      (err: unknown) => options.logger.warn({ error: (err as Error).message }, 'rollup refresh failed'),
    )
  const schedule = () => {
    if (stopped || options.intervalMs === undefined) return
    timer = setTimeout(() => {
      running = refresh().then(schedule)
    }, options.intervalMs)
    timer.unref()
  }
  schedule()
  let nudged = false
  return {
    /**
     * A refresh now, beside whatever is being stored (after the one running, if any; once: stop()
     * still refreshes last). For the end of a one-shot ingest: the reader is done and the engine stores
     * the last batches with one of the two cores idle half the time; the refresh brings most days
     * up to date meanwhile and the last one recomputes only what those batches changed.
     */
    nudge() {
      if (nudged || stopped) return
      nudged = true
      running = running.then(refresh)
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running
      await refresh()
    },
  }
}

/** How often long-running writers refresh the rollup. */
export const ROLLUP_REFRESH_INTERVAL_MS = 60_000
