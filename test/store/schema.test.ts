import { afterAll, describe, expect, it } from 'vitest'
import type { NtpClass } from '../../core/event.js'
import { silentLogger } from '../../core/logger.js'
import { batchToken } from '../../pipeline/sink.js'
import { openStore } from '../../store/open.js'
import { dailySql, parseDailyQuery, queryDaily, READ_SETTINGS } from '../../store/queries.js'
import { hourlyLayoutOf, hourlySql, parseHourlyQuery, queryHourly } from '../../store/research.js'
import { refreshRollup } from '../../store/rollup.js'
import {
  COMPACT_PART_BYTES,
  DARK_ADDRESSES_SQL,
  EVENT_STRUCTURE,
  FEWER_MERGES_TABLES,
  MIGRATIONS,
  MIN_PARTS_TO_MERGE,
} from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec, seededDraw } from '../helpers/packets.js'
import { tempDir } from '../helpers/tmp.js'

const dirs: { cleanup: () => void }[] = []
afterAll(() => {
  for (const d of dirs) d.cleanup()
})

/** Deterministic packets over three days: repeated sources and dark addresses, both directions. */
function packets(seed: number, n: number): PacketSpec[] {
  const next = seededDraw(seed)
  const classes: NtpClass[] = ['monlist', 'client', 'mode6_readvar', 'non_ntp']
  const out: PacketSpec[] = []
  for (let i = 0; i < n; i++) {
    const s = next(40)
    out.push({
      ts: new Date(Date.UTC(2013, 11, 1) + next(3 * 86_400) * 1000 + next(1000)).toISOString(),
      src: s < 30 ? `198.51.${s}.${next(3)}` : `2001:db8::${s}`,
      // A quarter to IPv6 dark addresses, from either family: both sets of a source-day fill.
      dst: next(1000) < 250 ? `2001:db8:dead::${next(25)}` : `203.0.113.${next(25)}`,
      dstPort: next(10) === 0 ? 5555 : 123,
      srcPort: 40000 + next(2),
      cls: classes[next(classes.length)]!,
      country: ['CN', 'US', 'DE', '--'][s % 4]!,
      bogon: s === 7,
    })
  }
  return out
}

const encode = encodeRows

/** A new data directory, removed after the file's tests, and how to open a store on it. */
function newStoreDir() {
  const dir = tempDir()
  dirs.push(dir)
  return () => openStore({ dataDir: dir.path, logger: silentLogger, host: false })
}

/** Every migration this teiten knows is recorded (versions missing below the highest included). */
async function expectEveryVersion(store: Store) {
  const versions = await store.query<{ v: number }>(
    'SELECT DISTINCT toUInt32(version) AS v FROM schema_migrations ORDER BY v',
  )
  expect(versions.map((r) => r.v)).toEqual(MIGRATIONS.map((m) => m.version))
}

/**
 * A new store taken back to an older schema by `downgrade` (which undoes what `versions` did),
 * those versions unrecorded, then opened again: `upgraded` gets it once every migration ran.
 */
async function upgradeFrom(
  versions: number[],
  downgrade: (store: Store) => Promise<void>,
  upgraded: (store: Store) => Promise<void>,
): Promise<void> {
  const open = newStoreDir()
  let store = await open()
  try {
    await downgrade(store)
    const unrecord =
      'ALTER TABLE schema_migrations DELETE WHERE version IN {v:Array(UInt32)} SETTINGS mutations_sync = 2'
    await store.command(unrecord, { v: versions })
  } finally {
    await store.close()
  }
  store = await open()
  try {
    await expectEveryVersion(store)
    await upgraded(store)
  } finally {
    await store.close()
  }
}

const KEYS = 'sensor, toString(country) AS country, toString(class) AS class, toUInt8(access) AS access'
const HOURLY_KEYS: [string, string][] = [
  ['toString(hour)', 'k_hour'],
  ['sensor', 'k_sensor'],
  ['toString(country)', 'k_country'],
  ['toString(class)', 'k_class'],
  ['toUInt8(access)', 'k_access'],
]

