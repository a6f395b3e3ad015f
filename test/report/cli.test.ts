import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { addDays, dayRange } from '../../report/days.js'
import { openStore } from '../../store/open.js'
import { tempDir } from '../helpers/tmp.js'
import { buildEvents, insertEvents } from './seed.js'

const DAY = '2014-01-10'
const dir = tempDir()
const data = join(dir.path, 'data')

beforeAll(async () => {
  // Seed, then close: the commands open the directory themselves, as they would from a shell.
  const store = await openStore({ dataDir: data, logger: silentLogger, host: false })
  await insertEvents(
    store,
    buildEvents({
      seed: 11,
      days: dayRange(addDays(DAY, -30), DAY),
      poolSize: 10,
      streams: [
        { country: 'CN', cls: 'monlist', level: 30 },
        { country: 'US', cls: 'client', level: 10, fixed: { [DAY]: 500 } },
      ],
    }),
    'cli',
  )
  await store.close()
})
afterAll(() => dir.cleanup())
afterEach(() => {
  process.exitCode = undefined
  vi.restoreAllMocks()
})

async function teiten(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../cli/main.js')
  let stdout = ''
  let stderr = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk)
    return true
  })
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk)
    return true
  })
  process.exitCode = undefined
  try {
    await main(['node', 'teiten', ...args, '--log-level', 'silent'])
  } finally {
    vi.restoreAllMocks()
  }
  return { code: Number(process.exitCode ?? 0), stdout, stderr }
}

describe('teiten alerts, report and schedule', () => {
  it('exits 3 and lists the surge as JSON when there is one', async () => {
    const r = await teiten('alerts', '--data', data, '--day', DAY, '--format', 'json')
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out.day).toBe(DAY)
    expect(out.surges).toHaveLength(1)
    expect(Object.keys(out.surges[0]).sort()).toEqual([
      'class',
      'country',
      'factor',
      'mad',
      'median',
      'packets',
      'score',
    ])
    expect(out.surges[0]).toMatchObject({ country: 'US', class: 'client', packets: 500 })
  })

  it('exits 0 when there is no surge, and 2 on a bad day', async () => {
    const quiet = await teiten('alerts', '--data', data, '--day', addDays(DAY, -1))
    expect(quiet).toMatchObject({ code: 0, stdout: `no surge on ${addDays(DAY, -1)}\n` })
    const bad = await teiten('alerts', '--data', data, '--day', '2014-02-30')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/not a calendar date \[BAD_PARAMETER\]/)
  })

  it('writes the four report files into --out and prints their paths', async () => {
    const out = join(dir.path, 'reports')
    const r = await teiten('report', '--data', data, '--day', DAY, '--out', out)
    expect(r.code).toBe(0)
    expect(r.stdout.trim().split('\n')).toHaveLength(4)
    expect(readdirSync(out).sort()).toEqual(['csv', 'html', 'md', 'png'].map((e) => `teiten-report-${DAY}.${e}`))
  })

  it('runs one catch-up pass with schedule --once and releases the lock', async () => {
    const out = join(dir.path, 'scheduled')
    const r = await teiten('schedule', '--once', '--data', data, '--out', out, '--at', '06:00')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^window /)
    expect(readdirSync(out).filter((f) => f.startsWith('.teiten-report.lock'))).toEqual([])
    const bad = await teiten('schedule', '--once', '--data', data, '--out', out, '--at', '6am')
    expect(bad.code).toBe(2)
  })
})
