import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isTeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { dayRange } from '../../report/days.js'
import { reportExists, reportPaths } from '../../report/files.js'
import { acquireReportLock, LOCK_NAME } from '../../report/lock.js'
import {
  catchUpWindow,
  latestDueDay,
  ReportScheduler,
  runDueReports,
  type SchedulerOptions,
} from '../../report/scheduler.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { tempDir } from '../helpers/tmp.js'
import { buildEvents, insertEvents } from './seed.js'

const dir = tempDir()
let store: Store
let storeOpens = 0

beforeAll(async () => {
  store = await openStore({ dataDir: join(dir.path, 'data'), logger: silentLogger, host: false })
  // Data from 2014-01-01 to 2014-01-08.
  const events = buildEvents({
    seed: 5,
    days: dayRange('2014-01-01', '2014-01-08'),
    poolSize: 5,
    streams: [{ country: 'CN', cls: 'monlist', level: 20 }],
  })
  await insertEvents(store, events, 'sched')
})
afterAll(async () => {
  await store?.close()
  dir.cleanup()
})

/** A clock the test moves by hand. */
function fakeClock(iso: string) {
  let t = new Date(iso)
  return { now: () => t, set: (s: string) => (t = new Date(s)) }
}

function options(outDir: string, now: () => Date, over: Partial<SchedulerOptions> = {}): SchedulerOptions {
  return {
    outDir,
    at: '06:00',
    catchUpDays: 7,
    logger: silentLogger,
    now,
    withStore: async (fn) => {
      storeOpens++
      return fn(store)
    },
    ...over,
  }
}

const mtimes = (outDir: string) =>
  Object.fromEntries(readdirSync(outDir).map((f) => [f, statSync(join(outDir, f)).mtimeMs]))

describe('which days are due', () => {
  it('makes day D due at D+1 HH:MM UTC and looks back catch-up-days due days', () => {
    expect(latestDueDay(new Date('2014-01-05T05:59:59Z'), '06:00')).toBe('2014-01-03')
    expect(latestDueDay(new Date('2014-01-05T06:00:00Z'), '06:00')).toBe('2014-01-04')
    expect(latestDueDay(new Date('2014-01-05T23:59:00Z'), '00:00')).toBe('2014-01-04')
    expect(catchUpWindow(new Date('2014-01-05T07:00:00Z'), '06:00', 3)).toEqual([
      '2014-01-02',
      '2014-01-03',
      '2014-01-04',
    ])
    expect(() => catchUpWindow(new Date(), '06:00', 0)).toThrow(/catch-up-days/)
    expect(() => catchUpWindow(new Date(), '25:00', 7)).toThrow(/--at/)
  })
})

