import { CLASS_ID, type Enrichment, NTP_CLASSES, type NtpClass, type UdpPacket } from '../core/event.js'
import { isTeitenError, TeitenError, wrapError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics } from '../core/metrics.js'
import { type CaptureContent, readCapture } from '../ingest/capture.js'
import { createUdpPacket, DECODE_STATUS_NAMES, DecodeStatus, decodeFrameStatus } from '../ingest/decode.js'
import { EventColumnEncoder } from '../store/native-encoder.js'
import { EventRowEncoder } from '../store/rowbinary.js'
import type { CaptureFile } from './files.js'
import { FileIdentities, type FileIds, fileIdentity } from './identity.js'
import { FILE_ID_CHARS } from './identity-core.js'
import type { EventSink, FileRecord, GroupMember, LedgerEntry } from './sink.js'
import { BATCH_ROWS, type BodyFormat, groupToken } from './sink.js'

/** Rows per batch: fixed per ledger (pipeline/sink.ts, EventSink.batchRows). */
export { BATCH_ROWS, LARGE_BATCH_ROWS } from './sink.js'
/**
 * Inserts handed to the sink but not yet stored: parsing runs ahead of storage by this much.
 * Three: two run side by side on the embedded store's insert connections (store/open.ts
 * INSERT_CONNECTIONS) while the next is staged. Their rows are held by the store, not here: the
 * store sink hands each body back once it has its own block (onBodyRead).
 */
const MAX_IN_FLIGHT = 3
/**
 * A group insert of small files is sent once it holds this many rows or files. Not part of any
 * identity (a group's members are recorded before it is stored, EventGroup), so it is sized for
 * memory alone: the bench spool of 7,704 files peaked at 983-1,088 MiB in groups of
 * LARGE_BATCH_ROWS (23.0-25.0 s) against 884-905 MiB in groups of BATCH_ROWS (22.8-28.4 s) in
 * interleaved runs (docs/performance.md, Round 24).
 */
const GROUP_ROWS = BATCH_ROWS
const GROUP_FILES = 2000
/**
 * Files hashed ahead of the reader. The hashing worker hands over each small file's content
 * (pipeline/identity.ts CONTENT_BUDGET_BYTES), held until the reader gets there: 96 hourly files
 * of the bench spool are ~33 MB. 512 ahead (for batched ledger lookups, before the ledger was
 * read at the start) left the budget full and most files to be read and gunzipped again.
 */
export const IDENTITY_LOOKAHEAD = 96

/**
 * A file at least this big whose identity the hashing worker has not computed yet when the
 * reader gets to it is read meanwhile (an early read): its batches are encoded under a stand-in
 * id and held until the file's id is known and the ledger says it is new, then sent with the id
 * written in place (store/native-encoder.ts takeLocatingFileId). Otherwise the first file of a
 * run waits for the SHA-256 of all of it: 2.7 GB, ~2-2.5 s with one of the two cores idle.
 * If the file turns out to be stored already (or anything but plainly new), what was read
 * early is dropped and the file goes the way it always did. Native bodies only (StoreSink).
 * Smaller files are hashed in under ~50 ms, and a spool's are hashed ahead of the reader.
 */
const EARLY_READ_MIN_BYTES = 64 << 20
/**
 * Rows an early read holds before it waits for the file's id: twelve batches of BATCH_ROWS (~19 MB
 * each), eight of LARGE_BATCH_ROWS. Beside the hash the main thread encodes 262,144 rows in
 * ~0.1-0.15 s, and the hash of the 20M-packet bench capture ends ~2-2.5 s into the run. Peak RSS
 * of its ingest 796-818 MiB against 584-611 without early reads (docs/performance.md, Round 17).
 */
const EARLY_ROWS = 12 * BATCH_ROWS
/** Stands in for the file id during an early read: not hex, so never equal to a file's id. */
const STAND_IN_ID = '~'.repeat(FILE_ID_CHARS)

/** Ledger lookups batched per round trip (files hashed ahead by FileIdentities). */
const LOOKUP_AHEAD = 1000
/**
 * The ledger's ids are read at the start of a run of at least this many files (fewer are
 * looked up in one or two round trips), unless there are more than this many per file of the
 * run (reading them would cost more than the lookups) or than LEDGER_SNAPSHOT_IDS in all
 * (~70 bytes each in memory): then every file is looked up.
 */
const LEDGER_SNAPSHOT_MIN_FILES = 16
const LEDGER_SNAPSHOT_IDS_PER_FILE = 64
const LEDGER_SNAPSHOT_IDS = 500_000
/** A lookup of a file the ledger holds waits for the identities of up to this many files after it. */
const LOOKUP_BATCH_FILES = 64

export interface FileOutcome {
  file: CaptureFile
  fileId: string
  /** The hash of the file's bytes, where it differs from fileId (a gzip capture: pipeline/identity.ts). */
  rawId?: string
  status: 'ingested' | 'skipped' | 'failed'
  records: number
  kept: number
  error?: TeitenError
  /** Records not kept, by decoder reason (only reasons that occurred; files read in this run). */
  dropped?: Partial<Record<DropReason, number>>
}

/** Why a record was not kept: every decoder status but OK. */
export type DropReason = Exclude<(typeof DECODE_STATUS_NAMES)[number], 'ok'>

export interface IngestSummary {
  files: number
  filesIngested: number
  filesSkipped: number
  filesFailed: number
  records: number
  kept: number
  byClass: Record<NtpClass, number>
  countries: number
  firstTs: string | null
  lastTs: string | null
  outcomes: FileOutcome[]
}

