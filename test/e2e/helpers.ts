import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

export const ROOT = join(import.meta.dirname, '..', '..')
export const TEITEN = join(ROOT, 'bin', 'teiten.js')

export interface CliResult {
  status: number
  stdout: string
  stderr: string
}

/** Runs the built CLI (dist/, built by `npm test` before vitest) as a user would. */
export function teiten(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [TEITEN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TEITEN_LOG_LEVEL: 'warn', ...env },
    maxBuffer: 256 << 20,
  })
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

export type Row = Record<string, string | number>

export function keyed(rows: Row[], keys: string[], fields: string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const r of rows) out.set(keys.map((k) => r[k]).join('|'), fields.map((f) => r[f]).join('|'))
  return out
}
