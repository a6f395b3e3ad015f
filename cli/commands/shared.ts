import { TeitenError } from '../../core/errors.js'
import type { OutputFormat } from '../output.js'

export function parseFormat(value: unknown, allowed: readonly string[] = ['table', 'json', 'csv']): OutputFormat {
  const v = String(value ?? 'table')
  if (!allowed.includes(v)) throw new TeitenError('USAGE', `--format must be one of ${allowed.join('|')}, got ${v}`)
  return v as OutputFormat
}
