import { NTP_CLASSES } from '../core/event.js'
import type { IdentityScheme } from '../pipeline/identity-core.js'
import { BATCH_ROWS, LARGE_BATCH_ROWS } from '../pipeline/sink.js'
import type { MigrateOptions } from './migrate.js'
import type { Store } from './store.js'

/**
 * Tables and their migrations. The raw `events` table is what researchers query; the
 * aggregates are filled by materialized views at insert time so `daily` reads thousands of
 * rows instead of billions. Aggregates keep exact unique-source states (uniqExact): the
 * Figure-2 numbers must match a recount, and a darknet day has at most a few million sources.
 *
 * Exactly-once: every insert carries a deterministic `insert_deduplication_token`
 * (file identity + batch number); the deduplication window below makes ClickHouse drop a
 * block it has already stored, and `deduplicate_blocks_in_dependent_materialized_views`
 * extends that to the aggregates. The window must cover every block inserted between a crash
 * and the re-run of the same file.
 */
export const DEDUP_WINDOW_BLOCKS = 100_000

export const CLASS_ENUM = `Enum8(${NTP_CLASSES.map((c, i) => `'${c}' = ${i + 1}`).join(', ')})`

/** Column order of `events`: the RowBinary encoder and the Kafka message body follow it. */
export const EVENT_COLUMNS = [
  ['ts', "DateTime64(9, 'UTC')"],
  ['sensor', 'LowCardinality(String)'],
  ['src', 'IPv6'],
  ['src_port', 'UInt16'],
  ['dst', 'IPv6'],
  ['dst_port', 'UInt16'],
  ['ip_version', 'UInt8'],
  ['ttl', 'UInt8'],
  ['ip_len', 'UInt16'],
  ['udp_len', 'UInt16'],
  ['payload_len', 'UInt16'],
  ['wire_len', 'UInt32'],
  ['class', CLASS_ENUM],
  ['ntp_version', 'UInt8'],
  ['ntp_mode', 'UInt8'],
  ['ntp_code', 'UInt8'],
  ['ntp_impl', 'UInt8'],
  ['country', 'LowCardinality(String)'],
  ['bogon', 'Bool'],
  ['file_id', 'LowCardinality(String)'],
  ['record', 'UInt64'],
] as const

export const EVENT_STRUCTURE = EVENT_COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')

/** Parts below this many (uncompressed) bytes are written in the compact format (schema v4). */
export const COMPACT_PART_BYTES = 64 * 1024 * 1024

/** Partition key of the event and aggregate tables: the week (Monday) of `column`. */
const WEEK_PARTITION = (column: string) => `toMonday(${column})`

/**
 * Rows per index mark of `source_daily` (since 0.4; 8192 before). A source's summary reads its
 * rows day by day, and every granule it touches is read whole, dark-address states included:
 * the top 15 sources of 90 days on the 1e9-event bench store spent 1.4-1.6 s merging their
 * states at 8192 rows per granule, 0.38-0.45 s at 1024, 0.14-0.29 s at 256.
 */
const SOURCE_DAILY_GRANULARITY = 256

/**
 * Uncompressed bytes a compressed block of `source_daily` gathers before it is closed (schema
 * v12; ClickHouse's default 65,536). A source's summary reads a granule here and a granule there
 * (2,614 granule ranges for the top 15 sources of 90 days on the 1e9-event bench store), and
 * every granule read decompresses the whole block around it in each of the twelve columns: at
 * 64 KiB that is ~16 granules of `src` and ~128 of `day` for every one used. At 4 KiB most
 * columns have a block per granule or two. The 15 winners' summary, on copies of that store's
 * 56M source-day rows made the same way: 193-250 ms against 304-459 ms (warm); the table is
 * 10% larger on disk (3.55 -> 3.92 GiB; LZ4 finds less in smaller blocks). Inserted parts are
 * compact (a block per column and granule already): the ingest does not change; merged (wide)
 * parts are written with it.
 */
const SOURCE_DAILY_COMPRESS_BLOCK_BYTES = 4096

const dedupSettings = `non_replicated_deduplication_window = ${DEDUP_WINDOW_BLOCKS}`

