import type { Command } from 'commander'
import { TeitenError } from '../../core/errors.js'
import { addDays, dayOf, parseDay } from '../../report/days.js'
import { DEFAULT_SURGE_OPTIONS, findSurges, type SurgeOptions } from '../../report/surges.js'
import { addCommonOptions, addStoreOptions, contextFrom, openStoreFor } from '../context.js'
import { toTable } from '../output.js'
import { parseFormat } from './shared.js'

/** Exit status when surges were found, so cron or a systemd unit can act on it (1 = error, 2 = usage). */
export const EXIT_SURGES = 3

function numberOption(value: unknown, name: string, o: { integer: boolean; min: number }): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < o.min || (o.integer && !Number.isInteger(n))) {
    throw new TeitenError(
      'USAGE',
      `${name} must be a ${o.integer ? 'whole ' : ''}number >= ${o.min}, got ${String(value)}`,
    )
  }
  return n
}

export function registerAlerts(program: Command): void {
  const d = DEFAULT_SURGE_OPTIONS
  const cmd = program
    .command('alerts')
    .description(`surges: a (country, class) far above its own trailing baseline; exit status ${EXIT_SURGES} when any`)
    .option('--day <YYYY-MM-DD>', 'the UTC day to check (default: yesterday, UTC)')
    .option('--format <format>', 'table|json', 'table')
    .option('--baseline-days <n>', 'trailing days of the baseline', String(d.baselineDays))
    .option('--min-score <x>', 'robust score (x - median) / (1.4826 MAD) a surge reaches', String(d.minScore))
    .option('--min-packets <n>', 'packets a surge has at least', String(d.minPackets))
    .option('--min-factor <x>', 'multiple of the baseline median a surge has at least', String(d.minFactor))
  addStoreOptions(cmd)
  addCommonOptions(cmd)
  cmd.action(async (opts: Record<string, unknown>) => {
    const format = parseFormat(opts.format, ['table', 'json'])
    const day = opts.day === undefined ? addDays(dayOf(new Date()), -1) : parseDay(opts.day)
    const options: SurgeOptions = {
      baselineDays: numberOption(opts.baselineDays, '--baseline-days', { integer: true, min: 1 }),
      minScore: numberOption(opts.minScore, '--min-score', { integer: false, min: 0 }),
      minPackets: numberOption(opts.minPackets, '--min-packets', { integer: false, min: 0 }),
      minFactor: numberOption(opts.minFactor, '--min-factor', { integer: false, min: 0 }),
    }
    const ctx = contextFrom(opts)
    const store = await openStoreFor(ctx, 'teiten alerts')
    let surges: Awaited<ReturnType<typeof findSurges>>
    try {
      surges = await findSurges(store, day, options)
    } finally {
      await store.close()
    }
    if (format === 'json') process.stdout.write(`${JSON.stringify({ day, ...options, surges })}\n`)
    else if (surges.length === 0) process.stdout.write(`no surge on ${day}\n`)
    else
      process.stdout.write(
        toTable(surges as unknown as Record<string, unknown>[], [
          'country',
          'class',
          'packets',
          'median',
          'mad',
          'score',
          'factor',
        ]),
      )
    if (surges.length > 0) process.exitCode = EXIT_SURGES
  })
}
