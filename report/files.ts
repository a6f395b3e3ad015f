import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { Day } from './days.js'

export const REPORT_EXTENSIONS = ['csv', 'png', 'html', 'md'] as const
export type ReportExtension = (typeof REPORT_EXTENSIONS)[number]
export type ReportPaths = Record<ReportExtension, string>

export function reportPaths(outDir: string, day: Day): ReportPaths {
  const base = join(outDir, `teiten-report-${day}`)
  return { csv: `${base}.csv`, png: `${base}.png`, html: `${base}.html`, md: `${base}.md` }
}

/**
 * A day counts as reported only when all four files exist. Each file appears whole (see
 * writeFileAtomic), so a crash between two files leaves the day incomplete and it is redone.
 */
export function reportExists(outDir: string, day: Day): boolean {
  const paths = reportPaths(outDir, day)
  return REPORT_EXTENSIONS.every((ext) => existsSync(paths[ext]))
}

/**
 * Writes to a hidden temporary file beside the target, then renames it over the target:
 * rename within one directory is atomic, so readers and the "exists" check see either the
 * old file or the complete new one, never a prefix. The temp name starts with a dot and has
 * no report extension, so a leftover from a crash is never mistaken for a report.
 */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    writeFileSync(tmp, data, { flush: true })
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}
