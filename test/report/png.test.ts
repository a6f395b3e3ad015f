import { describe, expect, it } from 'vitest'
import { ADVISORY_SUBTITLE, type ChartOptions, renderTrendSvg } from '../../report/chart.js'
import { dayRange } from '../../report/days.js'
import type { Trend } from '../../report/model.js'
import { PNG_FONT_FAMILY, svgToPng } from '../../report/png.js'
import { type DecodedPng, decodePng, pixel } from './png-decode.js'
import { mulberry32 } from './seed.js'

const rand = mulberry32(7)
const days = dayRange('2013-10-13', '2014-01-10')
const trend: Trend = {
  days,
  series: ['CN', 'US', 'JP', 'other'].map((name, k) => {
    const data = days.map(() => Math.round((400 / (k + 1)) * (0.5 + rand())))
    return { name, data, total: data.reduce((a, b) => a + b, 0) }
  }),
}
const base: ChartOptions = { width: 1200, height: 640, title: '', subtitle: '', fontFamily: PNG_FONT_FAMILY }

function render(o: Partial<ChartOptions>): DecodedPng {
  const { png, width, height } = svgToPng(renderTrendSvg(trend, { ...base, ...o }))
  const img = decodePng(png)
  expect([img.width, img.height]).toEqual([width, height])
  return img
}

/** Pixels that differ between two renders of the same size, and the rows they lie in. */
function diff(a: DecodedPng, b: DecodedPng): { count: number; minY: number; maxY: number } {
  let count = 0
  let minY = Number.POSITIVE_INFINITY
  let maxY = -1
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      if (pixel(a, x, y) === pixel(b, x, y)) continue
      count++
      minY = Math.min(minY, y)
      maxY = Math.max(maxY, y)
    }
  }
  return { count, minY, maxY }
}

describe('chart PNG', () => {
  const plain = render({})

  it('decodes to an image of the requested size with drawn, many-coloured content', () => {
    expect([plain.width, plain.height]).toEqual([1200, 640])
    const colours = new Set<number>()
    let nonWhite = 0
    for (let i = 0; i < plain.pixels.length; i += 4) {
      const v = plain.pixels.readUInt32BE(i)
      colours.add(v)
      if (v !== 0xffffffff) nonWhite++
    }
    expect(nonWhite / (plain.width * plain.height)).toBeGreaterThan(0.2)
    expect(colours.size).toBeGreaterThan(20) // four series colours, grid, antialiased text
    expect(pixel(plain, 0, 0)).toBe(0xffffffff) // opaque white background, not transparent
  })

  it('draws the title text with the bundled font, and only in the title area', () => {
    const titled = render({ title: 'NTP (UDP/123) accesses by source country' })
    const d = diff(plain, titled)
    expect(d.count).toBeGreaterThan(1500)
    expect(d.maxY).toBeLessThan(104) // above the plot area: the text, not a shifted chart
  })

  it('draws the Japanese subtitle with real glyphs, not missing-glyph boxes', () => {
    const withTitle = render({ title: 'T' })
    const withSubtitle = render({ title: 'T', subtitle: ADVISORY_SUBTITLE })
    const d = diff(withTitle, withSubtitle)
    expect(d.count).toBeGreaterThan(1500)
    expect(d.maxY).toBeLessThan(104)
    // A font without kanji draws the same box for every character: two different strings of
    // equal length would then be pixel-identical.
    const a = render({ title: 'T', subtitle: '発信元国' })
    const b = render({ title: 'T', subtitle: '地域別件' })
    expect(diff(a, b).count).toBeGreaterThan(300)
  })
})
