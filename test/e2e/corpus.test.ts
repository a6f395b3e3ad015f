import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateCorpus } from '../../synth/corpus.js'
import { openCountryLookup } from '../../synth/geo.js'
import { geoip2CountryRecord, writeMmdb } from '../helpers/mmdb-writer.js'
import { tempDir } from '../helpers/tmp.js'
import { silentLogger } from '../../core/logger.js'
import { kafkajsTransport } from '../../stream/kafka.js'
import { testKafka } from '../stream/kafka-helper.js'
import { teiten as teitenAsync, waitFor, within } from '../stream/stream-helper.js'
import { keyed, type Row, teiten } from './helpers.js'

/**
 * The walking skeleton's acceptance test: a held-out synthetic corpus (every capture format,
 * link type and class; three sensors; Oct 2013 - Jan 2014) ingested with the real CLI into the
 * real embedded ClickHouse must equal the generator's ground truth exactly.
 */
interface Truth {
  byDayCountryClass: {
    day: string
    country: string
    class: string
    packets: number
    sources: number
    accesses: number
    accessSources: number
  }[]
  accessesByDayCountry: { day: string; country: string; packets: number; sources: number }[]
  keptByDayCountry: { day: string; country: string; packets: number; sources: number }[]
  totals: { files: number; records: number; kept: number; accesses: number }
}

const work = tempDir('teiten-e2e-')
let truth: Truth
let spool: string

function daily(dataDir: string, args: string[]): Row[] {
  const r = teiten(['daily', '--data', dataDir, '--format', 'json', ...args])
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  return JSON.parse(r.stdout) as Row[]
}

function expectMatchesTruth(dataDir: string, t: Truth) {
  const all = daily(dataDir, ['--by', 'day,country,class', '--all'])
  expect(keyed(all, ['day', 'country', 'class'], ['packets', 'sources'])).toEqual(
    keyed(t.byDayCountryClass as unknown as Row[], ['day', 'country', 'class'], ['packets', 'sources']),
  )
  const accessRows = t.byDayCountryClass
    .filter((r) => r.accesses > 0)
    .map((r) => ({ ...r, packets: r.accesses, sources: r.accessSources }))
  const access = daily(dataDir, ['--by', 'day,country,class'])
  expect(keyed(access, ['day', 'country', 'class'], ['packets', 'sources'])).toEqual(
    keyed(accessRows as unknown as Row[], ['day', 'country', 'class'], ['packets', 'sources']),
  )
  const figure2 = daily(dataDir, [])
  expect(keyed(figure2, ['day', 'country'], ['packets', 'sources'])).toEqual(
    keyed(t.accessesByDayCountry as unknown as Row[], ['day', 'country'], ['packets', 'sources']),
  )
  const kept = daily(dataDir, ['--all'])
  expect(keyed(kept, ['day', 'country'], ['packets', 'sources'])).toEqual(
    keyed(t.keptByDayCountry as unknown as Row[], ['day', 'country'], ['packets', 'sources']),
  )
}

beforeAll(async () => {
  spool = join(work.path, 'spool')
  const result = await generateCorpus({
    outDir: spool,
    preset: 'test',
    countryOf: openCountryLookup(),
    truthFile: join(work.path, 'truth.json'),
  })
  truth = result.truth as unknown as Truth
}, 300_000)

afterAll(() => work.cleanup())

