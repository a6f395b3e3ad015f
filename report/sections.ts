import { NTP_CLASSES } from '../core/event.js'
import type { SourceRow } from './data.js'
import { addDays } from './days.js'
import { changePct, int, num, pct } from './format.js'
import type { ReportModel } from './model.js'

/**
 * The report's content as titled tables of display strings, so the Markdown and the HTML
 * renderers show the same figures in the same order and differ only in markup.
 */

export type Align = 'left' | 'right'

export interface Table {
  columns: string[]
  align: Align[]
  rows: string[][]
}

export interface Section {
  id: string
  title: string
  /** Plain-text paragraphs before the table. */
  notes: string[]
  table?: Table
  /** Where the Figure-2 chart goes. */
  chart?: boolean
}

export const REPORT_TITLE = 'teiten daily report'

function table(columns: [string, Align][], rows: string[][]): Table {
  return { columns: columns.map((c) => c[0]), align: columns.map((c) => c[1]), rows }
}

function sourceTable(rows: SourceRow[]): Table {
  return table(
    [
      ['#', 'right'],
      ['source', 'left'],
      ['country', 'left'],
      ['packets', 'right'],
      ['classes', 'left'],
      ['destinations', 'right'],
    ],
    rows.map((r, i) => [String(i + 1), r.src, r.country, int(r.packets), r.classes.join(' '), int(r.dsts)]),
  )
}

export function buildSections(m: ReportModel): Section[] {
  const h = m.headline
  const prev = addDays(m.day, -1)
  // Only classes seen that day get a column: eight mostly-empty columns hide the figures.
  const seen = NTP_CLASSES.filter((c) => m.classes.find((x) => x.class === c)!.packets > 0)
  const sections: Section[] = []

  sections.push({
    id: 'headline',
    title: 'Headline',
    notes: [],
    table: table(
      [
        ['figure', 'left'],
        ['value', 'right'],
      ],
      [
        ['accesses (packets to UDP/123)', int(h.accesses)],
        [`change vs ${prev}`, `${changePct(h.dodChange)} (${int(h.prevDayAccesses)})`],
        ['distinct sources', int(h.sources)],
        ['source countries', int(h.countries)],
        ['monlist share', `${pct(h.monlistShare)} (${int(h.monlistPackets)})`],
        ['surges', String(m.surges.length)],
        ['new sources', int(m.newSources.count)],
      ],
    ),
  })

  const o = m.surgeOptions
  sections.push({
    id: 'surges',
    title: 'Surges',
    notes: [
      `A country and class whose accesses are far above its own level: robust score (x - median) / (1.4826 * MAD) over the ${o.baselineDays} days before (days without packets count as 0) of at least ${o.minScore}, with at least ${o.minPackets} packets and ${o.minFactor} times the median.`,
      ...(m.surges.length === 0 ? ['No surge.'] : []),
    ],
    table:
      m.surges.length === 0
        ? undefined
        : table(
            [
              ['country', 'left'],
              ['class', 'left'],
              ['packets', 'right'],
              ['median', 'right'],
              ['MAD', 'right'],
              ['score', 'right'],
              ['factor', 'right'],
            ],
            m.surges.map((s) => [
              s.country,
              s.class,
              int(s.packets),
              num(s.median, 1),
              num(s.mad, 1),
              num(s.score),
              `${num(s.factor, 1)}x`,
            ]),
          ),
  })

  sections.push({
    id: 'countries',
    title: 'Accesses by source country',
    notes: [
      `Change is against ${prev} and against the mean of the 7 days before (${addDays(m.day, -7)} .. ${prev}); n/a when that was 0.`,
    ],
    table: table(
      [
        ['country', 'left'],
        ['packets', 'right'],
        ['share', 'right'],
        ['sources', 'right'],
        ...seen.map((c): [string, Align] => [c, 'right']),
        ['vs prev day', 'right'],
        ['vs 7-day mean', 'right'],
      ],
      m.countries.map((r) => [
        r.country,
        int(r.packets),
        pct(r.share),
        int(r.sources),
        ...seen.map((c) => int(r.byClass[c])),
        changePct(r.dodChange),
        changePct(r.baselineChange),
      ]),
    ),
  })

  sections.push({
    id: 'classes',
    title: 'Class split',
    notes: [],
    table: table(
      [
        ['class', 'left'],
        ['packets', 'right'],
        ['share', 'right'],
        ['sources', 'right'],
      ],
      m.classes.map((c) => [c.class, int(c.packets), pct(c.share), int(c.sources)]),
    ),
  })

  const trendTotal = m.trend.series.reduce((acc, s) => acc + s.total, 0)
  sections.push({
    id: 'trend',
    title: `Trend, trailing ${m.trend.days.length} days`,
    notes: [
      `Daily accesses by source country, ${m.trend.days[0]} .. ${m.day}: the top countries of the period stacked, the rest as "other".`,
    ],
    chart: true,
    table: table(
      [
        ['country', 'left'],
        ['packets in period', 'right'],
        ['share', 'right'],
        [m.day, 'right'],
      ],
      m.trend.series.map((s) => [
        s.name,
        int(s.total),
        pct(trendTotal > 0 ? s.total / trendTotal : 0),
        int(s.data[s.data.length - 1] ?? 0),
      ]),
    ),
  })

  sections.push({
    id: 'top-sources',
    title: 'Top sources',
    notes: m.topSources.length === 0 ? ['No sources.'] : [],
    table: m.topSources.length === 0 ? undefined : sourceTable(m.topSources),
  })

  const n = m.newSources
  sections.push({
    id: 'new-sources',
    title: 'New sources',
    notes: [
      `${int(n.count)} sources sent accesses on ${m.day} and none in the ${n.lookbackDays} days before (${addDays(m.day, -n.lookbackDays)} .. ${prev}).`,
    ],
    table: n.top.length === 0 ? undefined : sourceTable(n.top),
  })
  return sections
}