/**
 * Background merges of these tables wait until they can take this many parts of a partition at
 * once (schema v8). With ClickHouse's default (two or more) the ingest of the 20M-packet bench
 * capture kept merging the parts it had just written: merges took 4.1-4.4 of its ~34 CPU s
 * (MergeMutate threads), 1.2-1.3 with ten for all four tables, 2.1-2.2 with ten for these three.
 * `teiten ingest` of that capture, three runs each interleaved with the build before, load ~2.8:
 * 18.2-19.5 s and 32.5-34.6 CPU s against 19.4-20.3 s and 34.6-36.2 CPU s; peak RSS ~20 MiB
 * lower. A week partition of that capture gets 4-5 inserts, so a finished week keeps a few
 * parts unmerged (72 instead of 56 per table); the bench's queries on that store did not move
 * (Figure 2 30-67 ms, the dashboard's four 133-195 ms, hourly 12-19 ms). `source_daily` keeps
 * the default: with ten its extra parts made the dashboard's top sources of 90 days 175-307 ms
 * instead of 151-228 ms, for ~1 CPU s of merges. A live spool's many small inserts still
 * merge, ten parts at a time, so each row is rewritten fewer times than under the default (the
 * setting's reason in ClickHouse, PR 71637: merges of few parts raise write amplification).
 */
export const FEWER_MERGES_TABLES = ['events', 'daily_agg', 'hourly_agg'] as const
export const MIN_PARTS_TO_MERGE = 10

/**
 * `daily_agg` from the rows `source_daily_mv` makes of an insert (schema v9) instead of from
 * its events: a source-day row holds its packet count, and a day's distinct sources are the
 * distinct `src` of its source-day rows, so the figures are the same and the states
 * (uniqExactState of the same IPv6 values) merge with any written before. The 20M-packet bench
 * capture's 17M events make ~1M source-day rows, 16x fewer rows to hash into the daily sets:
 * `teiten ingest` of it, three runs each interleaved with v8, 31.1-32.7 CPU s against
 * 33.2-34.4; its spool of 7,704 files 44.9-46.1 against 45.6-53.4. A chained view keeps
 * exactly-once: a block sent again after a crash between the views still flows down the chain,
 * and each target drops what it already holds under its own derived token.
 *
 * New stores only. ClickHouse derives a view's token from the chain of views a block went
 * through (ClickHouse 26.7, chDB 3.4): a block stored under the old view and sent again after
 * the change (a run interrupted before an upgrade and resumed after it, or a file a sensor
 * published twice through Kafka) would be counted twice in `daily_agg`. A store that holds data
 * keeps its view reading `events`: same figures, the old cost. DROP and CREATE, not
 * `ALTER TABLE ... MODIFY QUERY`: after MODIFY QUERY a block stored before a restart and sent
 * again after it was counted twice by the chained view.
 */
const DAILY_FROM_SOURCE_DAILY = [
  'DROP VIEW IF EXISTS daily_agg_mv',
  `CREATE MATERIALIZED VIEW daily_agg_mv TO daily_agg AS
   SELECT day, sensor, country, class, access, sum(packets) AS packets, uniqExactState(src) AS sources
   FROM source_daily GROUP BY day, sensor, country, class, access`,
]

/**
 * Distinct dark (destination) addresses of the `source_daily` rows a query merges, exact in
 * every store: IPv4 destinations go to `dsts_v4` (a roaring bitmap of the address as UInt32)
 * in stores made since schema v11, everything else to `dsts`; in older stores `dsts` holds
 * them all and `dsts_v4` is empty. The two sets never share an address, so their sizes add up.
 */
export const DARK_ADDRESSES_SQL = 'uniqExactMerge(dsts) + groupBitmapMerge(dsts_v4)'

const IPV4_MAPPED = (column: string) =>
  `${column} BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255')`

