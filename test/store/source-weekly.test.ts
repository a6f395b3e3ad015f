import { describe, expect, it } from 'vitest'
import type { NtpClass } from '../../core/event.js'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
import { parseDailyQuery, queryDaily } from '../../store/queries.js'
import { parseSourcesQuery, querySources } from '../../store/research.js'
import { freshWholeWeeks, refreshRollup, staleWeeks, WEEKLY_TABLES } from '../../store/rollup.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec, seededDraw } from '../helpers/packets.js'
import { dailyFromStates } from '../helpers/store.js'
import { tempDir } from '../helpers/tmp.js'

/** Packets over five days from `firstDay` after 2013-12-01: sources recur across days and weeks. */
function packets(seed: number, n: number, firstDay = 0): PacketSpec[] {
  const next = seededDraw(seed)
  const classes: NtpClass[] = ['monlist', 'client', 'mode6_readvar', 'response']
  return Array.from({ length: n }, () => {
    const s = next(80)
    return {
      ts: new Date(Date.UTC(2013, 11, 1 + firstDay) + next(5 * 86_400) * 1000).toISOString(),
      src: s < 70 ? `198.51.${s}.${next(2)}` : `2001:db8::${s}`,
      dst: `203.0.113.${next(30)}`,
      dstPort: next(8) === 0 ? 40000 : 123,
      srcPort: 50000,
      cls: classes[next(classes.length)]!,
      country: ['CN', 'US', 'DE', 'JP'][s % 4]!,
      bogon: false,
    }
  })
}

