/**
 * The README demo's sample captures: `node dist/scripts/gen-samples.js DIR` writes the small
 * synthetic corpus (three sensors, every capture format, Oct 2013 - Jan 2014) into DIR/captures
 * and its ground truth into DIR/truth.json. Same output for the same teiten version, every time.
 */
import { join, resolve } from 'node:path'
import { isTeitenError } from '../core/errors.js'
import { generateCorpus } from '../synth/corpus.js'
import { openCountryLookup } from '../synth/geo.js'

async function main(argv: string[]): Promise<number> {
  const dir = argv[2]
  if (!dir || argv.length > 3 || dir.startsWith('-')) {
    process.stderr.write('usage: node dist/scripts/gen-samples.js DIR\n')
    return 2
  }
  const { truth, truthPath, stats } = await generateCorpus({
    preset: 'small',
    outDir: join(dir, 'captures'),
    truthFile: resolve(dir, 'truth.json'),
    countryOf: openCountryLookup(),
  })
  process.stdout.write(
    `${truth.totals.files} capture files, ${stats.records} records (${truth.totals.kept} UDP/123, ` +
      `${truth.totals.accesses} accesses) in ${join(dir, 'captures')}; ground truth: ${truthPath}\n`,
  )
  return 0
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (isTeitenError(err)) {
      process.stderr.write(`gen-samples: ${err.toLine()}\n`)
      process.exitCode = err.code === 'BAD_PARAMETER' || err.code === 'USAGE' ? 2 : 1
      return
    }
    process.stderr.write(`gen-samples: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