/**
 * A source-day's IPv4 dark addresses as a roaring bitmap (schema v11) instead of a set of their
 * SipHash128 values. A telescope's addresses are a few dense prefixes and scanners sweep them,
 * which is where a hash set is at its worst and a bitmap at its best: one source sweeping a /16
 * every day for 30 days (65,536 addresses a day) is 31.5 MB of uniqExact states and 570 bytes of
 * bitmaps (run containers); merging them 63-201 ms against 2-3 ms, building them 416 against
 * 81 ms. On a /8 the sets would be 256 times larger again. The bench corpus's telescopes are a
 * /24 and a /23, so there the gain is smaller: `source_daily` 286 -> 99 MB uncompressed (144 ->
 * 72 MB on disk), the top sources' summary of 90 days (every state in 1,441 granules of
 * source-day rows) 180-253 -> 115-176 ms alone, ~10% of the whole ranked query; the ingest is not
 * measurably faster or slower (21.7-24.7 s either way, seven interleaved pairs: a state per
 * source-day costs what it costs whatever it holds). Sparse sets are where roaring loses
 * (rollup.ts: Internet-wide sources, 6x slower to merge); a source's destinations are never
 * that, being inside the monitored prefixes.
 *
 * New stores only: an address already in a stored `dsts` set and then in a `dsts_v4` bitmap
 * would be counted twice, and a stored set holds hashes that cannot be turned back into
 * addresses. A store that holds data keeps its view (and an empty `dsts_v4`).
 */
const DARK_ADDRESS_STATES = [
  `uniqExactStateIf(dst, NOT (${IPV4_MAPPED('dst')})) AS dsts`,
  `groupBitmapStateIf(toUInt32(toIPv4OrDefault(dst)), ${IPV4_MAPPED('dst')}) AS dsts_v4`,
]

/** A source-day's UTC hours as a bitmask (schema v14-v15: see HOURLY_SOURCES_FROM_SOURCE_DAYS). */
const HOURS_SEEN = 'groupBitOr(bitShiftLeft(toUInt32(1), toHour(ts))) AS hours'

const sourceDailyView = (extraColumns: string[] = []) =>
  `CREATE MATERIALIZED VIEW source_daily_mv TO source_daily AS
   SELECT toDate(ts) AS day, src, sensor, country, class, dst_port = 123 AS access,
          max(bogon) AS bogon, count() AS packets, min(ts) AS first_seen, max(ts) AS last_seen,
          ${[...DARK_ADDRESS_STATES, ...extraColumns].join(',\n          ')}
   FROM events GROUP BY day, src, sensor, country, class, access`

const DARK_ADDRESS_BITMAPS = ['DROP VIEW IF EXISTS source_daily_mv', sourceDailyView()]

/**
 * Hourly distinct sources from the source-day rows (schema v14-v15) instead of a set per hour in
 * `hourly_agg`. A source-day row already groups every packet of a source by day, sensor,
 * country, class and direction; `hours` adds the UTC hours it sent in (bit n = hour n, OR-ed
 * as rows merge, so a block stored twice changes nothing). The sources of hour n of a grouping
 * are the rows of that day and grouping with bit n set: exact, and the set is built per query
 * (one day's rows) instead of per insert. `hourly_agg` keeps the hourly packets.
 *
 * Replaying the 20M-packet bench capture's 17M events into the engine (one INSERT, 262,144-row
 * blocks, background merges included; three runs each, interleaved): 14.0-15.3 CPU s against
 * 15.8-16.5 with a set per hour. `teiten ingest` of it: see docs/performance.md (Round 15).
 *
 * New stores only, like v9 and v11: a view dropped and created again derives other tokens for
 * its blocks, so a block stored before and sent again after the change would be counted twice
 * in `hourly_agg`'s packets. A store that holds data keeps both views; its rows get `hours` = 0
 * and its hourly sets stay in `hourly_agg.sources` (store/research.ts hourlyLayoutOf says
 * which a store has, hourlySql reads either).
 */
const HOURLY_SOURCES_FROM_SOURCE_DAYS = [
  'DROP VIEW IF EXISTS source_daily_mv',
  sourceDailyView([HOURS_SEEN]),
  'DROP VIEW IF EXISTS hourly_agg_mv',
  `CREATE MATERIALIZED VIEW hourly_agg_mv TO hourly_agg AS
   SELECT toStartOfHour(ts) AS hour, sensor, country, class, dst_port = 123 AS access, count() AS packets
   FROM events GROUP BY hour, sensor, country, class, access`,
  `ALTER TABLE hourly_agg COMMENT COLUMN sources 'empty in stores made since schema v15: hourly sources come from source_daily.hours'`,
]

