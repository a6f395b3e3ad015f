/**
 * Synthetic corpus generator (see synth/corpus.ts):
 *
 *   node dist/scripts/gen-corpus.js --preset test|small|bench --out DIR [--seed S]
 *        [--packets N] [--files K] [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--format SLOT]
 *        [--kept N] [--noise-ratio R] [--gzip-level L] [--geoip FILE.mmdb] [--quiet]
 *
 * --preset bench writes one capture of exactly N records (default 2,000,000); with --files K it
 * spreads the same packets over about K files (hour-multiple rotation) in the sensor folders.
 * The ground truth goes to DIR/truth.json. Generation speed is printed on stderr.
 */
import { parseArgs } from 'node:util'
import { isTeitenError, TeitenError } from '../core/errors.js'
import { FORMAT_SLOTS, generateCorpus, type Preset } from '../synth/corpus.js'
import { openCountryLookup } from '../synth/geo.js'

const USAGE =
  'usage: gen-corpus --preset test|small|bench --out DIR [--seed S] [--packets N] [--files K]\n' +
  '                  [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--format SLOT] [--kept N]\n' +
  '                  [--noise-ratio R] [--gzip-level L] [--geoip FILE.mmdb] [--quiet]\n'

function int(name: string, text: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined
  const clean = text.replaceAll('_', '')
  const n = Number(clean)
  if (!/^-?\d+$/.test(clean) || n < min || n > max) {
    throw new TeitenError('USAGE', `--${name} wants an integer in [${min}, ${max}], not ${text}`)
  }
  return n
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv.slice(2),
    strict: true,
    allowPositionals: true,
    options: {
      preset: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      packets: { type: 'string' },
      files: { type: 'string' },
      start: { type: 'string' },
      end: { type: 'string' },
      format: { type: 'string' },
      kept: { type: 'string' },
      'noise-ratio': { type: 'string' },
      'gzip-level': { type: 'string' },
      geoip: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  })
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new TeitenError('USAGE', `unexpected argument ${positionals[0]}`)
  const preset = (values.preset ?? 'test') as Preset
  if (!['test', 'small', 'bench'].includes(preset)) throw new TeitenError('USAGE', `unknown preset ${values.preset}`)
  if (!values.out) throw new TeitenError('USAGE', '--out DIR is required')
  const noiseRatio = values['noise-ratio'] === undefined ? undefined : Number(values['noise-ratio'])
  if (noiseRatio !== undefined && !(noiseRatio >= 0 && noiseRatio <= 100)) {
    throw new TeitenError('USAGE', '--noise-ratio wants a number in [0, 100]')
  }
  const quiet = values.quiet ?? false
  let lastReport = performance.now()
  const { truth, truthPath, stats } = await generateCorpus({
    preset,
    outDir: values.out,
    seed: int('seed', values.seed, -2147483648, 4294967295),
    packets: int('packets', values.packets, 1),
    files: int('files', values.files, 1, 1_000_000),
    start: values.start,
    end: values.end,
    singleFormat: int('format', values.format, 0, FORMAT_SLOTS.length - 1),
    targetKept: int('kept', values.kept, 1),
    noiseRatio,
    gzipLevel: int('gzip-level', values['gzip-level'], 1, 9),
    countryOf: openCountryLookup(values.geoip),
    onProgress: quiet
      ? undefined
      : ({ day, days, records }) => {
          const now = performance.now()
          if (now - lastReport < 2000 && day !== days - 1) return
          lastReport = now
          process.stderr.write(`day ${day + 1}/${days}: ${records.toLocaleString('en-US')} records\n`)
        },
  })
  const mb = stats.bytes / 1e6
  process.stderr.write(
    `${stats.records.toLocaleString('en-US')} records, ${truth.totals.files} files, ${mb.toFixed(1)} MB ` +
      `(${(stats.diskBytes / 1e6).toFixed(1)} MB on disk) in ${stats.seconds.toFixed(1)} s: ` +
      `${Math.round(stats.records / stats.seconds).toLocaleString('en-US')} records/s, ` +
      `${(mb / stats.seconds).toFixed(0)} MB/s, ${(stats.bytes / Math.max(1, stats.records)).toFixed(1)} bytes/record; ` +
      `${stats.sources} sources, ${stats.templates} templates, ${stats.lookups} GeoIP lookups\n`,
  )
  process.stdout.write(`${truthPath ?? ''}\n`)
  return 0
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (isTeitenError(err)) {
      process.stderr.write(`gen-corpus: ${err.toLine()}\n`)
      if (err.code === 'USAGE' || err.code === 'BAD_PARAMETER') {
        process.stderr.write(USAGE)
        process.exitCode = 2
      } else process.exitCode = 1
      return
    }
    // parseArgs reports unknown options with a plain TypeError carrying an ERR_PARSE_ARGS_* code.
    const code = (err as { code?: string })?.code
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`gen-corpus: ${(err as Error).message}\n${USAGE}`)
      process.exitCode = 2
      return
    }
    process.stderr.write(`gen-corpus: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
