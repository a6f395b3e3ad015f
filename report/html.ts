import { ADVISORY_SUBTITLE } from './chart.js'
import type { ReportModel } from './model.js'
import { buildSections, REPORT_TITLE, type Table } from './sections.js'

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/**
 * Inline SVG needs no namespace declarations inside HTML (the parser puts <svg> in the SVG
 * namespace), and dropping them keeps the page free of any URL at all: the file is meant to
 * be mailed or archived and opened offline.
 */
export function inlineSvg(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, '').replace(/\s+xmlns(:\w+)?="[^"]*"/g, '')
}

function htmlTable(t: Table): string {
  const cls = (i: number) => (t.align[i] === 'right' ? ' class="num"' : '')
  const head = t.columns.map((c, i) => `<th${cls(i)}>${escapeHtml(c)}</th>`).join('')
  const body = t.rows
    .map((r) => `<tr>${r.map((v, i) => `<td${cls(i)}>${escapeHtml(v)}</td>`).join('')}</tr>`)
    .join('\n')
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", "Yu Gothic", sans-serif;
  margin: 2rem auto; max-width: 1240px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.subtitle { font-size: 1.1rem; color: #444; margin-top: 0; }
.meta { color: #666; font-size: .9rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .5rem 0; }
figure svg { max-width: 100%; height: auto; }
`

/** A self-contained page: styles, chart and data inline, no external asset of any kind. */
export function renderHtml(model: ReportModel, chartSvg: string): string {
  const parts: string[] = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(`${REPORT_TITLE} ${model.day}`)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(`${REPORT_TITLE}: ${model.day} (UTC)`)}</h1>`,
    `<p class="subtitle" lang="ja">${escapeHtml(ADVISORY_SUBTITLE)}</p>`,
    `<p class="meta">Accesses are UDP packets to destination port 123, all sensors, UTC day ${escapeHtml(model.day)}. Generated ${escapeHtml(model.generatedAt)}.</p>`,
  ]
  for (const s of buildSections(model)) {
    parts.push(`<section id="${escapeHtml(s.id)}">`, `<h2>${escapeHtml(s.title)}</h2>`)
    for (const n of s.notes) parts.push(`<p>${escapeHtml(n)}</p>`)
    if (s.chart) parts.push(`<figure>${inlineSvg(chartSvg)}</figure>`)
    if (s.table) parts.push(htmlTable(s.table))
    parts.push('</section>')
  }
  parts.push('</body>', '</html>')
  return `${parts.join('\n')}\n`
}