describe('scheduler', () => {
  it('catches up a missed day exactly once, and a second run does nothing', async () => {
    const out = join(dir.path, 'out-catchup')
    const clock = fakeClock('2014-01-03T06:30:00Z')
    const o = options(out, clock.now)

    const first = await runDueReports(o)
    expect(first.written).toEqual(['2014-01-01', '2014-01-02'])
    expect(first.beforeData).toEqual(dayRange('2013-12-27', '2013-12-31'))

    // Down all of 2014-01-04 (its 06:00 run never happened); back up on the 5th after 06:00.
    clock.set('2014-01-05T06:10:00Z')
    const before = mtimes(out)
    const second = await runDueReports(o)
    expect(second.written).toEqual(['2014-01-03', '2014-01-04'])
    expect(second.existing).toEqual(['2014-01-01', '2014-01-02'])
    for (const [f, t] of Object.entries(before)) expect(statSync(join(out, f)).mtimeMs, f).toBe(t)

    const after = mtimes(out)
    const third = await runDueReports(o)
    expect(third.written).toEqual([])
    expect(third.existing).toEqual(dayRange('2014-01-01', '2014-01-04'))
    expect(mtimes(out)).toEqual(after)
    expect(readdirSync(out)).toHaveLength(4 * 4)
  })

  it('redoes a day whose report is incomplete, as after a crash between two files', async () => {
    const out = join(dir.path, 'out-crash')
    const o = options(out, () => new Date('2014-01-03T07:00:00Z'), { catchUpDays: 2 })
    await runDueReports(o)
    const opens = storeOpens
    expect((await runDueReports(o)).written).toEqual([])
    expect(storeOpens).toBe(opens) // nothing missing: the store is not even opened
    rmSync(reportPaths(out, '2014-01-02').md)
    writeFileSync(join(out, '.teiten-report-2014-01-02.md.123.abcd.tmp'), 'half a rep') // a crash's leftover
    expect(reportExists(out, '2014-01-02')).toBe(false)
    const r = await runDueReports(o)
    expect(r.written).toEqual(['2014-01-02'])
    expect(reportExists(out, '2014-01-02')).toBe(true)
  })

  it('leaves days after the last day with data for a later run', async () => {
    const out = join(dir.path, 'out-pending')
    const r = await runDueReports(options(out, () => new Date('2014-01-11T06:00:00Z'), { catchUpDays: 4 }))
    expect(r.window).toEqual(['2014-01-07', '2014-01-08', '2014-01-09', '2014-01-10'])
    expect(r.written).toEqual(['2014-01-07', '2014-01-08'])
    expect(r.pending).toEqual(['2014-01-09', '2014-01-10'])
  })

  it('runs one pass at a time: a call during a pass gets that pass', async () => {
    const out = join(dir.path, 'out-overlap')
    const s = ReportScheduler.open(options(out, () => new Date('2014-01-04T06:00:00Z'), { catchUpDays: 2 }))
    try {
      const [a, b] = await Promise.all([s.runOnce(), s.runOnce()])
      expect(a).toBe(b)
      expect(a.written).toEqual(['2014-01-02', '2014-01-03'])
    } finally {
      await s.close()
    }
  })

  it('refuses a second scheduler on the same directory while the first holds the lock', async () => {
    const out = join(dir.path, 'out-lock')
    const clock = fakeClock('2014-01-03T06:30:00Z')
    const first = ReportScheduler.open(options(out, clock.now))
    let refused: unknown
    try {
      ReportScheduler.open(options(out, clock.now))
    } catch (err) {
      refused = err
    }
    expect(isTeitenError(refused, 'REPORT_LOCKED')).toBe(true)
    expect((refused as Error).message).toMatch(new RegExp(`pid ${process.pid}`))
    await first.close()
    expect(existsSync(join(out, LOCK_NAME))).toBe(false)
    const again = ReportScheduler.open(options(out, clock.now))
    await again.close()
  })

  it('refuses a lock held by another live process and takes it over once that process is gone', async () => {
    const out = join(dir.path, 'out-stale')
    mkdirSync(out, { recursive: true })
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
    const exited = new Promise((resolve) => other.once('exit', resolve))
    try {
      writeFileSync(
        join(out, LOCK_NAME),
        JSON.stringify({
          pid: other.pid,
          host: hostname(),
          startedAt: '2014-01-01T00:00:00Z',
          role: 'teiten schedule',
        }),
      )
      expect(() => ReportScheduler.open(options(out, () => new Date()))).toThrow(
        new RegExp(`locked by pid ${other.pid}`),
      )
    } finally {
      other.kill('SIGKILL')
      await exited
    }
    const s = ReportScheduler.open(options(out, () => new Date()))
    expect(JSON.parse(readFileSync(join(out, LOCK_NAME), 'utf8')).pid).toBe(process.pid)
    await s.close()
    expect(readdirSync(out)).toEqual([]) // the stale lock moved aside is gone too
  })

  it('does not judge a lock from another host, nor a fresh empty one', () => {
    const out = join(dir.path, 'out-foreign')
    const lockPath = join(out, LOCK_NAME)
    rmSync(out, { recursive: true, force: true })
    acquireReportLock(out).release()
    writeFileSync(lockPath, JSON.stringify({ pid: 1, host: 'elsewhere', startedAt: 'x', role: 'teiten schedule' }))
    expect(() => acquireReportLock(out, { isAlive: () => false })).toThrow(/locked by pid 1 on elsewhere/)
    writeFileSync(lockPath, '') // a crash between create and write ...
    expect(() => acquireReportLock(out)).toThrow(/locked/)
    const old = new Date(Date.now() - 120_000)
    utimesSync(lockPath, old, old) // ... is stale once the grace period is over
    acquireReportLock(out).release()
  })

  it('treats a lock carrying its own pid, not held by it, as a previous life (container restart)', () => {
    const out = join(dir.path, 'out-self')
    acquireReportLock(out).release()
    writeFileSync(
      join(out, LOCK_NAME),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', role: 'r' }),
    )
    const lock = acquireReportLock(out)
    expect(() => acquireReportLock(out)).toThrow(/locked/)
    lock.release()
  })

  it('wires croner to fire daily at --at UTC', async () => {
    const out = join(dir.path, 'out-cron')
    const s = ReportScheduler.open(options(out, () => new Date(), { at: '06:15' }))
    try {
      s.start()
      const next = s.nextRun()!
      expect([next.getUTCHours(), next.getUTCMinutes(), next.getUTCSeconds()]).toEqual([6, 15, 0])
      expect(next.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000)
      expect(next.getTime()).toBeGreaterThan(Date.now())
    } finally {
      await s.close()
    }
    expect(s.nextRun()).toBeNull()
  })
})
