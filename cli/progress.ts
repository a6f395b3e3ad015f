import cliProgress from 'cli-progress'
import type { CaptureFile } from '../pipeline/files.js'
import type { FileOutcome } from '../pipeline/ingest.js'

/** A progress bar over bytes of all files, only when stderr is a terminal. */
export function createProgress(files: CaptureFile[]) {
  if (!process.stderr.isTTY) return undefined
  const total = files.reduce((n, f) => n + f.size, 0)
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'ingest [{bar}] {percentage}% | {doneFiles}/{files} files | {file}',
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  )
  bar.start(total, 0, { doneFiles: 0, files: files.length, file: '' })
  let done = 0
  let doneFiles = 0
  return {
    update(file: CaptureFile, fileBytes: number) {
      bar.update(done + Math.min(fileBytes, file.size), { file: file.path.slice(-40) })
    },
    fileDone(outcome: FileOutcome) {
      done += outcome.file.size
      doneFiles++
      bar.update(done, { doneFiles })
    },
    stop() {
      bar.stop()
    },
  }
}
