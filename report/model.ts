import { NTP_CLASSES, type NtpClass } from '../core/event.js'
import type { Store } from '../store/store.js'
import {
  type ClassSources,
  type CountrySources,
  type DayCountryClass,
  loadCountryClassDaily,
  loadDaySources,
  loadNewSources,
  loadTopSources,
  type SourceRow,
} from './data.js'
import { addDays, type Day, dayRange } from './days.js'
import { DEFAULT_SURGE_OPTIONS, detectSurges, type Surge, type SurgeOptions } from './surges.js'

/**
 * Everything one daily report shows, computed once; the CSV, Markdown, HTML and PNG
 * renderers only format it. The figures are defined in docs/report.md.
 */

export interface CountryRow {
  country: string
  /** Accesses (destination port 123) from this country on the day. */
  packets: number
  sources: number
  byClass: Record<NtpClass, number>
  /** packets / all accesses of the day. */
  share: number
  packetsPrevDay: number
  /** (packets - packetsPrevDay) / packetsPrevDay; null when the previous day had none. */
  dodChange: number | null
  /** Mean packets per day over the 7 days before, days without packets counting as 0. */
  baseline7d: number
  /** (packets - baseline7d) / baseline7d; null when the baseline is 0. */
  baselineChange: number | null
}

export interface ClassRow {
  class: NtpClass
  packets: number
  sources: number
  share: number
}

export interface TrendSeries {
  /** A country code, or OTHER for the countries outside the top ones. */
  name: string
  data: number[]
  total: number
}

export interface Trend {
  days: Day[]
  series: TrendSeries[]
}

export interface Headline {
  accesses: number
  sources: number
  countries: number
  monlistPackets: number
  monlistShare: number
  prevDayAccesses: number
  dodChange: number | null
}

export interface ReportModel {
  day: Day
  generatedAt: string
  headline: Headline
  countries: CountryRow[]
  classes: ClassRow[]
  trend: Trend
  topSources: SourceRow[]
  newSources: { count: number; lookbackDays: number; top: SourceRow[] }
  surges: Surge[]
  surgeOptions: SurgeOptions
}

export interface ReportOptions {
  trendDays: number
  trendCountries: number
  topSources: number
  newSourceLookbackDays: number
  surge: SurgeOptions
}

export const DEFAULT_REPORT_OPTIONS: ReportOptions = {
  trendDays: 90,
  trendCountries: 8,
  topSources: 20,
  newSourceLookbackDays: 28,
  surge: DEFAULT_SURGE_OPTIONS,
}

export const OTHER = 'other'
const BASELINE_DAYS = 7

export interface ReportInputs {
  day: Day
  generatedAt: string
  /** Per-day rows covering the trend window and the baselines (see `historyFrom`). */
  daily: DayCountryClass[]
  sources: { total: number; byCountry: CountrySources[]; byClass: ClassSources[] }
  topSources: SourceRow[]
  newSources: { count: number; top: SourceRow[] }
}

const emptyClasses = (): Record<NtpClass, number> =>
  Object.fromEntries(NTP_CLASSES.map((c) => [c, 0])) as Record<NtpClass, number>

/** The first day the report needs rows for. */
export function historyFrom(day: Day, options: ReportOptions): Day {
  return addDays(day, -Math.max(options.trendDays - 1, options.surge.baselineDays, BASELINE_DAYS))
}

const change = (now: number, before: number): number | null => (before > 0 ? (now - before) / before : null)

