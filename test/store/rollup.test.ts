import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NtpClass } from '../../core/event.js'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
import { dailyRollupSql, parseDailyQuery, queryDaily, READ_SETTINGS } from '../../store/queries.js'
import { refreshRollup, rollupPlan, staleRollup } from '../../store/rollup.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec, seededDraw } from '../helpers/packets.js'
import { dailyFromStates } from '../helpers/store.js'
import { tempDir } from '../helpers/tmp.js'

/** Packets over five days: sources shared between classes, countries, sensors and days. */
function packets(seed: number, n: number, firstDay = 0): PacketSpec[] {
  const next = seededDraw(seed)
  const classes: NtpClass[] = ['monlist', 'client', 'mode6_readvar', 'response', 'non_ntp']
  return Array.from({ length: n }, () => {
    const s = next(60)
    return {
      ts: new Date(Date.UTC(2013, 11, 1 + firstDay) + next(5 * 86_400) * 1000).toISOString(),
      src: s < 45 ? `198.51.${s}.${next(4)}` : `2001:db8::${s}`,
      dst: `203.0.113.${next(30)}`,
      dstPort: next(6) === 0 ? 40000 : 123,
      srcPort: next(6) === 0 ? 123 : 50000,
      cls: classes[next(classes.length)]!,
      country: ['CN', 'US', 'DE', 'JP', '--'][s % 5]!,
      bogon: false,
    }
  })
}

/** Every query form the rollup answers, and some it does not. */
const QUERIES: Record<string, unknown>[] = [
  {},
  { all: true },
  { by: 'day' },
  { by: 'day', class: 'monlist' },
  { by: 'day,country', class: 'monlist', sensor: 'b' },
  { by: 'day,sensor', all: true },
  { by: 'day,country,class', country: 'CN,JP' },
  { by: 'day,sensor,country,class', all: true },
  { by: 'day,class', from: '2013-12-02', to: '2013-12-04' },
  { by: 'day', country: 'US', class: 'client', sensor: 'a' },
  { by: 'day', country: 'CN,US' }, // a union of two countries' sources: from the states
  { by: 'country' }, // not per day: from the states
  { by: '' }, // totals: distinct addresses of source_daily
  { by: '', all: true, class: 'monlist,client', from: '2013-12-02' },
  { by: '', sensor: 'b', country: 'US' },
  { by: '', from: '2020-01-01' }, // no data: zeros
]

let store: Store
const dir = tempDir()
beforeAll(async () => {
  store = await openStore({ dataDir: dir.path, logger: silentLogger, host: false })
})
afterAll(async () => {
  await store.close()
  dir.cleanup()
})

const fromStates = (q: Record<string, unknown>) => dailyFromStates(store, q)

describe('daily rollup', () => {
  it('answers every per-day query exactly as the source sets do, and marks days stale when data arrives', async () => {
    await store.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets(1, 4000), 'a', 'a'.repeat(32)), 'a-0')
    await store.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets(2, 3000), 'b', 'b'.repeat(32)), 'b-0')
    // Five days, eight groupings of (sensor, country, class) each.
    expect(await staleRollup(store)).toHaveLength(40)
    await store.command('SYSTEM STOP MERGES daily_rollup')
    // 40 (day, grouping) pairs and the two weeks (Nov 25 and Dec 2) of source_weekly and of
    // source_weekly_totals, at most 3,000 packets per statement: the 7,000 packets of five days
    // take three statements.
    expect(await refreshRollup(store, undefined, { packetsPerStatement: 3000 })).toBe(44)
    // One part per statement: a day's groupings are stored whole or not at all.
    const parts = async () =>
      Number(
        (
          await store.query<{ n: string }>(
            "SELECT toString(count()) AS n FROM system.parts WHERE active AND table = 'daily_rollup' AND database = currentDatabase()",
          )
        )[0]!.n,
      )
    expect(await parts()).toBe(3)
    await store.command('SYSTEM START MERGES daily_rollup')
    expect(await staleRollup(store)).toEqual([])
    expect(await refreshRollup(store)).toBe(0)

    for (const q of QUERIES) {
      const parsed = parseDailyQuery(q)
      const expected = await fromStates(q)
      expect(expected.length, JSON.stringify(q)).toBeGreaterThan(0)
      expect(await queryDaily(store, parsed), JSON.stringify(q)).toEqual(expected)
      // The rollup alone (no stale day) gives the same rows where it applies.
      const rollup = dailyRollupSql(parsed, [])
      expect(rollup === undefined, JSON.stringify(q)).toBe(rollupPlan(parsed) === undefined)
      if (rollup) {
        const rows = await store.query<Record<string, unknown>>(rollup.sql, rollup.params, READ_SETTINGS)
        expect(rows.map((r) => ({ ...r, packets: Number(r.packets), sources: Number(r.sources) }))).toEqual(expected)
      }
    }

    // New packets for days 3..7: those days are stale, their figures come from the states.
    await store.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets(3, 2000, 3), 'a', 'c'.repeat(32)), 'c-0')
    const staleDays = [...new Set((await staleRollup(store)).map((s) => s.day))]
    expect(staleDays).toEqual(['2013-12-04', '2013-12-05', '2013-12-06', '2013-12-07', '2013-12-08'])
    expect(
      (await staleRollup(store, { from: '2013-12-05', to: '2013-12-05' }, 2)).map(({ day, keys }) => ({ day, keys })),
    ).toEqual([{ day: '2013-12-05', keys: 2 }])
    for (const q of QUERIES) {
      expect(await queryDaily(store, parseDailyQuery(q)), JSON.stringify(q)).toEqual(await fromStates(q))
    }
    // A stale day's old rollup rows are wrong now: the query must not have used them.
    const stale = dailyRollupSql(parseDailyQuery({ by: 'day' }), [])!
    const old = await store.query<{ day: string; packets: number }>(stale.sql, stale.params, READ_SETTINGS)
    const now = (await fromStates({ by: 'day' })) as unknown as Array<{ day: string; packets: number }>
    expect(old.find((r) => r.day === '2013-12-04')!.packets).toBeLessThan(
      now.find((r) => r.day === '2013-12-04')!.packets,
    )

    expect(await refreshRollup(store)).toBe(42) // and the week of Dec 2 in both weekly rollups
    expect(await staleRollup(store)).toEqual([])
    for (const q of QUERIES) {
      const parsed = parseDailyQuery(q)
      const expected = await fromStates(q)
      expect(await queryDaily(store, parsed), JSON.stringify(q)).toEqual(expected)
      const rollup = dailyRollupSql(parsed, [])
      if (rollup) {
        const rows = await store.query<Record<string, unknown>>(rollup.sql, rollup.params, READ_SETTINGS)
        expect(rows.map((r) => ({ ...r, packets: Number(r.packets), sources: Number(r.sources) }))).toEqual(expected)
      }
    }
  })
})
