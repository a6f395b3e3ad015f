import { Cron } from 'croner'
import { TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Store } from '../store/store.js'
import { dataDays } from './data.js'
import { addDays, type Day, dayOf, dayRange, parseTimeOfDay } from './days.js'
import { reportExists } from './files.js'
import { acquireReportLock, type LockOptions, type ReportLock } from './lock.js'
import type { ReportOptions } from './model.js'

/**
 * The daily report schedule. The report for UTC day D is due at D+1 HH:MM UTC. Every run
 * (at start-up and then daily at HH:MM) looks at the last `catchUpDays` due days and writes
 * each one that has no complete report yet, oldest first; so a scheduler that was down
 * catches up, and one that runs again does nothing. Days before the first day with data
 * are never reported; days after the last day with data are left for a later run (their
 * captures are probably not ingested yet) while they stay within the window.
 */
export interface SchedulerOptions {
  outDir: string
  /** HH:MM, UTC. */
  at: string
  catchUpDays: number
  logger: Logger
  now: () => Date
  /** Opens the store for one run and closes it after, so the scheduler holds no store while idle. */
  withStore: <T>(fn: (store: Store) => Promise<T>) => Promise<T>
  report?: ReportOptions
  lock?: LockOptions
}

export interface RunResult {
  /** The catch-up window, oldest first. */
  window: Day[]
  written: Day[]
  existing: Day[]
  /** Before the first day with data. */
  beforeData: Day[]
  /** After the last day with data: retried by a later run. */
  pending: Day[]
  failed: { day: Day; error: string }[]
}

export const DEFAULT_CATCH_UP_DAYS = 7

/** The most recent day whose report is due at `now`. */
export function latestDueDay(now: Date, at: string): Day {
  const minutes = now.getUTCHours() * 60 + now.getUTCMinutes()
  return addDays(dayOf(now), minutes >= parseTimeOfDay(at) ? -1 : -2)
}

export function catchUpWindow(now: Date, at: string, catchUpDays: number): Day[] {
  if (!Number.isInteger(catchUpDays) || catchUpDays < 1) {
    throw new TeitenError('BAD_PARAMETER', `--catch-up-days: expected a whole number >= 1, got ${catchUpDays}`)
  }
  const latest = latestDueDay(now, at)
  return dayRange(addDays(latest, -(catchUpDays - 1)), latest)
}

/** One pass of the schedule. Takes no lock: ReportScheduler.runOnce is the locked way in. */
export async function runDueReports(o: SchedulerOptions): Promise<RunResult> {
  const window = catchUpWindow(o.now(), o.at, o.catchUpDays)
  const result: RunResult = { window, written: [], existing: [], beforeData: [], pending: [], failed: [] }
  const missing = window.filter((day) => {
    if (!reportExists(o.outDir, day)) return true
    result.existing.push(day)
    return false
  })
  if (missing.length === 0) return result
  // Loaded here, not at the top: ECharts takes a third of a second to load, and every CLI
  // command imports this module.
  const { generateReport } = await import('./generate.js')
  await o.withStore(async (store) => {
    const bounds = await dataDays(store)
    for (const day of missing) {
      if (!bounds || day < bounds.first) {
        result.beforeData.push(day)
        continue
      }
      if (day > bounds.last) {
        result.pending.push(day)
        continue
      }
      try {
        await generateReport({ store, day, outDir: o.outDir, logger: o.logger, now: o.now, options: o.report })
        result.written.push(day)
      } catch (err) {
        // One bad day must not block the others; it stays missing and is retried next run.
        const error = err instanceof TeitenError ? err.toLine() : String((err as Error)?.message ?? err)
        o.logger.error({ day, err }, 'report failed')
        result.failed.push({ day, error })
      }
    }
  })
  if (result.pending.length > 0) {
    o.logger.warn({ days: result.pending }, 'no data yet for these days: their reports wait for a later run')
  }
  return result
}

/**
 * A long-running scheduler: holds the output directory's lock for its whole life, so a
 * second scheduler on the same directory is refused at start, and never overlaps two runs
 * of its own.
 */
export class ReportScheduler {
  private running: Promise<RunResult> | undefined
  private cron: Cron | undefined
  private closed = false

  private constructor(
    private readonly o: SchedulerOptions,
    private readonly lock: ReportLock,
  ) {}

  static open(o: SchedulerOptions): ReportScheduler {
    parseTimeOfDay(o.at)
    catchUpWindow(o.now(), o.at, o.catchUpDays)
    const lock = acquireReportLock(o.outDir, { now: o.now, ...o.lock })
    return new ReportScheduler(o, lock)
  }

  /** Runs a pass now; a call while a pass runs gets that pass's result instead of a second pass. */
  runOnce(): Promise<RunResult> {
    if (this.closed) return Promise.reject(new TeitenError('USAGE', 'the scheduler is closed'))
    if (!this.running) {
      this.running = runDueReports(this.o).finally(() => {
        this.running = undefined
      })
    }
    return this.running
  }

  /** Fires daily at `at` UTC (croner); errors are logged, the schedule goes on. */
  start(): void {
    if (this.cron || this.closed) return
    const minutes = parseTimeOfDay(this.o.at)
    this.cron = new Cron(
      `${minutes % 60} ${Math.floor(minutes / 60)} * * *`,
      { timezone: 'UTC', protect: true },
      async () => {
        try {
          const r = await this.runOnce()
          this.o.logger.info({ written: r.written, pending: r.pending, failed: r.failed.length }, 'scheduled run done')
        } catch (err) {
          this.o.logger.error({ err }, 'scheduled run failed')
        }
      },
    )
  }

  nextRun(): Date | null {
    return this.cron?.nextRun() ?? null
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.cron?.stop()
    try {
      await this.running
    } catch {}
    this.lock.release()
  }
}