export function buildReportModel(inputs: ReportInputs, options: ReportOptions = DEFAULT_REPORT_OPTIONS): ReportModel {
  const { day } = inputs
  const prevDay = addDays(day, -1)
  const baselineFrom = addDays(day, -BASELINE_DAYS)
  const countryDay = new Map<string, number>() // `${country}\t${day}` -> packets
  const today = new Map<string, Record<NtpClass, number>>()
  const classToday = emptyClasses()
  for (const r of inputs.daily) {
    const k = `${r.country}\t${r.day}`
    countryDay.set(k, (countryDay.get(k) ?? 0) + r.packets)
    if (r.day !== day) continue
    const byClass = today.get(r.country) ?? emptyClasses()
    today.set(r.country, byClass)
    byClass[r.class] += r.packets
    classToday[r.class] += r.packets
  }
  const on = (country: string, d: Day) => countryDay.get(`${country}\t${d}`) ?? 0
  const total = NTP_CLASSES.reduce((acc, c) => acc + classToday[c], 0)
  const sourcesByCountry = new Map(inputs.sources.byCountry.map((r) => [r.country, r.sources]))
  const sourcesByClass = new Map(inputs.sources.byClass.map((r) => [r.class, r.sources]))
  const baselineDays = dayRange(baselineFrom, prevDay)

  const countries: CountryRow[] = [...today].map(([country, byClass]) => {
    const packets = NTP_CLASSES.reduce((acc, c) => acc + byClass[c], 0)
    const packetsPrevDay = on(country, prevDay)
    const baseline7d = baselineDays.reduce((acc, d) => acc + on(country, d), 0) / BASELINE_DAYS
    return {
      country,
      packets,
      sources: sourcesByCountry.get(country) ?? 0,
      byClass,
      share: total > 0 ? packets / total : 0,
      packetsPrevDay,
      dodChange: change(packets, packetsPrevDay),
      baseline7d,
      baselineChange: change(packets, baseline7d),
    }
  })
  countries.sort((a, b) => b.packets - a.packets || a.country.localeCompare(b.country))

  const prevDayAccesses = inputs.daily.reduce((acc, r) => acc + (r.day === prevDay ? r.packets : 0), 0)
  const headline: Headline = {
    accesses: total,
    sources: inputs.sources.total,
    countries: countries.length,
    monlistPackets: classToday.monlist,
    monlistShare: total > 0 ? classToday.monlist / total : 0,
    prevDayAccesses,
    dodChange: change(total, prevDayAccesses),
  }
  const classes: ClassRow[] = NTP_CLASSES.map((c) => ({
    class: c,
    packets: classToday[c],
    sources: sourcesByClass.get(c) ?? 0,
    share: total > 0 ? classToday[c] / total : 0,
  }))

  return {
    day,
    generatedAt: inputs.generatedAt,
    headline,
    countries,
    classes,
    trend: buildTrend(inputs.daily, day, options),
    topSources: inputs.topSources,
    newSources: { ...inputs.newSources, lookbackDays: options.newSourceLookbackDays },
    surges: detectSurges(inputs.daily, day, options.surge),
    surgeOptions: options.surge,
  }
}

/** Figure 2's view: the top countries of the window stacked per day, the rest as one series. */
export function buildTrend(daily: readonly DayCountryClass[], day: Day, options: ReportOptions): Trend {
  const days = dayRange(addDays(day, -(options.trendDays - 1)), day)
  const index = new Map(days.map((d, i) => [d, i]))
  const perCountry = new Map<string, number[]>()
  for (const r of daily) {
    const i = index.get(r.day)
    if (i === undefined) continue
    const data = perCountry.get(r.country) ?? new Array<number>(days.length).fill(0)
    perCountry.set(r.country, data)
    data[i]! += r.packets
  }
  const ranked = [...perCountry]
    .map(([name, data]) => ({ name, data, total: data.reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.total - a.total || a.name.localeCompare(b.name))
  const series = ranked.slice(0, options.trendCountries)
  const rest = ranked.slice(options.trendCountries)
  if (rest.length > 0) {
    const data = days.map((_, i) => rest.reduce((acc, s) => acc + s.data[i]!, 0))
    series.push({ name: OTHER, data, total: data.reduce((a, b) => a + b, 0) })
  }
  return { days, series }
}

export async function loadReportModel(
  store: Store,
  day: Day,
  now: () => Date,
  options: ReportOptions = DEFAULT_REPORT_OPTIONS,
): Promise<ReportModel> {
  // One at a time: the embedded engine serves one query per connection anyway.
  const daily = await loadCountryClassDaily(store, historyFrom(day, options), day)
  const sources = await loadDaySources(store, day)
  const topSources = await loadTopSources(store, day, options.topSources)
  const newSources = await loadNewSources(store, day, options.newSourceLookbackDays, options.topSources)
  return buildReportModel({ day, generatedAt: now().toISOString(), daily, sources, topSources, newSources }, options)
}
