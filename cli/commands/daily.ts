import type { Command } from 'commander'
import { parseDailyQuery, queryDaily } from '../../store/queries.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { type OutputFormat, render } from '../output.js'
import { parseFormat } from './shared.js'

export function registerDaily(program: Command): void {
  const cmd = program
    .command('daily')
    .description("daily access counts to UDP/123 by source country (the advisory's Figure 2)")
    .option('--from <YYYY-MM-DD>', 'first day (UTC)')
    .option('--to <YYYY-MM-DD>', 'last day (UTC)')
    .option('--by <keys>', 'comma list of day,sensor,country,class', 'day,country')
    .option('--all', 'count every kept UDP/123 packet, either direction (backscatter included)')
    .option('--sensor <ids>', 'only these sensors (comma list)')
    .option('--class <classes>', 'only these classes (comma list)')
    .option('--country <codes>', 'only these source countries (comma list)')
    .option('--format <format>', 'table|json|csv', 'table')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    const format: OutputFormat = parseFormat(opts.format)
    const query = parseDailyQuery({
      from: opts.from,
      to: opts.to,
      by: opts.by,
      all: opts.all === true,
      sensor: opts.sensor,
      class: opts.class,
      country: opts.country,
    })
    const ctx = contextFrom(opts)
    const store = await openStoreFor(ctx, 'teiten daily')
    try {
      const rows = await queryDaily(store, query)
      process.stdout.write(render(rows, format, [...query.by, 'packets', 'sources']))
    } finally {
      await store.close()
    }
  })
}
