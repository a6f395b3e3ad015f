import { describe, expect, it } from 'vitest'
import { batchToken } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { queryDaily, parseDailyQuery } from '../../store/queries.js'
import { putTimestampNanos, putUInt64 } from '../../store/rowbinary.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, type PacketSpec } from '../helpers/packets.js'
import { embeddedStoreForFile } from '../helpers/store.js'

let store: Store
embeddedStoreForFile((opened) => {
  store = opened
})

const encode = encodeRows

describe('RowBinary timestamps', () => {
  it.each([
    [0, 0],
    [1380585600, 0], // 2013-10-01
    [1380585600, 999_999_999],
    [4294967295, 123_456_789],
    [2208988800, 1], // NTP era offset, beyond 2^53 ns
  ])('encodes %i s + %i ns exactly as a 64-bit nanosecond count', (sec, ns) => {
    const b = Buffer.alloc(8)
    putTimestampNanos(new DataView(b.buffer, b.byteOffset, 8), 0, sec, ns)
    expect(b.readBigInt64LE(0)).toBe(BigInt(sec) * 1_000_000_000n + BigInt(ns))
  })
})

describe('RowBinary record numbers', () => {
  it.each([0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 20_000_000_123, Number.MAX_SAFE_INTEGER])(
    'encodes record %i exactly as a little-endian UInt64',
    (record) => {
      const b = Buffer.alloc(12, 0xee)
      putUInt64(new DataView(b.buffer, b.byteOffset, b.length), 2, record)
      expect(b.readBigUInt64LE(2)).toBe(BigInt(record))
      expect([b[0], b[1], b[10], b[11]]).toEqual([0xee, 0xee, 0xee, 0xee])
    },
  )
})

describe('embedded store', () => {
  const day1: PacketSpec[] = [
    { ts: '2013-12-01T01:00:00Z', src: '1.2.3.4', cls: 'monlist', country: 'CN' },
    { ts: '2013-12-01T02:00:00Z', src: '1.2.3.4', cls: 'monlist', country: 'CN' },
    { ts: '2013-12-01T03:00:00Z', src: '1.2.3.5', cls: 'client', country: 'CN' },
    { ts: '2013-12-01T04:00:00Z', src: '5.6.7.8', cls: 'monlist', country: 'US' },
    // backscatter: from port 123, not an access
    { ts: '2013-12-01T05:00:00Z', src: '9.9.9.9', srcPort: 123, dstPort: 5555, cls: 'response', country: 'DE' },
    { ts: '2013-12-02T00:00:00.5Z', src: '2001:200::1', cls: 'monlist', country: 'JP' },
  ]

  it('stores events and answers the Figure-2 daily query from the aggregates', async () => {
    await store.insertRowBinary('events', EVENT_STRUCTURE, encode(day1), batchToken('a'.repeat(32), 0))
    const rows = await queryDaily(store, parseDailyQuery({}))
    expect(rows).toEqual([
      { day: '2013-12-01', country: 'CN', packets: 3, sources: 2 },
      { day: '2013-12-01', country: 'US', packets: 1, sources: 1 },
      { day: '2013-12-02', country: 'JP', packets: 1, sources: 1 },
    ])
    const all = await queryDaily(store, parseDailyQuery({ by: 'day', all: true }))
    expect(all).toEqual([
      { day: '2013-12-01', packets: 5, sources: 4 },
      { day: '2013-12-02', packets: 1, sources: 1 },
    ])
    const raw = await store.query<{ ts: string; src: string }>(
      "SELECT toString(ts) AS ts, IPv6NumToString(src) AS src FROM events WHERE country = 'JP'",
    )
    expect(raw).toEqual([{ ts: '2013-12-02 00:00:00.500000000', src: '2001:200::1' }])
  })

  it('drops a batch inserted again with the same token, aggregates included', async () => {
    await store.insertRowBinary('events', EVENT_STRUCTURE, encode(day1), batchToken('a'.repeat(32), 0))
    const [{ n }] = await store.query<{ n: number }>('SELECT toUInt32(count()) AS n FROM events')
    expect(n).toBe(6)
    const rows = await queryDaily(store, parseDailyQuery({ by: 'class', all: true }))
    expect(rows.find((r) => r.class === 'monlist')).toEqual({ class: 'monlist', packets: 4, sources: 3 })
  })

  it('filters by sensor, class and country and groups by any key set', async () => {
    const rows = await queryDaily(
      store,
      parseDailyQuery({
        by: 'sensor,class',
        class: 'monlist,client',
        country: 'CN',
        from: '2013-12-01',
        to: '2013-12-01',
      }),
    )
    expect(rows).toEqual([
      { sensor: 'sensor-a', class: 'monlist', packets: 2, sources: 1 },
      { sensor: 'sensor-a', class: 'client', packets: 1, sources: 1 },
    ])
  })

  it('keeps a ledger of files by content identity', async () => {
    const sink = new StoreSink(store)
    expect(await sink.lookupFile('b'.repeat(32))).toBeUndefined()
    const record = {
      fileId: 'b'.repeat(32),
      sensor: 's',
      path: '/spool/s/x.pcap',
      bytes: 100,
      records: 10,
      kept: 3,
      firstTs: '2013-12-01T00:00:00.000000000',
      lastTs: '2013-12-01T00:00:01.000000000',
      status: 'complete' as const,
      error: '',
    }
    await sink.finishFile(record)
    await sink.finishFile(record)
    const found = await sink.lookupFile('b'.repeat(32))
    expect(found).toMatchObject({ path: '/spool/s/x.pcap', records: 10, kept: 3, status: 'complete' })
    const [{ n }] = await store.query<{ n: number }>('SELECT toUInt32(count()) AS n FROM ingested_files')
    expect(n).toBe(1)
  })

  it.each([
    [{ by: 'day,bogus' }, /by/],
    [{ from: '2013-13-01' }, /from/],
    [{ from: '2014-01-02', to: '2014-01-01' }, /after/],
    [{ country: 'cn' }, /country/],
    [{ class: 'monlist;DROP TABLE events' }, /class/],
    [{ extra: 1 }, /extra|Unrecognized/i],
  ])('rejects bad daily parameters %o', (input, message) => {
    expect(() => parseDailyQuery(input)).toThrow(message)
  })
})
