import { CLASS_ID, type Enrichment, NTP_CLASSES, type NtpClass, type UdpPacket } from '../core/event.js'
import { isTeitenError, TeitenError, wrapError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { Metrics } from '../core/metrics.js'
import { readCapture } from '../ingest/capture.js'
import { createUdpPacket, DECODE_STATUS_NAMES, DecodeStatus, decodeFrameStatus } from '../ingest/decode.js'
import { EventRowEncoder } from '../store/rowbinary.js'
import { type CaptureFile, fileIdentity } from './files.js'
import type { EventSink, FileRecord } from './sink.js'

/**
 * Rows per batch. Part of every batch's dedup identity (file id + batch number): changing it
 * would let a file that crashed halfway be counted twice when it is re-read by a newer
 * version, so it is a constant, not a setting.
 */
export const BATCH_ROWS = 65_536
/** Batches handed to the sink but not yet stored: parsing runs ahead of storage by this much. */
const MAX_IN_FLIGHT = 2

export interface FileOutcome {
  file: CaptureFile
  fileId: string
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
}

function isoFromTs(sec: number, nanos: number): string {
  const base = new Date(sec * 1000).toISOString().slice(0, 19)
  return `${base}.${String(nanos).padStart(9, '0')}`
}

/** Reads every file, enriches its UDP/123 packets and sends them to the sink, file by file. */
export async function ingestFiles(files: CaptureFile[], options: IngestOptions): Promise<IngestSummary> {
  const { sink, enricher, logger } = options
  const byClass = Object.fromEntries(NTP_CLASSES.map((c) => [c, 0])) as Record<NtpClass, number>
  const countries = new Set<string>()
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
  const encoder = new EventRowEncoder(BATCH_ROWS * 128)
  const classCounts = new Float64Array(NTP_CLASSES.length)
  const statusCounts = new Float64Array(DECODE_STATUS_NAMES.length)
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

  for (const file of files) {
    if (options.signal?.aborted) break
    let fileId: string
    try {
      fileId = await fileIdentity(file.path)
    } catch (err) {
      const error = wrapError(err, 'CAPTURE_READ_FAILED', { file: file.path })
      const outcome: FileOutcome = { file, fileId: '', status: 'failed', records: 0, kept: 0, error }
      countFile(outcome)
      summary.filesFailed++
      summary.outcomes.push(outcome)
      options.onFileDone?.(outcome)
      continue
    }
    const previous = await sink.lookupFile(fileId)
    if (previous) {
      const error =
        previous.status === 'failed'
          ? new TeitenError('CAPTURE_BAD_RECORD', `${previous.error} (recorded when this content was first read)`, {
              file: file.path,
            })
          : undefined
      const outcome: FileOutcome = {
        file,
        fileId,
        status: error ? 'failed' : 'skipped',
        records: previous.records,
        kept: previous.kept,
        error,
      }
      if (error) summary.filesFailed++
      else summary.filesSkipped++
      summary.outcomes.push(outcome)
      logger.debug({ file: file.path, fileId, as: previous.path }, 'already ingested: skipped')
      countFile(outcome)
      options.onFileDone?.(outcome)
      continue
    }

    encoder.setFile(file.sensor, fileId)
    let records = 0
    let kept = 0
    let batchNo = 0
    let fileMinSec = Number.POSITIVE_INFINITY
    let fileMinNs = 0
    let fileMaxSec = Number.NEGATIVE_INFINITY
    let fileMaxNs = 0
    classCounts.fill(0)
    statusCounts.fill(0)
    const inFlight: Promise<void>[] = []
    let sinkError: unknown
    const flush = () => {
      if (encoder.rows === 0) return
      const batch = { fileId, sensor: file.sensor, batchNo: batchNo++, rows: encoder.rows, body: encoder.take() }
      const p = sink.writeBatch(batch).catch((err) => {
        sinkError ??= err
      })
      inFlight.push(p)
    }
    const drain = async () => {
      reportMetrics()
      while (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift()
      if (sinkError) throw sinkError
    }

    let captureError: TeitenError | undefined
    try {
      await readCapture(
        file.path,
        (frame) => {
          records++
          const status = decodeFrameStatus(frame, packet)
          statusCounts[status]++
          unreported[status]++
          if (status !== DecodeStatus.OK) return
          enricher.enrich(packet, enrichment)
          kept++
          classCounts[enrichment.classId]++
          countries.add(enrichment.country)
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
          if (encoder.rows >= BATCH_ROWS) flush()
        },
        {
          afterChunk: drain,
          onProgress: options.onProgress ? (bytes: number) => options.onProgress?.(file, bytes) : undefined,
          signal: options.signal,
        },
      )
    } catch (err) {
      if (sinkError) {
        // Storage failed: what was stored is deduplicated on the next run; the ledger is not written.
        await Promise.allSettled(inFlight)
        throw sinkError
      }
      const readFailed = isTeitenError(err, 'CAPTURE_READ_FAILED')
      if (options.signal?.aborted || readFailed) {
        // Interrupted, or the disk failed us: nothing about the content is known. The partial
        // batch is not written (its token will name the full batch when the file is read again)
        // and the ledger must not claim the file.
        await Promise.allSettled(inFlight)
        reportMetrics()
        if (sinkError) throw sinkError
        if (!readFailed) break
        const error = err as TeitenError
        if (error.context.file === undefined) error.context.file = file.path
        const outcome: FileOutcome = { file, fileId, status: 'failed', records, kept, error }
        countFile(outcome)
        summary.filesFailed++
        summary.outcomes.push(outcome)
        options.onFileDone?.(outcome)
        continue
      }
      captureError = isTeitenError(err) ? err : wrapError(err, 'CAPTURE_BAD_RECORD', { file: file.path })
      if (captureError.context.file === undefined) captureError.context.file = file.path
    }
    // Every complete record before a fault is kept.
    flush()
    await Promise.all(inFlight)
    reportMetrics()
    if (sinkError) throw sinkError

    const record: FileRecord = {
      fileId,
      sensor: file.sensor,
      path: file.path,
      bytes: file.size,
      records,
      kept,
      firstTs: kept > 0 ? isoFromTs(fileMinSec, fileMinNs) : null,
      lastTs: kept > 0 ? isoFromTs(fileMaxSec, fileMaxNs) : null,
      status: captureError ? 'failed' : 'complete',
      error: captureError ? captureError.toLine() : '',
    }
    if (options.signal?.aborted && !captureError) break // interrupted: the ledger must not claim completion
    await sink.finishFile(record)

    summary.records += records
    summary.kept += kept
    for (let i = 0; i < NTP_CLASSES.length; i++) byClass[NTP_CLASSES[i]!] += classCounts[i]!
    if (kept > 0) {
      if (fileMinSec < minSec || (fileMinSec === minSec && fileMinNs < minNs)) {
        minSec = fileMinSec
        minNs = fileMinNs
      }
      if (fileMaxSec > maxSec || (fileMaxSec === maxSec && fileMaxNs > maxNs)) {
        maxSec = fileMaxSec
        maxNs = fileMaxNs
      }
    }
    const outcome: FileOutcome = {
      file,
      fileId,
      status: captureError ? 'failed' : 'ingested',
      records,
      kept,
      error: captureError,
      dropped: droppedOf(statusCounts),
    }
    logger.debug(
      { file: file.path, fileId, sensor: file.sensor, records, kept, dropped: outcome.dropped, status: outcome.status },
      'file read',
    )
    countFile(outcome)
    if (captureError) summary.filesFailed++
    else summary.filesIngested++
    summary.outcomes.push(outcome)
    options.onFileDone?.(outcome)
  }
  summary.countries = countries.size
  if (Number.isFinite(minSec)) {
    summary.firstTs = isoFromTs(minSec, minNs)
    summary.lastTs = isoFromTs(maxSec, maxNs)
  }
  return summary
}

function droppedOf(counts: Float64Array): Partial<Record<DropReason, number>> {
  const out: Partial<Record<DropReason, number>> = {}
  for (let i = 0; i < counts.length; i++) {
    if (i !== DecodeStatus.OK && counts[i]! > 0) out[DECODE_STATUS_NAMES[i] as DropReason] = counts[i]!
  }
  return out
}

export { CLASS_ID }
