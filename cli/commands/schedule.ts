import type { Command } from 'commander'
import { TeitenError } from '../../core/errors.js'
import { parseTimeOfDay } from '../../report/days.js'
import {
  DEFAULT_CATCH_UP_DAYS,
  type RunResult,
  ReportScheduler,
  type SchedulerOptions,
} from '../../report/scheduler.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'

function summary(r: RunResult): string {
  const list = (days: string[]) => (days.length > 0 ? days.join(' ') : '-')
  return [
    `window     ${r.window[0]} .. ${r.window[r.window.length - 1]}`,
    `written    ${list(r.written)}`,
    `existing   ${list(r.existing)}`,
    `no data    ${list([...r.beforeData, ...r.pending])}`,
    ...r.failed.map((f) => `failed     ${f.day}: ${f.error}`),
  ].join('\n')
}

export function registerSchedule(program: Command): void {
  const cmd = program
    .command('schedule')
    .description('write the daily report every day at --at (UTC) for the previous UTC day, catching up missed days')
    .option('--at <HH:MM>', 'time of day, UTC (config report.at, default 06:00)')
    .option('--out <dir>', 'output directory (config report.outDir, default ./reports)')
    .option('--catch-up-days <n>', 'how many due days to look back for missing reports', String(DEFAULT_CATCH_UP_DAYS))
    .option('--once', 'catch up now and exit (for a systemd timer or cron)')
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    if (opts.at !== undefined) parseTimeOfDay(opts.at)
    const catchUpDays = Number(opts.catchUpDays)
    const ctx = contextFrom(opts, {
      report: { outDir: opts.out as string | undefined, at: opts.at as string | undefined },
    })
    const options: SchedulerOptions = {
      outDir: ctx.config.report.outDir,
      at: ctx.config.report.at,
      catchUpDays,
      logger: ctx.logger,
      now: () => new Date(),
      withStore: async (fn) => {
        const store = await openStoreFor(ctx, 'teiten schedule')
        try {
          return await fn(store)
        } finally {
          await store.close()
        }
      },
    }
    const scheduler = ReportScheduler.open(options)
    if (opts.once === true) {
      try {
        const r = await scheduler.runOnce()
        process.stdout.write(`${summary(r)}\n`)
        if (r.failed.length > 0) throw new TeitenError('STORE_QUERY_FAILED', `${r.failed.length} report(s) failed`)
      } finally {
        await scheduler.close()
      }
      return
    }
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        ctx.logger.info({}, 'stopping the scheduler')
        scheduler.close().then(resolve, resolve)
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      scheduler.start()
      ctx.logger.info({ at: options.at, outDir: options.outDir, next: scheduler.nextRun() }, 'scheduler started')
      scheduler.runOnce().then(
        (r) => ctx.logger.info({ written: r.written, pending: r.pending, failed: r.failed.length }, 'catch-up done'),
        (err) => ctx.logger.error({ err }, 'catch-up failed'),
      )
    })
  })
}
