import { readdirSync, readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NTP_CLASSES } from '../../core/event.js'
import { silentLogger } from '../../core/logger.js'
import { REPORT_CSV_COLUMNS } from '../../report/csv.js'
import { displayAddress } from '../../report/data.js'
import { addDays, dayRange } from '../../report/days.js'
import { generateReport } from '../../report/generate.js'
import type { ReportModel } from '../../report/model.js'
import { findSurges, median } from '../../report/surges.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import type { PacketSpec } from '../helpers/packets.js'
import { tempDir } from '../helpers/tmp.js'
import { decodePng } from './png-decode.js'
import { buildEvents, insertEvents } from './seed.js'

const DAY = '2014-01-10'
const dir = tempDir()
const out = `${dir.path}/reports`
let store: Store

/**
 * Seven weeks of Poisson noise around fixed levels, plus: a planted surge (DE mode6_readvar
 * 400 packets on DAY against ~5 a day), a country seen 3 days before DAY but not the day
 * before (BR), one seen only on DAY (KR), new sources on DAY, and backscatter every day.
 */
const events: PacketSpec[] = buildEvents({
  seed: 20140110,
  days: dayRange('2013-11-20', DAY),
  poolSize: 40,
  streams: [
    { country: 'CN', cls: 'monlist', level: 60 },
    { country: 'CN', cls: 'client', level: 10 },
    { country: 'US', cls: 'monlist', level: 30 },
    { country: 'US', cls: 'mode6_readvar', level: 8 },
    { country: 'JP', cls: 'client', level: 15 },
    { country: 'DE', cls: 'mode6_readvar', level: 5, fixed: { [DAY]: 400 } },
    { country: '--', cls: 'other_ntp', level: 3 },
    {
      country: 'BR',
      cls: 'mode7_other',
      level: 0,
      only: [addDays(DAY, -3), DAY],
      fixed: { [addDays(DAY, -3)]: 50, [DAY]: 60 },
    },
    { country: 'KR', cls: 'monlist', level: 0, only: [DAY], fixed: { [DAY]: 40 } },
  ],
  newSources: [{ day: DAY, country: 'CN', count: 3, packetsEach: 7 }],
})

// The oracle: every expected figure straight from the seed list, by counting.
const accesses = events.filter((e) => (e.dstPort ?? 123) === 123)
const on = (day: string) => accesses.filter((e) => e.ts.startsWith(day))
const count = (day: string, country: string) => on(day).filter((e) => e.country === country).length

let model: ReportModel
let csv: string
let html: string
let md: string
let png: Buffer

beforeAll(async () => {
  store = await openStore({ dataDir: `${dir.path}/data`, logger: silentLogger, host: false })
  await insertEvents(store, events, 'report')
  const result = await generateReport({
    store,
    day: DAY,
    outDir: out,
    logger: silentLogger,
    now: () => new Date('2014-01-11T06:00:00Z'),
  })
  model = result.model
  csv = readFileSync(result.paths.csv, 'utf8')
  html = readFileSync(result.paths.html, 'utf8')
  md = readFileSync(result.paths.md, 'utf8')
  png = readFileSync(result.paths.png)
})
afterAll(async () => {
  await store?.close()
  dir.cleanup()
})

function parseCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trimEnd().split('\n')
  const cols = header!.split(',')
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i]!, v])))
}

