import { TeitenError } from '../core/errors.js'
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js'
import type { Store } from './store.js'

export interface MigrateOptions {
  retentionDays?: number
  /**
   * How a store found empty here names files from now on (schema v17, IdentityScheme in
   * pipeline/identity-core.ts); SHA-256 when absent. `teiten ingest` asks for XXH3-128; the
   * Kafka storage worker does not: its sensors send SHA-256 ids.
   */
  newStoreIdentity?: 'xxh128'
}

/** Brings the schema up to SCHEMA_VERSION; idempotent, safe to run on every open. */
export async function migrate(store: Store, options: MigrateOptions = {}): Promise<number> {
  await store.command(
    `CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, description String, applied_at DateTime('UTC') DEFAULT now())
     ENGINE = ReplacingMergeTree ORDER BY version`,
  )
  // Every version not recorded yet is applied, not only those above the highest: versions are
  // numbered on parallel branches, and a store that got 4 before 3 existed must still get 3.
  const rows = await store.query<{ v: number }>('SELECT DISTINCT toUInt32(version) AS v FROM schema_migrations')
  const applied = new Set(rows.map((r) => Number(r.v)))
  const current = Math.max(0, ...applied)
  if (current > SCHEMA_VERSION) {
    throw new TeitenError(
      'STORE_SCHEMA_NEWER',
      `the store has schema version ${current}, this teiten knows up to ${SCHEMA_VERSION}: upgrade teiten`,
    )
  }
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue
    const applies = migration.appliesTo === undefined || (await migration.appliesTo(store, options))
    if (applies) for (const statement of migration.statements) await store.command(statement)
    await store.command('INSERT INTO schema_migrations (version, description) VALUES ({v:UInt32}, {d:String})', {
      v: migration.version,
      d: applies ? migration.description : (migration.kept ?? migration.description),
    })
  }
  if (options.retentionDays !== undefined) await applyRetention(store, options.retentionDays)
  return SCHEMA_VERSION
}

/** Raw events expire after N days (0 = keep forever); the aggregates keep the whole history. */
export async function applyRetention(store: Store, retentionDays: number): Promise<void> {
  if (!Number.isInteger(retentionDays) || retentionDays < 0) {
    throw new TeitenError('BAD_PARAMETER', `retention days must be a whole number >= 0, got ${retentionDays}`)
  }
  if (retentionDays === 0) await store.command('ALTER TABLE events REMOVE TTL').catch(() => {})
  else await store.command(`ALTER TABLE events MODIFY TTL toDateTime(ts) + INTERVAL ${retentionDays} DAY`)
}
