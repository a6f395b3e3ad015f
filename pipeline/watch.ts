/**
 * Follows a capture spool, as `tcpdump -G`/`-C` or `dumpcap -b` write it: one folder per sensor
 * (deeper folders are fine; a file's sensor is the name of the folder holding it), new files
 * appearing while the newest one grows. Polling (readdir + lstat every pollIntervalMs) is all it
 * needs: it sees every change a notification API would, on every filesystem (NFS included), and
 * a missed notification can never stall it.
 *
 * A file is taken once it is complete:
 * - a newer file (by mtime, then name) of the same kind (.gz or not) exists in its folder, or it
 *   has not changed for settleMs;
 * - and, either way, it looked the same (size, mtime, ctime, inode) on two scans in a row, so a
 *   file that is still being written, or a .gz a post-rotate command is still compressing, waits.
 * A .gz whose decompressed content is already in the ledger (tcpdump -z gzip compressing a
 * capture that was ingested) is skipped, and so is a capture whose .gz was ingested: a file's
 * identity is that of the capture it holds (pipeline/identity.ts).
 *
 * Exactly-once does not depend on this module: the ledger (content identity) and the batches'
 * dedup tokens make a re-read harmless. What this module adds is not taking a growing file (that
 * would store half of it now and all of it, under another identity, later), reporting what went
 * wrong with a file, and not hashing the whole spool again at every start: a small state file
 * maps path + size + mtime + ctime + inode to the content identity computed before, and the
 * ledger is still asked about that identity.
 */
import { createHash } from 'node:crypto'
import { appendFile, lstat, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics, WatchReportReason } from '../core/metrics.js'
import type { CaptureFile } from './files.js'
import { prefixRawId } from './identity-core.js'
import { type Enricher, type FileOutcome, ingestFiles } from './ingest.js'
import type { EventSink } from './sink.js'

export interface WatchOptions {
  /** The spool directory. */
  root: string
  sink: EventSink
  enricher: Enricher
  logger: Logger
  /** A file that has not changed for this long is complete even with no newer file beside it. */
  settleMs: number
  pollIntervalMs: number
  /** Sensor id for every file (default: the name of the folder holding the file). */
  sensor?: string
  /** The path -> identity cache (JSON lines). Without it the cache lives in memory only. */
  statePath?: string
  metrics?: Metrics
  /** Milliseconds; injectable so tests drive settling without waiting. */
  now?: () => number
  /** Finish the file in hand, then return. */
  stop?: AbortSignal
  /** Stop at the next chunk boundary: the file in hand is left for the next run (no ledger entry). */
  abort?: AbortSignal
}

export interface WatchCounts {
  scans: number
  ingested: number
  /** Already in the ledger (after hashing, or straight from the state file). */
  skipped: number
  /** Of `skipped`: answered by the state file, no hashing. */
  skippedFromState: number
  failed: number
  reported: Record<WatchReportReason, number>
}

/** How a file looked: any change of these means "changed". */
interface Look {
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
  dev: number
}

interface Seen extends Look {
  path: string
  dir: string
  name: string
  sig: string
  /** Consecutive scans that saw the same signature (0 on the scan that saw it change). */
  stableScans: number
  /** now() when the current signature was first seen. */
  sigSince: number
  /** new: not handled yet; done: ingested, skipped or failed for good; reported: skipped with a reason. */
  state: 'new' | 'done' | 'reported'
}

interface CacheEntry {
  sig: string
  size: number
  ino: number
  fileId: string
  /** The hash of the file's bytes where it differs from fileId (gzip); what a grown file is checked against. */
  rawId?: string
}

function lookOf(st: { size: number; mtimeMs: number; ctimeMs: number; ino: number; dev: number }): Look {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev }
}

function sigOf(l: Look): string {
  return `${l.size}:${l.mtimeMs}:${l.ctimeMs}:${l.dev}:${l.ino}`
}

function errnoOf(err: unknown): string | undefined {
  let e: unknown = err
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as NodeJS.ErrnoException).code
    if (typeof code === 'string' && code.startsWith('E')) return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

