/**
 * The embedded store inserts on connections of their own (store/open.ts INSERT_CONNECTIONS):
 * statements do not queue behind inserts, inserts run side by side, and an insert that must
 * follow a statement (a group's pending ledger rows) says so with `after`.
 */
import { expect, it } from 'vitest'
import { groupToken } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec } from '../helpers/packets.js'
import { embeddedStoreForFile } from '../helpers/store.js'

let store: Store
embeddedStoreForFile((opened) => {
  store = opened
})

const count = async (sql: string) => Number((await store.query<{ n: string }>(sql))[0]!.n)
const events = () => count('SELECT toString(count()) AS n FROM events')
const aggregated = async () => ({
  daily: await count('SELECT toString(sum(packets)) AS n FROM daily_agg'),
  hourly: await count('SELECT toString(sum(packets)) AS n FROM hourly_agg'),
  sourceDaily: await count('SELECT toString(sum(packets)) AS n FROM source_daily'),
})

/** `n` packets of one day from `sources` sources, each batch its own fileId. */
function batch(i: number, n: number): Buffer {
  const specs: PacketSpec[] = []
  for (let k = 0; k < n; k++) {
    specs.push({
      ts: `2013-12-${String(1 + (i % 20)).padStart(2, '0')}T${String(k % 24).padStart(2, '0')}:00:00Z`,
      src: `10.${i}.${k % 7}.${k % 251}`,
      dst: `192.0.2.${k % 200}`,
      cls: 'monlist',
      country: 'CN',
    })
  }
  return encodeRows(specs, 'lanes', `${String(i).padStart(2, '0')}${'c'.repeat(30)}`)
}

it('answers a statement while an insert waits for the statement it is ordered after, and drops the insert when that fails', async () => {
  let fail!: (err: Error) => void
  const gate = new Promise<void>((_, reject) => {
    fail = reject
  })
  const waiting = store.insertRowBinary('events', EVENT_STRUCTURE, batch(0, 50), 'lanes-gated-0', { after: gate })
  waiting.catch(() => {})
  // With one queue for statements and inserts this query would wait behind the gated insert.
  expect(await events()).toBe(0)
  fail(new Error('the pending rows were not stored'))
  await expect(waiting).rejects.toThrow('the pending rows were not stored')
  expect(await events()).toBe(0)
  expect(await aggregated()).toEqual({ daily: 0, hourly: 0, sourceDaily: 0 })
})

it('stores blocks sent side by side once, also when they are all sent again side by side', async () => {
  const bodies = Array.from({ length: 8 }, (_, i) => batch(i + 1, 400 + i))
  const total = bodies.reduce((sum, _, i) => sum + 400 + i, 0)
  const send = () =>
    Promise.all(bodies.map((b, i) => store.insertRowBinary('events', EVENT_STRUCTURE, b, `lanes-twice-${i}`)))
  await send()
  await send()
  expect(await events()).toBe(total)
  expect(await aggregated()).toEqual({ daily: total, hourly: total, sourceDaily: total })
  // Each day's distinct sources, from the merged states, match a recount of the events.
  expect(
    await count('SELECT toString(sum(s)) AS n FROM (SELECT uniqExactMerge(sources) AS s FROM daily_agg GROUP BY day)'),
  ).toBe(await count('SELECT toString(sum(s)) AS n FROM (SELECT uniqExact(src) AS s FROM events GROUP BY toDate(ts))'))
})

it('does not store a group whose pending ledger rows could not be written', async () => {
  const before = await events()
  const sink = new StoreSink(store)
  const member = {
    fileId: 'd'.repeat(32),
    sensor: 'lanes',
    path: '/spool/lanes/bad.pcap',
    bytes: 1,
    records: 1,
    kept: 1,
    firstTs: 'not a time',
    lastTs: null,
    status: 'complete' as const,
    error: '',
  }
  const token = groupToken([member.fileId])
  await expect(sink.writeGroup({ token, members: [member], rows: 30, body: batch(30, 30) })).rejects.toThrow()
  expect(await events()).toBe(before)
  expect(await sink.lookupFile(member.fileId)).toBeUndefined()
})

it('tells the caller once that it has read a body, for a Native block and for RowBinary rows alike', async () => {
  await store.command('CREATE TABLE IF NOT EXISTS lanes_rows (x UInt32) ENGINE = MergeTree ORDER BY x')
  const rows = Buffer.alloc(8)
  rows.writeUInt32LE(7, 0)
  rows.writeUInt32LE(9, 4)
  let rowBinaryReads = 0
  await store.insertRowBinary('lanes_rows', 'x UInt32', rows, 'lanes-rows-0', {
    onBodyRead: () => rowBinaryReads++,
  })
  expect(rowBinaryReads).toBe(1)
  expect(await count('SELECT toString(sum(x)) AS n FROM lanes_rows')).toBe(16)
  let eventReads = 0
  const before = await events()
  const insert = store.insertRowBinary('events', EVENT_STRUCTURE, batch(40, 25), 'lanes-read-once', {
    onBodyRead: () => eventReads++,
  })
  // An events body is rewritten into the store's own block when it is handed over.
  expect(eventReads).toBe(1)
  await insert
  expect(eventReads).toBe(1)
  expect(await events()).toBe(before + 25)
})
