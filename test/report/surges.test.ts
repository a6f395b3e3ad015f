import { describe, expect, it } from 'vitest'
import type { NtpClass } from '../../core/event.js'
import type { DayCountryClass } from '../../report/data.js'
import { addDays, dayRange } from '../../report/days.js'
import { DEFAULT_SURGE_OPTIONS, detectSurges, median, scoreDay } from '../../report/surges.js'
import { mulberry32, poisson } from './seed.js'

const DAY = '2014-01-10'
const baseline = dayRange(addDays(DAY, -28), addDays(DAY, -1))

function rowsFor(country: string, cls: NtpClass, history: number[], today: number): DayCountryClass[] {
  const rows = history.map((packets, i) => ({ day: baseline[i]!, country, class: cls, packets }))
  rows.push({ day: DAY, country, class: cls, packets: today })
  return rows.filter((r) => r.packets > 0) // the store has no row for a day without packets
}

describe('surge detector', () => {
  it('flags nothing in Poisson noise across 600 series at levels from 1 to 20000 packets a day', () => {
    const rand = mulberry32(1234)
    const rows: DayCountryClass[] = []
    for (let i = 0; i < 600; i++) {
      const level = Math.exp(rand() * Math.log(20000))
      const history = baseline.map(() => poisson(rand, level))
      rows.push(...rowsFor(`C${i}`, 'monlist', history, poisson(rand, level)))
    }
    expect(detectSurges(rows, DAY)).toEqual([])
  })

  it('flags a planted surge hidden among noisy series, with its figures', () => {
    const rand = mulberry32(99)
    const rows: DayCountryClass[] = []
    for (let i = 0; i < 200; i++) {
      const level = 5 + rand() * 500
      rows.push(
        ...rowsFor(
          `C${i}`,
          'client',
          baseline.map(() => poisson(rand, level)),
          poisson(rand, level),
        ),
      )
    }
    const history = baseline.map(() => poisson(rand, 40))
    rows.push(...rowsFor('CN', 'monlist', history, 900))
    const surges = detectSurges(rows, DAY)
    expect(surges).toHaveLength(1)
    const med = median(history)
    const mad = median(history.map((v) => Math.abs(v - med)))
    expect(surges[0]).toEqual({
      country: 'CN',
      class: 'monlist',
      packets: 900,
      median: med,
      mad,
      score: Math.round(((900 - med) / (1.4826 * mad)) * 100) / 100,
      factor: Math.round((900 / med) * 100) / 100,
    })
  })

  it('is not blinded by one earlier burst in the baseline, unlike mean and standard deviation', () => {
    const history = baseline.map((_, i) => (i === 10 ? 5000 : 100 + (i % 5)))
    const s = scoreDay(history, 800)
    expect(s.surge).toBe(true)
    const mean = history.reduce((a, b) => a + b, 0) / history.length
    const sd = Math.sqrt(history.reduce((a, b) => a + (b - mean) ** 2, 0) / history.length)
    expect((800 - mean) / sd).toBeLessThan(1) // a z-score would call this normal
    // ... and the burst day itself, had it been today, would have been flagged.
    expect(scoreDay(history.filter((_, i) => i !== 10).concat(102), 5000).surge).toBe(true)
  })

  it('keeps the score finite when MAD is 0 and lets the floors decide', () => {
    const flat = baseline.map(() => 200)
    expect(scoreDay(flat, 700)).toMatchObject({ mad: 0, sigma: 1, score: 500, surge: true })
    expect(scoreDay(flat, 210)).toMatchObject({ score: 10, surge: false }) // only 1.05x the median
    const mostlyZero = baseline.map((_, i) => (i < 3 ? 30 : 0))
    const s = scoreDay(mostlyZero, 150)
    expect(s.mad).toBe(0)
    expect(s.sigma).toBeCloseTo((1.2533 * 90) / 28, 10) // mean absolute deviation fallback
    expect(Number.isFinite(s.score)).toBe(true)
    expect(s.surge).toBe(true)
  })

  it('never alarms on tiny counts, however unusual', () => {
    const zeros = baseline.map(() => 0)
    expect(scoreDay(zeros, 99).surge).toBe(false)
    expect(scoreDay(zeros, 100).surge).toBe(true)
    expect(detectSurges(rowsFor('KR', 'monlist', zeros, 60), DAY)).toEqual([])
  })

  it('counts missing days as 0 and uses exactly the trailing window', () => {
    // Old traffic outside the 28-day window must not raise the baseline.
    const rows: DayCountryClass[] = [
      ...dayRange(addDays(DAY, -60), addDays(DAY, -29)).map((day) => ({
        day,
        country: 'US',
        class: 'monlist' as const,
        packets: 1000,
      })),
      { day: addDays(DAY, -5), country: 'US', class: 'monlist', packets: 20 },
      { day: DAY, country: 'US', class: 'monlist', packets: 300 },
    ]
    const [s] = detectSurges(rows, DAY)
    expect(s).toMatchObject({ country: 'US', median: 0, mad: 0, packets: 300, factor: 300 })
    expect(detectSurges(rows, DAY, { ...DEFAULT_SURGE_OPTIONS, baselineDays: 60 })).toEqual([])
  })

  it('computes the median of even and odd counts', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([])).toBe(0)
  })
})
