import * as echarts from 'echarts'
import type { EChartsOption } from 'echarts'
import { OTHER, type Trend } from './model.js'

/**
 * The Figure-2 chart: daily accesses to UDP/123 by source country, top countries stacked and
 * the rest as "other". Rendered by ECharts on the server to SVG (no DOM, no browser); the
 * HTML inlines the SVG and the PNG is rasterised from it (png.ts).
 */

export const ADVISORY_SUBTITLE = '宛先ポート 123/UDP に対する発信元国・地域別アクセス件数'

export interface ChartOptions {
  width: number
  height: number
  title: string
  subtitle: string
  fontFamily: string
}

export const DEFAULT_CHART_SIZE = { width: 1200, height: 640 } as const

// Colour-blind-friendly order (Okabe-Ito, then Tableau), "other" always grey.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#8C564B', '#17BECF']
const OTHER_COLOUR = '#B0B0B0'

export function trendTitle(trend: Trend): string {
  const first = trend.days[0] ?? ''
  const last = trend.days[trend.days.length - 1] ?? ''
  return `NTP (UDP/123) accesses by source country, ${first} .. ${last} (UTC)`
}

function compact(v: number): string {
  if (v >= 1e9) return `${Number((v / 1e9).toFixed(1))}G`
  if (v >= 1e6) return `${Number((v / 1e6).toFixed(1))}M`
  if (v >= 1e3) return `${Number((v / 1e3).toFixed(1))}k`
  return String(v)
}

export function trendChartOption(trend: Trend, o: ChartOptions): EChartsOption {
  const hasTitle = o.title.length > 0 || o.subtitle.length > 0
  let colour = 0
  return {
    animation: false,
    backgroundColor: '#ffffff',
    textStyle: { fontFamily: o.fontFamily },
    title: {
      show: hasTitle,
      text: o.title,
      subtext: o.subtitle,
      left: 16,
      top: 10,
      textStyle: { fontFamily: o.fontFamily, fontSize: 18, fontWeight: 'normal', color: '#222' },
      subtextStyle: { fontFamily: o.fontFamily, fontSize: 14, color: '#555' },
    },
    legend: {
      bottom: 8,
      left: 'center',
      itemWidth: 14,
      itemHeight: 10,
      textStyle: { fontFamily: o.fontFamily, fontSize: 12 },
      data: trend.series.map((s) => s.name),
    },
    // The plot area does not move with the title, so a chart with and without a title differ only in its text.
    grid: { left: 72, right: 32, top: 104, bottom: 78 },
    xAxis: {
      type: 'category',
      data: trend.days,
      axisLabel: { fontFamily: o.fontFamily, fontSize: 11, formatter: (d: string) => d.slice(5) },
    },
    yAxis: {
      type: 'value',
      name: 'accesses / day',
      nameTextStyle: { fontFamily: o.fontFamily, fontSize: 11 },
      axisLabel: { fontFamily: o.fontFamily, fontSize: 11, formatter: (v: number) => compact(v) },
    },
    series: trend.series.map((s) => ({
      name: s.name,
      type: 'bar',
      stack: 'accesses',
      barCategoryGap: '15%',
      itemStyle: { color: s.name === OTHER ? OTHER_COLOUR : PALETTE[colour++ % PALETTE.length] },
      data: s.data,
    })),
  }
}

export function renderTrendSvg(trend: Trend, o: ChartOptions): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: o.width, height: o.height })
  try {
    chart.setOption(trendChartOption(trend, o))
    return chart.renderToSVGString()
  } finally {
    chart.dispose()
  }
}
