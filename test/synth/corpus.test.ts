import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NTP_CLASSES, type NtpClass } from '../../core/event.js'
import { FORMAT_SLOTS, type GroundTruth, describeFormat, generateCorpus } from '../../synth/corpus.js'
import { parseIp } from '../../synth/frames.js'
import { type CountryLookup, openCountryLookup } from '../../synth/geo.js'
import { isPublicV4 } from '../../synth/population.js'
import { tempDir } from '../helpers/tmp.js'
import { isKept, isRecord, mapLimit, referenceClass, requireTshark, tsharkFrames } from './oracle.js'

const tmp = tempDir('teiten-synth-corpus-')
afterAll(() => tmp.cleanup())

let geo: CountryLookup
beforeAll(() => {
  geo = openCountryLookup()
})

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

/** The truth is internally consistent: totals are the sums of its rows and of its files. */
function expectConsistent(t: GroundTruth): void {
  const f = t.files
  expect(t.totals.files).toBe(f.length)
  expect(t.totals.records).toBe(sum(f.map((x) => x.records)))
  expect(t.totals.kept).toBe(sum(f.map((x) => x.kept)))
  expect(t.totals.accesses).toBe(sum(f.map((x) => x.accesses)))
  for (const c of Object.keys(t.totals.dropped) as Array<keyof typeof t.totals.dropped>) {
    expect(t.totals.dropped[c]).toBe(sum(f.map((x) => x.dropped[c])))
  }
  expect(t.totals.records).toBe(t.totals.kept + sum(Object.values(t.totals.dropped)))
  for (const x of f) expect(x.records).toBe(x.kept + sum(Object.values(x.dropped)))
  expect(t.totals.kept).toBe(sum(t.keptByDayCountry.map((r) => r.packets)))
  expect(t.totals.kept).toBe(sum(t.byDayCountryClass.map((r) => r.packets)))
  expect(t.totals.kept).toBe(sum(Object.values(t.totals.byClass).map((c) => c.packets)))
  expect(t.totals.kept).toBe(sum(Object.values(t.totals.byCountry).map((c) => c.packets)))
  expect(t.totals.accesses).toBe(sum(t.accessesByDayCountry.map((r) => r.packets)))
  expect(t.totals.accesses).toBe(sum(t.byDayCountryClass.map((r) => r.accesses)))
  expect(t.totals.accesses).toBe(sum(Object.values(t.totals.byClass).map((c) => c.accesses)))
  expect(t.totals.accesses).toBe(sum(Object.values(t.totals.byCountry).map((c) => c.accesses)))
  // Per day x country: packets add up over classes; distinct sources lie between the largest
  // class's count and the sum over classes.
  const groups = new Map<string, { pk: number; acc: number; src: number[]; accSrc: number[] }>()
  for (const r of t.byDayCountryClass) {
    const k = `${r.day} ${r.country}`
    const g = groups.get(k) ?? { pk: 0, acc: 0, src: [], accSrc: [] }
    g.pk += r.packets
    g.acc += r.accesses
    g.src.push(r.sources)
    if (r.accesses > 0) g.accSrc.push(r.accessSources)
    expect(r.accesses).toBeLessThanOrEqual(r.packets)
    expect(r.sources).toBeLessThanOrEqual(r.packets)
    groups.set(k, g)
  }
  expect(t.keptByDayCountry.length).toBe(groups.size)
  for (const r of t.keptByDayCountry) {
    const g = groups.get(`${r.day} ${r.country}`)
    expect(g?.pk).toBe(r.packets)
    expect(r.sources).toBeGreaterThanOrEqual(Math.max(...(g?.src ?? [0])))
    expect(r.sources).toBeLessThanOrEqual(sum(g?.src ?? []))
  }
  for (const r of t.accessesByDayCountry) {
    const g = groups.get(`${r.day} ${r.country}`)
    expect(g?.acc).toBe(r.packets)
    expect(r.sources).toBeGreaterThanOrEqual(Math.max(...(g?.accSrc ?? [0])))
    expect(r.sources).toBeLessThanOrEqual(sum(g?.accSrc ?? []))
  }
}

function truthCountry(addr: string): string {
  const b = parseIp(addr)
  const bogon = b.length === 4 ? !isPublicV4(b.readUInt32BE(0)) : (b[0] & 0xe0) !== 0x20
  return bogon ? '--' : geo(addr)
}

interface Recomputed {
  files: Map<string, { records: number; kept: number; accesses: number }>
  classRows: Map<string, { packets: number; sources: Set<string>; accesses: number; accessSources: Set<string> }>
}