describe('held-out corpus on embedded ClickHouse', () => {
  const data = () => join(work.path, 'data')

  it('ingests every file completely and reports the kept packets', () => {
    const r = teiten(['ingest', spool, '--data', data()])
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`records read ${truth.totals.records}`)
    expect(r.stdout).toContain(`UDP/123 kept ${truth.totals.kept}`)
    expect(r.stdout).toContain(`files        ${truth.totals.files} (${truth.totals.files} ingested`)
  }, 300_000)

  it('matches the ground truth per day x country x class and per day x country', () => {
    expectMatchesTruth(data(), truth)
  }, 120_000)

  it('changes nothing when the same captures are ingested again, under other names too', () => {
    const r1 = teiten(['ingest', spool, '--data', data()])
    expect(r1.status).toBe(0)
    expect(r1.stdout).toContain(`0 ingested, ${truth.totals.files} already ingested`)
    // Identity is the content: a rotated copy under another name and folder is not new data.
    const renamed = join(work.path, 'renamed', 'sensor-a')
    mkdirSync(renamed, { recursive: true })
    const files = readdirSync(join(spool, 'sensor-a')).slice(0, 3)
    for (const f of files) copyFileSync(join(spool, 'sensor-a', f), join(renamed, `rotated-${f}`))
    const r2 = teiten(['ingest', renamed, '--data', data()])
    expect(r2.status).toBe(0)
    expect(r2.stdout).toContain(`0 ingested, ${files.length} already ingested`)
    expectMatchesTruth(data(), truth)
  }, 300_000)
})

describe('held-out corpus through Kafka', () => {
  it('published with ingest --kafka, a sink SIGKILLed mid-stream and restarted with --exit-when-idle: the ground truth exactly', async () => {
    const k = await testKafka()
    try {
      const brokers = k.brokers.join(',')
      const topic = `e2e-heldout-${Date.now().toString(36)}`
      const sinkDir = join(work.path, 'kafka-sink')
      const common = ['--kafka', brokers, '--topic', topic, '--group', topic, '--data', sinkDir]
      // A short session: the restarted sink gets the dead one's partitions after 6 s, not 15.
      const first = teitenAsync(['sink', ...common, '--session-timeout', '6000'])
      const sensor = teitenAsync([
        'ingest',
        spool,
        '--kafka',
        brokers,
        '--topic',
        topic,
        '--data',
        join(work.path, 'kafka-sensor'),
      ])
      const transport = kafkajsTransport({
        brokers: k.brokers,
        clientId: 'e2e-probe',
        logger: silentLogger,
        retries: 1,
      })
      // Killed once it has stored and committed something: mid-stream.
      await waitFor(
        'a first commit of the sink',
        async () => {
          if (first.child.exitCode !== null)
            throw new Error(`the sink exited ${first.child.exitCode}: ${first.stderr()}`)
          const admin = transport.admin()
          try {
            await admin.connect()
            const committed = await admin.groupOffsets(topic, topic)
            return [...committed.values()].some((o) => o > 0) ? true : undefined
          } catch {
            return undefined
          } finally {
            await admin.disconnect().catch(() => {})
          }
        },
        180_000,
      )
      first.child.kill('SIGKILL')
      expect((await first.done).signal).toBe('SIGKILL')
      const published = await within(sensor, 300_000)
      expect(published.code, published.stderr).toBe(0)
      expect(published.stdout).toContain(`UDP/123 kept ${truth.totals.kept}`)
      const second = await within(
        teitenAsync(['sink', ...common, '--session-timeout', '6000', '--exit-when-idle', '2000']),
        300_000,
      )
      expect(second.code, second.stderr).toBe(0)
      expect(second.stderr).toMatch(/caught up/)
      expectMatchesTruth(sinkDir, truth)
    } finally {
      await k.close()
    }
  }, 600_000)
})

