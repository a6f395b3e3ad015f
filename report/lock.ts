import { randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { TeitenError } from '../core/errors.js'

/**
 * One report writer per output directory, across processes: a lock file created with O_EXCL
 * holding the owner's pid and host. A lock whose owner is gone (same host, pid not running)
 * is stale and taken over; a lock from another host is never judged, since its pid means
 * nothing here.
 */
export const LOCK_NAME = '.teiten-report.lock'

/** Lock files this process holds: its own pid in a lock is live only if listed here. */
const heldHere = new Set<string>()

export interface LockOwner {
  pid: number
  host: string
  startedAt: string
  role: string
}

export interface LockOptions {
  role?: string
  now?: () => Date
  /** A lock file that stays empty or unreadable this long is a crash between create and write. */
  emptyGraceMs?: number
  /** Whether a pid runs on this host; tests replace it. */
  isAlive?: (pid: number) => boolean
}

export interface ReportLock {
  readonly path: string
  readonly owner: LockOwner
  release(): void
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function readOwner(path: string): { text: string; owner?: LockOwner } | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const owner = JSON.parse(text) as LockOwner
    // pid 0 or below would make kill(pid, 0) probe a process group, not a process.
    return Number.isInteger(owner.pid) && owner.pid > 0 && typeof owner.host === 'string' ? { text, owner } : { text }
  } catch {
    return { text }
  }
}

function heldMessage(dir: string, owner: LockOwner | undefined): string {
  const who = owner ? `pid ${owner.pid} on ${owner.host} (${owner.role}, since ${owner.startedAt})` : 'another process'
  return `the report directory ${dir} is locked by ${who}: only one scheduler may write there. If that process is gone, delete ${join(dir, LOCK_NAME)}.`
}

export function acquireReportLock(dir: string, options: LockOptions = {}): ReportLock {
  const now = options.now ?? (() => new Date())
  const isAlive = options.isAlive ?? pidAlive
  const grace = options.emptyGraceMs ?? 60_000
  mkdirSync(dir, { recursive: true })
  const path = join(resolve(dir), LOCK_NAME)
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: now().toISOString(),
    role: options.role ?? 'teiten schedule',
  }
  const text = `${JSON.stringify(owner)}\n`

  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(path, text, { flag: 'wx' })
      heldHere.add(path)
      let released = false
      return {
        path,
        owner,
        release() {
          if (released) return
          released = true
          heldHere.delete(path)
          // Only remove the file if it is still ours (never someone's lock that replaced a stale one).
          if (readOwner(path)?.text === text) unlinkSync(path)
        },
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const found = readOwner(path)
    if (!found) continue // released meanwhile: try again
    if (!isStale(path, found.owner, { isAlive, grace, now })) {
      throw new TeitenError('REPORT_LOCKED', heldMessage(dir, found.owner), { file: path, owner: found.owner })
    }
    breakStaleLock(path, found.text)
  }
  throw new TeitenError('REPORT_LOCKED', heldMessage(dir, readOwner(path)?.owner), { file: path })
}

function isStale(
  path: string,
  owner: LockOwner | undefined,
  o: { isAlive: (pid: number) => boolean; grace: number; now: () => Date },
): boolean {
  if (!owner) {
    try {
      return o.now().getTime() - statSync(path).mtimeMs > o.grace
    } catch {
      return false
    }
  }
  if (owner.host !== hostname()) return false
  // A restarted container often gets the same pid back: our own pid in a lock we do not hold
  // is a previous life of this process.
  if (owner.pid === process.pid) return !heldHere.has(path)
  return !o.isAlive(owner.pid)
}

/**
 * Two processes may find the same stale lock at once. Each renames it away to a private
 * name (only one rename wins), then checks that what it moved is the stale lock it judged:
 * if another process had already replaced it with a live lock, that lock is linked back
 * (link fails rather than overwrite, should a third process have created one meanwhile).
 */
function breakStaleLock(path: string, staleText: string): void {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`
  try {
    renameSync(path, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  try {
    if (readFileSync(aside, 'utf8') !== staleText) {
      try {
        linkSync(aside, path)
      } catch {}
    }
  } finally {
    unlinkSync(aside)
  }
}
