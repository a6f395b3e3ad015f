import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { type RunningDashboard, startDashboard } from '../../dashboards/server/app.js'
import { parseSensorsConfig } from '../../dashboards/server/sensors.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { tempDir } from '../helpers/tmp.js'
import { LARGE_DAYS, largeDataset, seedEvents } from './seed.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const TOKEN = 'e2e-token-Zq9'
const OUT = join(process.cwd(), 'test-output')

interface PlainOption {
  xAxis: string[]
  series: { id: string; name: string; type: string; stack: string | null; data: (number | null)[] }[]
}
interface Hooks {
  idle: boolean
  renders: number
  chartOption(): PlainOption
  hourlyOption(): PlainOption
  sourceOption(): PlainOption
  state(): Record<string, string | number>
}
interface PageGlobal {
  __teiten?: Hooks
  echarts: {
    getInstanceByDom(el: unknown): {
      convertToPixel(finder: object, value: unknown[]): number[]
      getDom(): { getBoundingClientRect(): { left: number; top: number } }
    }
  }
  document: { getElementById(id: string): unknown }
}
type DailyRow = { day: string; country: string; packets: number; sources: number }

const dir = tempDir()
let store: Store
let dashboard: RunningDashboard
let bare: RunningDashboard
let browser: Browser