describe('bad captures', () => {
  it('names the file and offset, exits 1, and keeps every good record and every other file', () => {
    const dir = join(work.path, 'bad', 'sensor-z')
    mkdirSync(dir, { recursive: true })
    // A 2-record classic pcap cut in the middle of its second record.
    const header = Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex')
    const frame = Buffer.from(
      // Ethernet | IPv4 (UDP, 203.0.113.77 -> 150.95.218.5) | UDP 40000 -> 123, len 16 | monlist kit probe
      '000000000000' +
        '111111111111' +
        '0800' +
        '4500002400010000401100000b0b0b0b965fda05' +
        '9c40007b00100000' +
        '1700032a00000000',
      'hex',
    )
    const rec = (ts: number) => {
      const h = Buffer.alloc(16)
      h.writeUInt32LE(ts, 0)
      h.writeUInt32LE(frame.length, 8)
      h.writeUInt32LE(frame.length, 12)
      return Buffer.concat([h, frame])
    }
    const good = Buffer.concat([header, rec(1385856000), rec(1385856001)])
    const cut = good.subarray(0, good.length - 10)
    writeFileSync(join(dir, 'cut.pcap'), cut)
    writeFileSync(join(dir, 'zz-good.pcap.gz'), gzipSync(good))
    const corrupt = gzipSync(good)
    corrupt[corrupt.length - 6] ^= 0xff // CRC
    writeFileSync(join(dir, 'corrupt.pcap.gz'), corrupt)
    writeFileSync(join(dir, 'notes.txt'), 'not a capture\n')
    const data = join(work.path, 'bad-data')
    const r = teiten(['ingest', join(work.path, 'bad'), '--data', data])
    expect(r.status).toBe(1)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(lines.find((l) => l.includes('cut.pcap'))).toMatch(/cut\.pcap: offset 90: .*\[CAPTURE_TRUNCATED\]/)
    expect(lines.find((l) => l.includes('notes.txt'))).toMatch(/offset 0: .*\[CAPTURE_UNKNOWN_FORMAT\]/)
    expect(lines.find((l) => l.includes('corrupt.pcap.gz'))).toMatch(/\[CAPTURE_GZIP_CORRUPT\]/)
    // cut.pcap's first record and both records of zz-good count; the corrupt gzip is all before its CRC.
    const rows = JSON.parse(teiten(['daily', '--data', data, '--by', 'sensor', '--format', 'json']).stdout) as Row[]
    expect(rows[0]).toMatchObject({ sensor: 'sensor-z' })
    expect(Number(rows[0]!.packets)).toBeGreaterThanOrEqual(3)
    expect(Number(rows[0]!.packets)).toBeLessThanOrEqual(5)
  }, 120_000)
})

describe('a MaxMind GeoIP2/GeoLite2 database given with --geoip', () => {
  it('matches a corpus whose truth was drawn from that database', async () => {
    const dir = join(work.path, 'maxmind')
    mkdirSync(dir, { recursive: true })
    const mmdbPath = join(dir, 'GeoLite2-City-fixture.mmdb')
    writeFileSync(
      mmdbPath,
      writeMmdb({
        ipVersion: 6,
        databaseType: 'GeoLite2-City',
        aliasIpv4: true,
        networks: [
          { network: '::0.0.0.0/98', data: geoip2CountryRecord('JP') },
          { network: '::64.0.0.0/98', data: geoip2CountryRecord('US') },
          { network: '::128.0.0.0/98', data: geoip2CountryRecord('CN') },
          { network: '::192.0.0.0/98', data: geoip2CountryRecord(null, 'BR') },
          { network: '2000::/3', data: geoip2CountryRecord('DE') },
        ],
      }),
    )
    const spool2 = join(dir, 'spool')
    const result = await generateCorpus({
      outDir: spool2,
      preset: 'small',
      seed: 7,
      countryOf: openCountryLookup(mmdbPath),
      truthFile: join(dir, 'truth.json'),
    })
    const data = join(dir, 'data')
    const r = teiten(['ingest', spool2, '--data', data, '--geoip', mmdbPath])
    expect(r.status).toBe(0)
    expectMatchesTruth(data, result.truth as unknown as Truth)
    const countries = new Set(daily(data, ['--by', 'country', '--all']).map((row) => row.country))
    expect([...countries].every((c) => ['JP', 'US', 'CN', 'BR', 'DE', '--'].includes(String(c)))).toBe(true)
  }, 300_000)
})