/** Each aggregate table, merged, next to the same figures recounted from the raw events. */
async function aggregatesAndRecount(store: Store) {
  const q = (sql: string) => store.query(`${sql} ORDER BY ALL`)
  return {
    daily: await q(
      `SELECT toString(day) AS day, ${KEYS}, toUInt64(sum(packets)) AS packets, toUInt64(uniqExactMerge(sources)) AS sources FROM daily_agg GROUP BY ALL`,
    ),
    dailyRecount: await q(
      `SELECT toString(toDate(ts)) AS day, sensor, toString(country) AS country, toString(class) AS class, toUInt8(dst_port = 123) AS access, toUInt64(count()) AS packets, toUInt64(uniqExact(src)) AS sources FROM events GROUP BY ALL`,
    ),
    hourly: await q(hourlySql(await hourlyLayoutOf(store), HOURLY_KEYS, { hours: [], days: [], filters: [] })),
    hourlyRecount: await q(
      `SELECT toString(toStartOfHour(ts)) AS k_hour, sensor AS k_sensor, toString(country) AS k_country, toString(class) AS k_class, toUInt8(dst_port = 123) AS k_access, toUInt64(count()) AS packets, toUInt64(uniqExact(src)) AS sources FROM events GROUP BY ALL`,
    ),
    sources: await q(
      `SELECT toString(day) AS day, toString(src) AS src, ${KEYS}, max(bogon) AS bogon, toUInt64(sum(packets)) AS packets, toString(min(first_seen)) AS first, toString(max(last_seen)) AS last, toUInt64(${DARK_ADDRESSES_SQL}) AS dsts FROM source_daily GROUP BY ALL`,
    ),
    sourcesRecount: await q(
      `SELECT toString(toDate(ts)) AS day, toString(src) AS src, sensor, toString(country) AS country, toString(class) AS class, toUInt8(dst_port = 123) AS access, max(bogon) AS bogon, toUInt64(count()) AS packets, toString(min(ts)) AS first, toString(max(ts)) AS last, toUInt64(uniqExact(dst)) AS dsts FROM events GROUP BY ALL`,
    ),
  }
}

/** `{ name: value }` of a query's rows; an empty value reads as `empty`. */
async function valuesByName(store: Store, sql: string, empty = ''): Promise<Record<string, string>> {
  const rows = await store.query<{ name: string; value: string }>(sql)
  return Object.fromEntries(rows.map((r) => [r.name, r.value === '' ? empty : r.value]))
}

function expectAgreement(a: Awaited<ReturnType<typeof aggregatesAndRecount>>, events: number) {
  expect(a.dailyRecount.reduce((n, r) => n + Number(r.packets), 0)).toBe(events)
  expect({ hourly: a.hourly, sources: a.sources }).toEqual({ hourly: a.hourlyRecount, sources: a.sourcesRecount })
  expect(a.daily).toEqual(a.dailyRecount)
}

