import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { type RunningDashboard, startDashboard } from '../../dashboards/server/app.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { generateCorpus } from '../../synth/corpus.js'
import { openCountryLookup } from '../../synth/geo.js'
import { tempDir } from '../helpers/tmp.js'
import { keyed, type Row, teiten } from './helpers.js'

/**
 * The analyst's surfaces on the held-out corpus: the daily report's CSV of the peak day, the
 * API's /api/daily and the dashboard page, each against the generator's ground truth.
 */
interface Truth {
  byDayCountryClass: { day: string; country: string; class: string; packets: number; sources: number }[]
  accessesByDayCountry: { day: string; country: string; packets: number; sources: number }[]
}

const CHROMIUM = '/usr/bin/chromium'
const work = tempDir('teiten-surfaces-')
const data = join(work.path, 'data')
let truth: Truth
let store: Store | undefined
let dashboard: RunningDashboard | undefined

beforeAll(async () => {
  const spool = join(work.path, 'spool')
  truth = (
    await generateCorpus({ outDir: spool, preset: 'test', seed: 99, countryOf: openCountryLookup(), truthFile: null })
  ).truth as unknown as Truth
  const r = teiten(['ingest', spool, '--data', data])
  expect(r.status, r.stderr).toBe(0)
}, 300_000)

afterAll(async () => {
  await dashboard?.close()
  await store?.close()
  work.cleanup()
})

describe('held-out corpus through the analyst surfaces', () => {
  it('writes a report whose CSV of the peak day matches the truth per country', () => {
    const perDay = new Map<string, number>()
    for (const r of truth.accessesByDayCountry) perDay.set(r.day, (perDay.get(r.day) ?? 0) + r.packets)
    const peak = [...perDay.entries()].sort((a, b) => b[1] - a[1])[0]![0]
    const out = join(work.path, 'reports')
    const r = teiten(['report', '--day', peak, '--data', data, '--out', out])
    expect(r.status, r.stderr).toBe(0)
    for (const ext of ['md', 'html', 'csv', 'png'])
      expect(existsSync(join(out, `teiten-report-${peak}.${ext}`))).toBe(true)
    const [header, ...lines] = readFileSync(join(out, `teiten-report-${peak}.csv`), 'utf8')
      .trim()
      .split('\n')
    const cols = header!.split(',')
    const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])) as Row)
    const expected = truth.accessesByDayCountry.filter((t) => t.day === peak)
    expect(keyed(rows, ['country'], ['packets', 'sources'])).toEqual(
      keyed(expected as unknown as Row[], ['country'], ['packets', 'sources']),
    )
    const png = readFileSync(join(out, `teiten-report-${peak}.png`))
    expect(png.subarray(1, 4).toString()).toBe('PNG')
    expect(png.length).toBeGreaterThan(20_000)
  }, 120_000)

  it('answers /api/daily?by=day,country,class&all=1 with the truth, and the page draws it without errors', async () => {
    store = await openStore({ dataDir: data, logger: silentLogger })
    dashboard = await startDashboard({ store, logger: silentLogger, port: 0 })
    const res = await fetch(new URL('api/daily?by=day,country,class&all=1', dashboard.url))
    expect(res.status).toBe(200)
    const rows = (await res.json()) as Row[]
    expect(keyed(rows, ['day', 'country', 'class'], ['packets', 'sources'])).toEqual(
      keyed(truth.byDayCountryClass as unknown as Row[], ['day', 'country', 'class'], ['packets', 'sources']),
    )
    if (!existsSync(CHROMIUM)) throw new Error(`this test needs Chromium at ${CHROMIUM}: apt-get install -y chromium`)
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    try {
      const page = await browser.newPage()
      const errors: string[] = []
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text())
      })
      page.on('pageerror', (e) => errors.push(String(e)))
      await page.goto(`${dashboard.url}?from=2013-10-01&to=2014-01-15`)
      await page.waitForFunction(
        () => {
          const t = (globalThis as unknown as { __teiten?: { renders: number; idle: boolean } }).__teiten
          return Boolean(t && t.renders > 0 && t.idle)
        },
        undefined,
        { timeout: 30_000 },
      )
      const option = await page.evaluate(() =>
        (
          globalThis as unknown as {
            __teiten: { chartOption(): { xAxis: string[]; series: { data: (number | null)[] }[] } }
          }
        ).__teiten.chartOption(),
      )
      expect(option.xAxis.length).toBe(107)
      const drawn = option.series.reduce((n, s) => n + s.data.reduce<number>((m, v) => m + (v ?? 0), 0), 0)
      expect(drawn).toBeGreaterThan(0)
      expect(errors).toEqual([])
    } finally {
      await browser.close()
    }
  }, 120_000)
})
