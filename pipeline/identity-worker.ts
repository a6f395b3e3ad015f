/*
 * The hashing worker's entry (see FileIdentities in pipeline/identity.ts). It loads the one
 * implementation next to itself: identity-core.js from dist/, identity-core.ts when the tests run
 * the sources (a dynamic import, so the extension is chosen at run time).
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { CaptureContent } from '../ingest/types.js'
import type { FileIds, GzipLimits, IdentityScheme } from './identity-core.js'

/**
 * Files to hash, in order (several per message: one message per file cost the main thread ~0.2
 * ms each). The reader has taken every file below `consumedBelow`: their content is no longer
 * held.
 */
interface Request {
  files: Array<{ id: number; path: string }>
  consumedBelow: number
}

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
const { identityAndContent } = (await import(new URL(`./identity-core${ext}`, import.meta.url).href)) as {
  identityAndContent: (
    path: string,
    limits: GzipLimits,
    yieldNow: undefined,
    scratch: Buffer,
    scheme: IdentityScheme,
  ) => Promise<{ ids: FileIds; content?: CaptureContent }>
}
const { limits, contentBudgetBytes, scheme } = workerData as {
  limits: GzipLimits
  contentBudgetBytes: number
  scheme: IdentityScheme
}

/** Content handed to the reader and not yet taken, by file: bounded by contentBudgetBytes. */
const held = new Map<number, number>()
let heldBytes = 0

/**
 * An ArrayBuffer starting with `bytes`, which the worker may give away. gunzipSync's result is
 * a view of its one output chunk, a byte longer (identity-core.ts gunzipChunk): given away whole.
 * Views into Node's shared pool (small buffers) or into larger buffers are copied: giving those
 * away would detach memory the worker still uses.
 */
function ownBuffer(bytes: Buffer): ArrayBuffer {
  const whole = bytes.buffer
  const own = bytes.byteOffset === 0 && whole.byteLength > Buffer.poolSize && whole.byteLength - bytes.length <= 1
  if (own && whole instanceof ArrayBuffer) return whole
  return new Uint8Array(bytes).buffer
}

/** Compressed bytes of small gzip files, read into the same buffer one after the other. */
const scratch = Buffer.allocUnsafeSlow(limits.smallBytes)

// One file at a time, in the order asked: the reader waits for them in that order.
let tail: Promise<unknown> = Promise.resolve()
parentPort!.on('message', ({ files, consumedBelow }: Request) => {
  for (const [id, n] of held) {
    if (id >= consumedBelow) continue
    held.delete(id)
    heldBytes -= n
  }
  for (const { id, path } of files) {
    tail = tail
      .then(() => identityAndContent(path, limits, undefined, scratch, scheme))
      .then(
        ({ ids, content }) => {
          if (content === undefined || heldBytes + content.data.length > contentBudgetBytes) {
            parentPort!.postMessage({ id, ids })
            return
          }
          const n = content.data.length // before the transfer detaches it
          const data = ownBuffer(content.data)
          try {
            parentPort!.postMessage({ id, ids, content: { ...content, data, length: n } }, [data])
          } catch {
            // Not transferable after all: the reader reads the file itself; it must get the answer.
            parentPort!.postMessage({ id, ids })
            return
          }
          held.set(id, n)
          heldBytes += n
        },
        (err: NodeJS.ErrnoException) =>
          parentPort!.postMessage({
            id,
            error: { message: String(err?.message), code: err?.code, syscall: err?.syscall },
          }),
      )
  }
})