describe('source_weekly', () => {
  /** The ranking straight from source_daily: what querySources must return, in order. */
  async function truth(s: Store, q: { from?: string; to?: string; class?: string; limit: number }) {
    const where = ['access']
    if (q.from) where.push(`day >= '${q.from}'`)
    if (q.to) where.push(`day <= '${q.to}'`)
    if (q.class) where.push(`toString(class) = '${q.class}'`)
    const rows = await s.query<{ a: string; p: string }>(
      `SELECT replaceRegexpOne(toString(src), '^::ffff:', '') AS a, toString(sum(packets)) AS p FROM source_daily WHERE ${where.join(' AND ')}
       GROUP BY src ORDER BY sum(packets) DESC, src ASC LIMIT ${q.limit}`,
    )
    return rows.map((r) => ({ address: r.a, packets: Number(r.p) }))
  }

  it('ranks sources of whole weeks from the weekly rollup, and of stale weeks from source_daily, alike', async () => {
    const d = tempDir()
    const s = await openStore({ dataDir: d.path, logger: silentLogger, host: false })
    try {
      // 2013-12-01 (a Sunday) + 0..24 days: weeks of Dec 2, 9, 16 whole, Dec 23 in part.
      const spread = (seed: number, n: number) => [0, 5, 10, 15, 20].flatMap((first) => packets(seed + first, n, first))
      await s.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(spread(10, 1500), 'a', 'd'.repeat(32)), 'd-0')
      const ranges = [
        { limit: 15 },
        { from: '2013-12-02', to: '2013-12-15', limit: 10 },
        { from: '2013-12-04', to: '2013-12-22', limit: 15 },
        { from: '2013-12-03', class: 'monlist', limit: 5 },
      ]
      const ranked = async () => {
        for (const r of ranges) {
          const got = await querySources(s, parseSourcesQuery(r))
          expect(
            got.map((g) => ({ address: g.address, packets: g.packets })),
            JSON.stringify(r),
          ).toEqual(await truth(s, r))
          // The range's totals (distinct sources from the same rows) agree with daily_agg's sets.
          const totals = { by: '', from: r.from, to: r.to, class: r.class }
          expect(await queryDaily(s, parseDailyQuery(totals)), JSON.stringify(r)).toEqual(
            await dailyFromStates(s, totals),
          )
        }
      }
      for (const table of WEEKLY_TABLES) expect(await freshWholeWeeks(s, {}, table), table).toEqual([])
      await ranked()
      await refreshRollup(s)
      for (const table of WEEKLY_TABLES) {
        // Without bounds every week is whole in the range.
        expect(await freshWholeWeeks(s, {}, table), table).toEqual([
          '2013-11-25',
          '2013-12-02',
          '2013-12-09',
          '2013-12-16',
          '2013-12-23',
        ])
        expect(await freshWholeWeeks(s, { from: '2013-12-03', to: '2013-12-22' }, table), table).toEqual([
          '2013-12-09',
          '2013-12-16',
        ])
      }
      await ranked()
      // More packets in the week of Dec 9 (Dec 10-14): it is stale, read from source_daily until refreshed.
      await s.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets(99, 3000, 9), 'b', 'e'.repeat(32)), 'e-0')
      for (const table of WEEKLY_TABLES) {
        expect(await staleWeeks(s, {}, table), table).toEqual(['2013-12-09'])
        expect(await staleWeeks(s, { from: '2013-12-10', to: '2013-12-11' }, table), table).toEqual(['2013-12-09'])
        expect(await staleWeeks(s, { from: '2013-12-16' }, table), table).toEqual([])
        expect(await freshWholeWeeks(s, {}, table), table).toEqual([
          '2013-11-25',
          '2013-12-02',
          '2013-12-16',
          '2013-12-23',
        ])
      }
      await ranked()
      await refreshRollup(s)
      for (const table of WEEKLY_TABLES) expect(await staleWeeks(s, {}, table), table).toEqual([])
      await ranked()
      // The totals are source_weekly's rows summed over sensor, country and class.
      const [same] = await s.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM (
           SELECT week, src, access, sum(packets) AS p FROM source_weekly FINAL GROUP BY week, src, access
           EXCEPT SELECT week, src, access, packets FROM source_weekly_totals FINAL)`,
      )
      expect(same!.n).toBe('0')
    } finally {
      await s.close()
      d.cleanup()
    }
  })

  it('ranks an unfiltered range from source_weekly_totals and a filtered one from source_weekly', async () => {
    const d = tempDir()
    const s = await openStore({ dataDir: d.path, logger: silentLogger, host: false })
    try {
      await s.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets(7, 4000, 1), 'a', 'd'.repeat(32)), 'd-0')
      await refreshRollup(s)
      const range = { from: '2013-12-02', to: '2013-12-08', limit: 5 }
      const before = await querySources(s, parseSourcesQuery(range))
      const monlist = await querySources(s, parseSourcesQuery({ ...range, class: 'monlist' }))
      expect(before).toHaveLength(5)
      // A row planted in one table at the week's current version: the ranking that reads it
      // puts a source first that source_daily does not know, and the summary drops it.
      const plant = (table: string, columns: string, values: string) =>
        s.command(
          `INSERT INTO ${table} (${columns}) SELECT toDate('2013-12-02'), toIPv6('192.0.2.99'), ${values}true, 1000000000,
             (SELECT max(version) FROM ${table} WHERE week = '2013-12-02')`,
        )
      const ranking = async (q: Record<string, unknown>) =>
        (await querySources(s, parseSourcesQuery({ ...range, ...q }))).map((r) => r.address)
      await plant('source_weekly_totals', 'week, src, access, packets, version', '')
      expect(await ranking({})).toEqual(before.slice(0, 4).map((r) => r.address))
      expect(await ranking({ class: 'monlist' })).toEqual(monlist.map((r) => r.address))
      await plant(
        'source_weekly',
        'week, src, sensor, country, class, access, packets, version',
        "'a', 'CN', 'monlist', ",
      )
      expect(await ranking({ class: 'monlist' })).toEqual(monlist.slice(0, 4).map((r) => r.address))
    } finally {
      await s.close()
      d.cleanup()
    }
  })
})
