import type { NtpClass } from '../core/event.js'
import { READ_SETTINGS } from '../store/queries.js'
import { DARK_ADDRESSES_SQL } from '../store/schema.js'
import type { Store } from '../store/store.js'
import { addDays, type Day } from './days.js'

/**
 * Every read the report and the surge detector make. All counts are accesses (destination
 * port 123, `access` in the aggregates), summed over sensors, by UTC day.
 */

export interface DayCountryClass {
  day: Day
  country: string
  class: NtpClass
  packets: number
}

export interface CountrySources {
  country: string
  sources: number
}

export interface ClassSources {
  class: NtpClass
  sources: number
}

export interface SourceRow {
  src: string
  country: string
  packets: number
  classes: NtpClass[]
  dsts: number
}

/** Packets by day, country and class for `from..to` inclusive; absent combinations had none. */
export async function loadCountryClassDaily(store: Store, from: Day, to: Day): Promise<DayCountryClass[]> {
  // Aliases differ from the column names: ClickHouse would resolve `day` in WHERE to the alias.
  const rows = await store.query<{ d: string; country: string; cls: NtpClass; packets: number }>(
    `SELECT toString(day) AS d, country, toString(class) AS cls, sum(packets) AS packets
     FROM daily_agg WHERE access AND day BETWEEN {from:Date} AND {to:Date}
     GROUP BY day, country, class`,
    { from, to },
    READ_SETTINGS,
  )
  return rows.map((r) => ({ day: r.d, country: r.country, class: r.cls, packets: Number(r.packets) }))
}

/**
 * Distinct sources of one day: by country, by class and overall. Three plain queries rather
 * than GROUPING SETS, whose grouping() bits flip with a server setting.
 */
export async function loadDaySources(
  store: Store,
  day: Day,
): Promise<{ total: number; byCountry: CountrySources[]; byClass: ClassSources[] }> {
  const where = 'FROM daily_agg WHERE access AND day = {day:Date}'
  const [all] = await store.query<{ sources: number }>(
    `SELECT uniqExactMerge(sources) AS sources ${where}`,
    { day },
    READ_SETTINGS,
  )
  const byCountry = await store.query<{ country: string; sources: number }>(
    `SELECT country, uniqExactMerge(sources) AS sources ${where} GROUP BY country`,
    { day },
    READ_SETTINGS,
  )
  const byClass = await store.query<{ cls: NtpClass; sources: number }>(
    `SELECT toString(class) AS cls, uniqExactMerge(sources) AS sources ${where} GROUP BY class`,
    { day },
    READ_SETTINGS,
  )
  return {
    total: Number(all?.sources ?? 0),
    byCountry: byCountry.map((r) => ({ country: r.country, sources: Number(r.sources) })),
    byClass: byClass.map((r) => ({ class: r.cls, sources: Number(r.sources) })),
  }
}

/** IPv4 sources are stored IPv4-mapped; show them as people write them. */
export function displayAddress(text: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(text) ? text.slice(7) : text
}

// `addr`, not `src`: an alias named like the column would replace it in WHERE and ORDER BY.
const SOURCE_SELECT = `SELECT IPv6NumToString(src) AS addr, any(country) AS country, sum(packets) AS packets,
  arraySort(groupUniqArray(toString(class))) AS classes, toUInt64(${DARK_ADDRESSES_SQL}) AS dsts`

function toSourceRows(rows: { addr: string; country: string; packets: number; classes: string[]; dsts: number }[]) {
  return rows.map(
    (r): SourceRow => ({
      src: displayAddress(r.addr),
      country: r.country,
      packets: Number(r.packets),
      classes: r.classes as NtpClass[],
      dsts: Number(r.dsts),
    }),
  )
}

export async function loadTopSources(store: Store, day: Day, limit: number): Promise<SourceRow[]> {
  const rows = await store.query<{ addr: string; country: string; packets: number; classes: string[]; dsts: number }>(
    `${SOURCE_SELECT} FROM source_daily WHERE access AND day = {day:Date}
     GROUP BY src ORDER BY packets DESC, src ASC LIMIT {limit:UInt32}`,
    { day, limit },
    READ_SETTINGS,
  )
  return toSourceRows(rows)
}

/**
 * Sources with accesses on `day` and none in the `lookbackDays` days before it. The count is
 * exact; the list is the `limit` busiest of them.
 */
export async function loadNewSources(
  store: Store,
  day: Day,
  lookbackDays: number,
  limit: number,
): Promise<{ count: number; top: SourceRow[] }> {
  const params = { day, from: addDays(day, -lookbackDays), prev: addDays(day, -1), limit }
  const seenBefore = `src NOT IN (SELECT src FROM source_daily WHERE access AND day BETWEEN {from:Date} AND {prev:Date})`
  const [counted] = await store.query<{ n: number }>(
    `SELECT toUInt64(uniqExact(src)) AS n FROM source_daily WHERE access AND day = {day:Date} AND ${seenBefore}`,
    params,
    READ_SETTINGS,
  )
  const rows = await store.query<{ addr: string; country: string; packets: number; classes: string[]; dsts: number }>(
    `${SOURCE_SELECT} FROM source_daily WHERE access AND day = {day:Date} AND ${seenBefore}
     GROUP BY src ORDER BY packets DESC, src ASC LIMIT {limit:UInt32}`,
    params,
    READ_SETTINGS,
  )
  return { count: Number(counted?.n ?? 0), top: toSourceRows(rows) }
}

/** The first and last UTC day with any access, or undefined for an empty store. */
export async function dataDays(store: Store): Promise<{ first: Day; last: Day } | undefined> {
  const rows = await store.query<{ first: string; last: string; n: number }>(
    `SELECT toString(min(day)) AS first, toString(max(day)) AS last, toUInt64(count()) AS n
     FROM daily_agg WHERE access`,
    {},
    READ_SETTINGS,
  )
  const r = rows[0]
  return r && Number(r.n) > 0 ? { first: r.first, last: r.last } : undefined
}
