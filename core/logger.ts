import { pino } from 'pino'

/** The subset of pino that core modules use; tests pass `silentLogger`. */
export interface Logger {
  debug(obj: unknown, msg?: string): void
  info(obj: unknown, msg?: string): void
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  child(bindings: Record<string, unknown>): Logger
}

export type LogFormat = 'json' | 'pretty'
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

/** Logs go to stderr: stdout belongs to the command's output (tables, JSON, CSV). */
export function createLogger(options: { level?: LogLevel; format?: LogFormat } = {}): Logger {
  const level = options.level ?? 'info'
  if (options.format === 'pretty') {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: process.stderr.isTTY } },
    })
  }
  return pino({ level, redact: ['password', '*.password', 'token', '*.token', 'url'] }, pino.destination(2))
}

export const silentLogger: Logger = pino({ level: 'silent' })
