/**
 * The Kafka message format (stream/codec.ts): round trip of real pipeline batches, the
 * deterministic split under the broker's default 1 MB limit, and rejection of every kind of
 * bad message with KAFKA_BAD_MESSAGE (never another error: a sink parks what it cannot decode).
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isTeitenError } from '../../core/errors.js'
import { BATCH_ROWS } from '../../pipeline/ingest.js'
import { batchToken, type EventBatch, type FileRecord } from '../../pipeline/sink.js'
import { eventsRowBinaryToNative } from '../../store/native.js'
import { type EventsBlock, readEventsBlock, writeEventsBlock } from '../../store/native-blocks.js'
import {
  decodeMessage,
  encodeBatch,
  encodeEventsMessage,
  encodeFileMessage,
  insertGroup,
  insertToken,
  MAX_PART_BODY_BYTES,
  PART_ROWS,
  PARTS_PER_INSERT,
  splitBody,
  walkRows,
} from '../../stream/codec.js'
import { backoffDelay } from '../../stream/consumer.js'
import { tempDir } from '../helpers/tmp.js'
import { type Expected, expectedOf, makeCorpus } from './stream-helper.js'

const dir = tempDir('teiten-codec-')
let expected: Expected
let big: EventBatch

beforeAll(async () => {
  const corpus = await makeCorpus(dir.path, { seed: 101, kept: 90_000, prefix: 'codec', days: 1, sensors: 1 })
  expected = await expectedOf([corpus.dir])
  big = expected.batches.reduce((a, b) => (b.rows > a.rows ? b : a))
}, 120_000)
afterAll(() => dir.cleanup())

/** `bytes` with one to four bytes overwritten, and cut short at some point or not. */
const damaged = (bytes: Buffer) =>
  fc
    .tuple(
      fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat(bytes.length), { nil: undefined }),
    )
    .map(([flips, cut]) => {
      const x = Buffer.from(bytes)
      for (const [at, byte] of flips) x[at] = byte
      return cut === undefined ? x : x.subarray(0, cut)
    })

function rejects(value: Buffer | null, pattern?: RegExp): void {
  let err: unknown
  try {
    decodeMessage(value)
  } catch (e) {
    err = e
  }
  expect(isTeitenError(err, 'KAFKA_BAD_MESSAGE'), String(err)).toBe(true)
  if (pattern) expect((err as Error).message).toMatch(pattern)
}

describe('message format', () => {
  it('splits a full batch into parts under 1 MB, in order, and decodes them back to the same rows', () => {
    // A whole file of ~90,000 events: one batch, ~10 MB.
    expect(big.rows).toBeGreaterThan(60_000)
    const msgs = encodeBatch(big)
    expect(msgs.length).toBeGreaterThan(1)
    for (const m of msgs) expect(m.value.length).toBeLessThanOrEqual(1_000_000)
    const bodies: Buffer[] = []
    msgs.forEach((m, i) => {
      const d = decodeMessage(m.value)
      if (d.kind !== 'events') throw new Error('expected events')
      expect(d).toMatchObject({
        sensor: big.sensor,
        fileId: big.fileId,
        batchNo: big.batchNo,
        part: i,
        parts: msgs.length,
      })
      expect(d.rows).toBe(m.rows)
      bodies.push(d.body)
    })
    expect(Buffer.concat(bodies).equals(big.body)).toBe(true)
    expect(msgs.reduce((n, m) => n + m.rows, 0)).toBe(big.rows)
  })

  it('the split is deterministic: the same batch gives byte-identical messages', () => {
    const a = encodeBatch(big)
    const b = encodeBatch({ ...big, body: Buffer.from(big.body) })
    expect(b.length).toBe(a.length)
    for (let i = 0; i < a.length; i++) expect(b[i]!.value.equals(a[i]!.value)).toBe(true)
  })

  it('splits only at row boundaries, each part as large as fits', () => {
    const limit = 10_000
    const parts = splitBody(big.body, limit)
    let rows = 0
    for (const [i, p] of parts.entries()) {
      expect(p.body.length).toBeLessThanOrEqual(limit)
      expect(walkRows(p.body, undefined)).toBe(p.rows)
      rows += p.rows
      if (i < parts.length - 1) {
        // The next part's first row would not have fitted.
        let first = 0
        walkRows(parts[i + 1]!.body, (s, e) => {
          if (s === 0) first = e
        })
        expect(p.body.length + first).toBeGreaterThan(limit)
      }
    }
    expect(rows).toBe(big.rows)
    expect(MAX_PART_BODY_BYTES).toBeLessThan(1_000_000)
  })

  it('every batch of a real corpus round-trips', () => {
    let rows = 0
    for (const b of expected.batches) {
      for (const m of encodeBatch(b)) {
        const d = decodeMessage(m.value)
        if (d.kind !== 'events') throw new Error('expected events')
        rows += d.rows
      }
    }
    expect(rows).toBe(expected.rows)
  })

  it('file records round-trip', () => {
    for (const r of expected.records) {
      const d = decodeMessage(encodeFileMessage(r))
      expect(d).toEqual({ kind: 'file', record: r })
    }
    const failed: FileRecord = {
      ...expected.records[0]!,
      status: 'failed',
      error: 'x: bad [CAPTURE_TRUNCATED]',
      firstTs: null,
    }
    expect(decodeMessage(encodeFileMessage(failed))).toEqual({ kind: 'file', record: failed })
  })
})