/** Fills classification, country and bogon flag for one packet (enrich/). */
export interface Enricher {
  enrich(packet: UdpPacket, out: Enrichment): void
  /** Cumulative GeoIP address-cache counts, for the hit-rate metric (GeoIp.cacheStats()). */
  cacheStats?(): { hits: number; misses: number }
}

export interface IngestOptions {
  sink: EventSink
  enricher: Enricher
  logger: Logger
  /** Called as bytes of the current file are consumed, for progress bars. */
  onProgress?: (file: CaptureFile, fileBytes: number) => void
  onFileDone?: (outcome: FileOutcome) => void
  /** Stops at the next chunk boundary: the file in hand gets neither its partial batch nor a ledger entry. */
  signal?: AbortSignal
  /** Counters (packets, drop reasons, files, cache hits) are added per chunk, never per packet. */
  metrics?: Metrics
  /** Identities of `files` (in that order) already being computed; closed by ingestFiles. */
  identities?: FileIdentities
  /**
   * Every file has been read: what is left is storing the last batches (a few seconds of the
   * engine's work). The CLI starts the rollup refresh then, beside them.
   */
  onAllRead?: () => void
  /** When a file is read before its id is known, and how many batches it holds meanwhile (EARLY_READ_MIN_BYTES, EARLY_ROWS). */
  earlyRead?: { minBytes: number; batches: number }
}

function isoFromTs(sec: number, nanos: number): string {
  const base = new Date(sec * 1000).toISOString().slice(0, 19)
  return `${base}.${String(nanos).padStart(9, '0')}`
}

/** What reading one file produced. */
interface FileStats {
  records: number
  kept: number
  classCounts: Float64Array
  statusCounts: Float64Array
  minSec: number
  minNs: number
  maxSec: number
  maxNs: number
}

