import { Command, CommanderError } from 'commander'
import { isTeitenError } from '../core/errors.js'
import { registerAlerts } from './commands/alerts.js'
import { registerConfig } from './commands/config.js'
import { registerDaily } from './commands/daily.js'
import { registerExport } from './commands/export.js'
import { registerIngest } from './commands/ingest.js'
import { registerServe } from './commands/serve.js'
import { registerSources } from './commands/sources.js'
import { registerSql } from './commands/sql.js'
import { registerReport } from './commands/report.js'
import { registerSchedule } from './commands/schedule.js'
import { registerSink } from './commands/sink.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

/**
 * Every command is registered at startup, so a command module imports only what its options and
 * help need; the packages its action uses (the store's client, kafkajs, fastify, prom-client)
 * are imported in the action. Statically imported, they cost every command ~0.13 s before it
 * starts: `teiten ingest` hashes its captures from the moment it knows them, and the first
 * insert waits for that hash (test/ops/startup.test.ts).
 */
export function buildProgram(): Command {
  const program = new Command()
    .name('teiten')
    .description('定点 — darknet telemetry for NTP reflection scanning (UDP/123)')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride()
  registerIngest(program)
  registerDaily(program)
  registerServe(program)
  registerSources(program)
  registerSql(program)
  registerExport(program)
  registerReport(program)
  registerSchedule(program)
  registerAlerts(program)
  registerSink(program)
  registerConfig(program)
  return program
}

/**
 * kafkajs 2.2.4 arms a timer of `throttledUntil - Date.now()` with throttledUntil = -1 while
 * nothing is throttled (network/requestQueue scheduleCheckPendingRequests): Node 24 then prints
 * "TimeoutNegativeWarning: -1795712960754 is a negative number" once in every Kafka command. The
 * timer runs after 1 ms, as kafkajs means it to; only that warning (a duration of minus a clock
 * reading) is dropped, any other goes out as before.
 */
export function dropKafkajsTimerWarning(): void {
  const emit = process.emitWarning
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    // Node's timers call emitWarning(`${ms} is a negative number.…`, 'TimeoutNegativeWarning').
    const ms = typeof warning === 'string' ? Number(/^(-\d+) is a negative number/.exec(warning)?.[1]) : Number.NaN
    if (rest[0] === 'TimeoutNegativeWarning' && ms < -1e12) return
    return (emit as (...args: unknown[]) => void).call(this, warning, ...rest)
  } as typeof process.emitWarning
}

export async function main(argv: string[]): Promise<void> {
  dropKafkajsTimerWarning()
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      process.exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
      return
    }
    if (isTeitenError(err)) {
      process.stderr.write(`teiten: ${err.toLine()}\n`)
      process.exitCode =
        err.code === 'USAGE' || err.code === 'BAD_PARAMETER' || err.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_FAILED
      return
    }
    process.stderr.write(`teiten: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = EXIT_FAILED
  }
}