describe('bad messages are rejected with KAFKA_BAD_MESSAGE', () => {
  const small = () => {
    const b = expected.batches[0]!
    const first = splitBody(b.body, 2_000)[0]!
    return { b, part: first }
  }
  const message = (version: 1 | 2) => {
    const { b, part } = small()
    return encodeEventsMessage(
      {
        sensor: b.sensor,
        fileId: b.fileId,
        batchNo: 0,
        part: 0,
        parts: 1,
        rows: part.rows,
        format: 'RowBinary',
        body: part.body,
      },
      version,
    )
  }
  // Version 1 (the body as it is) for the cases that edit rows in place; version 2 below.
  const valid = () => message(1)
  const headerLength = (v: Buffer) => 22 + 1 + v[22]! + 1 + v[23 + v[22]!]!

  it('accepts the valid message the cases below start from', () => {
    expect(decodeMessage(valid()).kind).toBe('events')
  })

  it('empty, short, foreign and future messages', () => {
    rejects(null, /too short/)
    rejects(Buffer.alloc(0), /too short/)
    rejects(Buffer.from('{"ts":"2014-01-01"}'), /magic/)
    const v4 = valid()
    v4[3] = 4
    rejects(v4, /version 4/)
    const v0 = message(2)
    v0[3] = 0
    rejects(v0, /version 0/)
    const kind = valid()
    kind[4] = 9
    rejects(kind, /kind 9/)
    const flags = valid()
    flags[5] = 1
    rejects(flags, /flags/)
  })

  it('header inconsistencies', () => {
    const parts = valid()
    parts.writeUInt16LE(3, 6)
    parts.writeUInt16LE(3, 8)
    rejects(parts, /part 3 of 3/)
    const rows = valid()
    rows.writeUInt32LE(rows.readUInt32LE(14) + 1, 14)
    rejects(rows, /rows, header says/)
    const zero = valid()
    zero.writeUInt32LE(0, 14)
    rejects(zero, /without rows/)
    const v = valid()
    rejects(v.subarray(0, v.length - 1), /body is/)
    rejects(v.subarray(0, 20), /truncated/)
    rejects(Buffer.concat([v, Buffer.from([0])]), /body is/)
  })

  it('bodies that are not events rows', () => {
    const v = valid()
    const h = headerLength(v)
    const sensorLen = v[22]!
    // First row: ts (8), sensor (1 + n), src..dst_port (36), ip_version.
    const ipVersionAt = h + 8 + 1 + sensorLen + 36
    const badIp = Buffer.from(v)
    badIp[ipVersionAt] = 5
    rejects(badIp, /ip_version 5/)
    const badClass = Buffer.from(v)
    badClass[ipVersionAt + 12] = 0
    rejects(badClass, /class 0/)
    const badSensor = Buffer.from(v)
    badSensor[h + 9] ^= 0x20
    rejects(badSensor, /sensor differs/)
    const lastRow = Buffer.from(v)
    // The file id of the last row differs from the header.
    lastRow[lastRow.length - 9] ^= 0x01
    rejects(lastRow, /file id differs/)
    const body = Buffer.from(v.subarray(h))
    for (const version of [1, 2] as const) {
      const cut = encodeEventsMessage(
        {
          sensor: 'x',
          fileId: 'ab',
          batchNo: 0,
          part: 0,
          parts: 1,
          rows: 1,
          format: 'RowBinary',
          body: body.subarray(0, 30),
        },
        version,
      )
      rejects(cut)
    }
  })

  it('version 2: the zstd body decodes to the same rows as version 1; a damaged or oversized body is rejected', () => {
    const v1 = decodeMessage(message(1))
    const v2 = message(2)
    expect(v2[3]).toBe(2)
    expect(v2.length).toBeLessThan(message(1).length)
    expect(decodeMessage(v2)).toEqual(v1)
    const h = headerLength(v2)
    // A flipped byte inside the frame: zstd's content checksum catches what the rows might not.
    const flipped = Buffer.from(v2)
    flipped[h + Math.floor((v2.length - h) / 2)]! ^= 0x10
    rejects(flipped, /decompress|rows|differs|truncated|class|ip_version|length|bogon/)
    const garbage = Buffer.from(v2)
    garbage.fill(0x41, h)
    rejects(garbage, /decompress/)
    // A frame that inflates past the bound (a decompression bomb) is refused, not allocated.
    const { b } = small()
    const bomb = encodeEventsMessage(
      {
        sensor: b.sensor,
        fileId: b.fileId,
        batchNo: 0,
        part: 0,
        parts: 1,
        rows: 1,
        format: 'RowBinary',
        body: Buffer.alloc(17 << 20),
      },
      2,
    )
    rejects(bomb, /decompress/)
  })

  it('file records that are not records', () => {
    const enc = (json: string) =>
      Buffer.concat([encodeFileMessage(expected.records[0]!).subarray(0, 6), Buffer.from(json)])
    rejects(enc('not json'), /not JSON/)
    rejects(enc('[]'), /not an object/)
    const { kept: _k, ...missing } = expected.records[0]!
    rejects(enc(JSON.stringify(missing)), /kept/)
    rejects(enc(JSON.stringify({ ...expected.records[0]!, status: 'maybe' })), /status/)
    rejects(enc(JSON.stringify({ ...expected.records[0]!, firstTs: 'yesterday' })), /firstTs/)
    rejects(enc(JSON.stringify({ ...expected.records[0]!, fileId: "x'; DROP" })), /fileId/)
  })

  it.each([1, 2] as const)(
    'random corruption of a version %i message either decodes to consistent rows or is KAFKA_BAD_MESSAGE, never another error',
    (version) => {
      const base = message(version)
      fc.assert(
        fc.property(damaged(base), (value) => {
          try {
            const d = decodeMessage(value)
            if (d.kind === 'events') expect(walkRows(d.body, undefined)).toBe(d.rows)
          } catch (err) {
            expect(isTeitenError(err, 'KAFKA_BAD_MESSAGE'), String(err)).toBe(true)
          }
        }),
        { numRuns: 3000, seed: 7 },
      )
    },
  )
})