const sensors = parseSensorsConfig(
  { sensors: { 'sensor-a': { addresses: 256 }, 'sensor-b': { prefixes: ['198.51.100.0/25'] } } },
  'sensors.yaml',
)

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the browser test needs Chromium at ${CHROMIUM}: install the Debian package "chromium" (apt-get install -y chromium)`,
    )
  }
  mkdirSync(OUT, { recursive: true })
  store = await openStore({ dataDir: dir.path, logger: silentLogger, host: false })
  await seedEvents(store, largeDataset())
  dashboard = await startDashboard({ store, logger: silentLogger, host: '127.0.0.1', port: 0, token: TOKEN, sensors })
  bare = await startDashboard({ store, logger: silentLogger, host: '127.0.0.1', port: 0 })
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
})
afterAll(async () => {
  await browser?.close()
  await dashboard?.close()
  await bare?.close()
  await store?.close()
  dir.cleanup()
})

async function api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const url = new URL(path, dashboard.url)
  for (const [k, v] of Object.entries(params)) if (v !== '') url.searchParams.set(k, v)
  const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status, url.toString()).toBe(200)
  return (await res.json()) as T
}

/** What the page must draw: the top N countries by packets over the range, the rest summed as "other". */
function figure2(rows: DailyRow[], days: string[], top: number, measure: 'packets' | 'sources' = 'packets') {
  const total = new Map<string, number>()
  for (const r of rows) total.set(r.country, (total.get(r.country) ?? 0) + r.packets)
  const ranked = [...total.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([c]) => c)
  const keys = ranked.slice(0, top)
  if (ranked.length > top) keys.push('other')
  const series = new Map(keys.map((k) => [k, days.map(() => 0)]))
  for (const r of rows) {
    const k = keys.includes(r.country) ? r.country : 'other'
    series.get(k)![days.indexOf(r.day)]! += r[measure]
  }
  return series
}

function seriesMap(option: PlainOption) {
  return new Map(option.series.map((s) => [s.id, s.data]))
}

async function settle(page: Page, after: number): Promise<number> {
  await page.waitForFunction(
    (n) => {
      const t = (globalThis as unknown as PageGlobal).__teiten
      return Boolean(t && t.renders > n && t.idle)
    },
    after,
    { timeout: 20_000 },
  )
  return page.evaluate(() => (globalThis as unknown as PageGlobal).__teiten!.renders)
}

const chartOption = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobal).__teiten!.chartOption())

function watchConsole(page: Page): string[] {
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  page.on('requestfailed', (r) => errors.push(`requestfailed: ${r.url()}`))
  return errors
}

describe('dashboard in headless Chromium', () => {
  it('draws Figure 2 from /api/daily, follows the filters in the URL and drills down by day and source', async () => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } })
    const errors = watchConsole(page)
    const external: string[] = []
    page.on('request', (r) => {
      if (!r.url().startsWith(dashboard.url) && !r.url().startsWith('blob:') && !r.url().startsWith('data:'))
        external.push(r.url())
    })

    // First load: the token comes in the link once and leaves the address bar.
    await page.goto(`${dashboard.url}?token=${TOKEN}&lang=en`)
    let n = await settle(page, 0)
    expect(page.url()).not.toContain('token')
    const first = LARGE_DAYS[0]!
    const last = LARGE_DAYS[LARGE_DAYS.length - 1]!
    expect(new URL(page.url()).searchParams.get('from')).toBe(first)
    expect(new URL(page.url()).searchParams.get('to')).toBe(last)
    await expect.poll(() => page.textContent('#subtitle')).toContain('発信元国・地域別アクセス件数')

    let option = await chartOption(page)
    expect(option.xAxis).toEqual(LARGE_DAYS)
    const daily = await api<DailyRow[]>('/api/daily', { from: first, to: last, by: 'day,country' })
    const expected = figure2(daily, LARGE_DAYS, 10)
    const drawn = seriesMap(option)
    expect([...drawn.keys()]).toEqual([...expected.keys(), 'monlist'])
    for (const [k, values] of expected) expect(drawn.get(k), k).toEqual(values)
    expect(
      option.series.filter((s) => s.id !== 'monlist').every((s) => s.type === 'bar' && s.stack === 'countries'),
    ).toBe(true)
    const monlist = await api<{ day: string; packets: number }[]>('/api/daily', {
      from: first,
      to: last,
      by: 'day',
      class: 'monlist',
    })
    expect(drawn.get('monlist')).toEqual(LARGE_DAYS.map((d) => monlist.find((r) => r.day === d)?.packets ?? 0))
    // The table under the chart shows the same numbers.
    const table = await page.evaluate(() =>
      (globalThis as unknown as { __teiten: { table(): { rows: Record<string, number>[] } } }).__teiten.table(),
    )
    expect(table.rows.map((r) => r.CN)).toEqual(expected.get('CN'))
    // CSV download of exactly what is shown.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-csv')])
    expect(download.suggestedFilename()).toBe(`teiten_packets_${first}_${last}.csv`)
    const csv = readFileSync((await download.path())!, 'utf8')
      .trim()
      .split('\n')
    expect(csv[0]).toBe(['day', ...expected.keys(), 'total', 'monlist'].join(','))
    expect(csv).toHaveLength(1 + LARGE_DAYS.length)
    const firstDay = daily.filter((r) => r.day === first)
    expect(csv[1]).toBe(
      [
        first,
        ...[...expected.values()].map((v) => v[0]),
        firstDay.reduce((a, r) => a + r.packets, 0),
        drawn.get('monlist')![0],
      ].join(','),
    )

    // Class filter: the URL records it and the chart follows /api/daily for that class.
    await page.selectOption('#f-class', 'monlist')
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('class')).toBe('monlist')
    option = await chartOption(page)
    const monlistDaily = await api<DailyRow[]>('/api/daily', {
      from: first,
      to: last,
      by: 'day,country',
      class: 'monlist',
    })
    const expectedMonlist = figure2(monlistDaily, LARGE_DAYS, 10)
    expect(seriesMap(option)).toEqual(expectedMonlist)
    expect(seriesMap(option).get('CN')).not.toEqual(expected.get('CN'))

    // Country filter.
    await page.selectOption('#f-country', 'CN')
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('country')).toBe('CN')
    option = await chartOption(page)
    const cn = await api<DailyRow[]>('/api/daily', {
      from: first,
      to: last,
      by: 'day,country',
      class: 'monlist',
      country: 'CN',
    })
    expect(seriesMap(option)).toEqual(figure2(cn, LARGE_DAYS, 10))
    expect(option.series.map((s) => s.id)).toEqual(['CN'])

    // Date range.
    await page.fill('#f-from', '2014-01-05')
    n = await settle(page, n)
    await page.fill('#f-to', '2014-01-10')
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('from')).toBe('2014-01-05')
    expect(new URL(page.url()).searchParams.get('to')).toBe('2014-01-10')
    option = await chartOption(page)
    const range = LARGE_DAYS.slice(4, 10)
    expect(option.xAxis).toEqual(range)
    const cnRange = await api<DailyRow[]>('/api/daily', {
      from: '2014-01-05',
      to: '2014-01-10',
      by: 'day,country',
      class: 'monlist',
      country: 'CN',
    })
    expect(seriesMap(option)).toEqual(figure2(cnRange, range, 10))

    // Back restores the previous view from the URL.
    await page.goBack()
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('to')).toBe(last)
    expect((await chartOption(page)).xAxis).toEqual(LARGE_DAYS.slice(4))

    // A shared link opens the same view.
    const shared = await browser.newPage({ viewport: { width: 1200, height: 800 } })
    const sharedErrors = watchConsole(shared)
    await shared.goto(page.url().replace(dashboard.url, `${dashboard.url}`).replace('?', `?token=${TOKEN}&`))
    await settle(shared, 0)
    expect(await chartOption(shared)).toEqual(await chartOption(page))
    expect(sharedErrors).toEqual([])
    await shared.close()

    // Drill-down on the default view: click inside the column of 2014-01-09.
    await page.click('#reset')
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.has('class')).toBe(false)
    const day = '2014-01-09'
    const point = await page.evaluate((d) => {
      const g = globalThis as unknown as PageGlobal
      const chart = g.echarts.getInstanceByDom(g.document.getElementById('chart'))
      const [x, y] = chart.convertToPixel({ xAxisIndex: 0, yAxisIndex: 0 }, [d, 0])
      const rect = chart.getDom().getBoundingClientRect()
      return { x: rect.left + x!, y: rect.top + y! - 30 }
    }, day)
    await page.mouse.click(point.x, point.y)
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('day')).toBe(day)
    expect(await page.isVisible('#day-panel')).toBe(true)
    const hourly = await page.evaluate(() => (globalThis as unknown as PageGlobal).__teiten!.hourlyOption())
    expect(hourly.xAxis).toHaveLength(24)
    const hourlyRows = await api<{ hour: string; country: string; packets: number }[]>('/api/hourly', {
      day,
      by: 'hour,country',
    })
    const keys = [...expected.keys()]
    const expectedHourly = new Map(keys.map((k) => [k, Array.from({ length: 24 }, () => 0)]))
    for (const r of hourlyRows) {
      const k = keys.includes(r.country) ? r.country : 'other'
      expectedHourly.get(k)![new Date(r.hour).getUTCHours()]! += r.packets
    }
    expect(seriesMap(hourly)).toEqual(expectedHourly)
    const dayTotal = daily.filter((r) => r.day === day).reduce((a, r) => a + r.packets, 0)
    expect(hourly.series.flatMap((s) => s.data as number[]).reduce((a, b) => a + b, 0)).toBe(dayTotal)
    // The day's top sources.
    const topSources = await api<{ address: string }[]>('/api/sources', { from: day, to: day, limit: '15' })
    const listed = await page.$$eval('#sources tbody tr[data-src]', (rows) =>
      rows.map((r) => (r as unknown as { dataset: { src: string } }).dataset.src),
    )
    expect(listed).toEqual(topSources.map((s) => s.address))

    // Click a source: its history.
    await page.click('#sources tbody tr[data-src]:nth-child(1)')
    n = await settle(page, n)
    const address = topSources[0]!.address
    expect(new URL(page.url()).searchParams.get('src')).toBe(address)
    expect(await page.isVisible('#source-panel')).toBe(true)
    const history = await api<{
      totals: { packets: number; dark_addresses: number; country: string; classes: string[] }
      days: { day: string; packets: number }[]
    }>(`/api/source/${encodeURIComponent(address)}`)
    const facts = await page.textContent('#source-facts')
    expect(facts).toContain(history.totals.packets.toLocaleString('en'))
    expect(facts).toContain('First seen')
    expect(facts).toContain(history.totals.classes.join(', '))
    const sourceChart = await page.evaluate(() => (globalThis as unknown as PageGlobal).__teiten!.sourceOption())
    expect(sourceChart.xAxis).toEqual(history.days.map((d) => d.day))
    expect(sourceChart.series[0]!.data).toEqual(history.days.map((d) => d.packets))

    // Unique sources and packets per monitored address.
    await page.click('#f-measure button[data-value="sources"]')
    n = await settle(page, n)
    expect(seriesMap(await chartOption(page)).get('CN')).toEqual(figure2(daily, LARGE_DAYS, 10, 'sources').get('CN'))
    await page.click('#f-measure button[data-value="per_address"]')
    n = await settle(page, n)
    expect(new URL(page.url()).searchParams.get('measure')).toBe('per_address')
    const coverage = await api<{ day: string; sensor: string }[]>('/api/daily', {
      from: first,
      to: last,
      by: 'day,sensor',
      all: '1',
    })
    const addresses = LARGE_DAYS.map((d) =>
      coverage.filter((r) => r.day === d).reduce((a, r) => a + sensors.sensors[r.sensor]!.addresses, 0),
    )
    const perAddress = seriesMap(await chartOption(page)).get('CN')!
    expect(perAddress).toEqual(expected.get('CN')!.map((v, i) => v / addresses[i]!))
    await page.click('#f-measure button[data-value="packets"]')
    n = await settle(page, n)

    await page.screenshot({ path: join(OUT, 'dashboard.png'), fullPage: true })
    await page.click('#lang')
    n = await settle(page, n)
    expect(await page.textContent('h1')).toBe('宛先ポート 123/UDP に対する発信元国・地域別アクセス件数の推移')
    expect(new URL(page.url()).searchParams.get('lang')).toBe('ja')
    await page.screenshot({ path: join(OUT, 'dashboard-ja.png'), fullPage: true })

    expect(errors).toEqual([])
    expect(external).toEqual([])
    await page.close()
  })

  it('asks for the token when the link does not carry it', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(dashboard.url)
    await page.waitForSelector('#auth[open]')
    await page.fill('#auth-token', TOKEN)
    await page.click('#auth button[type="submit"]')
    await settle(page, 0)
    expect((await chartOption(page)).xAxis).toEqual(LARGE_DAYS)
    await context.close()
  })

  it('explains and disables "per monitored address" without a sensors file', async () => {
    const page = await browser.newPage()
    const errors = watchConsole(page)
    await page.goto(`${bare.url}?measure=per_address`)
    await settle(page, 0)
    expect(await page.isDisabled('#f-measure button[data-value="per_address"]')).toBe(true)
    expect(await page.textContent('#measure-hint')).toContain('--sensors')
    expect(new URL(page.url()).searchParams.has('measure')).toBe(false)
    expect(errors).toEqual([])
    await page.close()
  })
})
