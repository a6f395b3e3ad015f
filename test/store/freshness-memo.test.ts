import { describe, expect, it } from 'vitest'
import { parseDailyQuery, queryDaily } from '../../store/queries.js'
import { parseSourcesQuery, querySources } from '../../store/research.js'
import { refreshRollup } from '../../store/rollup.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec, seededDraw } from '../helpers/packets.js'
import { dailyFromStates, embeddedStoreForFile } from '../helpers/store.js'

/** Monlist probes over ten days from 2013-12-02 (a Monday) plus `firstDay`. */
function probes(seed: number, n: number, firstDay = 0): PacketSpec[] {
  const next = seededDraw(seed)
  return Array.from({ length: n }, () => {
    const s = next(50)
    return {
      ts: new Date(Date.UTC(2013, 11, 2 + firstDay) + next(10 * 86_400) * 1000).toISOString(),
      src: `198.51.100.${s}`,
      dst: `203.0.113.${next(20)}`,
      dstPort: 123,
      srcPort: 50000,
      cls: 'monlist',
      country: ['CN', 'US', 'JP'][s % 3]!,
      bogon: false,
    }
  })
}

/** The store, with every statement's SQL recorded. */
function recording(store: Store): { store: Store; sql: string[] } {
  const sql: string[] = []
  const proxy = new Proxy(store, {
    get(target, key) {
      if (key === 'query') {
        return (text: string, ...rest: unknown[]) => {
          sql.push(text)
          return (target.query as (...a: unknown[]) => Promise<unknown>)(text, ...rest)
        }
      }
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { store: proxy, sql }
}

/** How many of the recorded statements were freshness checks (they compare against versions). */
const checks = (sql: string[]) => sql.filter((s) => /max\(version\)/.test(s)).length

let base: Store
embeddedStoreForFile((s) => {
  base = s
})
let batch = 0
const insert = (packets: PacketSpec[]) =>
  base.insertRowBinary('events', EVENT_STRUCTURE, encodeRows(packets, 'a', 'e'.repeat(32)), `e-${batch++}`)
const fromStates = (q: Record<string, unknown>) => dailyFromStates(base, q)

describe('freshness checks of the rollups', () => {
  it('are asked every time while a table they read has no parts to tell its changes by', async () => {
    const { store, sql } = recording(base)
    const q = parseDailyQuery({ by: 'day,country', from: '2013-12-02', to: '2013-12-15' })
    expect(await queryDaily(store, q)).toEqual([])
    expect(await queryDaily(store, q)).toEqual([])
    expect(checks(sql)).toBe(2)
  })

  it('are asked once while no part changes, and again after an insert, a merge or a refresh', async () => {
    await insert(probes(1, 3000))
    await refreshRollup(base)
    const { store, sql } = recording(base)
    const q = { by: 'day,country', from: '2013-12-02', to: '2013-12-15' }
    const first = await queryDaily(store, parseDailyQuery(q))
    expect(first).toEqual(await fromStates(q))
    expect(checks(sql)).toBe(1)
    // Nothing changed: the same answer without checking again.
    expect(await queryDaily(store, parseDailyQuery(q))).toEqual(first)
    expect(checks(sql)).toBe(1)
    // Another grouping or range is another check.
    await queryDaily(store, parseDailyQuery({ by: 'day', from: '2013-12-02', to: '2013-12-15' }))
    expect(checks(sql)).toBe(2)

    // New packets for days the rollup holds: checked again, and those days come from the states.
    await insert(probes(2, 1000, 3))
    const afterInsert = await queryDaily(store, parseDailyQuery(q))
    expect(checks(sql)).toBe(3)
    expect(afterInsert).toEqual(await fromStates(q))
    expect(afterInsert).not.toEqual(first)

    // A merge changes parts, not rows: checked again, same answer.
    await base.command('OPTIMIZE TABLE daily_agg FINAL')
    expect(await queryDaily(store, parseDailyQuery(q))).toEqual(afterInsert)
    expect(checks(sql)).toBe(4)

    // A refresh: checked again, the rollup answers, and then it is remembered again.
    await refreshRollup(base)
    expect(await queryDaily(store, parseDailyQuery(q))).toEqual(afterInsert)
    expect(await queryDaily(store, parseDailyQuery(q))).toEqual(afterInsert)
    expect(checks(sql)).toBe(5)
  })

  it("are remembered per store: another store's answers are its own", async () => {
    // One data directory per process: a second Store object over the same one stands for another
    // store (a server's, a host's), which must not be answered from this one's memory.
    const q = { by: 'day,country', from: '2013-12-02', to: '2013-12-15' }
    await queryDaily(base, parseDailyQuery(q))
    const { store, sql } = recording(base)
    await queryDaily(store, parseDailyQuery(q))
    expect(checks(sql)).toBe(1)
  })

  it('rank sources with one weekly check while no part changes, and see new packets at once', async () => {
    const { store, sql } = recording(base)
    const q = parseSourcesQuery({ from: '2013-12-02', to: '2013-12-15', limit: 5 })
    const before = await querySources(store, q)
    const n = checks(sql)
    expect(n).toBe(1)
    expect(await querySources(store, q)).toEqual(before)
    expect(checks(sql)).toBe(n)
    // A new source outranks them all in the first whole week, which the weekly rollup holds.
    await insert(
      Array.from({ length: 5000 }, (_, i) => ({
        ts: new Date(Date.UTC(2013, 11, 3) + i * 1000).toISOString(),
        src: '192.0.2.77',
        dst: `203.0.113.${i % 20}`,
        dstPort: 123,
        srcPort: 50000,
        cls: 'monlist' as const,
        country: 'DE',
        bogon: false,
      })),
    )
    const after = await querySources(store, q)
    expect(checks(sql)).toBe(n + 1)
    expect(after[0]).toMatchObject({ address: '192.0.2.77', packets: 5000 })
  })
})