/** The ground truth rebuilt from tshark's view of the files alone. */
async function recompute(dir: string, paths: string[]): Promise<Recomputed> {
  const out: Recomputed = { files: new Map(), classRows: new Map() }
  const perFile = await mapLimit(paths, 2, (p) => tsharkFrames(join(dir, p)))
  paths.forEach((p, i) => {
    const stats = { records: 0, kept: 0, accesses: 0 }
    for (const f of perFile[i]) {
      if (!isRecord(f)) continue
      stats.records++
      if (!isKept(f)) continue
      stats.kept++
      const access = f.dstPort === 123
      if (access) stats.accesses++
      expect(f.sec).not.toBeNull()
      const day = new Date((f.sec as number) * 1000).toISOString().slice(0, 10)
      const cls: NtpClass = referenceClass(f.payload, f.udpLength - 8)
      const key = `${day} ${truthCountry(f.src)} ${cls}`
      const row = out.classRows.get(key) ?? { packets: 0, sources: new Set(), accesses: 0, accessSources: new Set() }
      row.packets++
      row.sources.add(f.src)
      if (access) {
        row.accesses++
        row.accessSources.add(f.src)
      }
      out.classRows.set(key, row)
    }
    out.files.set(p, stats)
  })
  return out
}

function captureFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name))
      else if (/\.pcap(ng)?(\.gz)?$/.test(e.name)) out.push(relative(dir, join(d, e.name)).split('\\').join('/'))
    }
  }
  walk(dir)
  return out.sort()
}

function digest(dir: string): string {
  const h = createHash('sha256')
  for (const p of [...captureFiles(dir), 'truth.json']) {
    h.update(p)
    h.update(readFileSync(join(dir, p)))
  }
  return h.digest('hex')
}

describe('the small corpus (README demo)', () => {
  const dir = join(tmp.path, 'small')
  let truth: GroundTruth
  beforeAll(async () => {
    truth = (await generateCorpus({ preset: 'small', outDir: dir, countryOf: geo })).truth
  })

  it('has totals that equal the sums of its parts', () => {
    expectConsistent(truth)
    expect(truth.totals.kept).toBeGreaterThan(3000)
    expect(truth.totals.kept).toBeLessThan(6000)
  })

  it('uses every file format once, and every link type and class', () => {
    expect(truth.files.length).toBe(12)
    expect(new Set(truth.files.map((f) => f.format))).toEqual(new Set(FORMAT_SLOTS.map(describeFormat)))
    expect(new Set(truth.files.flatMap((f) => f.linkTypes))).toEqual(new Set([0, 1, 101, 113, 276]))
    for (const c of NTP_CLASSES) expect(truth.totals.byClass[c].packets).toBeGreaterThan(0)
    for (const c of Object.keys(truth.totals.dropped) as Array<keyof typeof truth.totals.dropped>) {
      expect(truth.totals.dropped[c]).toBeGreaterThan(0)
    }
    expect(captureFiles(dir)).toEqual(truth.files.map((f) => f.path))
  })

  it('is the same, byte for byte, for the same seed and differs for another', async () => {
    const again = join(tmp.path, 'small-again')
    const other = join(tmp.path, 'small-other')
    await generateCorpus({ preset: 'small', outDir: again, countryOf: geo })
    await generateCorpus({ preset: 'small', outDir: other, countryOf: geo, seed: 7 })
    expect(digest(again)).toBe(digest(dir))
    expect(digest(other)).not.toBe(digest(dir))
  })

  it('agrees with tshark on every file and on every day x country x class group', async () => {
    requireTshark()
    const got = await recompute(
      dir,
      truth.files.map((f) => f.path),
    )
    for (const f of truth.files) {
      expect({ path: f.path, ...got.files.get(f.path) }).toEqual({
        path: f.path,
        records: f.records,
        kept: f.kept,
        accesses: f.accesses,
      })
    }
    const rows = [...got.classRows.entries()]
      .map(([k, r]) => {
        const [day, country, cls] = k.split(' ')
        return {
          day,
          country,
          class: cls,
          packets: r.packets,
          sources: r.sources.size,
          accesses: r.accesses,
          accessSources: r.accessSources.size,
        }
      })
      .sort((a, b) => (`${a.day} ${a.country} ${a.class}` < `${b.day} ${b.country} ${b.class}` ? -1 : 1))
    const expected = [...truth.byDayCountryClass].sort((a, b) =>
      `${a.day} ${a.country} ${a.class}` < `${b.day} ${b.country} ${b.class}` ? -1 : 1,
    )
    expect(rows).toEqual(expected)
  })
})