describe('aggregate views and schema v4', () => {
  it('agree with a recount of the events, batches sent again (also after a restart) included', async () => {
    const open = newStoreDir()
    const a = encode(packets(1, 3000), 'sensor-a', 'a'.repeat(32))
    const b = encode(packets(2, 2000), 'sensor-b', 'b'.repeat(32))
    let store = await open()
    try {
      await store.insertRowBinary('events', EVENT_STRUCTURE, a, batchToken('a'.repeat(32), 0))
      await store.insertRowBinary('events', EVENT_STRUCTURE, b, batchToken('b'.repeat(32), 0))
      // A crash re-run sends the same blocks again under the same tokens: dropped at every level.
      await store.insertRowBinary('events', EVENT_STRUCTURE, a, batchToken('a'.repeat(32), 0))
      // The same rows under another token are new rows, and every aggregate counts them.
      await store.insertRowBinary('events', EVENT_STRUCTURE, a, batchToken('a'.repeat(32), 1))
    } finally {
      await store.close()
    }
    store = await open()
    try {
      await store.insertRowBinary('events', EVENT_STRUCTURE, b, batchToken('b'.repeat(32), 0))
      const agg = await aggregatesAndRecount(store)
      expectAgreement(agg, 8000)
      expect(agg.daily.length).toBeGreaterThan(20)
      expect(agg.sources.some((r) => Number(r.dsts) > 1)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 2 gets version 4 and counts every block once', async () => {
    // Back to what version 2 left: the default part format, and versions 2 and 4 unrecorded
    // (a version missing below the highest one is applied too).
    const downgrade = async (store: Store) => {
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(3, 1500), 's', 'c'.repeat(32)), 'c-0')
      for (const t of ['events', 'daily_agg', 'hourly_agg', 'source_daily']) {
        await store.command(`ALTER TABLE ${t} RESET SETTING min_bytes_for_wide_part`)
      }
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(4, 1500), 's', 'd'.repeat(32)), 'd-0')
    }
    await upgradeFrom([2, 4], downgrade, async (store) => {
      const [events] = await store.query<{ q: string }>(
        "SELECT create_table_query AS q FROM system.tables WHERE name = 'events'",
      )
      expect(events!.q).toContain(`min_bytes_for_wide_part = ${COMPACT_PART_BYTES}`)
      // Old states and new blocks merge into the same exact figures; a block stored before the
      // upgrade and sent again after it (an interrupted run resumed) is dropped.
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(5, 1500), 't', 'e'.repeat(32)), 'e-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(4, 1500), 's', 'd'.repeat(32)), 'd-0')
      expectAgreement(await aggregatesAndRecount(store), 4500)
    })
  })

  it('partitions a new store by week and stores a batch spanning three years in one insert', async () => {
    const store = await newStoreDir()()
    try {
      const weeks = 150
      const specs: PacketSpec[] = Array.from({ length: weeks }, (_, i) => ({
        ts: new Date(Date.UTC(2013, 0, 7) + i * 7 * 86_400_000 + 3_600_000).toISOString(),
        src: `198.51.100.${i % 200}`,
        dst: '203.0.113.1',
        dstPort: 123,
        srcPort: 40000,
        cls: 'monlist',
        country: 'JP',
        bogon: false,
      }))
      // More weeks than ClickHouse's default limit of 100 partitions per inserted block.
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(specs, 's', 'f'.repeat(32)), 'f-0')
      const keys = await store.query<{ name: string; partition_key: string }>(
        `SELECT name, partition_key FROM system.tables WHERE database = currentDatabase()
           AND name IN ('events', 'daily_agg', 'hourly_agg', 'source_daily') ORDER BY name`,
      )
      expect(keys).toEqual([
        { name: 'daily_agg', partition_key: 'toMonday(day)' },
        { name: 'events', partition_key: 'toMonday(ts)' },
        { name: 'hourly_agg', partition_key: 'toMonday(hour)' },
        { name: 'source_daily', partition_key: 'toMonday(day)' },
      ])
      const [parts] = await store.query<{ p: number }>(
        "SELECT toUInt32(uniqExact(partition)) AS p FROM system.parts WHERE active AND table = 'events' AND database = currentDatabase()",
      )
      expect(parts!.p).toBe(weeks)
      expectAgreement(await aggregatesAndRecount(store), weeks)
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 4 gets the rollups; its figures are exact before and after the first refresh', async () => {
    // Back to version 4: no rollup tables, versions 5 and 6 unrecorded.
    const downgrade = async (store: Store) => {
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(6, 2500), 's', '6'.repeat(32)), '6-0')
      await store.command('DROP TABLE daily_rollup')
      await store.command('DROP TABLE source_weekly')
    }
    await upgradeFrom([5, 6], downgrade, async (store) => {
      const forms = [{}, { by: 'day,class', all: true }, { by: '' }, { by: 'day', country: 'CN' }]
      const fromStates = async (q: Record<string, unknown>) => {
        const { sql, params } = dailySql(parseDailyQuery(q))
        return (await store.query<Record<string, unknown>>(sql, params, READ_SETTINGS)).map((r) => ({
          ...r,
          packets: Number(r.packets),
          sources: Number(r.sources),
        }))
      }
      // Nothing refreshed yet: every day is stale and comes from the aggregates.
      for (const q of forms) expect(await queryDaily(store, parseDailyQuery(q))).toEqual(await fromStates(q))
      expect(await refreshRollup(store)).toBeGreaterThan(0)
      for (const q of forms) expect(await queryDaily(store, parseDailyQuery(q))).toEqual(await fromStates(q))
      const [rows] = await store.query<{ n: string }>('SELECT toString(count()) AS n FROM daily_rollup')
      expect(Number(rows!.n)).toBeGreaterThan(0)
    })
  })

  /** Column codecs of `events` since schema v7, as system.columns names them. */
  const EVENT_CODECS = {
    ts: 'CODEC(Delta(8), LZ4)',
    record: 'CODEC(Delta(8), LZ4)',
    ip_len: 'CODEC(T64, LZ4)',
    udp_len: 'CODEC(T64, LZ4)',
    payload_len: 'CODEC(T64, LZ4)',
    wire_len: 'CODEC(T64, LZ4)',
  }

  it('a store at schema version 6 gets the events codecs: its rows, old parts and new, read back the same and count exactly', async () => {
    const codecs = (store: Store) =>
      valuesByName(
        store,
        `SELECT name, compression_codec AS value FROM system.columns
         WHERE database = currentDatabase() AND table = 'events' AND compression_codec != ''`,
      )
    const rows = (store: Store) =>
      store.query<Record<string, unknown>>(
        'SELECT toString(ts) AS ts, record, ip_len, udp_len, payload_len, wire_len, file_id FROM events ORDER BY file_id, record',
      )
    let before: Record<string, unknown>[] = []
    // Back to what version 6 left: no column codecs (LZ4 throughout), version 7 unrecorded.
    const downgrade = async (store: Store) => {
      expect(await codecs(store)).toEqual(EVENT_CODECS)
      await store.command(
        `ALTER TABLE events ${Object.keys(EVENT_CODECS)
          .map((c) => `MODIFY COLUMN ${c} REMOVE CODEC`)
          .join(', ')}`,
      )
      expect(await codecs(store)).toEqual({})
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(7, 3000), 's', '7'.repeat(32)), '7-0')
      before = await rows(store)
    }
    await upgradeFrom([7], downgrade, async (store) => {
      expect(await codecs(store)).toEqual(EVENT_CODECS)
      expect(await rows(store)).toEqual(before)
      // A part written under the codecs, merged with the one written before them.
      await store.insertRowBinary('events', EVENT_STRUCTURE, encode(packets(8, 3000), 't', '8'.repeat(32)), '8-0')
      await store.command('OPTIMIZE TABLE events FINAL')
      const after = await rows(store)
      expect(after.length).toBe(6000)
      expect(after.filter((r) => r.file_id === '7'.repeat(32))).toEqual(before)
      expectAgreement(await aggregatesAndRecount(store), 6000)
    })
  })

  it('a store at schema version 7 gets merges of ten parts or more on events and the daily/hourly aggregates; its weeks still merge and count exactly', async () => {
    // The table's own setting as its CREATE statement names it, 'default' when it has none.
    const minParts = (store: Store) =>
      valuesByName(
        store,
        `SELECT name, extract(create_table_query, 'min_parts_to_merge_at_once = (\\d+)') AS value FROM system.tables
         WHERE database = currentDatabase() AND name IN ('events', 'daily_agg', 'hourly_agg', 'source_daily')`,
        'default',
      )
    const upgraded = { events: '10', daily_agg: '10', hourly_agg: '10', source_daily: 'default' }
    // Back to what version 7 left: ClickHouse's default merge selection, version 8 unrecorded.
    const downgrade = async (store: Store) => {
      expect(await minParts(store)).toEqual(upgraded)
      for (const t of FEWER_MERGES_TABLES) {
        await store.command(`ALTER TABLE ${t} RESET SETTING min_parts_to_merge_at_once`)
      }
      expect(Object.values(await minParts(store))).toEqual(['default', 'default', 'default', 'default'])
    }
    await upgradeFrom([8], downgrade, async (store) => {
      expect(await minParts(store)).toEqual(upgraded)
      // Two weeks (1 December 2013 is a Sunday), a part in each per insert.
      const insert = (b: number) =>
        store.insertRowBinary(
          'events',
          EVENT_STRUCTURE,
          encode(packets(20 + b, 500), 's', b.toString(16).repeat(32)),
          `m-${b}`,
        )
      const mostParts = async () =>
        Number(
          (
            await store.query<{ n: string }>(
              `SELECT toString(max(n)) AS n FROM (SELECT partition, count() AS n FROM system.parts
               WHERE active AND database = currentDatabase() AND table = 'events' GROUP BY partition)`,
            )
          )[0]!.n,
        )
      // One part short of a merge: under the default selection these merge within a second.
      for (let b = 0; b < MIN_PARTS_TO_MERGE - 1; b++) await insert(b)
      await new Promise((r) => setTimeout(r, 3000))
      expect(await mostParts()).toBe(MIN_PARTS_TO_MERGE - 1)
      // Three more: the week's parts merge, and every figure still agrees with a recount.
      const inserts = MIN_PARTS_TO_MERGE + 2
      for (let b = MIN_PARTS_TO_MERGE - 1; b < inserts; b++) await insert(b)
      const until = Date.now() + 60_000
      while ((await mostParts()) >= MIN_PARTS_TO_MERGE && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 250))
      }
      expect(await mostParts()).toBeLessThan(MIN_PARTS_TO_MERGE)
      expectAgreement(await aggregatesAndRecount(store), inserts * 500)
    })
  }, 120_000)

  /** Which views read `events` and `source_daily` (a view is a dependency of the table it reads). */
  const readers = (store: Store) =>
    valuesByName(
      store,
      `SELECT name, arrayStringConcat(arraySort(dependencies_table), ',') AS value FROM system.tables
       WHERE database = currentDatabase() AND name IN ('events', 'source_daily')`,
    )
  const CHAINED = { events: 'hourly_agg_mv,source_daily_mv', source_daily: 'daily_agg_mv' }
  const FROM_EVENTS = { events: 'daily_agg_mv,hourly_agg_mv,source_daily_mv', source_daily: '' }
  const v1DailyView = MIGRATIONS[0]!.statements.find((s) => s.includes('daily_agg_mv'))!
  const v9 = MIGRATIONS.find((m) => m.version === 9)!
  const batch = (seed: number, id: string) => encode(packets(seed, 2000), `s${seed}`, id.repeat(32))
  /** What schema_migrations says of `version`: its description, or why the store kept what it had. */
  const description = async (store: Store, version: number) =>
    (
      await store.query<{ d: string }>('SELECT description AS d FROM schema_migrations WHERE version = {v:UInt32}', {
        v: version,
      })
    )[0]!.d

  it('a new store fills the daily aggregate from the source-day rows; a batch re-sent after a crash between the views completes what was missing, once, also after a restart', async () => {
    const open = newStoreDir()
    let store = await open()
    try {
      expect(await readers(store)).toEqual(CHAINED)
      expect(await description(store, 9)).toBe(v9.description)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(31, 'b'), 'b-0')
      expectAgreement(await aggregatesAndRecount(store), 2000)
      // A crash after events, source_daily and hourly_agg stored a block, before daily_agg did:
      // the daily view is not there while the block goes in.
      await store.command('DROP VIEW daily_agg_mv')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(32, 'c'), 'c-0')
      const partial = await aggregatesAndRecount(store)
      expect(partial.daily).not.toEqual(partial.dailyRecount)
      for (const statement of v9.statements) await store.command(statement)
      expect(await readers(store)).toEqual(CHAINED)
      // The re-run sends it again under its token: only daily_agg takes it.
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(32, 'c'), 'c-0')
      expectAgreement(await aggregatesAndRecount(store), 4000)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(32, 'c'), 'c-0')
    } finally {
      await store.close()
    }
    store = await open()
    try {
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(31, 'b'), 'b-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(32, 'c'), 'c-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(33, 'd'), 'd-0')
      expectAgreement(await aggregatesAndRecount(store), 6000)
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 8 that holds data keeps its daily view reading the events, and blocks stored before the upgrade and sent again after it count once', async () => {
    // Back to what version 8 left: the daily view reads the events.
    const downgrade = async (store: Store) => {
      await store.command('DROP VIEW daily_agg_mv')
      await store.command(v1DailyView)
      expect(await readers(store)).toEqual(FROM_EVENTS)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(30, 'a'), 'a-0')
    }
    await upgradeFrom([9], downgrade, async (store) => {
      expect(await readers(store)).toEqual(FROM_EVENTS)
      expect(await description(store, 9)).toBe(v9.kept)
      // A run interrupted before the upgrade, resumed after it: its stored block comes again.
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(30, 'a'), 'a-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(31, 'b'), 'b-0')
      expectAgreement(await aggregatesAndRecount(store), 4000)
    })
  })

  it('a store at schema version 8 that holds no data gets the daily view chained to the source-day rows', async () => {
    const downgrade = async (store: Store) => {
      await store.command('DROP VIEW daily_agg_mv')
      await store.command(v1DailyView)
      expect(await readers(store)).toEqual(FROM_EVENTS)
    }
    await upgradeFrom([9], downgrade, async (store) => {
      expect(await readers(store)).toEqual(CHAINED)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(34, 'e'), 'e-0')
      expectAgreement(await aggregatesAndRecount(store), 2000)
    })
  })

  const IPV4 = "dst BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255')"
  /** Per source over the whole store (days merged): each dark-address set next to a recount. */
  const darkAddresses = async (store: Store) => ({
    stored: await store.query(
      `SELECT toString(src) AS src, toUInt64(uniqExactMerge(dsts)) AS other, toUInt64(groupBitmapMerge(dsts_v4)) AS v4,
              toUInt64(${DARK_ADDRESSES_SQL}) AS all FROM source_daily GROUP BY src ORDER BY src`,
    ),
    recount: await store.query(
      `SELECT toString(src) AS src, toUInt64(uniqExactIf(dst, NOT (${IPV4}))) AS other, toUInt64(uniqExactIf(dst, ${IPV4})) AS v4,
              toUInt64(uniqExact(dst)) AS all FROM events GROUP BY src ORDER BY src`,
    ),
  })
  /** The statement that made a view, as the store has it. */
  const viewQuery = async (store: Store, name: string) =>
    (
      await store.query<{ q: string }>(
        'SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = {name:String}',
        { name },
      )
    )[0]!.q
  const sourceView = (store: Store) => viewQuery(store, 'source_daily_mv')
  const v1SourceView = MIGRATIONS[0]!.statements.find((s) => s.includes('source_daily_mv'))!
  const v11 = MIGRATIONS.find((m) => m.version === 11)!
  const v11SourceView = v11.statements.find((s) => s.startsWith('CREATE'))!
  const v1HourlyView = MIGRATIONS[0]!.statements.find((s) => s.includes('hourly_agg_mv'))!
  const v15 = MIGRATIONS.find((m) => m.version === 15)!
  const hourlyView = (store: Store) => viewQuery(store, 'hourly_agg_mv')
  /** Where the stored hourly sources are: sets in hourly_agg, and source-day rows with hours. */
  const hourlyLayout = async (store: Store) => ({
    hourlySets: Number(
      (await store.query<{ n: string }>('SELECT toString(uniqExactMerge(sources)) AS n FROM hourly_agg'))[0]!.n,
    ),
    rowsWithHours: Number(
      (await store.query<{ n: string }>('SELECT toString(countIf(hours != 0)) AS n FROM source_daily'))[0]!.n,
    ),
  })
  /** A downgrade: `statements` undo what later versions did, then `block` is stored under the old schema. */
  const backTo = (statements: string[]) => (block?: { body: () => Buffer; token: string }) => async (store: Store) => {
    for (const statement of statements) await store.command(statement)
    if (block) await store.insertRowBinary('events', EVENT_STRUCTURE, block.body(), block.token)
  }
  /** What version 13 left: a set per hour in hourly_agg, no hours column. */
  const VERSION_13 = [
    'DROP VIEW source_daily_mv',
    'DROP VIEW hourly_agg_mv',
    'ALTER TABLE source_daily DROP COLUMN hours',
    v11SourceView,
    v1HourlyView,
  ]
  const backToVersion13 = backTo(VERSION_13)

  it('a new store counts hourly sources from the hours of its source-day rows, hourly_agg keeping the packets; re-sent blocks count once', async () => {
    const open = newStoreDir()
    const store = await open()
    try {
      expect(await description(store, 15)).toBe(v15.description)
      expect(await hourlyView(store)).not.toContain('sources')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(50, 'k'), 'k-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(51, 'l'), 'l-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(50, 'k'), 'k-0')
      const layout = await hourlyLayout(store)
      expect(layout.hourlySets).toBe(0)
      expect(layout.rowsWithHours).toBeGreaterThan(0)
      const agg = await aggregatesAndRecount(store)
      expectAgreement(agg, 4000)
      // Sources that sent in more than one hour of a day: one source-day row, counted in each hour.
      expect(agg.hourly.length).toBeGreaterThan(agg.sources.length / 2)
      // The hourly query (teiten hourly, /api/hourly) over one day and a filter, against a recount.
      const day = '2013-12-02'
      const answer = await queryHourly(store, parseHourlyQuery({ day, by: 'hour,country', class: 'monlist' }))
      const recount = await store.query<{ hour: string; country: string; packets: string; sources: string }>(
        `SELECT formatDateTime(toStartOfHour(ts), '%Y-%m-%dT%H:00:00Z') AS hour, toString(country) AS country,
                toString(count()) AS packets, toString(uniqExact(src)) AS sources
         FROM events WHERE toDate(ts) = {day:Date} AND dst_port = 123 AND class = 'monlist'
         GROUP BY hour, country ORDER BY hour, count() DESC, country`,
        { day },
      )
      expect(answer.length).toBeGreaterThan(10)
      expect(answer).toEqual(recount.map((r) => ({ ...r, packets: Number(r.packets), sources: Number(r.sources) })))
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 13 that holds data keeps its hourly sets, and blocks stored before the upgrade and sent again after it count once', async () => {
    await upgradeFrom([14, 15, 16], backToVersion13({ body: () => batch(52, 'm'), token: 'm-0' }), async (store) => {
      expect(await description(store, 15)).toBe(v15.kept)
      expect(await hourlyView(store)).toContain('sources')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(52, 'm'), 'm-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(53, 'n'), 'n-0')
      const layout = await hourlyLayout(store)
      expect(layout.hourlySets).toBeGreaterThan(0)
      expect(layout.rowsWithHours).toBe(0)
      expectAgreement(await aggregatesAndRecount(store), 4000)
    })
  })

  it('a store at schema version 13 that holds no data gets its hourly sources from the source-day rows', async () => {
    await upgradeFrom([14, 15, 16], backToVersion13(), async (store) => {
      expect(await description(store, 15)).toBe(v15.description)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(54, 'o'), 'o-0')
      const layout = await hourlyLayout(store)
      expect(layout).toEqual({ hourlySets: 0, rowsWithHours: expect.any(Number) })
      expect(layout.rowsWithHours).toBeGreaterThan(0)
      expectAgreement(await aggregatesAndRecount(store), 2000)
    })
  })

  const v16 = MIGRATIONS.find((m) => m.version === 16)!
  /** One insert holding three sensors' packets: each block's sensor and country dictionaries hold several values. */
  const mixedBlock = (seed: number, id: string) =>
    Buffer.concat(
      ['s-east', 's-west', 's-north'].map((sensor, i) => encode(packets(seed + i, 1500), sensor, id.repeat(32))),
    )
  const packed = async (store: Store) => ({
    source: (await sourceView(store)).includes('lowCardinalityIndices'),
    hourly: (await hourlyView(store)).includes('lowCardinalityIndices'),
  })
  /** What version 15 left: the source-day and hourly views grouped by the columns themselves. */
  const backToVersion15 = backTo(v15.statements.filter((s) => !s.startsWith('ALTER')))

  it('a new store groups each block of its source-day and hourly views by one packed key: inserts of several sensors and countries agree with a recount, re-sent blocks count once', async () => {
    const open = newStoreDir()
    const store = await open()
    try {
      expect(await description(store, 16)).toBe(v16.description)
      expect(await packed(store)).toEqual({ source: true, hourly: true })
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(60, 'p'), 'p-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(63, 'q'), 'q-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(60, 'p'), 'p-0')
      const agg = await aggregatesAndRecount(store)
      expectAgreement(agg, 9000)
      // Every sensor's hours hold every country: one block's groups differ by sensor alone.
      const hoursOf = (sensor: string) => agg.hourly.filter((r) => r.k_sensor === sensor).length
      expect(new Set(agg.hourly.map((r) => r.k_country))).toEqual(new Set(['CN', 'US', 'DE', '--']))
      for (const sensor of ['s-east', 's-west', 's-north']) expect(hoursOf(sensor)).toBeGreaterThan(100)
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 15 that holds data keeps its views, and blocks stored before the upgrade and sent again after it count once', async () => {
    await upgradeFrom([16], backToVersion15({ body: () => mixedBlock(66, 'r'), token: 'r-0' }), async (store) => {
      expect(await description(store, 16)).toBe(v16.kept)
      expect(await packed(store)).toEqual({ source: false, hourly: false })
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(66, 'r'), 'r-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(69, 's'), 's-0')
      expectAgreement(await aggregatesAndRecount(store), 9000)
    })
  })

  it('a store at schema version 15 that holds no data gets the packed views', async () => {
    await upgradeFrom([16], backToVersion15(), async (store) => {
      expect(await description(store, 16)).toBe(v16.description)
      expect(await packed(store)).toEqual({ source: true, hourly: true })
      await store.insertRowBinary('events', EVENT_STRUCTURE, mixedBlock(72, 't'), 't-0')
      expectAgreement(await aggregatesAndRecount(store), 4500)
    })
  })

  it('a store without data whose hourly sets version 15 kept keeps its views at version 16 (the packed ones would leave those sets empty)', async () => {
    const open = newStoreDir()
    const unrecord = (store: Store, versions: number[]) =>
      store.command(
        'ALTER TABLE schema_migrations DELETE WHERE version IN {v:Array(UInt32)} SETTINGS mutations_sync = 2',
        { v: versions },
      )
    let store = await open()
    try {
      await backToVersion13({ body: () => batch(75, 'u'), token: 'u-0' })(store)
      await unrecord(store, [14, 15, 16])
    } finally {
      await store.close()
    }
    store = await open()
    try {
      expect(await description(store, 15)).toBe(v15.kept)
      // The data goes (retention, a researcher's DELETE); the views it was stored through stay.
      for (const table of ['events', 'ingested_files', 'daily_agg', 'hourly_agg', 'source_daily']) {
        await store.command(`TRUNCATE TABLE ${table}`)
      }
      await unrecord(store, [16])
    } finally {
      await store.close()
    }
    store = await open()
    try {
      expect(await description(store, 16)).toBe(v16.kept)
      expect(await packed(store)).toEqual({ source: false, hourly: false })
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(76, 'v'), 'v-0')
      expectAgreement(await aggregatesAndRecount(store), 2000)
    } finally {
      await store.close()
    }
  })

  /** What version 9 left: no bitmap column, the view keeps every address in dsts. */
  const backToVersion9 = backTo([
    ...VERSION_13,
    'DROP VIEW source_daily_mv',
    'ALTER TABLE source_daily DROP COLUMN dsts_v4',
    v1SourceView,
  ])

  it('a new store keeps IPv4 dark addresses in a bitmap and the others in dsts; across days and re-sent blocks each address counts once', async () => {
    const open = newStoreDir()
    const store = await open()
    try {
      expect(await description(store, 11)).toBe(v11.description)
      expect(await sourceView(store)).toContain('groupBitmapStateIf')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(40, 'f'), 'f-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(41, 'g'), 'g-0')
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(40, 'f'), 'f-0')
      const { stored, recount } = await darkAddresses(store)
      expect(stored).toEqual(recount)
      // Both sets are in use, within one source too: the sum is what makes the count exact.
      const both = stored.filter((r) => Number(r.v4) > 0 && Number(r.other) > 0)
      expect(both.length).toBeGreaterThan(0)
      expectAgreement(await aggregatesAndRecount(store), 4000)
    } finally {
      await store.close()
    }
  })

  it('a store at schema version 9 that holds data keeps every dark address in dsts, and the same expression counts them exactly', async () => {
    await upgradeFrom(
      [10, 11, 14, 15, 16],
      backToVersion9({ body: () => batch(42, 'h'), token: 'h-0' }),
      async (store) => {
        expect(await description(store, 11)).toBe(v11.kept)
        expect(await sourceView(store)).not.toContain('dsts_v4')
        await store.insertRowBinary('events', EVENT_STRUCTURE, batch(42, 'h'), 'h-0')
        await store.insertRowBinary('events', EVENT_STRUCTURE, batch(43, 'i'), 'i-0')
        const { stored, recount } = await darkAddresses(store)
        expect(stored.map((r) => ({ src: r.src, all: r.all }))).toEqual(
          recount.map((r) => ({ src: r.src, all: r.all })),
        )
        expect(stored.every((r) => Number(r.v4) === 0)).toBe(true)
        expectAgreement(await aggregatesAndRecount(store), 4000)
      },
    )
  })

  it('a store at schema version 9 that holds no data gets the IPv4 bitmaps', async () => {
    await upgradeFrom([10, 11, 14, 15, 16], backToVersion9(), async (store) => {
      expect(await description(store, 11)).toBe(v11.description)
      await store.insertRowBinary('events', EVENT_STRUCTURE, batch(44, 'j'), 'j-0')
      const { stored, recount } = await darkAddresses(store)
      expect(stored).toEqual(recount)
      expect(stored.some((r) => Number(r.v4) > 0)).toBe(true)
    })
  })
})