function entryOf(sig: string, look: Look, outcome: FileOutcome): CacheEntry {
  const entry: CacheEntry = { sig, size: look.size, ino: look.ino, fileId: outcome.fileId }
  if (outcome.rawId !== undefined) entry.rawId = outcome.rawId
  return entry
}

function isGzipName(name: string): boolean {
  return /\.gz$/i.test(name)
}

const STATE_VERSION = 1

export class SpoolWatcher {
  readonly counts: WatchCounts = {
    scans: 0,
    ingested: 0,
    skipped: 0,
    skippedFromState: 0,
    failed: 0,
    reported: {
      renamed: 0,
      deleted: 0,
      unreadable: 0,
      changed_while_reading: 0,
      grew_after_ingest: 0,
      capture_error: 0,
    },
  }
  private readonly root: string
  private readonly now: () => number
  private readonly logger: Logger
  private readonly seen = new Map<string, Seen>()
  /** Keyed by path relative to the root, so a spool mounted elsewhere keeps its cache. */
  private readonly cache = new Map<string, CacheEntry>()
  private stateLines = 0
  private stateLoaded = false
  private stateWarned = false

  constructor(private readonly options: WatchOptions) {
    this.root = resolve(options.root)
    this.now = options.now ?? Date.now
    this.logger = options.logger
  }

  /** Scans and ingests until `stop` (after the file in hand) or `abort` (at a chunk boundary). */
  async run(): Promise<WatchCounts> {
    const { stop, abort } = this.options
    const signals = [stop, abort].filter((s): s is AbortSignal => s !== undefined)
    const either = signals.length > 0 ? AbortSignal.any(signals) : undefined
    this.logger.info(
      { spool: this.root, settleMs: this.options.settleMs, pollIntervalMs: this.options.pollIntervalMs },
      'watching spool',
    )
    while (!either?.aborted) {
      await this.tick()
      if (either?.aborted) break
      await delay(this.options.pollIntervalMs, undefined, either ? { signal: either } : {}).catch(() => {})
    }
    await this.compactState()
    this.logger.info({ ...this.counts }, 'spool watch stopped')
    return this.counts
  }

  /** One scan, then every complete file it found, oldest first. Returns the files taken. */
  async tick(): Promise<string[]> {
    await this.loadState()
    const ready = await this.scan()
    const taken: string[] = []
    for (const s of ready) {
      if (this.options.stop?.aborted || this.options.abort?.aborted) break
      if (await this.take(s)) taken.push(s.path)
    }
    return taken
  }

  // ---------------------------------------------------------------------------------------------
  // Scanning

  /** Regular files under the root (symlinks, dotfiles and anything else skipped); undefined if the root is unreadable. */
  private async list(): Promise<{ files: Map<string, Look>; unlisted: Set<string> } | undefined> {
    const files = new Map<string, Look>()
    const unlisted = new Set<string>()
    const walk = async (dir: string, isRoot: boolean): Promise<boolean> => {
      let entries: import('node:fs').Dirent[]
      try {
        entries = await readdir(dir, { withFileTypes: true })
      } catch (err) {
        if (isRoot) {
          this.logger.warn({ spool: dir, err: (err as Error).message }, 'spool directory cannot be read: waiting')
          return false
        }
        unlisted.add(dir)
        return true
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue
        const path = join(dir, entry.name)
        // Links are never followed: a link in a spool could point anywhere, or back at itself.
        if (entry.isDirectory()) await walk(path, false)
        else if (entry.isFile()) {
          try {
            files.set(path, lookOf(await lstat(path)))
          } catch {
            // Gone between readdir and lstat: the next scan sees it gone.
          }
        }
      }
      return true
    }
    return (await walk(this.root, true)) ? { files, unlisted } : undefined
  }