/**
 * One UInt64 that groups a view's block (schema v16): the time unit, the positions of the
 * block's sensor and country in their LowCardinality dictionaries, the class and the direction,
 * each in bits of its own. Grouping by the five columns (two of them dictionary-encoded
 * strings) cost the engine twice what one integer key costs. Replaying the 20M-packet bench
 * capture's 17M events into a new store (262,144-row blocks, merges included; ten interleaved
 * pairs): 14.3-17.8 CPU s against 16.4-20.3, the same rows in every table.
 *
 * Exact because a view runs its query on one inserted block, and a LowCardinality column holds
 * one dictionary, where a position names one value; the row's values themselves come out with
 * any(). Bits 42-63 hold the hour or day number (22 bits reach past DateTime64's year 2262),
 * 24-41 the sensor position, 5-23 the country's: a position is below the block's distinct
 * values plus one, so 262,143 sensors or 524,287 countries in one insert would be needed to
 * overlap. toLowCardinality only satisfies the view's analysis, which types these columns as
 * plain strings inside a GROUP BY key: at run time they arrive dictionary-encoded (toTypeName
 * in a view reads LowCardinality(String)) and it passes them through.
 */
const packedGrouping = (timeUnit: string) =>
  [
    [`toUInt64(${timeUnit})`, 42],
    ['lowCardinalityIndices(toLowCardinality(sensor))', 24],
    ['lowCardinalityIndices(toLowCardinality(country))', 5],
    ['toUInt64(toUInt8(class))', 1],
    ['toUInt64(dst_port = 123)', 0],
  ]
    .map(([field, shift]) => `bitShiftLeft(${field}, ${shift})`)
    .reduce((packed, field) => `bitOr(${packed}, ${field})`)

/** The direction bit of packedGrouping, as the `access` column. */
const PACKED_ACCESS = 'bitAnd(grouping, 1) = 1 AS access'

/**
 * The source-day and hourly views of v11 and v15, grouped by packedGrouping (schema v16). The
 * rows are those of the views they replace: every row of a group shares its day (or hour), so
 * the day is that of its first packet.
 *
 * New stores only, like v9, v11 and v15 (a view made again derives other tokens for its
 * blocks), and only where v11 and v15 made the views this replaces.
 */
const PACKED_GROUPING_VIEWS = [
  'DROP VIEW IF EXISTS source_daily_mv',
  `CREATE MATERIALIZED VIEW source_daily_mv TO source_daily AS
   SELECT toDate(first_seen) AS day, src, any(s) AS sensor, any(c) AS country, any(cl) AS class, ${PACKED_ACCESS},
          max(bogon) AS bogon, count() AS packets, min(ts) AS first_seen, max(ts) AS last_seen,
          ${[...DARK_ADDRESS_STATES, HOURS_SEEN].join(',\n          ')}
   FROM (SELECT ${packedGrouping('toDate(ts)')} AS grouping, src, sensor AS s, country AS c, class AS cl, bogon, ts, dst
         FROM events)
   GROUP BY grouping, src`,
  'DROP VIEW IF EXISTS hourly_agg_mv',
  `CREATE MATERIALIZED VIEW hourly_agg_mv TO hourly_agg AS
   SELECT toStartOfHour(min(ts)) AS hour, any(s) AS sensor, any(c) AS country, any(cl) AS class, ${PACKED_ACCESS},
          count() AS packets
   FROM (SELECT ${packedGrouping('toRelativeHourNum(ts)')} AS grouping, sensor AS s, country AS c, class AS cl, ts
         FROM events)
   GROUP BY grouping`,
]

const FILE_IDS_XXH128 = 'file ids are XXH3-128 (the store was empty)'
const LARGE_BATCHES = `batches of ${LARGE_BATCH_ROWS} rows (the store was empty)`

/** A store no file has been read into: no block of it can ever be sent again. */
async function holdsNoData(store: Store): Promise<boolean> {
  const [row] = await store.query<{ n: string }>(
    'SELECT toString((SELECT count() FROM events) + (SELECT count() FROM ingested_files)) AS n',
  )
  return row?.n === '0'
}

