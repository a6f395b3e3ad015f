#!/usr/bin/env node
// Prints a JSON fingerprint of an embedded data directory: row counts and order-independent
// hashes of every table teiten fills (events, the three aggregates, the file ledger). Two
// directories that stored the same events exactly once print the same fingerprint; a row
// stored twice changes the count and the hash sum. Runs in its own process because chDB binds
// one data directory per process. Usage: node test/stream/fingerprint.mjs DATA_DIR
import { silentLogger } from '../../dist/core/logger.js'
import { openStore } from '../../dist/store/open.js'
import { hourlyLayoutOf, hourlySql } from '../../dist/store/research.js'
import { DARK_ADDRESSES_SQL } from '../../dist/store/schema.js'

const HOURLY_KEYS = ['hour', 'sensor', 'country', 'class', 'access'].map((k) => [k, `k_${k}`])

const QUERIES = {
  events: `SELECT count() AS n_rows, uniqExact(file_id, record) AS n_distinct,
             toString(sum(cityHash64(ts, sensor, src, src_port, dst, dst_port, ip_version, ttl, ip_len, udp_len,
               payload_len, wire_len, class, ntp_version, ntp_mode, ntp_code, ntp_impl, country, bogon, file_id, record))) AS hash
           FROM events`,
  daily: `SELECT count() AS groups, sum(p) AS packets, toString(sum(cityHash64(day, sensor, country, class, access, p, s))) AS hash
          FROM (SELECT day, sensor, country, class, access, sum(packets) AS p, uniqExactMerge(sources) AS s
                FROM daily_agg GROUP BY day, sensor, country, class, access)`,
  // Packets and distinct sources per hour group, wherever the store keeps the hourly sources.
  hourly: (layout) => `SELECT count() AS groups, sum(p) AS packets,
             toString(sum(cityHash64(k_hour, k_sensor, k_country, k_class, k_access, p, s))) AS hash
           FROM (SELECT *, packets AS p, sources AS s FROM (${hourlySql(layout, HOURLY_KEYS, { hours: [], days: [], filters: [] })}))`,
  sources: `SELECT count() AS groups, sum(p) AS packets,
              toString(sum(cityHash64(day, src, sensor, country, class, access, b, p, f, l, d))) AS hash
            FROM (SELECT day, src, sensor, country, class, access, max(bogon) AS b, sum(packets) AS p,
                         min(first_seen) AS f, max(last_seen) AS l, ${DARK_ADDRESSES_SQL} AS d
                  FROM source_daily GROUP BY day, src, sensor, country, class, access)`,
  files: `SELECT count() AS n_files, sum(kept) AS n_kept, sum(records) AS n_records, countIf(status = 'complete') AS n_complete,
            toString(sum(cityHash64(file_id, sensor, path, bytes, records, kept, first_ts, last_ts, status, error))) AS hash
          FROM ingested_files FINAL`,
}

const dir = process.argv[2]
if (!dir) {
  process.stderr.write('usage: fingerprint.mjs DATA_DIR\n')
  process.exit(2)
}
const store = await openStore({ dataDir: dir, logger: silentLogger, host: false })
const out = {}
try {
  for (const [name, query] of Object.entries(QUERIES)) {
    const sql = typeof query === 'function' ? query(await hourlyLayoutOf(store)) : query
    const [row] = await store.query(sql)
    out[name] = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, String(v)]))
  }
} finally {
  await store.close()
}
process.stdout.write(`${JSON.stringify(out)}\n`)