  private async scan(): Promise<Seen[]> {
    const listing = await this.list()
    this.counts.scans++
    const now = this.now()
    this.options.metrics?.watchLastScan.set(Date.now() / 1000)
    if (!listing) return []
    const { files, unlisted } = listing

    // Files gone since the last scan: renamed (same inode under a new name) or deleted.
    const byInode = new Map<string, string>()
    for (const [path, look] of files) if (!this.seen.has(path)) byInode.set(`${look.dev}:${look.ino}`, path)
    const hidden = [...unlisted].map((d) => `${d}/`)
    for (const [path, s] of this.seen) {
      if (files.has(path)) continue
      // A folder that could not be listed this time says nothing about its files.
      if (hidden.some((d) => path.startsWith(d))) continue
      this.seen.delete(path)
      const to = byInode.get(`${s.dev}:${s.ino}`)
      const oldRel = relative(this.root, path)
      const entry = this.cache.get(oldRel)
      if (entry) {
        this.cache.delete(oldRel)
        // A handled file moved within the spool keeps its identity: no hashing under the new name.
        const moved = to ? files.get(to) : undefined
        if (to && moved && moved.size === entry.size) {
          await this.remember(relative(this.root, to), { ...entry, sig: sigOf(moved) })
        }
      }
      if (s.state !== 'new') {
        this.logger.debug({ file: path, to }, 'handled file left the spool')
        continue
      }
      if (!to && files.has(`${path}.gz`)) {
        this.logger.info(
          { file: path, to: `${path}.gz` },
          'file compressed before it was ingested: the .gz is followed',
        )
        continue
      }
      if (to) this.report('renamed', path, { to }, 'file renamed before it was ingested: the new name is followed')
      else this.report('deleted', path, {}, 'file deleted before it was ingested')
    }

    for (const [path, look] of files) {
      const sig = sigOf(look)
      const s = this.seen.get(path)
      if (!s) {
        this.seen.set(path, {
          ...look,
          path,
          dir: dirname(path),
          name: basename(path),
          sig,
          stableScans: 0,
          sigSince: now,
          state: 'new',
        })
      } else if (s.sig !== sig) {
        Object.assign(s, look, { sig, stableScans: 0, sigSince: now })
        // Changed after it was handled: new content under an old name, or a file that grew.
        if (s.state !== 'new') s.state = 'new'
      } else {
        s.stableScans++
      }
    }

    // "A newer file beside it" counts only among files of the same kind: the .gz that a
    // post-rotate `gzip` (tcpdump -z) finishes while the next capture is still being written is
    // newer than that capture, and says nothing about whether it is complete.
    const byDir = new Map<string, Seen[]>()
    for (const s of this.seen.values()) {
      const key = `${s.dir}\0${isGzipName(s.name)}`
      const list = byDir.get(key)
      if (list) list.push(s)
      else byDir.set(key, [s])
    }
    const ready: Seen[] = []
    let incomplete = 0
    for (const list of byDir.values()) {
      list.sort(olderFirst)
      for (let i = 0; i < list.length; i++) {
        const s = list[i]!
        if (s.state !== 'new') continue
        const hasNewer = i < list.length - 1
        const settled = now - s.sigSince >= this.options.settleMs
        if (s.stableScans >= 1 && (hasNewer || settled)) ready.push(s)
        else incomplete++
      }
    }
    ready.sort(olderFirst)
    this.options.metrics?.watchPending.set(ready.length)
    this.options.metrics?.watchGrowing.set(incomplete)
    if (ready.length > 0) this.logger.debug({ ready: ready.length, incomplete }, 'spool scanned')
    return ready
  }

  // ---------------------------------------------------------------------------------------------
  // Taking one file

