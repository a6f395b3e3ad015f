import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NTP_CLASSES } from '../../core/event.js'
import { isTeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { eventsRowBinaryToNative } from '../../store/native.js'
import { openStore } from '../../store/open.js'
import { EventRowEncoder } from '../../store/rowbinary.js'
import { EVENT_COLUMNS, EVENT_STRUCTURE } from '../../store/schema.js'
import type { Store } from '../../store/store.js'
import { encodeRows, makePacket, type PacketSpec, seededDraw } from '../helpers/packets.js'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
let store: Store

beforeAll(async () => {
  store = await openStore({ dataDir: join(dir.path, 'data'), logger: silentLogger, host: false })
})
afterAll(async () => {
  await store?.close()
  dir.cleanup()
})

/**
 * The oracle: ClickHouse's own Native output for the same RowBinary rows, read with the
 * table's types, as one block.
 */
async function engineNative(body: Buffer, name: string): Promise<Buffer> {
  const path = join(dir.path, `${name}.rowbinary`)
  writeFileSync(path, body)
  const plain = EVENT_COLUMNS.map(([n, t]) => `${n} ${t.replace(/LowCardinality\(([^()]*)\)/, '$1')}`).join(', ')
  const casts = EVENT_COLUMNS.map(([n, t]) => `CAST(${n} AS ${t}) AS ${n}`).join(', ')
  return store.queryRaw(
    `SELECT ${casts} FROM file({path:String}, RowBinary, {structure:String})`,
    { path, structure: plain },
    'Native',
    { max_block_size: 10_000_000, preferred_block_size_bytes: 0 },
  )
}

function mixedDay(rows: number, seed: number): PacketSpec[] {
  const draw = seededDraw(seed)
  const countries = ['CN', 'US', 'JP', '--', 'DE', 'RU', 'BR', 'KR']
  return Array.from({ length: rows }, (_, i) => ({
    ts: new Date(Date.UTC(2013, 11, 1) + i * 997 + draw(1000)).toISOString(),
    src: draw(4) === 0 ? `2001:db8::${(draw(0xffff) + 1).toString(16)}` : `198.51.${draw(256)}.${draw(256)}`,
    dst: draw(2) === 0 ? `203.0.113.${draw(256)}` : '2001:db8:ffff::7',
    srcPort: draw(3) === 0 ? 123 : 1024 + draw(60000),
    dstPort: draw(3) === 0 ? 40000 + draw(1000) : 123,
    cls: NTP_CLASSES[draw(NTP_CLASSES.length)]!,
    country: countries[draw(countries.length)]!,
    bogon: draw(5) === 0,
  }))
}

/** Rows of many files in one body, as a group insert of small files sends them. */
function groupBody(files: number): Buffer {
  const enc = new EventRowEncoder(64)
  const specs = mixedDay(files * 2, 7)
  for (let f = 0; f < files; f++) {
    enc.setFile(`sensor-${f % 3}`, f.toString(16).padStart(32, '0'))
    for (const [i, spec] of specs.slice(2 * f, 2 * f + 1 + (f % 2)).entries()) {
      const { packet, enrichment } = makePacket(spec)
      enc.add(packet, enrichment, i)
    }
  }
  return enc.take()
}

function oddStrings(): Buffer {
  const enc = new EventRowEncoder(64)
  enc.setFile('s'.repeat(127), 'f'.repeat(127))
  const specs = mixedDay(5, 3).map((s, i) => ({ ...s, country: ['', 'XYZ', 'CN', 'A', 'CN'][i]! }))
  // Records past 2^32 exercise both halves of the UInt64.
  for (const [i, spec] of specs.entries()) {
    const { packet, enrichment } = makePacket(spec)
    enc.add(packet, enrichment, 2 ** 32 + i * 2 ** 20)
  }
  return enc.take()
}

describe('events rows as a Native block', () => {
  it.each([
    ['one file of every class, country, address family and port direction', () => encodeRows(mixedDay(3000, 1))],
    ['one row', () => encodeRows(mixedDay(1, 2))],
    ['a group of 300 files (a dictionary past 256 keys: 16-bit indexes)', () => groupBody(300)],
    ['strings of 0, 1, 3 and 127 bytes and records past 2^32', oddStrings],
  ])('is byte for byte what ClickHouse writes for the same rows: %s', async (name, make) => {
    const body = make()
    const mine = eventsRowBinaryToNative(body)
    const theirs = await engineNative(body, name.replace(/\W+/g, '-'))
    expect(mine.length).toBe(theirs.length)
    expect(mine.equals(theirs)).toBe(true)
  })

  it('stores every value as it was encoded (RowBinary in, RowBinary out)', async () => {
    const body = encodeRows(mixedDay(2000, 4), 'roundtrip', 'r'.repeat(32))
    await store.insertRowBinary('events', EVENT_STRUCTURE, body, 'native-roundtrip-0')
    const back = await store.queryRaw(
      "SELECT * FROM events WHERE file_id = 'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr' ORDER BY record",
      undefined,
      'RowBinary',
    )
    expect(back.length).toBe(body.length)
    expect(back.equals(body)).toBe(true)
  })

  const whole = encodeRows(mixedDay(10, 5))
  const rowBytes = whole.length / 10
  it.each([
    ['cut inside the timestamp', whole.subarray(0, 4 * rowBytes + 3), 4, 4 * rowBytes],
    ['cut before the record number', whole.subarray(0, 7 * rowBytes - 2), 6, 6 * rowBytes],
    [
      'a sensor length past 127',
      Buffer.concat([whole.subarray(0, 2 * rowBytes), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 200])]),
      2,
      2 * rowBytes,
    ],
  ])('rejects a body that is not whole rows, naming the row and its offset: %s', (_name, body, row, offset) => {
    let caught: unknown
    try {
      eventsRowBinaryToNative(body)
    } catch (err) {
      caught = err
    }
    expect(isTeitenError(caught, 'STORE_INSERT_FAILED')).toBe(true)
    expect((caught as { context: unknown }).context).toEqual({ row, offset })
  })
})

describe('inserting into the embedded store', () => {
  const bodyFiles = () => readdirSync(join(dir.path, 'data', 'tmp'))

  it('stores bodies handed over at once in the order given, and leaves no body file behind', async () => {
    const bodies = [0, 1, 2, 3].map((i) => encodeRows(mixedDay(500 + i, 10 + i), 'order', `${i}`.repeat(32)))
    await Promise.all(bodies.map((b, i) => store.insertRowBinary('events', EVENT_STRUCTURE, b, `order-${i}`)))
    const rows = await store.query<{ file_id: string; n: number }>(
      "SELECT file_id, toUInt32(count()) AS n FROM events WHERE sensor = 'order' GROUP BY file_id ORDER BY file_id",
    )
    expect(rows).toEqual(bodies.map((_, i) => ({ file_id: `${i}`.repeat(32), n: 500 + i })))
    expect(bodyFiles()).toEqual([])
  })

  it('reports a failed insert as STORE_INSERT_FAILED, removes its body file, and goes on', async () => {
    const body = encodeRows(mixedDay(10, 20), 'fails', 'e'.repeat(32))
    await expect(store.insertRowBinary('no_such_table', EVENT_STRUCTURE, body, 'fail-0')).rejects.toMatchObject({
      code: 'STORE_INSERT_FAILED',
    })
    expect(bodyFiles()).toEqual([])
    await store.insertRowBinary('events', EVENT_STRUCTURE, body, 'fail-1')
    expect(await store.query("SELECT toUInt32(count()) AS n FROM events WHERE sensor = 'fails'")).toEqual([{ n: 10 }])
  })
})
