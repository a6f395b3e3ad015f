import type { Command } from 'commander'
import { addDays, dayOf, parseDay } from '../../report/days.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'

export function registerReport(program: Command): void {
  const cmd = program
    .command('report')
    .description('write the daily country-breakdown report (md, html, csv, png) for one UTC day')
    .option('--day <YYYY-MM-DD>', 'the UTC day to report (default: yesterday, UTC)')
    .option('--out <dir>', 'output directory (config report.outDir, default ./reports)')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    const day = opts.day === undefined ? addDays(dayOf(new Date()), -1) : parseDay(opts.day)
    const ctx = contextFrom(opts, { report: { outDir: opts.out as string | undefined } })
    // Loaded on use: ECharts takes a third of a second to load, which every other command would pay.
    const { generateReport } = await import('../../report/generate.js')
    const store = await openStoreFor(ctx, 'teiten report')
    try {
      const { paths } = await generateReport({
        store,
        day,
        outDir: ctx.config.report.outDir,
        logger: ctx.logger,
        now: () => new Date(),
      })
      process.stdout.write(`${[paths.md, paths.html, paths.csv, paths.png].join('\n')}\n`)
    } finally {
      await store.close()
    }
  })
}