  /** Returns true when the file was handled (ingested, skipped, failed or reported). */
  private async take(s: Seen): Promise<boolean> {
    const { path } = s
    let look: Look
    try {
      look = lookOf(await lstat(path))
    } catch {
      return false // gone since the scan: the next scan tells renamed from deleted
    }
    if (sigOf(look) !== s.sig) return false // changed since the scan: not complete after all

    const rel = relative(this.root, path)
    const cached = this.cache.get(rel)
    if (cached && cached.sig === s.sig) {
      const previous = await this.options.sink.lookupFile(cached.fileId)
      if (previous) {
        s.state = 'done'
        this.counts.skipped++
        this.counts.skippedFromState++
        this.options.metrics?.files.inc({ outcome: 'skipped' })
        this.logger.debug({ file: path, fileId: cached.fileId }, 'already ingested (state file): skipped')
        return true
      }
    }
    if (cached && cached.sig !== s.sig && cached.ino === look.ino && look.size > cached.size) {
      let grown = false
      try {
        // In the sink's scheme: the ids cached for it are its ledger's.
        const scheme = await this.options.sink.identityScheme()
        grown = (await prefixRawId(path, cached.size, scheme)) === (cached.rawId ?? cached.fileId)
      } catch {
        // Unreadable now: the ingest below reports it.
      }
      if (grown) {
        // Its first part is stored under the old identity; storing the whole again would count
        // that part twice, and storing only the rest is not possible by content identity.
        s.state = 'reported'
        await this.remember(rel, { ...cached, sig: s.sig })
        this.report(
          'grew_after_ingest',
          path,
          { ingestedBytes: cached.size, size: look.size },
          'file grew after it was ingested: records added after it was read are not ingested (raise --settle-ms)',
        )
        return true
      }
    }

    const file: CaptureFile = { path, size: look.size, sensor: this.options.sensor ?? basename(s.dir) }
    const started = this.now()
    const summary = await ingestFiles([file], {
      sink: this.options.sink,
      enricher: this.options.enricher,
      logger: this.logger,
      metrics: this.options.metrics,
      signal: this.options.abort,
    })
    const outcome = summary.outcomes[0]
    if (!outcome) return false // aborted mid-file: it is read again on the next run

    let after: Look | undefined
    try {
      after = lookOf(await lstat(path))
    } catch {}
    const unread = outcome.fileId === '' || outcome.error?.code === 'CAPTURE_READ_FAILED'
    if (after && sigOf(after) !== s.sig && !unread) {
      this.report(
        'changed_while_reading',
        path,
        { fileId: outcome.fileId },
        'file changed while it was read: what was read is stored, the file is looked at again',
      )
      // Remembered as it was when read, so that a file that only grew is recognised as such.
      await this.remember(rel, entryOf(s.sig, look, outcome))
      s.state = 'new'
      Object.assign(s, after, { sig: sigOf(after), stableScans: 0, sigSince: this.now() })
      return true
    }
    return this.settle(s, rel, look, outcome, this.now() - started)
  }

  private async settle(s: Seen, rel: string, look: Look, outcome: FileOutcome, ms: number): Promise<boolean> {
    const { path } = s
    if (outcome.fileId === '' || outcome.error?.code === 'CAPTURE_READ_FAILED') {
      // The file vanished, became something else, or cannot be read: nothing was recorded for
      // it, and it is looked at again once it changes (a chmod changes its ctime).
      const code = errnoOf(outcome.error)
      if (code === 'ENOENT') return false // the next scan reports it
      s.state = 'reported'
      this.report('unreadable', path, { error: outcome.error?.message, errno: code }, 'file cannot be read: skipped')
      return true
    }
    s.state = 'done'
    await this.remember(rel, entryOf(s.sig, look, outcome))
    const base = {
      file: path,
      sensor: outcome.file.sensor,
      fileId: outcome.fileId,
      records: outcome.records,
      kept: outcome.kept,
    }
    if (outcome.status === 'ingested') {
      this.counts.ingested++
      this.options.metrics?.lastFileIngested.set(Date.now() / 1000)
      this.logger.info({ ...base, dropped: outcome.dropped, ms: Math.round(ms) }, 'file ingested')
    } else if (outcome.status === 'skipped') {
      this.counts.skipped++
      if (isGzipName(s.name) && outcome.rawId !== undefined) {
        // tcpdump -z gzip, or an operator compressing old captures.
        this.logger.info(base, 'compressed copy of a capture already ingested: skipped')
      } else this.logger.info(base, 'already ingested: skipped')
    } else {
      this.counts.failed++
      this.report(
        'capture_error',
        path,
        { ...base, error: outcome.error?.toLine() },
        'capture is damaged: records before the fault were stored',
      )
    }
    return true
  }

