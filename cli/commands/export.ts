import { createWriteStream, renameSync, rmSync } from 'node:fs'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import type { Command } from 'commander'
import { TeitenError } from '../../core/errors.js'
import { type ExportQuery, exportCsvByDay, exportEvents, parseExportQuery } from '../../store/research.js'
import type { Store } from '../../store/store.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'

export const DEFAULT_PARQUET_MAX_ROWS = 5_000_000

export function exportQueryFromOptions(opts: Record<string, unknown>): ExportQuery {
  if (opts.from === undefined || opts.to === undefined) throw new TeitenError('USAGE', 'export needs --from and --to')
  return parseExportQuery({
    from: opts.from,
    to: opts.to,
    format: opts.format,
    all: opts.all === true,
    sensor: opts.sensor,
    class: opts.class,
    country: opts.country,
  })
}

async function write(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve))
}

/**
 * CSV streams a day at a time (no size limit: memory follows the busiest day); Parquet is one
 * file written from one result, so it is refused above `maxRows` events.
 */
export async function runExport(store: Store, query: ExportQuery, out: Writable, maxRows: number): Promise<void> {
  if (query.format === 'parquet') {
    await write(out, await exportEvents(store, query, maxRows))
    return
  }
  for await (const chunk of exportCsvByDay(store, query, Number.MAX_SAFE_INTEGER)) await write(out, chunk)
}

export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description('the events of a date range as CSV or Parquet (addresses as text, class by name)')
    .option('--from <YYYY-MM-DD>', 'first day (UTC)')
    .option('--to <YYYY-MM-DD>', 'last day (UTC)')
    .option('--format <format>', 'csv|parquet', 'csv')
    .option('--out <file>', 'write here (written to FILE.partial, renamed when complete) instead of stdout')
    .option('--all', 'every kept UDP/123 packet, backscatter included (default: accesses to port 123)')
    .option('--sensor <ids>', 'only these sensors (comma list)')
    .option('--class <classes>', 'only these classes (comma list)')
    .option('--country <codes>', 'only these source countries (comma list)')
    .option('--max-rows <n>', `Parquet only: refuse more events than this (default ${DEFAULT_PARQUET_MAX_ROWS})`)
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    const query = exportQueryFromOptions(opts)
    const maxRows = opts.maxRows === undefined ? DEFAULT_PARQUET_MAX_ROWS : Number(opts.maxRows)
    if (!Number.isInteger(maxRows) || maxRows < 1)
      throw new TeitenError('USAGE', '--max-rows must be a positive whole number')
    const out = typeof opts.out === 'string' ? opts.out : undefined
    if (!out && query.format === 'parquet' && process.stdout.isTTY) {
      throw new TeitenError('USAGE', 'Parquet is binary: give --out FILE or redirect stdout')
    }
    const ctx = contextFrom(opts)
    const store = await openStoreFor(ctx, 'teiten export')
    try {
      if (!out) {
        await runExport(store, query, process.stdout, maxRows)
        return
      }
      const partial = `${out}.partial`
      const file = createWriteStream(partial)
      try {
        await runExport(store, query, file, maxRows)
        file.end()
        await finished(file)
        renameSync(partial, out)
      } catch (err) {
        file.destroy()
        rmSync(partial, { force: true })
        throw err
      }
    } finally {
      await store.close()
    }
  })
}
