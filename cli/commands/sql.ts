import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { TeitenError } from '../../core/errors.js'
import { DEFAULT_SQL_LIMITS, runReadOnlySql, type SqlLimits, sqlRowsAsObjects } from '../../store/research.js'
import type { Store } from '../../store/store.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { type OutputFormat, render } from '../output.js'
import { parseFormat } from './shared.js'

function positive(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^\d{1,15}$/.test(String(value)) || Number(value) < 1)
    throw new TeitenError('USAGE', `${flag} must be a positive whole number`)
  return Number(value)
}

export function sqlLimitsFromOptions(opts: Record<string, unknown>): SqlLimits {
  return {
    ...DEFAULT_SQL_LIMITS,
    maxResultRows: positive(opts.maxRows, '--max-rows', 1_000_000),
    maxResultBytes: 4 * 1024 ** 3,
    maxExecutionSeconds: positive(opts.timeout, '--timeout', 300),
  }
}

/** Runs the same guard as POST /api/sql and renders the rows. */
export async function runSql(store: Store, sql: string, format: OutputFormat, limits: SqlLimits): Promise<string> {
  const result = await runReadOnlySql(store, sql, limits)
  return render(
    sqlRowsAsObjects(result),
    format,
    result.columns.map((c) => c.name),
  )
}

export function registerSql(program: Command): void {
  const cmd = program
    .command('sql')
    .description(
      'one read-only SELECT over events, daily_agg, hourly_agg, source_daily, daily_rollup, source_weekly, source_weekly_totals ("-" reads it from stdin)',
    )
    .argument('<query>', 'the SELECT, or - for stdin')
    .option('--format <format>', 'table|json|csv', 'table')
    .option('--max-rows <n>', 'refuse results longer than this', '1000000')
    .option('--timeout <seconds>', 'stop the query after this many seconds', '300')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (query: string, opts: Record<string, unknown>) => {
    const format = parseFormat(opts.format)
    const limits = sqlLimitsFromOptions(opts)
    const sql = query === '-' ? readFileSync(0, 'utf8') : query
    const ctx = contextFrom(opts)
    const store = await openStoreFor(ctx, 'teiten sql')
    try {
      process.stdout.write(await runSql(store, sql, format, limits))
    } finally {
      await store.close()
    }
  })
}