describe('insert groups', () => {
  it('joins parts in fixed groups of PARTS_PER_INSERT; a one-group batch keeps the direct-ingest token', () => {
    expect(PARTS_PER_INSERT).toBe(32)
    expect(insertGroup(0, 61)).toEqual({ group: 0, first: 0, count: 32 })
    expect(insertGroup(31, 61)).toEqual({ group: 0, first: 0, count: 32 })
    expect(insertGroup(40, 61)).toEqual({ group: 1, first: 32, count: 29 })
    expect(insertGroup(3, 5)).toEqual({ group: 0, first: 0, count: 5 })
    expect(insertToken('ab12', 3, 32, 0)).toBe(batchToken('ab12', 3))
    expect(insertToken('ab12', 3, 33, 1)).toBe('teiten:ab12:3:g1')
  })
})

describe('retry backoff', () => {
  it('doubles per attempt, is capped, and is jittered within [d/2, d]', () => {
    const policy = { initialMs: 100, maxMs: 5000 }
    expect(backoffDelay(1, policy, () => 0)).toBe(50)
    expect(backoffDelay(1, policy, () => 1)).toBe(100)
    expect(backoffDelay(4, policy, () => 1)).toBe(800)
    expect(backoffDelay(30, policy, () => 1)).toBe(5000)
    expect(backoffDelay(1000, policy, () => 0.5)).toBe(3750)
  })
})