describe('the test corpus', () => {
  const dir = join(tmp.path, 'test')
  let truth: GroundTruth
  beforeAll(async () => {
    truth = (await generateCorpus({ preset: 'test', outDir: dir, countryOf: geo })).truth
  })

  it('covers Oct 2013 - Jan 2014 from three sensors with a November monlist surge', () => {
    expectConsistent(truth)
    expect(truth.range).toEqual({ start: '2013-10-01', end: '2014-01-15', days: 107 })
    expect(truth.totals.kept).toBeGreaterThan(130_000)
    expect(truth.totals.kept).toBeLessThan(170_000)
    expect(new Set(truth.files.map((f) => f.sensor))).toEqual(new Set(['sensor-a', 'sensor-b', 'sensor-c']))
    expect(new Set(truth.files.map((f) => f.format)).size).toBe(FORMAT_SLOTS.length)
    const monlist = (from: string, to: string) =>
      sum(
        truth.byDayCountryClass
          .filter((r) => r.class === 'monlist' && r.day >= from && r.day <= to)
          .map((r) => r.accesses),
      )
    expect(monlist('2013-11-15', '2013-11-30')).toBeGreaterThan(2 * monlist('2013-10-10', '2013-10-25'))
    const countries = new Set(truth.accessesByDayCountry.map((r) => r.country))
    expect(countries.size).toBeGreaterThan(20)
    expect(countries.has('--')).toBe(true)
  })

  it('rotates sensor-c at midnight JST, so its files straddle UTC days, and counts days by timestamp', () => {
    const c = truth.files.filter((f) => f.sensor === 'sensor-c')
    expect(c[0].path).toBe('sensor-c/sensor-c-20131001+0900.pcap.gz')
    const straddling = c.filter((f) => f.first && f.last && f.first.slice(0, 10) !== f.last.slice(0, 10))
    expect(straddling.length).toBeGreaterThan(90)
    const a = truth.files.filter((f) => f.sensor === 'sensor-a')
    expect(a.every((f) => f.first?.slice(0, 10) === f.last?.slice(0, 10))).toBe(true)
  })

  it('agrees with tshark on a file of every format', async () => {
    requireTshark()
    const seen = new Set<string>()
    const picked = truth.files.filter((f) => {
      const key = f.format
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
    expect(picked.length).toBe(FORMAT_SLOTS.length)
    const got = await recompute(
      dir,
      picked.map((f) => f.path),
    )
    for (const f of picked) {
      expect({ path: f.path, ...got.files.get(f.path) }).toEqual({
        path: f.path,
        records: f.records,
        kept: f.kept,
        accesses: f.accesses,
      })
    }
  })
})

describe('bench mode', () => {
  it('writes exactly the number of records asked for (speed printed)', async () => {
    const out = join(tmp.path, 'bench')
    const { truth, stats } = await generateCorpus({ preset: 'bench', packets: 400_000, outDir: out, countryOf: geo })
    console.log(
      `bench generator: ${stats.records} records, ${(stats.bytes / 1e6).toFixed(1)} MB in ${stats.seconds.toFixed(2)} s ` +
        `(${Math.round(stats.records / stats.seconds)} records/s, ${(stats.bytes / stats.records).toFixed(1)} bytes/record)`,
    )
    expect(stats.records).toBe(400_000)
    expect(truth.totals.records).toBe(400_000)
    expect(truth.files.map((f) => f.path)).toEqual(['bench.pcap'])
    expectConsistent(truth)
    const days = new Set(truth.keptByDayCountry.map((r) => r.day))
    expect(days.size).toBe(107)
  })

  it('splits the same packets over hourly-ish sensor files with the same truth', async () => {
    const one = await generateCorpus({
      preset: 'bench',
      packets: 60_000,
      outDir: join(tmp.path, 'one'),
      countryOf: geo,
    })
    const many = await generateCorpus({
      preset: 'bench',
      packets: 60_000,
      files: 600,
      outDir: join(tmp.path, 'many'),
      countryOf: geo,
    })
    expect(many.truth.files.length).toBeGreaterThan(500)
    expect(new Set(many.truth.files.map((f) => f.sensor))).toEqual(new Set(['sensor-a', 'sensor-b', 'sensor-c']))
    expect(many.truth.byDayCountryClass).toEqual(one.truth.byDayCountryClass)
    expect(many.truth.accessesByDayCountry).toEqual(one.truth.accessesByDayCountry)
    expect({ ...many.truth.totals, files: 0 }).toEqual({ ...one.truth.totals, files: 0 })
  })
})

describe('countries', () => {
  it("come from the caller's lookup, and bogon sources are '--'", async () => {
    const asked = new Set<string>()
    const fake: CountryLookup = (addr) => {
      asked.add(addr)
      const first = Number(addr.split('.')[0])
      if (addr.includes(':')) return 'CC'
      return first < 100 ? 'AA' : first < 200 ? 'BB' : '--'
    }
    const { truth } = await generateCorpus({
      preset: 'small',
      outDir: join(tmp.path, 'fake'),
      countryOf: fake,
      countries: [
        { country: 'AA', weight: 1 },
        { country: 'BB', weight: 1 },
      ],
      surge: { countries: ['BB'], start: '2013-11-01', peak: '2013-11-10', end: '2013-11-30', share: 0.5 },
    })
    expect(new Set(truth.keptByDayCountry.map((r) => r.country))).toEqual(new Set(['AA', 'BB', 'CC', '--']))
    expect(asked.size).toBeGreaterThan(100)
    const novBB = sum(
      truth.accessesByDayCountry.filter((r) => r.country === 'BB' && r.day.startsWith('2013-11')).map((r) => r.packets),
    )
    const novAA = sum(
      truth.accessesByDayCountry.filter((r) => r.country === 'AA' && r.day.startsWith('2013-11')).map((r) => r.packets),
    )
    expect(novBB).toBeGreaterThan(novAA)
  })
})
