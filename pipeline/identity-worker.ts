/*
 * The hashing worker's entry (see FileIdentities in pipeline/identity.ts). It loads the one
 * implementation next to itself: identity-core.js from dist/, identity-core.ts when the tests run
 * the sources (a dynamic import, so the extension is chosen at run time).
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { FileIds, GzipLimits } from './identity-core.js'

/** Files to hash, in order (several per message: one message per file cost the main thread ~0.2 ms each). */
interface Request {
  files: Array<{ id: number; path: string }>
}

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
const { identityOf } = (await import(new URL(`./identity-core${ext}`, import.meta.url).href)) as {
  identityOf: (path: string, limits: GzipLimits) => Promise<FileIds>
}
const limits = (workerData as { limits: GzipLimits }).limits

// One file at a time, in the order asked: the reader waits for them in that order.
let tail: Promise<unknown> = Promise.resolve()
parentPort!.on('message', ({ files }: Request) => {
  for (const { id, path } of files) {
    tail = tail
      .then(() => identityOf(path, limits))
      .then(
        (ids) => parentPort!.postMessage({ id, ids }),
        (err: NodeJS.ErrnoException) =>
          parentPort!.postMessage({
            id,
            error: { message: String(err?.message), code: err?.code, syscall: err?.syscall },
          }),
      )
  }
})
