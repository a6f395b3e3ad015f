import { NTP_CLASSES } from '../core/event.js'
import { decimal } from './format.js'
import type { ReportModel } from './model.js'

/** Column order of the report CSV; docs/report.md defines each column. */
export const REPORT_CSV_COLUMNS = [
  'country',
  'packets',
  'sources',
  ...NTP_CLASSES,
  'share',
  'packets_prev_day',
  'dod_change',
  'baseline_7d',
  'baseline_change',
] as const

function cell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function renderCsv(model: ReportModel): string {
  const lines = [REPORT_CSV_COLUMNS.join(',')]
  for (const r of model.countries) {
    const values = [
      r.country,
      String(r.packets),
      String(r.sources),
      ...NTP_CLASSES.map((c) => String(r.byClass[c])),
      decimal(r.share),
      String(r.packetsPrevDay),
      decimal(r.dodChange),
      decimal(r.baseline7d),
      decimal(r.baselineChange),
    ]
    lines.push(values.map(cell).join(','))
  }
  return `${lines.join('\n')}\n`
}
