import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { TeitenError } from '../core/errors.js'

export interface CaptureFile {
  path: string
  size: number
  /** Sensor id: the --sensor flag, else the name of the directory that holds the file. */
  sensor: string
}

/**
 * Expands PATH arguments into capture files: directories recursively, in a stable order.
 * Symbolic links are followed only when the user named them; links met while walking a
 * directory are skipped, so a link loop or a link out of the spool cannot widen what is read.
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
  const walk = (dir: string, visited: Set<string>) => {
    const real = realpathSync(dir)
    if (visited.has(real)) return
    visited.add(real)
    const entries = readdirSync(dir, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path, visited)
      else if (entry.isFile()) add(path, lstatSync(path).size)
    }
  }
  for (const arg of paths) {
    let info: ReturnType<typeof statSync>
    try {
      info = statSync(arg)
    } catch (err) {
      throw new TeitenError('USAGE', `${arg}: no such file or directory`, { file: arg }, { cause: err })
    }
    if (info.isDirectory()) walk(arg, new Set())
    else if (info.isFile()) add(arg, info.size)
    else throw new TeitenError('USAGE', `${arg}: not a file or directory`, { file: arg })
  }
  return out
}