/** Versions `versions` made what they describe (none was kept back for a store holding data). */
async function madeAsDescribed(store: Store, versions: number[]): Promise<boolean> {
  const rows = await store.query<{ v: number; d: string }>(
    'SELECT toUInt32(version) AS v, description AS d FROM schema_migrations WHERE version IN {v:Array(UInt32)}',
    { v: versions },
  )
  return versions.every((v) =>
    rows.some((r) => Number(r.v) === v && r.d === MIGRATIONS.find((m) => m.version === v)!.description),
  )
}

export interface Migration {
  version: number
  description: string
  statements: string[]
  /**
   * Whether the statements apply to this store. When not, the version is recorded as `kept`
   * says and the store keeps what it has (a change that is safe only for some stores).
   */
  appliesTo?: (store: Store, options: MigrateOptions) => Promise<boolean>
  kept?: string
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'raw events, daily/hourly/source aggregates, file ledger',
    statements: [
      // Weekly partitions (since 0.4; stores created before keep monthly ones: partitioning is
      // invisible to queries): a merge never combines parts of different weeks, so rows are
      // rewritten fewer times and the largest merge is bounded by a week of data, not by the
      // store. Measured on the 20M-packet bench capture (`teiten ingest`, fresh store):
      // 42.7-43.2 -> 36.3 CPU s, peak RSS 864-866 -> 777-795 MiB (monthly events, unpartitioned
      // aggregates before); replaying its 66 insert bodies into the engine alone: 35.9 -> 25.5
      // CPU s. The aggregates gain most: their merges across days collapse nothing.
      `CREATE TABLE IF NOT EXISTS events (${EVENT_STRUCTURE})
       ENGINE = MergeTree
       PARTITION BY ${WEEK_PARTITION('ts')}
       ORDER BY (sensor, ts)
       SETTINGS ${dedupSettings}`,
      // access = destination port 123: Figure 2 counts accesses; --all adds backscatter.
      `CREATE TABLE IF NOT EXISTS daily_agg (
         day Date, sensor LowCardinality(String), country LowCardinality(String), class ${CLASS_ENUM}, access Bool,
         packets SimpleAggregateFunction(sum, UInt64),
         sources AggregateFunction(uniqExact, IPv6)
       ) ENGINE = AggregatingMergeTree
       PARTITION BY ${WEEK_PARTITION('day')}
       ORDER BY (day, sensor, country, class, access)
       SETTINGS ${dedupSettings}`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS daily_agg_mv TO daily_agg AS
       SELECT toDate(ts) AS day, sensor, country, class, dst_port = 123 AS access,
              count() AS packets, uniqExactState(src) AS sources
       FROM events GROUP BY day, sensor, country, class, access`,
      `CREATE TABLE IF NOT EXISTS hourly_agg (
         hour DateTime('UTC'), sensor LowCardinality(String), country LowCardinality(String), class ${CLASS_ENUM}, access Bool,
         packets SimpleAggregateFunction(sum, UInt64),
         sources AggregateFunction(uniqExact, IPv6)
       ) ENGINE = AggregatingMergeTree
       PARTITION BY ${WEEK_PARTITION('hour')}
       ORDER BY (hour, sensor, country, class, access)
       SETTINGS ${dedupSettings}`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS hourly_agg_mv TO hourly_agg AS
       SELECT toStartOfHour(ts) AS hour, sensor, country, class, dst_port = 123 AS access,
              count() AS packets, uniqExactState(src) AS sources
       FROM events GROUP BY hour, sensor, country, class, access`,
      // One row per source and day: drill-down, top sources, "new sources" in reports.
      `CREATE TABLE IF NOT EXISTS source_daily (
         day Date, src IPv6, sensor LowCardinality(String), country LowCardinality(String), class ${CLASS_ENUM}, access Bool,
         bogon SimpleAggregateFunction(max, Bool),
         packets SimpleAggregateFunction(sum, UInt64),
         first_seen SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
         last_seen SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
         dsts AggregateFunction(uniqExact, IPv6)
       ) ENGINE = AggregatingMergeTree
       PARTITION BY ${WEEK_PARTITION('day')}
       ORDER BY (day, src, sensor, country, class, access)
       SETTINGS ${dedupSettings}, index_granularity = ${SOURCE_DAILY_GRANULARITY}`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS source_daily_mv TO source_daily AS
       SELECT toDate(ts) AS day, src, sensor, country, class, dst_port = 123 AS access,
              max(bogon) AS bogon, count() AS packets, min(ts) AS first_seen, max(ts) AS last_seen,
              uniqExactState(dst) AS dsts
       FROM events GROUP BY day, src, sensor, country, class, access`,
      // The ledger: a file whose content hash is here is not read again.
      `CREATE TABLE IF NOT EXISTS ingested_files (
         file_id String, sensor LowCardinality(String), path String, bytes UInt64,
         records UInt64, kept UInt64, first_ts Nullable(DateTime64(9, 'UTC')), last_ts Nullable(DateTime64(9, 'UTC')),
         status Enum8('complete' = 1, 'failed' = 2), error String,
         ingested_at DateTime64(3, 'UTC')
       ) ENGINE = ReplacingMergeTree(ingested_at)
       ORDER BY file_id
       SETTINGS ${dedupSettings}`,
    ],
  },
  {
    version: 2,
    description: 'ledger: pending entries of group inserts (several small files in one insert)',
    statements: [
      `ALTER TABLE ingested_files MODIFY COLUMN status Enum8('complete' = 1, 'failed' = 2, 'pending' = 3)`,
      `ALTER TABLE ingested_files ADD COLUMN IF NOT EXISTS batch_group String DEFAULT '' AFTER error`,
    ],
  },
  {
    version: 3,
    description: 'ledger: identity of a gzip capture is its decompressed content; raw-bytes id kept',
    statements: [
      // Since 0.3 a file's id is the hash of the capture it holds (X.pcap and X.pcap.gz are one
      // capture); raw_id is the hash of its bytes, the id older versions recorded for .gz files.
      `ALTER TABLE ingested_files ADD COLUMN IF NOT EXISTS raw_id String DEFAULT '' AFTER batch_group`,
      // Files whose rows an older version stored in part (a crash before the ledger row), under
      // batch tokens of their raw-bytes id: a .gz among them is read again under those tokens, so
      // the batches stored before the crash are not counted twice. Taken once, at the upgrade:
      // after it every file's tokens use its content id.
      `CREATE TABLE IF NOT EXISTS legacy_partial_files (file_id String) ENGINE = MergeTree ORDER BY file_id`,
      `INSERT INTO legacy_partial_files
       SELECT DISTINCT file_id FROM events
       WHERE file_id NOT IN (SELECT file_id FROM ingested_files)
         AND file_id NOT IN (SELECT file_id FROM legacy_partial_files)`,
    ],
  },
  {
    version: 4,
    description: 'inserted parts in compact format (fewer files per insert)',
    statements: [
      // An insert's part (262,144 events: 18 MiB of columns) is written compact: 12 files
      // instead of 61 for events (two per column). Creating part files cost ext4 inode
      // allocation 12% of the 20M-event insert's CPU on this machine (perf: find_inode_bit,
      // recently_deleted), 5% with compact parts. Parts merged past 64 MiB are wide as before.
      ...['events', 'daily_agg', 'hourly_agg', 'source_daily'].map(
        (t) => `ALTER TABLE ${t} MODIFY SETTING min_bytes_for_wide_part = ${COMPACT_PART_BYTES}`,
      ),
    ],
  },
  {
    version: 5,
    description: 'daily_rollup: finished per-day counts of every sensor/country/class grouping',
    statements: [
      // Filled by store/rollup.ts refreshRollup after ingests; see there for why and how it
      // stays exact. keys: bits of the grouped dimensions (sensor 4, country 2, class 1).
      `CREATE TABLE IF NOT EXISTS daily_rollup (
         day Date, scope Enum8('access' = 1, 'all' = 2), keys UInt8,
         sensor String, country String, class String,
         packets UInt64, sources UInt64, version UInt64
       ) ENGINE = ReplacingMergeTree(version)
       ORDER BY (day, scope, keys, sensor, country, class)`,
    ],
  },
  {
    version: 6,
    description: 'source_weekly: packets per week and source, for ranking sources over long ranges',
    statements: [
      // Filled by store/rollup.ts refreshRollup, like daily_rollup: `version` is the week's packet
      // total in source_daily when computed. One partition per week: a refreshed week's newer part
      // replaces the older within it, and FINAL never merges across weeks.
      `CREATE TABLE IF NOT EXISTS source_weekly (
         week Date, src IPv6, sensor LowCardinality(String), country LowCardinality(String), class ${CLASS_ENUM}, access Bool,
         packets UInt64, version UInt64
       ) ENGINE = ReplacingMergeTree(version)
       PARTITION BY week
       ORDER BY (week, src, sensor, country, class, access)`,
    ],
  },
  {
    version: 7,
    description: 'events: delta-coded timestamps and record numbers, T64 lengths (smaller parts)',
    statements: [
      // Parts written from now on (inserts and merges) use them; existing parts keep their bytes
      // until a merge rewrites them (a metadata change, no mutation). ts (nanoseconds, in order
      // within a part) compressed 1.1x under LZ4 alone, record (0, 1, 2, ... per file) 2x, and
      // the four lengths are small numbers in 16/32-bit cells. The 20M-packet bench capture's
      // store: 1,084 -> 925 MB (events 545 -> 432 MB). Speed unchanged: `teiten ingest` of it,
      // three runs each, interleaved, 20.15-21.35 s before, 20.41-20.63 s after (load ~2.5);
      // the engine writes fewer bytes (perf: a fifth of its insert time is the kernel copying
      // part bytes into the page cache) and spends about that much more on Delta and T64.
      `ALTER TABLE events
         MODIFY COLUMN ts DateTime64(9, 'UTC') CODEC(Delta, LZ4),
         MODIFY COLUMN record UInt64 CODEC(Delta, LZ4),
         MODIFY COLUMN ip_len UInt16 CODEC(T64, LZ4),
         MODIFY COLUMN udp_len UInt16 CODEC(T64, LZ4),
         MODIFY COLUMN payload_len UInt16 CODEC(T64, LZ4),
         MODIFY COLUMN wire_len UInt32 CODEC(T64, LZ4)`,
    ],
  },
  {
    version: 8,
    description: 'events, daily_agg, hourly_agg: background merges take at least ten parts at once',
    // See FEWER_MERGES_TABLES: a metadata change; parts already merged stay as they are.
    statements: FEWER_MERGES_TABLES.map(
      (t) => `ALTER TABLE ${t} MODIFY SETTING min_parts_to_merge_at_once = ${MIN_PARTS_TO_MERGE}`,
    ),
  },
  {
    version: 9,
    description: 'daily_agg filled from the source_daily rows of each insert instead of its events',
    statements: DAILY_FROM_SOURCE_DAILY,
    appliesTo: holdsNoData,
    kept: 'daily_agg kept filled from events: the store held data (a block sent again would count twice)',
  },
  {
    version: 10,
    description: 'source_daily: dsts_v4, IPv4 dark addresses as a bitmap (empty until v11 applies)',
    // Every store gets the column, so one expression (DARK_ADDRESSES_SQL) is exact in all of them.
    statements: [
      `ALTER TABLE source_daily ADD COLUMN IF NOT EXISTS dsts_v4 AggregateFunction(groupBitmap, UInt32) AFTER dsts`,
      `ALTER TABLE source_daily
         COMMENT COLUMN dsts 'dark addresses not in dsts_v4; count with ${DARK_ADDRESSES_SQL}',
         COMMENT COLUMN dsts_v4 'IPv4 dark addresses (UInt32) in stores made since schema v11; empty in older ones'`,
    ],
  },
  {
    version: 11,
    description: 'source_daily: IPv4 dark addresses go to the dsts_v4 bitmap, the others to dsts',
    statements: DARK_ADDRESS_BITMAPS,
    appliesTo: holdsNoData,
    kept: 'every dark address kept in dsts: the store held data (an address in both sets would count twice)',
  },
  {
    version: 12,
    description: 'source_daily: 4 KiB compressed blocks in merged parts (a source summary reads less)',
    // See SOURCE_DAILY_COMPRESS_BLOCK_BYTES. A metadata change: parts written from now on use it.
    statements: [
      `ALTER TABLE source_daily MODIFY SETTING min_compress_block_size = ${SOURCE_DAILY_COMPRESS_BLOCK_BYTES}`,
    ],
  },
  {
    version: 13,
    description: 'source_weekly_totals: packets per week and source alone, for unfiltered rankings',
    statements: [
      // Filled by store/rollup.ts refreshRollup like source_weekly, whose rows it sums over
      // sensor, country and class: see WEEKLY_TOTALS_REFRESH_SQL there for why.
      `CREATE TABLE IF NOT EXISTS source_weekly_totals (
         week Date, src IPv6, access Bool, packets UInt64, version UInt64
       ) ENGINE = ReplacingMergeTree(version)
       PARTITION BY week
       ORDER BY (week, src, access)`,
    ],
  },
  {
    version: 14,
    description: 'source_daily: hours, the UTC hours of each source-day as a bitmask',
    // Every store gets the column (the same table in every store); only v15's view fills it.
    statements: [
      `ALTER TABLE source_daily ADD COLUMN IF NOT EXISTS hours SimpleAggregateFunction(groupBitOr, UInt32)`,
      `ALTER TABLE source_daily COMMENT COLUMN hours 'UTC hours the source sent in (bit n = hour n); 0 where stored by a view made before schema v15'`,
    ],
  },
  {
    version: 15,
    description: 'hourly distinct sources from the hours of the source-day rows; hourly_agg keeps the packets',
    statements: HOURLY_SOURCES_FROM_SOURCE_DAYS,
    appliesTo: holdsNoData,
    kept: 'hourly sources kept in hourly_agg: the store held data (a block sent again would count twice)',
  },
  {
    version: 16,
    description: 'source-day and hourly views group each block by one packed integer key',
    statements: PACKED_GROUPING_VIEWS,
    appliesTo: async (store) => (await holdsNoData(store)) && (await madeAsDescribed(store, [11, 15])),
    kept: 'source-day and hourly views kept: the store held data, or older views (a block sent again would count twice)',
  },
  {
    version: 17,
    // Nothing to change in the tables: the version's description is the store's identity scheme
    // (identitySchemeOf), decided once. A store holding files under SHA-256 ids keeps them, or a
    // file read again after the upgrade would get another id and count twice; so does a store
    // first opened by another command than `teiten ingest` (MigrateOptions.newStoreIdentity):
    // a Kafka storage worker's sensors name files in SHA-256 (pipeline/identity-core.ts).
    description: FILE_IDS_XXH128,
    statements: [],
    appliesTo: async (store, options) => options.newStoreIdentity === 'xxh128' && (await holdsNoData(store)),
    kept: 'file ids stay SHA-256: the store held data read under them, or was made for Kafka sensors',
  },
  {
    version: 18,
    // Nothing to change in the tables either: the description is the store's batch size
    // (batchRowsOf, pipeline/sink.ts LARGE_BATCH_ROWS), decided once, on the terms of v17. A
    // store holding data keeps BATCH_ROWS: a file a crash interrupted before the upgrade would be
    // cut elsewhere when read again after it, and its batches stored before would count twice.
    // A store another command made keeps it too: a Kafka storage worker stores its sensors'
    // batches as they come, and a direct ingest of the same file must cut it where they did.
    description: LARGE_BATCHES,
    statements: [],
    appliesTo: async (store, options) => options.newStoreIdentity === 'xxh128' && (await holdsNoData(store)),
    kept: `batches stay ${BATCH_ROWS} rows: the store held data read in them, or was made for Kafka sensors`,
  },
]

/** How this store names files (pipeline/identity-core.ts IdentityScheme). */
export async function identitySchemeOf(store: Store): Promise<IdentityScheme> {
  return (await madeAsDescribed(store, [17])) ? 'xxh128' : 'sha256'
}

/** Rows per batch of the files read into this store (pipeline/sink.ts EventSink.batchRows). */
export async function batchRowsOf(store: Store): Promise<number> {
  return (await madeAsDescribed(store, [18])) ? LARGE_BATCH_ROWS : BATCH_ROWS
}

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version