/** A file read in this run, waiting for its rows to be stored before its ledger row is written. */
interface Finished {
  file: CaptureFile
  fileId: string
  /** Resolves once the file's rows are stored; undefined: nothing to store or record. */
  stored?: Promise<void>
  record?: FileRecord
  outcome: FileOutcome
  stats?: FileStats
  /** Ledger row only: a member of a recovered group that is not one of the run's files. */
  silent?: boolean
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function deferred(): Deferred {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/** Small files whose rows share the encoder's buffer until they are sent as one insert. */
interface OpenGroup {
  members: FileRecord[]
  rows: number
  stored: Deferred
}

/**
 * Reads every file, enriches its UDP/123 packets and sends them to the sink.
 *
 * Files are read one after the other; storage runs behind: while a file's last inserts are
 * stored, the next file is read (at most MAX_IN_FLIGHT inserts outstanding). A file's ledger
 * row is written once its rows are stored, outcomes are reported in file order.
 *
 * With a sink that can (StoreSink), files that end within their first batch are stored
 * together, up to GROUP_ROWS rows or GROUP_FILES files per insert (EventGroup): one insert per
 * small file cost ~50 ms of engine CPU whatever its size (4 parts written, then merged), which
 * made a spool of hourly files take 10x longer than the same packets in one file.
 */
export async function ingestFiles(files: CaptureFile[], options: IngestOptions): Promise<IngestSummary> {
  const { sink, enricher, logger } = options
  const batchRows = await sink.batchRows()
  const earlyRead = options.earlyRead ?? {
    minBytes: EARLY_READ_MIN_BYTES,
    batches: Math.max(1, Math.round(EARLY_ROWS / batchRows)),
  }
  const byClass = Object.fromEntries(NTP_CLASSES.map((c) => [c, 0])) as Record<NtpClass, number>
  const countries = new Set<string>()
  /**
   * The read (readSeq) that last met each two-ASCII-letter country (ISO alpha-2 and '--', keyed
   * c0 << 7 | c1): a file's new countries are found without hashing its strings. A darknet's
   * sources change country almost every packet: over 17M draws among 20 countries (a loop that
   * alone takes 0.05 s) a Set<string>.add per change took 0.18-0.39 s, this 0.13-0.23 s
   * (micro-benchmark, six runs on a busy host): ~0.1 s of the main thread per 20M packets.
   */
  const countryMetIn = new Uint32Array(1 << 14)
  let readSeq = 0
  const summary: IngestSummary = {
    files: files.length,
    filesIngested: 0,
    filesSkipped: 0,
    filesFailed: 0,
    records: 0,
    kept: 0,
    byClass,
    countries: 0,
    firstTs: null,
    lastTs: null,
    outcomes: [],
  }
  let minSec = Number.POSITIVE_INFINITY
  let minNs = 0
  let maxSec = Number.NEGATIVE_INFINITY
  let maxNs = 0

  const packet = createUdpPacket()
  const enrichment: Enrichment = {
    classId: 0,
    ntpVersion: 0,
    ntpMode: 0,
    ntpCode: 0,
    ntpImpl: 0,
    country: '--',
    bogon: false,
  }
  // A sink that inserts into ClickHouse itself gets Native blocks, encoded as columns from the
  // start (store/native-encoder.ts: the store no longer rewrites RowBinary rows); Kafka gets the
  // RowBinary rows its messages carry. `bytes` marks a position for rollback/takeSplit in either.
  const format: BodyFormat = sink.acceptsNative ? 'Native' : 'RowBinary'
  const encoder: EventRowEncoder | EventColumnEncoder =
    format === 'Native' ? new EventColumnEncoder(batchRows) : new EventRowEncoder(batchRows * 128)
  const metrics = options.metrics
  // Counted per file (statusCounts) and handed to the metrics per chunk (unreported).
  const unreported = new Float64Array(DECODE_STATUS_NAMES.length)
  let cacheSeen = enricher.cacheStats?.() ?? { hits: 0, misses: 0 }
  // Every reason is a series from the start, so a new kind of drop shows as a rate, not a new series.
  for (const reason of DECODE_STATUS_NAMES.slice(1)) metrics?.packetsDropped.inc({ reason }, 0)
  const reportMetrics = () => {
    if (!metrics) return
    let read = 0
    for (let i = 0; i < unreported.length; i++) {
      const n = unreported[i]!
      if (n === 0) continue
      read += n
      if (i === DecodeStatus.OK) metrics.packetsKept.inc(n)
      else metrics.packetsDropped.inc({ reason: DECODE_STATUS_NAMES[i]! }, n)
      unreported[i] = 0
    }
    if (read > 0) metrics.packetsRead.inc(read)
    const cache = enricher.cacheStats?.()
    if (cache) {
      if (cache.hits > cacheSeen.hits) metrics.geoipCacheLookups.inc({ result: 'hit' }, cache.hits - cacheSeen.hits)
      if (cache.misses > cacheSeen.misses)
        metrics.geoipCacheLookups.inc({ result: 'miss' }, cache.misses - cacheSeen.misses)
      cacheSeen = cache
    }
  }
  const countFile = (outcome: FileOutcome) => {
    metrics?.files.inc({ outcome: outcome.status })
    if (outcome.status === 'ingested' || (outcome.status === 'failed' && outcome.fileId !== '')) {
      metrics?.captureBytes.inc(outcome.file.size)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Storage: inserts in flight, then ledger rows and outcomes in file order.

  const grouping = sink.writeGroup !== undefined && sink.groupMembers !== undefined
  const inFlight: Promise<void>[] = []
  /**
   * An early read's batches, sent at once when its id is known: outside MAX_IN_FLIGHT, or the
   * reader would wait for the engine to store most of them (the store stages each body to a file
   * at once, so they do not stay in memory).
   */
  const unbounded: Promise<void>[] = []
  const allWrites = () => [...inFlight, ...unbounded.splice(0)]
  let sinkError: unknown
  const track = (p: Promise<void>, bounded = true): Promise<void> => {
    const settled = p.catch((err) => {
      sinkError ??= err
      throw err
    })
    settled.catch(() => {})
    ;(bounded ? inFlight : unbounded).push(settled.catch(() => {}))
    return settled
  }
  const drain = async () => {
    reportMetrics()
    while (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift()
    if (sinkError) throw sinkError
  }

  const finished: Finished[] = []
  let finishing: Promise<void> | undefined
  const report = (f: Finished) => {
    const outcome = f.outcome
    if (f.stats && (outcome.status === 'ingested' || outcome.status === 'failed')) {
      const st = f.stats
      summary.records += st.records
      summary.kept += st.kept
      for (let i = 0; i < NTP_CLASSES.length; i++) byClass[NTP_CLASSES[i]!] += st.classCounts[i]!
      if (st.kept > 0) {
        if (st.minSec < minSec || (st.minSec === minSec && st.minNs < minNs)) {
          minSec = st.minSec
          minNs = st.minNs
        }
        if (st.maxSec > maxSec || (st.maxSec === maxSec && st.maxNs > maxNs)) {
          maxSec = st.maxSec
          maxNs = st.maxNs
        }
      }
      logger.debug(
        {
          file: f.file.path,
          fileId: f.fileId,
          sensor: f.file.sensor,
          records: outcome.records,
          kept: outcome.kept,
          dropped: outcome.dropped,
          status: outcome.status,
        },
        'file read',
      )
    }
    countFile(outcome)
    if (outcome.status === 'ingested') summary.filesIngested++
    else if (outcome.status === 'skipped') summary.filesSkipped++
    else summary.filesFailed++
    summary.outcomes.push(outcome)
    options.onFileDone?.(outcome)
  }
  /** Writes ledger rows and reports outcomes, in file order, as the rows get stored. */
  const finishInOrder = async () => {
    while (finished.length > 0) {
      const head = finished[0]!
      if (head.stored) await head.stored
      if (sinkError) throw sinkError
      // Everything queued behind the head and stored by the same insert gets its ledger row in
      // the same statement.
      let n = 1
      while (n < finished.length && (finished[n]!.stored === undefined || finished[n]!.stored === head.stored)) n++
      const segment = finished.slice(0, n)
      const records = segment.flatMap((f) => (f.record ? [f.record] : []))
      if (records.length === 1) await sink.finishFile(records[0]!)
      else if (records.length > 1) {
        if (sink.finishFiles) await sink.finishFiles(records)
        else for (const r of records) await sink.finishFile(r)
      }
      finished.splice(0, n)
      for (const f of segment) if (!f.silent) report(f)
    }
  }
  const kick = () => {
    if (finishing || finished.length === 0 || sinkError) return
    finishing = finishInOrder().then(
      () => {
        finishing = undefined
        kick()
      },
      (err) => {
        finishing = undefined
        sinkError ??= err
      },
    )
  }
  const finish = (f: Finished) => {
    finished.push(f)
    kick()
  }
  const allFinished = async () => {
    kick()
    while (finishing) await finishing
    if (sinkError) throw sinkError
  }

  /**
   * The encoder writes into a taken body again once every write that reads it is done with it:
   * the sink said so (onBodyRead: the store, once it has its own block) or the write settled.
   */
  interface BodyLoan {
    /** Makes one more write that reads the body; it gets the callback to pass as onBodyRead. */
    write(send: (onBodyRead: () => void) => Promise<void>): Promise<void>
    /** Every write that reads the body has been made. */
    close(): void
  }
  const lend = (body: Buffer): BodyLoan => {
    let readers = 1 // the lender's own, until close()
    const done = () => {
      if (--readers === 0) encoder.recycle(body)
    }
    return {
      write(send) {
        readers++
        let called = false
        const release = () => {
          if (called) return
          called = true
          done()
        }
        const written = send(release)
        written.then(release, release)
        return written
      },
      close: done,
    }
  }

  let group: OpenGroup | undefined
  /**
   * Sends the open group: rows [0, bytes) of `body` (the caller recycles it), or the encoder's
   * rows when body is not given. Returns the write, if there is one.
   */
  const flushGroup = (body?: Buffer, loan?: BodyLoan): Promise<void> | undefined => {
    const g = group
    if (!g) return undefined
    group = undefined
    const rowsBody = body ?? encoder.take()
    const groupLoan = loan ?? lend(rowsBody)
    let written: Promise<void> | undefined
    if (g.rows === 0) g.stored.resolve()
    else {
      // A lone small file goes the same way (pending row, group token), not under its own batch
      // token: the same file sent alone under teiten:<id>:0 before a crash and with others
      // under a group token after it was counted twice (test/ops/crash.test.ts, seed 20240101).
      const token = groupToken(g.members.map((m) => m.fileId))
      written = groupLoan.write((onBodyRead) =>
        track(sink.writeGroup!({ token, members: g.members, rows: g.rows, body: rowsBody, format, onBodyRead })),
      )
      written.then(g.stored.resolve, g.stored.reject)
    }
    if (!loan) groupLoan.close()
    return written
  }

  // ---------------------------------------------------------------------------------------------
  // Reading one file into the encoder.

  interface ReadResult {
    stats: FileStats
    /** Batches of this file sent on their own (it did not end within its first batch). */
    batches: Promise<void>[]
    captureError?: TeitenError
    /** The read stopped without a verdict on the content (abort, or the disk failed). */
    interrupted?: unknown
    /** Where the file's rows start in the encoder while they wait for a group insert. */
    groupStart?: { offset: number; rows: number }
    /** An early read whose file was not plainly new, or that was interrupted before its id was known: nothing of it was sent or counted. */
    abandoned?: boolean
  }

  /** A batch of an early read, waiting for the file's id. */
  interface HeldBatch {
    body: Buffer
    rows: number
    batchNo: number
    /** Where the stand-in id's bytes are in body. */
    idAt: number
    sent: Deferred
  }

  /**
   * `tokenId` names the file's rows and batch tokens: its fileId, except for a .gz that a version
   * before 0.3 stored in part under its raw-bytes id (legacyPartial). `content`: the bytes its
   * identity was computed from, when the hashing worker handed them over (parsed instead of the file).
   * `early`: the file is read before its id is known (EARLY_READ_MIN_BYTES; fileId and tokenId are
   * STAND_IN_ID); it resolves with the id once the file is known to be plainly new, undefined if not.
   */
  const readInto = async (
    file: CaptureFile,
    fileId: string,
    canGroup: boolean,
    tokenId: string = fileId,
    content?: CaptureContent,
    early?: Promise<string | undefined>,
  ): Promise<ReadResult> => {
    // Every batch of an early read waits for the file's id: rows of other files (an open group)
    // go first, so that its blocks hold its rows alone.
    if (early && encoder.rows > 0) flushGroup()
    encoder.setFile(file.sensor, tokenId)
    const stats: FileStats = {
      records: 0,
      kept: 0,
      classCounts: new Float64Array(NTP_CLASSES.length),
      statusCounts: new Float64Array(DECODE_STATUS_NAMES.length),
      minSec: Number.POSITIVE_INFINITY,
      minNs: 0,
      maxSec: Number.NEGATIVE_INFINITY,
      maxNs: 0,
    }
    const classCounts = stats.classCounts
    const statusCounts = stats.statusCounts
    // Where this file's rows start in the encoder (after an open group's rows).
    let startOffset = encoder.bytes
    let startRows = encoder.rows
    if (!canGroup && startRows > 0) flushGroup()
    if (!canGroup) {
      startOffset = 0
      startRows = 0
    }
    let batchNo = 0
    const batches: Promise<void>[] = []
    let records = 0
    let kept = 0
    let fileMinSec = Number.POSITIVE_INFINITY
    let fileMinNs = 0
    let fileMaxSec = Number.NEGATIVE_INFINITY
    let fileMaxNs = 0
    let lastCountry = ''
    /** Countries of this file's rows: the run's once the file counts (not an abandoned early read). */
    const fileCountries = new Set<string>()
    /** The same for two-letter codes (countryMetIn), as c0 << 7 | c1. */
    const fileCountryCodes: number[] = []
    const seq = ++readSeq
    /** statusCounts already added to `unreported`: a file's packets reach the metrics once it counts. */
    const reported = new Float64Array(DECODE_STATUS_NAMES.length)
    const reportRead = () => {
      for (let i = 0; i < reported.length; i++) {
        unreported[i]! += statusCounts[i]! - reported[i]!
        reported[i] = statusCounts[i]!
      }
    }
    // A field, not a variable: the decision changes it between chunks, where type narrowing cannot see.
    const state: { gate: 'open' | 'closed' | 'abandoned' } = { gate: early ? 'closed' : 'open' }
    const held: HeldBatch[] = []
    /** Writes one of the file's own batches (under tokenId as it is then). */
    const writeOwn = (loan: BodyLoan, no: number, rows: number, body: Buffer, bounded = true) =>
      loan.write((onBodyRead) =>
        track(
          sink.writeBatch({ fileId: tokenId, sensor: file.sensor, batchNo: no, rows, body, format, onBodyRead }),
          bounded,
        ),
      )
    const sendHeld = (h: HeldBatch) => {
      const loan = lend(h.body)
      writeOwn(loan, h.batchNo, h.rows, h.body, false).then(h.sent.resolve, h.sent.reject)
      loan.close()
    }
    const abandon = () => {
      state.gate = 'abandoned'
      for (const h of held.splice(0)) encoder.recycle(h.body)
    }
    /** Settles when an early read's gate opens (its batches sent) or it is abandoned. */
    const decided = early?.then(
      (id) => {
        if (state.gate !== 'closed') return
        if (id === undefined || id.length !== STAND_IN_ID.length) return abandon()
        state.gate = 'open'
        tokenId = id
        ;(encoder as EventColumnEncoder).renameFile(STAND_IN_ID, id)
        for (const h of held) h.body.write(id, h.idAt, 'latin1')
        for (const h of held.splice(0)) sendHeld(h)
      },
      () => {
        if (state.gate === 'closed') abandon()
      },
    )
    const flushBatch = () => {
      const rows = encoder.rows - startRows
      if (rows === 0) return
      if (state.gate === 'closed') {
        // startRows is 0: an early read starts with the encoder empty.
        const { body, fileIdAt } = (encoder as EventColumnEncoder).takeLocatingFileId()
        if (fileIdAt < 0) throw new Error('pipeline/ingest.ts: an early batch without its stand-in id')
        const sent = deferred()
        held.push({ body, rows, batchNo: batchNo++, idAt: fileIdAt, sent })
        batches.push(sent.promise)
        return
      }
      // The file outgrew a group: the rows before it go as the group, its own as batch 0.
      const { body, at } = encoder.takeSplit(startRows, startOffset)
      const loan = lend(body)
      if (startRows > 0) flushGroup(body.subarray(0, at), loan)
      const own = at > 0 ? body.subarray(at) : body
      startOffset = 0
      startRows = 0
      batches.push(writeOwn(loan, batchNo++, rows, own))
      loan.close()
    }
    const result: ReadResult = { stats, batches }
    try {
      await readCapture(
        file.path,
        (frame) => {
          records++
          const status = decodeFrameStatus(frame, packet)
          statusCounts[status]++
          if (status !== DecodeStatus.OK) return
          enricher.enrich(packet, enrichment)
          kept++
          classCounts[enrichment.classId]++
          if (enrichment.country !== lastCountry) {
            const c = enrichment.country
            lastCountry = c
            const c0 = c.charCodeAt(0)
            const c1 = c.charCodeAt(1)
            if (c.length === 2 && c0 < 0x80 && c1 < 0x80) {
              const code = (c0 << 7) | c1
              if (countryMetIn[code] !== seq) {
                countryMetIn[code] = seq
                fileCountryCodes.push(code)
              }
            } else fileCountries.add(c)
          }
          const s = packet.tsSec
          const n = packet.tsNanos
          if (s < fileMinSec || (s === fileMinSec && n < fileMinNs)) {
            fileMinSec = s
            fileMinNs = n
          }
          if (s > fileMaxSec || (s === fileMaxSec && n > fileMaxNs)) {
            fileMaxSec = s
            fileMaxNs = n
          }
          encoder.add(packet, enrichment, records - 1)
          if (encoder.rows - startRows >= batchRows) flushBatch()
        },
        {
          afterChunk: async () => {
            if (state.gate === 'closed' && held.length >= earlyRead.batches) await decided
            if (state.gate === 'abandoned') throw new EarlyReadAbandoned()
            if (state.gate === 'open') reportRead()
            await drain()
          },
          content,
          onProgress: options.onProgress ? (bytes: number) => options.onProgress?.(file, bytes) : undefined,
          signal: options.signal,
        },
      )
    } catch (err) {
      if (sinkError) throw sinkError
      if (err instanceof EarlyReadAbandoned) {
        encoder.rollback(0, 0)
        return abandoned(stats)
      }
      const readFailed = isTeitenError(err, 'CAPTURE_READ_FAILED')
      if (options.signal?.aborted || readFailed) {
        // Interrupted, or the disk failed us: nothing about the content is known. The rows not
        // yet sent are dropped (a batch's token names the full batch when the file is read
        // again) and the ledger must not claim the file.
        encoder.rollback(startOffset, startRows)
        result.interrupted = err
      } else {
        const captureError = isTeitenError(err) ? err : wrapError(err, 'CAPTURE_BAD_RECORD', { file: file.path })
        if (captureError.context.file === undefined) captureError.context.file = file.path
        result.captureError = captureError
      }
    }
    if (early) {
      // Interrupted before its id was known: nothing is sent; the run reads the file again (a
      // failed disk read fails it the usual way) or stops (aborted).
      if (result.interrupted !== undefined && state.gate === 'closed') abandon()
      else await decided
      if (state.gate === 'abandoned') {
        encoder.rollback(0, 0)
        return abandoned(stats)
      }
    }
    reportRead()
    for (const c of fileCountries) countries.add(c)
    for (const code of fileCountryCodes) countries.add(String.fromCharCode(code >> 7, code & 0x7f))
    stats.records = records
    stats.kept = kept
    stats.minSec = fileMinSec
    stats.minNs = fileMinNs
    stats.maxSec = fileMaxSec
    stats.maxNs = fileMaxNs
    if (result.interrupted === undefined && (!canGroup || batchNo > 0)) {
      // Every complete record before a fault is kept; a file with batches of its own ends with one.
      flushBatch()
    } else if (batchNo === 0) {
      result.groupStart = { offset: startOffset, rows: startRows }
    }
    return result
  }

  const abandoned = (stats: FileStats): ReadResult => ({ stats, batches: [], abandoned: true })

  const recordOf = (file: CaptureFile, fileId: string, r: ReadResult, rawId?: string): FileRecord => ({
    fileId,
    ...(rawId !== undefined && rawId !== fileId ? { rawId } : {}),
    sensor: file.sensor,
    path: file.path,
    bytes: file.size,
    records: r.stats.records,
    kept: r.stats.kept,
    firstTs: r.stats.kept > 0 ? isoFromTs(r.stats.minSec, r.stats.minNs) : null,
    lastTs: r.stats.kept > 0 ? isoFromTs(r.stats.maxSec, r.stats.maxNs) : null,
    status: r.captureError ? 'failed' : 'complete',
    error: r.captureError ? r.captureError.toLine() : '',
  })

  /** Queues a file that was read completely (or up to a fault) for its ledger row and outcome. */
  const readDone = (file: CaptureFile, ids: FileIds, r: ReadResult, asGroupMember: boolean) => {
    const fileId = ids.id
    const record = recordOf(file, fileId, r, ids.rawId)
    let stored: Promise<void>
    if (asGroupMember && r.batches.length === 0) {
      group ??= { members: [], rows: 0, stored: deferred() }
      group.members.push(record)
      group.rows = encoder.rows
      stored = group.stored.promise
    } else {
      stored = Promise.all(r.batches).then(() => {})
      stored.catch(() => {})
    }
    finish({ file, fileId, stored, record, outcome: readOutcome(file, ids, r), stats: r.stats })
    if (group && (group.rows >= GROUP_ROWS || group.members.length >= GROUP_FILES)) flushGroup()
    return record
  }

  // ---------------------------------------------------------------------------------------------
  // Identities and ledger lookups, ahead of the reader.

  const identities =
    options.identities ??
    new FileIdentities(
      files.map((f) => f.path),
      IDENTITY_LOOKAHEAD,
    )
  // The sink's ledger names files in one scheme: hashing started before the sink was open
  // (FileIdentities.startEarly) in another is begun again.
  const scheme = await sink.identityScheme()
  identities.useScheme(scheme)
  const looked = new Map<string, LedgerEntry | null>()
  /** Raw-bytes ids a version before 0.3 stored in part (sink.legacyPartial), among those looked up. */
  const legacy = new Set<string>()
  const lookupIds = async (ask: Set<string>, rawIds: Set<string>) => {
    if (sink.lookupFiles) {
      const found = await sink.lookupFiles([...ask])
      for (const id of ask) looked.set(id, found.get(id) ?? null)
    } else {
      for (const id of ask) looked.set(id, (await sink.lookupFile(id)) ?? null)
    }
    if (sink.legacyPartial && rawIds.size > 0) for (const id of await sink.legacyPartial([...rawIds])) legacy.add(id)
  }
  /**
   * Every id the ledger held when the run began (sink.ledgerIds), when it has few enough: a
   * file under none of them is new without a lookup. A lookup waits for the inserts in flight
   * (166 ms on average for the 7,704-file bench spool, 23 of them: 3.9 s the reader waited),
   * and a lookup per hundred files cost the engine more than that. Files this run reads are in
   * `seen`. Like the lookups batched ahead before it, the snapshot does not see a file that
   * another process stores meanwhile: two runs over the same new files at once are not
   * supported (a watch and a one-shot ingest of one spool; see docs/operations.md).
   */
  const recorded =
    sink.ledgerIds && files.length >= LEDGER_SNAPSHOT_MIN_FILES
      ? await sink.ledgerIds(Math.min(LEDGER_SNAPSHOT_IDS, files.length * LEDGER_SNAPSHOT_IDS_PER_FILE))
      : undefined
  const unrecorded = (x: FileIds) => recorded !== undefined && !recorded.has(x.id) && !recorded.has(x.rawId)
  /** The ids of `list` the ledger may hold and that were not looked up yet, with their raw-bytes ids. */
  const toAsk = (list: Iterable<FileIds>, ask = new Set<string>(), rawIds = new Set<string>()) => {
    for (const x of list) {
      if (looked.has(x.id) || unrecorded(x)) continue
      ask.add(x.id)
      if (x.rawId !== x.id) {
        ask.add(x.rawId)
        rawIds.add(x.rawId)
      }
    }
    return { ask, rawIds }
  }
  /**
   * The ledger entry of a file: under its content id, else under its raw-bytes id (a .gz that a
   * version before 0.3 recorded; `legacy` says so).
   */
  const lookup = async (i: number, ids: FileIds): Promise<{ entry?: LedgerEntry; legacy: boolean }> => {
    if (unrecorded(ids)) return { legacy: false }
    if (!looked.has(ids.id)) {
      // A file the ledger holds: more may follow (a spool run again). The reader would wait for
      // their identities anyway: one lookup for all of them saves a round trip each. Up to the
      // first new file, which is read meanwhile.
      if (recorded !== undefined) {
        const end = Math.min(files.length, i + 1 + LOOKUP_BATCH_FILES)
        for (let k = i + 1; k < end; k++) {
          const next = await identities.peek(k)
          if (next !== undefined && unrecorded(next)) break
        }
      }
      const { ask, rawIds } = toAsk([ids])
      if (sink.lookupFiles) toAsk((await identities.known(i + 1, i + LOOKUP_AHEAD)).values(), ask, rawIds)
      await lookupIds(ask, rawIds)
    }
    const entry = looked.get(ids.id)
    if (entry) return { entry, legacy: false }
    if (ids.rawId !== ids.id) {
      const old = looked.get(ids.rawId)
      if (old) return { entry: old, legacy: true }
    }
    return { legacy: false }
  }
  /** Files read in this run, by identity: a second copy in the same run is a skip, as it was when ledger rows were written one by one. */
  const seen = new Map<string, FileRecord>()
  const recoveredGroups = new Set<string>()
  /** Interrupted groups that cannot be stored again in this run: their members fail, none is read as new. */
  const unrecoverable = new Map<string, TeitenError>()

  /**
   * Stores an interrupted group again under its token (ClickHouse drops it if the first insert
   * got through) and completes its members' ledger rows. Returns the file's read, or an error
   * when a member is gone: without every member the insert cannot be repeated exactly.
   */
  const recoverGroup = async (
    token: string,
    runFile: CaptureFile,
    runIds: FileIds,
  ): Promise<{ r: ReadResult; record: FileRecord; stored: Promise<void> } | TeitenError> => {
    recoveredGroups.add(token)
    const members = (await sink.groupMembers!([token])).get(token) ?? []
    const located: { member: GroupMember; file: CaptureFile; contentId: string }[] = []
    // A member's recorded id is its content id, or (recorded by a version before 0.3) the raw-bytes
    // id of a .gz: either matches, and the group is stored again under the ids it was recorded with.
    const matches = (ids: FileIds, id: string) => ids.id === id || ids.rawId === id
    let runFileId = runIds.id
    for (const m of members) {
      let file: CaptureFile | undefined
      let contentId = m.fileId
      if (matches(runIds, m.fileId)) {
        file = runFile
        runFileId = m.fileId
        contentId = runIds.id
      } else {
        try {
          const ids = await fileIdentity(m.path, undefined, scheme)
          if (matches(ids, m.fileId)) {
            file = { path: m.path, size: m.bytes, sensor: m.sensor }
            contentId = ids.id
          }
        } catch {}
      }
      if (!file) {
        return new TeitenError(
          'CAPTURE_READ_FAILED',
          `this file was stored together with ${m.path} by an insert that was interrupted, and ${m.path} is gone or changed: put it back and run again to complete both`,
          { file: runFile.path },
        )
      }
      located.push({ member: m, file, contentId })
    }
    flushGroup()
    logger.info({ files: located.length, token }, 'completing an interrupted group insert')
    const reads: { file: CaptureFile; fileId: string; contentId: string; r: ReadResult }[] = []
    for (const { member, file, contentId } of located) {
      const r = await readInto(file, member.fileId, true)
      if (r.interrupted !== undefined) {
        // Aborted, or a member became unreadable: the group stays pending for the next run.
        encoder.rollback(0, 0)
        return isTeitenError(r.interrupted)
          ? r.interrupted
          : new TeitenError('CAPTURE_READ_FAILED', 'interrupted', { file: file.path })
      }
      reads.push({ file, fileId: member.fileId, contentId, r })
    }
    const records = reads.map(({ file, fileId, r }) => recordOf(file, fileId, r))
    const rows = encoder.rows
    const recovered = encoder.take()
    const loan = lend(recovered)
    const stored = loan.write((onBodyRead) =>
      track(sink.writeGroup!({ token, members: records, rows, body: recovered, format, recovery: true, onBodyRead })),
    )
    loan.close()
    let mine: { r: ReadResult; record: FileRecord; stored: Promise<void> } | undefined
    for (let k = 0; k < reads.length; k++) {
      const { file, fileId, contentId, r } = reads[k]!
      seen.set(fileId, records[k]!)
      if (contentId !== fileId) {
        // A .gz recorded by a version before 0.3: recorded under its content id too, as a skip
        // does (so that its uncompressed twin is skipped).
        const alias: FileRecord = { ...records[k]!, fileId: contentId, rawId: fileId }
        seen.set(contentId, alias)
        finish({
          file,
          fileId: contentId,
          stored,
          record: alias,
          outcome: skippedOutcome(file, contentId, alias),
          silent: true,
        })
      }
      if (fileId === runFileId) mine = { r, record: records[k]!, stored }
      // The other members get their ledger rows with it; a copy met later in this run is a skip.
      else
        finish({
          file,
          fileId,
          stored,
          record: records[k]!,
          outcome: skippedOutcome(file, fileId, records[k]!),
          silent: true,
        })
    }
    return mine!
  }

  // ---------------------------------------------------------------------------------------------
  // The run.

  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!
      if (options.signal?.aborted) break
      const readEarly = format === 'Native' && file.size >= earlyRead.minBytes && identities.hashing(i)
      const idsOf = identities.get(i)
      /** What the run and the ledger know of the file, as soon as its id is (an early read waits for it). */
      const known = idsOf.then(async (ids): Promise<{ entry?: LedgerEntry; legacy: boolean }> => {
        const before = seen.get(ids.id)
        return before ? { entry: before, legacy: false } : await lookup(i, ids)
      })
      known.catch(() => {})
      let early: ReadResult | undefined
      if (readEarly) {
        const plainlyNew = Promise.all([idsOf, known]).then(([ids, { entry }]) =>
          entry === undefined && !(ids.rawId !== ids.id && legacy.has(ids.rawId)) ? ids.id : undefined,
        )
        plainlyNew.catch(() => {})
        const r = await readInto(file, STAND_IN_ID, grouping, STAND_IN_ID, undefined, plainlyNew)
        logger.debug(
          { file: file.path, batches: r.batches.length, kept: !r.abandoned },
          'read while its id was computed',
        )
        if (!r.abandoned) early = r
        else if (options.signal?.aborted) break
      }
      let ids: FileIds
      try {
        ids = await idsOf
      } catch (err) {
        const error = wrapError(err, 'CAPTURE_READ_FAILED', { file: file.path })
        finish({ file, fileId: '', outcome: { file, fileId: '', status: 'failed', records: 0, kept: 0, error } })
        continue
      }

      const fileId = ids.id
      const { entry: previous, legacy: legacyRow } = await known
      if (early && previous) throw new Error('pipeline/ingest.ts: a file read early was stored before')
      if (previous?.status === 'pending') {
        const refused = unrecoverable.get(previous.group)
        if (refused) {
          const error = new TeitenError(refused.code, refused.message, { ...refused.context, file: file.path })
          finish({ file, fileId, outcome: { file, fileId, status: 'failed', records: 0, kept: 0, error } })
          continue
        }
        if (grouping && !recoveredGroups.has(previous.group)) {
          const done = await recoverGroup(previous.group, file, ids)
          if (done instanceof TeitenError) {
            unrecoverable.set(previous.group, done)
            finish({ file, fileId, outcome: { file, fileId, status: 'failed', records: 0, kept: 0, error: done } })
          } else {
            const { r, record, stored } = done
            finish({ file, fileId, stored, record, stats: r.stats, outcome: readOutcome(file, ids, r) })
          }
          continue
        }
        // Never read as new: its rows may be stored under the group's token already.
        const error = new TeitenError(
          'CAPTURE_BAD_RECORD',
          'stored together with other files by an insert that was interrupted: run teiten ingest on it to complete the insert',
          { file: file.path },
        )
        finish({ file, fileId, outcome: { file, fileId, status: 'failed', records: 0, kept: 0, error } })
        continue
      }
      if (previous) {
        const error =
          previous.status === 'failed'
            ? new TeitenError('CAPTURE_BAD_RECORD', `${previous.error} (recorded when this content was first read)`, {
                file: file.path,
              })
            : undefined
        const outcome: FileOutcome = error
          ? { file, fileId, status: 'failed', records: previous.records, kept: previous.kept, error }
          : skippedOutcome(file, fileId, previous)
        if (ids.rawId !== fileId) outcome.rawId = ids.rawId
        logger.debug({ file: file.path, fileId, as: previous.path }, 'already ingested: skipped')
        if (legacyRow) {
          // Recorded by a version before 0.3 under its raw-bytes id: recorded again under its content
          // id, so that the uncompressed twin of this capture, met later, is skipped too.
          const { status, error: prevError, ...rest } = previous
          const record: FileRecord = {
            ...rest,
            fileId,
            rawId: ids.rawId,
            status: status === 'failed' ? 'failed' : 'complete',
            error: prevError,
          }
          seen.set(fileId, record)
          finish({ file, fileId, record, outcome })
        } else finish({ file, fileId, outcome })
        continue
      }

      // A .gz a version before 0.3 stored in part: its rows go again under the same batch tokens.
      const tokenId = ids.rawId !== fileId && legacy.has(ids.rawId) ? ids.rawId : fileId
      if (tokenId !== fileId)
        logger.info({ file: file.path, fileId, rawId: ids.rawId }, 'completing a file an older version stored in part')
      const content = identities.content(i)
      let r: ReadResult
      try {
        r = early ?? (await readInto(file, fileId, grouping && tokenId === fileId, tokenId, content))
      } finally {
        identities.release(content)
      }
      reportMetrics()
      if (r.interrupted !== undefined) {
        if (!isTeitenError(r.interrupted, 'CAPTURE_READ_FAILED')) break // aborted: the file in hand is read again next time
        const error = r.interrupted as TeitenError
        if (error.context.file === undefined) error.context.file = file.path
        // The batches it already sent stay (their tokens absorb a re-read); no ledger row.
        const stored = Promise.all(r.batches).then(() => {})
        stored.catch(() => {})
        finish({
          file,
          fileId,
          stored,
          outcome: { file, fileId, status: 'failed', records: r.stats.records, kept: r.stats.kept, error },
        })
        continue
      }
      if (options.signal?.aborted && !r.captureError) {
        // Interrupted after the last record: the ledger must not claim completion, and rows
        // still waiting for a group insert must not go without their ledger row.
        if (r.batches.length === 0 && r.groupStart) encoder.rollback(r.groupStart.offset, r.groupStart.rows)
        break
      }
      seen.set(fileId, readDone(file, ids, r, grouping && tokenId === fileId))
    }
    // Whatever was read completely is stored and recorded, also when the run was interrupted.
    flushGroup()
    options.onAllRead?.()
    await Promise.allSettled(allWrites())
    reportMetrics()
    if (sinkError) throw sinkError
    await allFinished()
    if (sinkError) throw sinkError
  } catch (err) {
    // Storage failed: what was stored is deduplicated on the next run; no more ledger rows.
    group?.stored.reject(err)
    await Promise.allSettled(allWrites())
    while (finishing) await finishing
    throw sinkError ?? err
  } finally {
    identities.close()
  }

  summary.countries = countries.size
  if (Number.isFinite(minSec)) {
    summary.firstTs = isoFromTs(minSec, minNs)
    summary.lastTs = isoFromTs(maxSec, maxNs)
  }
  return summary
}

/** Stops an early read whose file turned out not to be plainly new (readInto). */
class EarlyReadAbandoned extends Error {}

function readOutcome(
  file: CaptureFile,
  ids: FileIds,
  r: { stats: FileStats; captureError?: TeitenError },
): FileOutcome {
  return {
    file,
    fileId: ids.id,
    ...(ids.rawId !== ids.id ? { rawId: ids.rawId } : {}),
    status: r.captureError ? 'failed' : 'ingested',
    records: r.stats.records,
    kept: r.stats.kept,
    error: r.captureError,
    dropped: droppedOf(r.stats.statusCounts),
  }
}

function skippedOutcome(file: CaptureFile, fileId: string, previous: { records: number; kept: number }): FileOutcome {
  return { file, fileId, status: 'skipped', records: previous.records, kept: previous.kept }
}

function droppedOf(counts: Float64Array): Partial<Record<DropReason, number>> {
  const out: Partial<Record<DropReason, number>> = {}
  for (let i = 0; i < counts.length; i++) {
    if (i !== DecodeStatus.OK && counts[i]! > 0) out[DECODE_STATUS_NAMES[i] as DropReason] = counts[i]!
  }
  return out
}

export { CLASS_ID }
