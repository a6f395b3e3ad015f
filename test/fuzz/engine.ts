/**
 * The fuzz loop, run inside a worker thread (worker.mjs loads it with Node's type stripping).
 * For each case: read the mutated bytes with readCaptureBuffer (no disk), decode every frame
 * with decodeFrameStatus, and check:
 * - every failure is a TeitenError naming the file and a plausible byte offset;
 * - delivered frames and decoded packets are self-consistent;
 * - for plain (not gzip'd) inputs, how the bytes are chunked changes nothing (frames and error);
 * - memory stays bounded.
 * The index of the case in hand is kept in shared memory, so the parent names the exact case
 * when it has to kill a worker that stopped making progress.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parentPort, workerData } from 'node:worker_threads'
import type { Frame } from '../../core/event.js'
import { TeitenError } from '../../core/errors.js'
import { readCaptureBuffer } from '../../ingest/capture.js'
import { createUdpPacket, DecodeStatus, decodeFrameStatus } from '../../ingest/decode.js'
import { type FuzzCase, makeCase, type Seed } from './mutate.js'

export interface FuzzJob {
  runSeed: number
  from: number
  to: number
  seeds: { name: string; bytes: Uint8Array; lengths32: number[]; lengths16: number[]; le: boolean }[]
  /** Int32Array over a SharedArrayBuffer: [case in hand, cases done]. */
  progress: SharedArrayBuffer
  /** Buffer memory still held after a full garbage collection (checked every 8192 cases). */
  memoryLimitBytes: number
}

export interface FuzzFailure {
  index: number
  recipe: string
  chunkBytes: number | undefined
  problem: string
  detail: string
  /** The input, base64, when small enough to paste into a regression test. */
  input?: string
}

export interface FuzzReport {
  cases: number
  gzipCases: number
  errors: Record<string, number>
  clean: number
  frames: number
  packets: number
  /** Most buffer memory held after a garbage collection. */
  maxArrayBuffers: number
  failures: FuzzFailure[]
}

interface Outcome {
  frames: number
  /** Rolling hash over (offset, length, status) of every frame. */
  digest: number
  packets: number
  error: unknown
}

const packet = createUdpPacket()

/**
 * Full collections around a turn of the event loop (closed zlib streams give their buffers back
 * only then), so what is measured after it is what is really held, not garbage.
 */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
}

async function read(c: FuzzCase, name: string, chunkBytes: number | undefined, problems: string[]): Promise<Outcome> {
  const out: Outcome = { frames: 0, digest: 0, packets: 0, error: undefined }
  const limit = c.gzip ? Number.POSITIVE_INFINITY : c.bytes.length
  const onFrame = (f: Frame) => {
    out.frames++
    if (f.data.length !== f.capturedLength || f.fileOffset < 0 || f.fileOffset + 8 > limit) {
      problems.push(`frame at ${f.fileOffset}: ${f.data.length} bytes, caplen ${f.capturedLength}`)
    }
    const status = decodeFrameStatus(f, packet)
    if (status < 0 || status > DecodeStatus.MALFORMED) problems.push(`status ${status}`)
    if (status === DecodeStatus.OK) {
      out.packets++
      if (
        (packet.srcPort !== 123 && packet.dstPort !== 123) ||
        packet.payload.length > f.data.length ||
        (packet.ipVersion !== 4 && packet.ipVersion !== 6) ||
        packet.src.length !== 16
      ) {
        problems.push(`inconsistent packet at ${f.fileOffset}`)
      }
    }
    out.digest = (Math.imul(out.digest, 31) + f.fileOffset * 7 + f.capturedLength * 3 + status) | 0
  }
  try {
    await readCaptureBuffer(c.bytes, name, onFrame, chunkBytes === undefined ? {} : { chunkBytes })
  } catch (err) {
    out.error = err
  }
  return out
}

function describeError(err: unknown): string {
  if (err instanceof TeitenError) return `${err.code}@${err.offset}`
  return err === undefined ? 'ok' : String((err as Error)?.stack ?? err)
}

export async function runJob(job: FuzzJob): Promise<FuzzReport> {
  const seeds: Seed[] = job.seeds.map((s) => ({ ...s, bytes: Buffer.from(s.bytes) }))
  const progress = new Int32Array(job.progress)
  const report: FuzzReport = {
    cases: 0,
    gzipCases: 0,
    errors: {},
    clean: 0,
    frames: 0,
    packets: 0,
    maxArrayBuffers: 0,
    failures: [],
  }
  for (let index = job.from; index < job.to; index++) {
    Atomics.store(progress, 0, index)
    const c = makeCase(job.runSeed, index, seeds)
    const name = `fuzz-${job.runSeed}-${index}.cap`
    const problems: string[] = []
    const first = await read(c, name, c.chunkBytes, problems)
    const err = first.error
    if (err === undefined) report.clean++
    else if (!(err instanceof TeitenError)) problems.push(`not a TeitenError: ${describeError(err)}`)
    else {
      report.errors[err.code] = (report.errors[err.code] ?? 0) + 1
      const offset = err.offset
      if (err.file !== name) problems.push(`error names file ${String(err.file)}`)
      if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) {
        problems.push(`error offset ${String(offset)}`)
      } else if (!c.gzip && offset > c.bytes.length) {
        problems.push(`error offset ${offset} beyond the ${c.bytes.length} bytes`)
      }
    }
    // Chunking must not matter: the same input in other pieces gives the same frames and error.
    if (!c.gzip && index % 4 === 0) {
      const other = c.chunkBytes === undefined ? 1 + (index % 97) : undefined
      const second = await read(c, name, other, problems)
      if (
        second.frames !== first.frames ||
        second.digest !== first.digest ||
        describeError(second.error) !== describeError(err)
      ) {
        problems.push(
          `chunking changed the result: ${first.frames} frames/${describeError(err)} vs ${second.frames} frames/${describeError(second.error)} with chunkBytes ${other}`,
        )
      }
    }
    report.cases++
    if (c.gzip) report.gzipCases++
    report.frames += first.frames
    report.packets += first.packets
    if (problems.length > 0 && report.failures.length < 20) {
      report.failures.push({
        index,
        recipe: c.recipe,
        chunkBytes: c.chunkBytes,
        problem: problems[0]!,
        detail: problems.slice(1, 4).join('; '),
        input: c.bytes.length <= 4096 ? c.bytes.toString('base64') : undefined,
      })
    }
    if ((index & 8191) === 0) {
      await collectGarbage()
      const ab = process.memoryUsage().arrayBuffers
      if (ab > report.maxArrayBuffers) report.maxArrayBuffers = ab
      if (ab > job.memoryLimitBytes) {
        report.failures.push({
          index,
          recipe: c.recipe,
          chunkBytes: c.chunkBytes,
          problem: `memory: ${ab} bytes of buffers held`,
          detail: '',
        })
        break
      }
    }
    Atomics.store(progress, 1, report.cases)
  }
  return report
}

if (parentPort && workerData) {
  const port = parentPort
  runJob(workerData as FuzzJob).then(
    (report) => port.postMessage(report),
    (err: unknown) => {
      throw err
    },
  )
}
