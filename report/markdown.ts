import { ADVISORY_SUBTITLE } from './chart.js'
import type { ReportModel } from './model.js'
import { buildSections, REPORT_TITLE, type Table } from './sections.js'

function escapeCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|')
}

function mdTable(t: Table): string[] {
  const sep = t.align.map((a) => (a === 'right' ? '---:' : ':---'))
  return [
    `| ${t.columns.map(escapeCell).join(' | ')} |`,
    `| ${sep.join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`),
  ]
}

/** `pngName` is the chart's file name, linked relative to the Markdown file. */
export function renderMarkdown(model: ReportModel, pngName: string): string {
  const lines: string[] = [
    `# ${REPORT_TITLE}: ${model.day} (UTC)`,
    '',
    `**${ADVISORY_SUBTITLE}**`,
    '',
    `Accesses are UDP packets to destination port 123, all sensors, UTC day ${model.day}. Generated ${model.generatedAt}.`,
  ]
  for (const s of buildSections(model)) {
    lines.push('', `## ${s.title}`, '')
    for (const n of s.notes) lines.push(n, '')
    if (s.chart) lines.push(`![${s.title}](${pngName})`, '')
    if (s.table) lines.push(...mdTable(s.table), '')
  }
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`
}
