import { TeitenError } from '../core/errors.js'

/** Days are UTC calendar days written YYYY-MM-DD, the same key as `daily_agg.day`. */
export type Day = string

const DAY = /^\d{4}-\d{2}-\d{2}$/
const MS_PER_DAY = 86_400_000

export function parseDay(value: unknown, what = '--day'): Day {
  const s = String(value ?? '')
  if (!DAY.test(s)) throw new TeitenError('BAD_PARAMETER', `${what}: expected YYYY-MM-DD, got ${s || '(nothing)'}`)
  const d = new Date(`${s}T00:00:00Z`)
  // Date.parse rolls 2014-02-30 over to March: reject instead of reporting another day.
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== s) {
    throw new TeitenError('BAD_PARAMETER', `${what}: ${s} is not a calendar date`)
  }
  return s
}

export function dayOf(date: Date): Day {
  return date.toISOString().slice(0, 10)
}

export function addDays(day: Day, n: number): Day {
  return dayOf(new Date(Date.parse(`${day}T00:00:00Z`) + n * MS_PER_DAY))
}

/** Inclusive range, oldest first. */
export function dayRange(from: Day, to: Day): Day[] {
  const out: Day[] = []
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d)
  return out
}

/** `HH:MM` (UTC) as minutes after midnight. */
export function parseTimeOfDay(value: unknown, what = '--at'): number {
  const m = /^(\d{2}):(\d{2})$/.exec(String(value ?? ''))
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) {
    throw new TeitenError('BAD_PARAMETER', `${what}: expected HH:MM (UTC, 00:00..23:59), got ${String(value)}`)
  }
  return Number(m[1]) * 60 + Number(m[2])
}