/** A batch as the sensor's column encoder hands it over: the same rows as one Native block. */
const nativeOf = (b: EventBatch): EventBatch => ({ ...b, format: 'Native', body: eventsRowBinaryToNative(b.body) })
const joined = (blocks: EventsBlock[]) => writeEventsBlock(blocks.map((block) => ({ block, from: 0, to: block.rows })))

describe('version 3: Native parts', () => {
  it('cuts a Native batch every PART_ROWS rows into parts under 1 MB that join into the same block', () => {
    const batch = nativeOf(big)
    const msgs = encodeBatch(batch)
    expect(msgs.length).toBe(Math.ceil(big.rows / PART_ROWS))
    const blocks: EventsBlock[] = []
    msgs.forEach((m, i) => {
      expect(m.value.length).toBeLessThanOrEqual(1_000_000)
      expect(m.value[3]).toBe(3)
      const d = decodeMessage(m.value)
      if (d.kind !== 'events') throw new Error('expected events')
      expect(d).toMatchObject({ sensor: big.sensor, fileId: big.fileId, part: i, parts: msgs.length, format: 'Native' })
      expect(d.rows).toBe(i < msgs.length - 1 ? PART_ROWS : big.rows - PART_ROWS * (msgs.length - 1))
      blocks.push(d.block!)
    })
    expect(joined(blocks).equals(batch.body)).toBe(true)
    // The same rows as version 2 carries, once the sink has made its block of them.
    const v2 = encodeBatch(big).map((m) => decodeMessage(m.value))
    const rows = Buffer.concat(v2.map((d) => (d.kind === 'events' ? d.body : Buffer.alloc(0))))
    expect(eventsRowBinaryToNative(rows).equals(joined(blocks))).toBe(true)
  })

  it('a full batch fits one insert group, so a Kafka insert has the token a direct ingest gives it', () => {
    const parts = Math.ceil(BATCH_ROWS / PART_ROWS)
    expect(parts).toBeLessThanOrEqual(PARTS_PER_INSERT)
    expect(insertToken('ab', 3, parts, 0)).toBe(batchToken('ab', 3))
  })

  it('the cut is deterministic, and a part larger than the limit is halved until it fits', () => {
    const a = encodeBatch(nativeOf(big))
    const b = encodeBatch(nativeOf({ ...big, body: Buffer.from(big.body) }))
    expect(b.map((m) => m.value.toString('base64'))).toEqual(a.map((m) => m.value.toString('base64')))
    const small = encodeBatch(nativeOf(big), 50_000).map((m) => decodeMessage(m.value))
    expect(small.length).toBeGreaterThan(a.length)
    const blocks = small.map((d) => (d.kind === 'events' ? d.block! : undefined)!)
    for (const d of small) if (d.kind === 'events') expect(d.body.length).toBeLessThanOrEqual(50_000)
    expect(joined(blocks).equals(nativeOf(big).body)).toBe(true)
  })

  it('every batch of a real corpus round-trips', () => {
    let rows = 0
    for (const b of expected.batches) {
      for (const m of encodeBatch(nativeOf(b))) {
        const d = decodeMessage(m.value)
        if (d.kind !== 'events') throw new Error('expected events')
        rows += d.rows
      }
    }
    expect(rows).toBe(expected.rows)
  })

  /** A few rows of the first batch as a Native block, read. */
  const smallBlock = () => {
    const b = expected.batches[0]!
    const body = eventsRowBinaryToNative(splitBody(b.body, 2_000)[0]!.body)
    return { b, body, block: readEventsBlock(body) }
  }
  const v3 = (body: Buffer, over: Partial<{ sensor: string; fileId: string; rows: number }> = {}) => {
    const { b, block } = smallBlock()
    return encodeEventsMessage({
      sensor: over.sensor ?? b.sensor,
      fileId: over.fileId ?? b.fileId,
      batchNo: 0,
      part: 0,
      parts: 1,
      rows: over.rows ?? block.rows,
      format: 'Native',
      body,
    })
  }
  /** `x` with byte `at` set to `value`. */
  const poke = (x: Buffer, at: number, value: number) => {
    x[at] = value
    return x
  }
  /** Where the first LowCardinality column (sensor) starts: its key version, then its flags. */
  const lowCardinalityAt = (body: Buffer) => body.indexOf('LowCardinality(String)') + 'LowCardinality(String)'.length

  it.each<[string, (body: Buffer, block: EventsBlock) => Buffer, RegExp]>([
    ['ip_version 5', (x, k) => poke(x, k.data[6]!, 5), /row 0: ip_version 5/],
    ['class 0', (x, k) => poke(x, k.data[12]!, 0), /row 0: class 0/],
    ['bogon 2', (x, k) => poke(x, k.data[18]!, 2), /row 0: bogon 2/],
    ['a country index past its keys', (x, k) => poke(x, k.data[17]! + k.rows - 1, 200), /index 200 of \d+ keys/],
    ['a column renamed', (x, k) => poke(x, k.data[0]! + 8 * k.rows + 1, 0x53), /column 1 is not sensor/],
    ['an unknown key version', (x) => poke(x, lowCardinalityAt(x), 2), /key version/],
    ['an index type past UInt32', (x) => poke(x, lowCardinalityAt(x) + 8, 3), /LowCardinality flags/],
    ['a block cut short', (x) => x.subarray(0, x.length - 1), /truncated/],
    ['a byte after the block', (x) => Buffer.concat([x, Buffer.from([0])]), /1 bytes after the block/],
    [
      'RowBinary rows instead of a block',
      () => splitBody(expected.batches[0]!.body, 2_000)[0]!.body,
      /not the events columns|rows/,
    ],
  ])('a version 3 body with %s is KAFKA_BAD_MESSAGE', (_name, edit, pattern) => {
    const { body, block } = smallBlock()
    expect(decodeMessage(v3(body)).kind).toBe('events')
    rejects(v3(edit(Buffer.from(body), block)), pattern)
  })

  it('a version 3 header that does not match its block is KAFKA_BAD_MESSAGE', () => {
    const { body, block } = smallBlock()
    rejects(v3(body, { sensor: 'another-sensor' }), /sensor differs/)
    rejects(v3(body, { fileId: 'ab' }), /file id differs/)
    rejects(v3(body, { rows: block.rows + 1 }), /rows, header says/)
    // A RowBinary body is not sent as version 3, nor a Native one as version 2.
    expect(() =>
      encodeEventsMessage(
        { sensor: 's', fileId: 'ab', batchNo: 0, part: 0, parts: 1, rows: 1, format: 'Native', body },
        2,
      ),
    ).toThrow(/version 2/)
  })

  it('random damage to a Native body either decodes to a block that reads back or is KAFKA_BAD_MESSAGE', () => {
    const { body } = smallBlock()
    fc.assert(
      fc.property(damaged(body), (damagedBody) => {
        const value = v3(damagedBody)
        try {
          const d = decodeMessage(value)
          if (d.kind !== 'events') throw new Error('expected events')
          const again = readEventsBlock(joined([d.block!]))
          expect(again.rows).toBe(d.rows)
        } catch (err) {
          expect(isTeitenError(err, 'KAFKA_BAD_MESSAGE'), String(err)).toBe(true)
        }
      }),
      { numRuns: 1500, seed: 11 },
    )
  })
})
