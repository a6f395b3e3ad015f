/**
 * Hostile input: mutated captures (bit flips, byte insertions and deletions, length fields set
 * to edge values, truncations, splices of two seeds, duplicated ranges, gzip around the result
 * or gzip'd bytes mutated) through readCaptureBuffer + decodeFrameStatus, in worker threads.
 *
 * A normal `vitest run` does TEITEN_FUZZ_CASES (default 20,000, a few seconds); `npm run fuzz`
 * runs 1,000,000 (vitest.fuzz.config.ts). TEITEN_FUZZ_SEED picks another run; a failure names
 * its case index, which replays alone: makeCase(seed, index, buildSeeds()).
 *
 * A worker that makes no progress for STALL_MS is killed and its case in hand reported (a hang);
 * a worker over the heap limit dies (reported); buffer memory still held after a full garbage
 * collection must stay under BUFFER_LIMIT.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { expect, it } from 'vitest'
import type { FuzzFailure, FuzzJob, FuzzReport } from './engine.js'
import { buildSeeds } from './seeds.js'

const CASES = Number(process.env.TEITEN_FUZZ_CASES ?? 20_000)
const RUN_SEED = Number(process.env.TEITEN_FUZZ_SEED ?? 0x7e17e7)
const WORKERS = Math.max(1, Number(process.env.TEITEN_FUZZ_WORKERS ?? Math.min(2, availableParallelism())))
const STALL_MS = 30_000
const HEAP_MB = 256
const BUFFER_LIMIT = 32 << 20

interface WorkerResult {
  report?: FuzzReport
  failure?: FuzzFailure
}

function runWorker(job: Omit<FuzzJob, 'progress'>): Promise<WorkerResult> {
  const progress = new SharedArrayBuffer(8)
  const view = new Int32Array(progress)
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { ...job, progress } satisfies FuzzJob,
    resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
  })
  return new Promise((resolve) => {
    let lastDone = -1
    let settled = false
    const finish = (r: WorkerResult) => {
      if (settled) return
      settled = true
      clearInterval(watchdog)
      resolve(r)
    }
    const inHand = (problem: string): FuzzFailure => ({
      index: Atomics.load(view, 0),
      recipe: '(see makeCase)',
      chunkBytes: undefined,
      problem,
      detail: '',
    })
    const watchdog = setInterval(() => {
      const done = Atomics.load(view, 1)
      if (done === lastDone) {
        void worker.terminate()
        finish({ failure: inHand(`no progress for ${STALL_MS} ms: a hang`) })
      }
      lastDone = done
    }, STALL_MS)
    worker.on('message', (report: FuzzReport) => finish({ report }))
    worker.on('error', (err) => finish({ failure: inHand(`worker died: ${err.message}`) }))
    worker.on('exit', (code) => finish({ failure: inHand(`worker exited with ${code} before reporting`) }))
  })
}

it(
  `reads ${CASES.toLocaleString('en')} mutated captures without a crash, hang or unbounded memory (seed ${RUN_SEED})`,
  async () => {
    const seeds = buildSeeds().map((s) => ({ ...s, bytes: new Uint8Array(s.bytes) }))
    const started = performance.now()
    const per = Math.ceil(CASES / WORKERS)
    const results = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) =>
        runWorker({
          runSeed: RUN_SEED,
          from: w * per,
          to: Math.min(CASES, (w + 1) * per),
          seeds,
          memoryLimitBytes: BUFFER_LIMIT,
        }),
      ),
    )
    const seconds = (performance.now() - started) / 1000
    const failures = results.flatMap((r) => (r.failure ? [r.failure] : (r.report?.failures ?? [])))
    const reports = results.flatMap((r) => (r.report ? [r.report] : []))
    const cases = reports.reduce((n, r) => n + r.cases, 0)
    const errors: Record<string, number> = {}
    for (const r of reports) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v
    const summary = {
      cases,
      seconds: Math.round(seconds * 10) / 10,
      casesPerSecond: Math.round(cases / seconds),
      workers: WORKERS,
      gzipCases: reports.reduce((n, r) => n + r.gzipCases, 0),
      clean: reports.reduce((n, r) => n + r.clean, 0),
      frames: reports.reduce((n, r) => n + r.frames, 0),
      udp123: reports.reduce((n, r) => n + r.packets, 0),
      maxBufferBytes: Math.max(0, ...reports.map((r) => r.maxArrayBuffers)),
      errors,
    }
    console.log(`fuzz: ${JSON.stringify(summary)}`)
    expect(failures).toEqual([])
    expect(cases).toBe(CASES)
    // The mutations reach deep: most cases fail somewhere, many still decode UDP/123 packets.
    expect(Object.keys(errors).length).toBeGreaterThanOrEqual(6)
    expect(summary.udp123).toBeGreaterThan(CASES)
  },
  Math.max(60_000, CASES * 2),
)
