/** Renders rows for the terminal, or as JSON/CSV for scripts. */
export type OutputFormat = 'table' | 'json' | 'csv'

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v)
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function toCsv(rows: Record<string, unknown>[], columns?: string[]): string {
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : [])
  const lines = [cols.join(',')]
  for (const row of rows) lines.push(cols.map((c) => csvCell(row[c])).join(','))
  return `${lines.join('\n')}\n`
}

export function toTable(rows: Record<string, unknown>[], columns?: string[]): string {
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : [])
  if (cols.length === 0) return '(no rows)\n'
  const cells = rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))))
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)))
  const numeric = cols.map((_, i) => cells.length > 0 && cells.every((row) => /^-?[\d.]+%?$/.test(row[i]!)))
  const fmt = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  const out = [fmt(cols), widths.map((w) => '-'.repeat(w)).join('  ')]
  for (const row of cells) out.push(fmt(row))
  if (rows.length === 0) out.push('(no rows)')
  return `${out.join('\n')}\n`
}

export function render(rows: Record<string, unknown>[], format: OutputFormat, columns?: string[]): string {
  if (format === 'json') return `${JSON.stringify(rows)}\n`
  if (format === 'csv') return toCsv(rows, columns)
  return toTable(rows, columns)
}
