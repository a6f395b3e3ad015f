/**
 * A store with the aggregates of ~1 billion events, for query timings (bench/main.ts), built
 * without the events: inserting 1e9 rows through the materialized views would take this 2-core
 * machine ~40 minutes. The aggregate tables are what the daily, dashboard and source queries
 * read, so they are made at the cardinality 1e9 events of the bench corpus would give:
 *
 * - source_daily: every row of a real store (the bench's 20M-packet ingest) `factor` times,
 *   the copies under other source addresses (2001:<copy>:<low 64 bits of the original>::), with
 *   their packets, first/last seen and dark-address states as they are. Same days, `factor`
 *   times the sources per day: what a denser darknet (or a larger telescope) sends.
 * - daily_agg: aggregated from that source_daily (exact source states per day x sensor x
 *   country x class x access): by the view as the rows go in (schema v9), as an ingest does.
 * - daily_rollup: refreshed as after an ingest (store/rollup.ts).
 * - hourly_agg: the packets per hour, each source-day's in the hour it was first seen (the real
 *   hour of every packet is not in source_daily); the row count is of the order the view would
 *   make from the events. The hourly sources come from the copied rows' `hours`, as in every
 *   store made since schema v15 (store/research.ts hourlySql).
 *
 *   node dist/bench/big.js export SRC_DATA DIR      (writes DIR/source_daily.native)
 *   node dist/bench/big.js build BIG_DATA DIR FACTOR
 */
import { join } from 'node:path'
import { silentLogger } from '../core/logger.js'
import { openStore } from '../store/open.js'
import { refreshRollup } from '../store/rollup.js'
import type { Store } from '../store/store.js'

const SOURCE_DAILY =
  "day Date, src IPv6, sensor String, country String, class Int8, access Bool, bogon Bool, packets UInt64, first_seen DateTime64(9, 'UTC'), last_seen DateTime64(9, 'UTC'), dsts AggregateFunction(uniqExact, IPv6), dsts_v4 AggregateFunction(groupBitmap, UInt32), hours UInt32"

function quote(path: string): string {
  return `'${path.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

async function settle(store: Store, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs
  let quiet = 0
  while (quiet < 3 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 1000))
    const [m] = await store.query<{ n: string }>('SELECT toString(count()) AS n FROM system.merges')
    quiet = Number(m!.n) === 0 ? quiet + 1 : 0
  }
}

export async function exportAggregates(srcData: string, dir: string): Promise<void> {
  const store = await openStore({ dataDir: srcData, logger: silentLogger, host: false })
  try {
    await store.command(
      `INSERT INTO FUNCTION file(${quote(join(dir, 'source_daily.native'))}, Native) SELECT day, src, sensor, country, toInt8(class) AS class, access, bogon, packets, first_seen, last_seen, dsts, dsts_v4, hours FROM source_daily SETTINGS engine_file_truncate_on_insert = 1`,
    )
  } finally {
    await store.close()
  }
}

export async function buildBig(bigData: string, dir: string, factor: number): Promise<Record<string, number>> {
  const store = await openStore({ dataDir: bigData, logger: silentLogger, host: false })
  const seconds: Record<string, number> = {}
  const step = async (name: string, sql: string) => {
    const t0 = performance.now()
    await store.command(sql)
    seconds[name] = (performance.now() - t0) / 1000
  }
  try {
    const copy = `if(k = 0, src, toIPv6(concat('2001:', lower(hex(toUInt16(k))), ':', substring(hex(src), 17, 4), ':', substring(hex(src), 21, 4), ':', substring(hex(src), 25, 4), ':', substring(hex(src), 29, 4), '::')))`
    await step(
      'source_daily',
      `INSERT INTO source_daily (day, src, sensor, country, class, access, bogon, packets, first_seen, last_seen, dsts, dsts_v4, hours)
       SELECT day, ${copy} AS src, sensor, country, class, access, bogon, packets, first_seen, last_seen, dsts, dsts_v4, hours
       FROM file(${quote(join(dir, 'source_daily.native'))}, Native, ${quote(SOURCE_DAILY)}) ARRAY JOIN range(${factor}) AS k
       SETTINGS max_insert_threads = 2, max_threads = 2`,
    )
    // A store made since schema v9 fills daily_agg from the source_daily rows as they go in
    // (store/schema.ts DAILY_FROM_SOURCE_DAILY); one made before needs the same rows here.
    const [chained] = await store.query<{ yes: number }>(
      "SELECT toUInt8(has(dependencies_table, 'daily_agg_mv')) AS yes FROM system.tables WHERE database = currentDatabase() AND name = 'source_daily'",
    )
    if (chained?.yes !== 1) {
      await step(
        'daily_agg',
        `INSERT INTO daily_agg SELECT day, sensor, country, class, access, sum(packets), uniqExactState(src)
         FROM source_daily GROUP BY day, sensor, country, class, access SETTINGS max_threads = 2`,
      )
    }
    await step(
      'hourly_agg',
      `INSERT INTO hourly_agg (hour, sensor, country, class, access, packets)
       SELECT toStartOfHour(first_seen) AS hour, sensor, country, class, access, sum(packets)
       FROM source_daily GROUP BY hour, sensor, country, class, access SETTINGS max_threads = 2`,
    )
    // What `teiten ingest` and `sink` do after storing: the per-day rollup of every grouping.
    const tr = performance.now()
    await refreshRollup(store)
    seconds.daily_rollup = (performance.now() - tr) / 1000
    const t0 = performance.now()
    await settle(store, 600_000)
    seconds.merges = (performance.now() - t0) / 1000
    return seconds
  } finally {
    await store.close()
  }
}

if (process.argv[1]?.endsWith('big.js')) {
  const [what, a, b, factor] = process.argv.slice(2)
  const run =
    what === 'export' && a && b
      ? exportAggregates(a, b).then(() => ({}))
      : what === 'build' && a && b
        ? buildBig(a, b, Number(factor ?? 59))
        : Promise.reject(new Error('usage: big.js export SRC_DATA DIR | build BIG_DATA DIR FACTOR'))
  run.then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      process.exit(0)
    },
    (err: unknown) => {
      process.stderr.write(`bench/big: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
