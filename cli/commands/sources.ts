import type { Command } from 'commander'
import {
  parseSourcesQuery,
  querySources,
  SOURCE_COLUMNS,
  SOURCE_ORDERS,
  type SourceRow,
  type SourcesQuery,
} from '../../store/research.js'
import type { Store } from '../../store/store.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { type OutputFormat, render } from '../output.js'
import { parseFormat } from './shared.js'

/** The options of `teiten sources` as the query `GET /api/sources` takes. */
export function sourcesQueryFromOptions(opts: Record<string, unknown>): SourcesQuery {
  return parseSourcesQuery({
    from: opts.from,
    to: opts.to,
    all: opts.all === true,
    sensor: opts.sensor,
    class: opts.class,
    country: opts.country,
    limit: opts.limit,
    order: opts.order,
    dir: opts.dir,
  })
}

/** JSON keeps lists as arrays; a table or CSV cell joins them with spaces. */
export function renderSources(rows: SourceRow[], format: OutputFormat): string {
  if (format === 'json') return render(rows as unknown as Record<string, unknown>[], 'json')
  const flat = rows.map((r) => ({ ...r, classes: r.classes.join(' '), sensors: r.sensors.join(' ') }))
  return render(flat, format, [...SOURCE_COLUMNS])
}

export async function runSources(store: Store, query: SourcesQuery, format: OutputFormat): Promise<string> {
  return renderSources(await querySources(store, query), format)
}

export function registerSources(program: Command): void {
  const cmd = program
    .command('sources')
    .description('top sources of a range: packets, dark addresses hit, classes, sensors, first/last seen')
    .option('--from <YYYY-MM-DD>', 'first day (UTC)')
    .option('--to <YYYY-MM-DD>', 'last day (UTC)')
    .option('--all', 'count every kept UDP/123 packet, either direction (backscatter included)')
    .option('--sensor <ids>', 'only these sensors (comma list)')
    .option('--class <classes>', 'only these classes (comma list)')
    .option('--country <codes>', 'only these source countries (comma list)')
    .option('--limit <n>', 'rows (1-10000)', '50')
    .option(
      '--order <key>',
      `ranking: ${Object.keys(SOURCE_ORDERS).join('|')} (sources = distinct dark addresses hit)`,
      'packets',
    )
    .option('--dir <dir>', 'desc|asc', 'desc')
    .option('--format <format>', 'table|json|csv', 'table')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    const format = parseFormat(opts.format)
    const query = sourcesQueryFromOptions(opts)
    const ctx = contextFrom(opts)
    const store = await openStoreFor(ctx, 'teiten sources')
    try {
      process.stdout.write(await runSources(store, query, format))
    } finally {
      await store.close()
    }
  })
}
