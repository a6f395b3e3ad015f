/**
 * Query timings on one store (a child process of bench/main.ts: the embedded engine binds one
 * data directory per process). Prints one JSON object: per query, every run in milliseconds
 * (the first run is cold: nothing of the store in the engine's caches yet).
 *
 *   node dist/bench/queries.js DATA_DIR [RUNS]
 */
import { silentLogger } from '../core/logger.js'
import { openStore } from '../store/open.js'
import { parseDailyQuery, queryDaily } from '../store/queries.js'
import { parseHourlyQuery, parseSourcesQuery, queryHourly, querySources } from '../store/research.js'

export interface QueryTimings {
  days: number
  range: { from: string; to: string }
  busiestDay: string
  rows: { daily_agg: number; hourly_agg: number; source_daily: number; events: number }
  queries: { name: string; ms: number[]; rows: number }[]
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10)
}

export async function timeQueries(dataDir: string, runs: number): Promise<QueryTimings> {
  const store = await openStore({ dataDir, logger: silentLogger, host: false })
  try {
    const [range] = await store.query<{ f: string; t: string; n: string }>(
      'SELECT toString(min(day)) AS f, toString(max(day)) AS t, toString(uniqExact(day)) AS n FROM daily_agg',
    )
    const [busy] = await store.query<{ d: string }>(
      'SELECT toString(day) AS d FROM daily_agg GROUP BY day ORDER BY sum(packets) DESC LIMIT 1',
    )
    const count = async (t: string) =>
      Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${t}`))[0]!.n)
    const from = range!.f
    const to = range!.t
    // The dashboard opens on the last 90 days of data (dashboards/web/app.js).
    const from90 = [from, addDays(to, -89)].sort().at(-1)!
    const day = busy!.d
    const f90 = { from: from90, to }
    const cases: { name: string; run: () => Promise<number> }[] = [
      {
        name: `teiten daily: ${range!.n} days x all countries (Figure 2)`,
        run: async () => (await queryDaily(store, parseDailyQuery({}))).length,
      },
      {
        name: 'dashboard main view: the 4 /api/daily queries of 90 days',
        run: async () => {
          let n = 0
          for (const q of [
            { ...f90, by: 'day,country' },
            { ...f90, by: '' },
            { ...f90, by: 'day' },
            { ...f90, class: 'monlist', by: 'day' },
          ]) {
            n += (await queryDaily(store, parseDailyQuery(q))).length
          }
          return n
        },
      },
      {
        name: `hourly of the busiest day (${day}) by hour x country`,
        run: async () => (await queryHourly(store, parseHourlyQuery({ day, by: 'hour,country' }))).length,
      },
      {
        name: 'top 15 sources of 90 days (dashboard)',
        run: async () => (await querySources(store, parseSourcesQuery({ ...f90, limit: 15 }))).length,
      },
      {
        name: `top 15 sources of one day (${day})`,
        run: async () => (await querySources(store, parseSourcesQuery({ from: day, to: day, limit: 15 }))).length,
      },
    ]
    const queries: QueryTimings['queries'] = []
    for (const c of cases) {
      const ms: number[] = []
      let rows = 0
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now()
        rows = await c.run()
        ms.push(performance.now() - t0)
      }
      queries.push({ name: c.name, ms, rows })
    }
    return {
      days: Number(range!.n),
      range: { from, to },
      busiestDay: day,
      rows: {
        daily_agg: await count('daily_agg'),
        hourly_agg: await count('hourly_agg'),
        source_daily: await count('source_daily'),
        events: await count('events'),
      },
      queries,
    }
  } finally {
    await store.close()
  }
}

if (process.argv[1]?.endsWith('queries.js')) {
  const [dataDir, runs] = process.argv.slice(2)
  if (!dataDir) {
    process.stderr.write('usage: queries.js DATA_DIR [RUNS]\n')
    process.exit(2)
  }
  timeQueries(dataDir, Number(runs ?? 5)).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      process.exit(0)
    },
    (err: unknown) => {
      process.stderr.write(`bench/queries: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