  private report(reason: WatchReportReason, file: string, extra: Record<string, unknown>, msg: string): void {
    this.counts.reported[reason]++
    this.options.metrics?.watchReported.inc({ reason })
    const level = reason === 'capture_error' || reason === 'unreadable' ? 'error' : 'warn'
    this.logger[level]({ file, reason, ...extra }, msg)
  }

  // ---------------------------------------------------------------------------------------------
  // State file: JSON lines, appended per file, rewritten at start and stop. Only a cache: a lost
  // or damaged state file costs hashing, never correctness (the ledger is asked every time).

  private async loadState(): Promise<void> {
    if (this.stateLoaded) return
    this.stateLoaded = true
    const path = this.options.statePath
    if (!path) return
    let text = ''
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') this.warnState(err)
    }
    for (const line of text.split('\n')) {
      if (line === '') continue
      let e: { v?: number; p?: string; g?: string; s?: number; i?: number; id?: string; r?: string }
      try {
        e = JSON.parse(line)
      } catch {
        continue // a line cut by a crash: the file it named is hashed again
      }
      if (e.v !== undefined && e.v !== STATE_VERSION) {
        this.cache.clear() // written by another version: start cold
        break
      }
      if (typeof e.p === 'string' && typeof e.g === 'string' && typeof e.id === 'string') {
        this.cache.set(e.p, {
          sig: e.g,
          size: Number(e.s),
          ino: Number(e.i),
          fileId: e.id,
          ...(e.r ? { rawId: e.r } : {}),
        })
      }
    }
    await this.compactState()
  }

  private async remember(rel: string, entry: CacheEntry): Promise<void> {
    this.cache.set(rel, entry)
    const path = this.options.statePath
    if (!path) return
    try {
      await appendFile(
        path,
        `${JSON.stringify({ p: rel, g: entry.sig, s: entry.size, i: entry.ino, id: entry.fileId, r: entry.rawId })}\n`,
      )
      this.stateLines++
      if (this.stateLines > 2 * this.cache.size + 1000) await this.compactState()
    } catch (err) {
      this.warnState(err)
    }
  }

  private async compactState(): Promise<void> {
    const path = this.options.statePath
    if (!path) return
    const lines = [JSON.stringify({ v: STATE_VERSION, root: this.root })]
    for (const [p, e] of this.cache)
      lines.push(JSON.stringify({ p, g: e.sig, s: e.size, i: e.ino, id: e.fileId, r: e.rawId }))
    const tmp = `${path}.${process.pid}.tmp`
    try {
      await mkdir(dirname(path), { recursive: true })
      await writeFile(tmp, `${lines.join('\n')}\n`)
      await rename(tmp, path)
      this.stateLines = lines.length
    } catch (err) {
      this.warnState(err)
    }
  }

  private warnState(err: unknown): void {
    if (this.stateWarned) return
    this.stateWarned = true
    this.logger.warn(
      { stateFile: this.options.statePath, err: (err as Error).message },
      'watch state file not usable: files are hashed again after a restart',
    )
  }
}

function olderFirst(a: Seen, b: Seen): number {
  if (a.mtimeMs !== b.mtimeMs) return a.mtimeMs - b.mtimeMs
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0
}

/** Checks the spool argument before anything is opened: a typo should fail at once, not poll forever. */
export async function checkSpool(root: string): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>
  try {
    // The root itself may be a link the user named; links inside it are never followed.
    info = await stat(root)
  } catch (err) {
    throw new TeitenError('USAGE', `--watch ${root}: no such directory`, { file: root }, { cause: err })
  }
  if (!info.isDirectory()) throw new TeitenError('USAGE', `--watch ${root}: not a directory`, { file: root })
}

/** Where the watcher keeps its state: beside the data, one file per spool. */
export function defaultStatePath(dataDir: string, root: string): string {
  const key = createHash('sha256').update(resolve(root)).digest('hex').slice(0, 16)
  return join(resolve(dataDir), 'watch', `${key}.jsonl`)
}