describe('daily report', () => {
  it('writes the four files, and no temporary file is left behind', () => {
    expect(readdirSync(out).sort()).toEqual(
      ['csv', 'html', 'md', 'png'].map((ext) => `teiten-report-${DAY}.${ext}`).sort(),
    )
  })

  it('has one CSV row per source country with every figure matching a recount of the seed', () => {
    const rows = parseCsv(csv)
    expect(csv.split('\n')[0]).toBe(REPORT_CSV_COLUMNS.join(','))
    const today = on(DAY)
    const total = today.length
    const countries = [...new Set(today.map((e) => e.country))]
    const expected = countries
      .map((country) => {
        const mine = today.filter((e) => e.country === country)
        const prev = count(addDays(DAY, -1), country)
        const baseline = dayRange(addDays(DAY, -7), addDays(DAY, -1)).reduce((a, d) => a + count(d, country), 0) / 7
        return {
          country,
          packets: mine.length,
          sources: new Set(mine.map((e) => e.src)).size,
          byClass: Object.fromEntries(NTP_CLASSES.map((c) => [c, mine.filter((e) => e.cls === c).length])),
          share: mine.length / total,
          prev,
          dod: prev > 0 ? (mine.length - prev) / prev : null,
          baseline,
          baselineChange: baseline > 0 ? (mine.length - baseline) / baseline : null,
        }
      })
      .sort((a, b) => b.packets - a.packets || a.country.localeCompare(b.country))

    expect(rows.map((r) => r.country)).toEqual(expected.map((e) => e.country))
    const close = (cell: string | undefined, value: number | null) => {
      if (value === null) expect(cell).toBe('')
      else expect(Math.abs(Number(cell) - value)).toBeLessThan(5e-7)
    }
    rows.forEach((row, i) => {
      const e = expected[i]!
      expect(Number(row.packets)).toBe(e.packets)
      expect(Number(row.sources)).toBe(e.sources)
      for (const c of NTP_CLASSES) expect(Number(row[c]), `${e.country} ${c}`).toBe(e.byClass[c])
      close(row.share, e.share)
      expect(Number(row.packets_prev_day)).toBe(e.prev)
      close(row.dod_change, e.dod)
      close(row.baseline_7d, e.baseline)
      close(row.baseline_change, e.baselineChange)
    })
    // The seed's special cases really are exercised.
    const by = Object.fromEntries(rows.map((r) => [r.country, r]))
    expect(by.BR!.dod_change).toBe('')
    expect(Number(by.BR!.baseline_7d)).toBeCloseTo(50 / 7, 5)
    expect(by.KR!.baseline_change).toBe('')
    expect(by.US!.response).toBe('0') // backscatter from port 123 is not an access
    expect(rows.reduce((a, r) => a + Number(r.share), 0)).toBeCloseTo(1, 5)
  })

  it('has headline figures and a class split that match the seed', () => {
    const today = on(DAY)
    const prev = on(addDays(DAY, -1)).length
    const monlist = today.filter((e) => e.cls === 'monlist').length
    expect(model.headline).toEqual({
      accesses: today.length,
      sources: new Set(today.map((e) => e.src)).size,
      countries: new Set(today.map((e) => e.country)).size,
      monlistPackets: monlist,
      monlistShare: monlist / today.length,
      prevDayAccesses: prev,
      dodChange: (today.length - prev) / prev,
    })
    for (const c of model.classes) {
      const mine = today.filter((e) => e.cls === c.class)
      expect(c.packets).toBe(mine.length)
      expect(c.sources).toBe(new Set(mine.map((e) => e.src)).size)
    }
  })

  it('lists the top sources and the sources new against the previous 28 days', () => {
    const today = on(DAY)
    const perSource = new Map<string, number>()
    for (const e of today) perSource.set(e.src, (perSource.get(e.src) ?? 0) + 1)
    const ipNum = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0)
    const ranked = [...perSource].sort((a, b) => b[1] - a[1] || ipNum(a[0]) - ipNum(b[0]))
    expect(model.topSources.map((s) => [s.src, s.packets])).toEqual(ranked.slice(0, 20))

    const before = new Set(
      accesses.filter((e) => e.ts.slice(0, 10) >= addDays(DAY, -28) && e.ts.slice(0, 10) < DAY).map((e) => e.src),
    )
    const fresh = ranked.filter(([src]) => !before.has(src))
    // KR's pool and the three planted sources; every other pool address was busy before.
    expect(fresh.length).toBeGreaterThanOrEqual(4)
    expect(model.newSources.count).toBe(fresh.length)
    expect(model.newSources.top.map((s) => [s.src, s.packets])).toEqual(fresh.slice(0, 20))
  })

  it('flags the planted surge and nothing in the noise, the same as `teiten alerts`', async () => {
    const history = dayRange(addDays(DAY, -28), addDays(DAY, -1)).map(
      (d) => on(d).filter((e) => e.country === 'DE' && e.cls === 'mode6_readvar').length,
    )
    expect(model.surges).toHaveLength(1)
    expect(model.surges[0]).toMatchObject({
      country: 'DE',
      class: 'mode6_readvar',
      packets: 400,
      median: median(history),
    })
    expect(model.surges[0]!.factor).toBeCloseTo(400 / Math.max(median(history), 1), 2)
    expect(await findSurges(store, DAY)).toEqual(model.surges)
  })

  it('shows the advisory subtitle, the figures and the chart in Markdown and HTML', () => {
    const subtitle = '宛先ポート 123/UDP に対する発信元国・地域別アクセス件数'
    for (const doc of [md, html]) {
      expect(doc).toContain(subtitle)
      expect(doc).toContain(model.headline.accesses.toLocaleString('en-US'))
      for (const s of [
        'Surges',
        'Accesses by source country',
        'Class split',
        'Trend, trailing 90 days',
        'Top sources',
        'New sources',
      ]) {
        expect(doc).toContain(s)
      }
    }
    expect(md).toContain(`](teiten-report-${DAY}.png)`)
    expect(md).toMatch(/\| DE \| mode6_readvar \| 400 \|/)
    expect(html).toMatch(/<figure><svg[^>]*>[\s\S]*<\/svg><\/figure>/)
  })

  it('writes a self-contained HTML page: no external URL anywhere', () => {
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i)
    expect(html).not.toMatch(/https?:\/\//i)
    expect(html).not.toMatch(/url\(|@import|<link\b|<script\b[^>]*\bsrc=/i)
  })

  it('writes a PNG of the chart size with drawn content', () => {
    const img = decodePng(png)
    expect([img.width, img.height]).toEqual([1200, 640])
    let nonWhite = 0
    for (let i = 0; i < img.pixels.length; i += 4) {
      if (img.pixels.readUInt32BE(i) !== 0xffffffff) nonWhite++
    }
    expect(nonWhite / (img.width * img.height)).toBeGreaterThan(0.05)
  })

  it('writes a report for a day without data: headers, zeros and no surge', async () => {
    const empty = await generateReport({
      store,
      day: '2013-06-01',
      outDir: out,
      logger: silentLogger,
      now: () => new Date(0),
    })
    expect(readFileSync(empty.paths.csv, 'utf8')).toBe(`${REPORT_CSV_COLUMNS.join(',')}\n`)
    expect(empty.model.headline).toMatchObject({ accesses: 0, sources: 0, countries: 0, dodChange: null })
    expect(empty.model.surges).toEqual([])
    expect(decodePng(readFileSync(empty.paths.png)).width).toBe(1200)
  })

  it('shows IPv4 sources without the IPv4-mapped prefix and leaves IPv6 alone', () => {
    expect(displayAddress('::ffff:1.2.3.4')).toBe('1.2.3.4')
    expect(displayAddress('2001:db8::1')).toBe('2001:db8::1')
  })
})
