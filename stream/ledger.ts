/**
 * The sensor's own file ledger. A sensor that publishes to Kafka has no ClickHouse to ask
 * whether a file was already read, so it remembers, per topic, the files whose every message
 * (events and the file record) the broker acknowledged: one JSON line per file in
 * `<dataDir>/kafka-ledger.jsonl`, appended after the acknowledgement. A crash before the line
 * is written means the file is published again on the next run; the sink's dedup tokens make
 * that harmless.
 */
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { FileRecord } from '../pipeline/sink.js'

export const LOCAL_LEDGER_FILE = 'kafka-ledger.jsonl'

export interface LocalLedgerEntry extends FileRecord {
  topic: string
  publishedAt: string
}

export class LocalLedger {
  private readonly byKey = new Map<string, LocalLedgerEntry>()
  /** Entries by raw-bytes id, where it differs from the content id (gzip captures, since 0.3). */
  private readonly byRawKey = new Map<string, LocalLedgerEntry>()

  private constructor(readonly path: string) {}

  static open(dataDir: string, logger: Logger): LocalLedger {
    const ledger = new LocalLedger(join(dataDir, LOCAL_LEDGER_FILE))
    let text = ''
    try {
      text = readFileSync(ledger.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new TeitenError(
          'CAPTURE_READ_FAILED',
          `cannot read ${ledger.path}`,
          { file: ledger.path },
          { cause: err },
        )
      }
    }
    let lineNo = 0
    for (const line of text.split('\n')) {
      lineNo++
      if (line.trim() === '') continue
      try {
        const entry = JSON.parse(line) as LocalLedgerEntry
        if (typeof entry.fileId === 'string' && typeof entry.topic === 'string') ledger.index(entry)
      } catch {
        // A line cut short by a crash: that file is published again (deduplicated downstream).
        logger.warn({ file: ledger.path, line: lineNo }, 'unreadable line in the local Kafka ledger: ignored')
      }
    }
    return ledger
  }

  get size(): number {
    return this.byKey.size
  }

  lookup(topic: string, fileId: string): FileRecord | undefined {
    // Either id matches, as in the store's ledger (store/ledger.ts lookupFiles).
    const entry = this.byKey.get(key(topic, fileId)) ?? this.byRawKey.get(key(topic, fileId))
    if (!entry) return undefined
    const { topic: _t, publishedAt: _p, ...record } = entry
    return record
  }

  /** Appends and syncs one line: the entry survives a power cut once this returns. */
  record(topic: string, record: FileRecord, now: Date): void {
    const entry: LocalLedgerEntry = { ...record, topic, publishedAt: now.toISOString() }
    mkdirSync(dirname(this.path), { recursive: true })
    const fd = openSync(this.path, 'a')
    try {
      appendFileSync(fd, `${JSON.stringify(entry)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    this.index(entry)
  }

  private index(entry: LocalLedgerEntry): void {
    this.byKey.set(key(entry.topic, entry.fileId), entry)
    if (typeof entry.rawId === 'string' && entry.rawId !== entry.fileId)
      this.byRawKey.set(key(entry.topic, entry.rawId), entry)
  }
}

function key(topic: string, fileId: string): string {
  return `${topic}\u0000${fileId}`
}
