import type { NtpClass } from '../core/event.js'
import type { Store } from '../store/store.js'
import { type DayCountryClass, loadCountryClassDaily } from './data.js'
import { addDays, type Day, dayRange } from './days.js'

/**
 * Surge detection: a (country, class) whose accesses on a day are far above its own recent
 * level. Median and MAD rather than mean and standard deviation, because darknet series are
 * spiky: one earlier burst must not hide the next one by inflating the spread.
 */
export interface SurgeOptions {
  /** Trailing days before the day that make the baseline; a day without packets counts as 0. */
  baselineDays: number
  /** Robust z-score a surge must reach. */
  minScore: number
  /** Floor so that tiny counts never alarm: at least this many packets on the day ... */
  minPackets: number
  /** ... and at least this multiple of the baseline median. */
  minFactor: number
}

export const DEFAULT_SURGE_OPTIONS: SurgeOptions = { baselineDays: 28, minScore: 5, minPackets: 100, minFactor: 3 }

export interface Surge {
  country: string
  class: NtpClass
  packets: number
  median: number
  mad: number
  score: number
  factor: number
}

/** Scales MAD to a standard deviation for normally distributed data. */
const MAD_TO_SIGMA = 1.4826
/** Scales the mean absolute deviation likewise; the fallback when more than half the days are equal. */
const MEANAD_TO_SIGMA = 1.2533

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface SurgeScore {
  median: number
  mad: number
  /** The spread the score divides by, after the MAD=0 guard. */
  sigma: number
  score: number
  factor: number
  surge: boolean
}

/**
 * score = (x - median) / (1.4826 * MAD). When MAD is 0 (a flat baseline, typically all
 * zeros) the spread falls back to 1.2533 * mean absolute deviation from the median, and to 1
 * packet when that is 0 too, so the score stays finite and the floors decide.
 */
export function scoreDay(
  history: readonly number[],
  x: number,
  options: SurgeOptions = DEFAULT_SURGE_OPTIONS,
): SurgeScore {
  const med = median(history)
  const mad = median(history.map((v) => Math.abs(v - med)))
  let sigma = MAD_TO_SIGMA * mad
  if (sigma === 0 && history.length > 0) {
    sigma = (MEANAD_TO_SIGMA * history.reduce((acc, v) => acc + Math.abs(v - med), 0)) / history.length
  }
  if (sigma === 0) sigma = 1
  const score = (x - med) / sigma
  const factor = x / Math.max(med, 1)
  const surge = score >= options.minScore && x >= options.minPackets && x >= options.minFactor * med
  return { median: med, mad, sigma, score, factor, surge }
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits

/**
 * Surges on `day` from per-day rows that cover at least `baselineDays` days before it.
 * Sorted by score, highest first.
 */
export function detectSurges(
  rows: readonly DayCountryClass[],
  day: Day,
  options: SurgeOptions = DEFAULT_SURGE_OPTIONS,
): Surge[] {
  const baseline = dayRange(addDays(day, -options.baselineDays), addDays(day, -1))
  const index = new Map(baseline.map((d, i) => [d, i]))
  const today = new Map<string, { country: string; class: NtpClass; packets: number }>()
  const history = new Map<string, number[]>()
  for (const r of rows) {
    const key = `${r.country}\t${r.class}`
    if (r.day === day) {
      const t = today.get(key)
      if (t) t.packets += r.packets
      else today.set(key, { country: r.country, class: r.class, packets: r.packets })
      continue
    }
    const i = index.get(r.day)
    if (i === undefined) continue
    const h = history.get(key) ?? new Array<number>(baseline.length).fill(0)
    history.set(key, h)
    h[i]! += r.packets
  }
  const surges: Surge[] = []
  for (const [key, t] of today) {
    const h = history.get(key) ?? new Array<number>(baseline.length).fill(0)
    const s = scoreDay(h, t.packets, options)
    if (!s.surge) continue
    surges.push({
      country: t.country,
      class: t.class,
      packets: t.packets,
      median: s.median,
      mad: s.mad,
      score: round(s.score, 2),
      factor: round(s.factor, 2),
    })
  }
  return surges.sort((a, b) => b.score - a.score || b.packets - a.packets || a.country.localeCompare(b.country))
}

export async function findSurges(
  store: Store,
  day: Day,
  options: SurgeOptions = DEFAULT_SURGE_OPTIONS,
): Promise<Surge[]> {
  const rows = await loadCountryClassDaily(store, addDays(day, -options.baselineDays), day)
  return detectSurges(rows, day, options)
}
