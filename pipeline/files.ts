import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { TeitenError } from '../core/errors.js'

export interface CaptureFile {
  path: string
  size: number
  /** Sensor id: the --sensor flag, else the name of the directory that holds the file. */
  sensor: string
}

/** A file met while walking a directory, before the directory's files are put in order. */
interface Found {
  path: string
  size: number
  mtimeMs: number
}

/**
 * Expands PATH arguments into capture files: files in the order given, each directory's files
 * (recursively) oldest first by modification time, then by path. Symbolic links are followed only
 * when the user named them; links met while walking a directory are skipped, so a link loop or a
 * link out of the spool cannot widen what is read.
 *
 * Oldest first because a sensor closes its rotated captures in time order: a spool of several
 * sensors' folders is then read hour by hour across the sensors instead of one sensor's season
 * after the other, and the store's weekly partitions get their rows together. Read sensor by
 * sensor, every week's aggregate parts were merged once per sensor (each later sensor's rows
 * merged into the week's earlier, already merged parts). The bench spool (7,704 hourly files,
 * three sensors; three runs each, interleaved): 39.1-41.4 user CPU s against 41.9-44.5, the
 * engine's merge threads 3.4-4.0 CPU s against 6.3-6.8, 26.5-27.2 s against 25.9-31.0 s. Files
 * with the same time (a copy that did not keep them) stay in path order, as before.
 *
 * Synchronous on purpose: it runs once, before anything else of the run has started, and the
 * hashing of the captures waits for its list. The bench's spool (7,704 files in three folders)
 * took 1.0-1.7 s to list with an awaited `lstat` per file (a round trip through libuv's pool
 * each), 51-63 ms with `lstatSync` (64-178 ms with all of a folder's `lstat` awaited at once).
 */
export async function expandPaths(paths: string[], sensorOverride?: string): Promise<CaptureFile[]> {
  const out: CaptureFile[] = []
  const seen = new Set<string>()
  const add = (path: string, size: number) => {
    if (seen.has(path)) return
    seen.add(path)
    out.push({ path, size, sensor: sensorOverride ?? basename(dirname(resolve(path))) })
  }
  const walk = (dir: string, visited: Set<string>, found: Found[]) => {
    const real = realpathSync(dir)
    if (visited.has(real)) return
    visited.add(real)
    const entries = readdirSync(dir, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path, visited, found)
      else if (entry.isFile()) {
        const { size, mtimeMs } = lstatSync(path)
        found.push({ path, size, mtimeMs })
      }
    }
  }
  for (const arg of paths) {
    let info: ReturnType<typeof statSync>
    try {
      info = statSync(arg)
    } catch (err) {
      throw new TeitenError('USAGE', `${arg}: no such file or directory`, { file: arg }, { cause: err })
    }
    if (info.isDirectory()) {
      const found: Found[] = []
      walk(arg, new Set(), found)
      // Stable: the walk's path order decides among files of the same time.
      found.sort((a, b) => a.mtimeMs - b.mtimeMs)
      for (const f of found) add(f.path, f.size)
    } else if (info.isFile()) add(arg, info.size)
    else throw new TeitenError('USAGE', `${arg}: not a file or directory`, { file: arg })
  }
  return out
}
