import { spawnSync } from 'node:child_process'
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Writes the page cache holds for the disk, written out before a timed run starts: a run must
 * not pay for the writeback of the stage before it. In the first full run of round 24 the Kafka
 * section's embedded ingest came right after the 1e9-event store was built (GBs of parts): 71.7 s
 * at 28.7 CPU s, against 11.2-13.1 s at 20.4-24.0 CPU s in the rounds, its writes throttled
 * behind that writeback (and its ratio to the Kafka path read 272%); the 2M-packet check right
 * after the spool took 7.28 s at 5.4 CPU s (2.4 s at 3.8 CPU s in round 23).
 */
export function settleWrites(): void {
  spawnSync('sync', { stdio: 'ignore' })
}

/**
 * Every byte of `paths` (files, and the files under directories) read once, untimed, right before
 * a timed run, so that each stage starts from the page cache as the reference does. This host
 * pages out file pages nobody touched for a minute (DAMON, `pageout` of regions idle for 60 s):
 * a round-24 run that first waited out freed inodes for 267 s found the capture paged out, and
 * tcpdump inside the rounds read it from the disk (see docs/performance.md, Round 24).
 */
export function warmInputs(paths: string[]): void {
  const buf = Buffer.allocUnsafe(4 << 20)
  const readAll = (path: string) => {
    const fd = openSync(path, 'r')
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0) {}
    } finally {
      closeSync(fd)
    }
  }
  for (const path of paths) {
    if (!statSync(path).isDirectory()) readAll(path)
    else {
      for (const entry of readdirSync(path, { recursive: true, withFileTypes: true })) {
        if (entry.isFile()) readAll(join(entry.parentPath, entry.name))
      }
    }
  }
}
