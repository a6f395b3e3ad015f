/**
 * The column encoder (store/native-encoder.ts) makes, for any sequence of files, rows, rollbacks
 * and splits, exactly the Native block(s) the store's rewrite (store/native.ts) makes of the same
 * rows encoded as RowBinary (store/rowbinary.ts) and listed sensor by sensor (sensors by name,
 * each sensor's rows as added: the order of `events`): byte for byte, dictionaries included.
 * The store then inserts either the same way; the end-to-end tests count what it stored.
 */
import { describe, expect, it } from 'vitest'
import { eventsRowBinaryToNative } from '../../store/native.js'
import { EventColumnEncoder } from '../../store/native-encoder.js'
import { EventRowEncoder } from '../../store/rowbinary.js'
import { makePacket, type PacketSpec, seededDraw } from '../helpers/packets.js'

type Step =
  | { file: [sensor: string, fileId: string] }
  | { rows: PacketSpec[] }
  | { rollbackTo: number } // to the row count (and byte offset) after step N's rows: see run()
  | { mark: true }

const ID_A = 'a'.repeat(32)
const ID_B = 'b'.repeat(32)
const ID_C = 'c'.repeat(32)
const ID_D = 'd'.repeat(32)
const ID_E = 'e'.repeat(32)

function rows(n: number, seed: number, countries = ['JP', 'US', 'CN', '--'], hour = 0): PacketSpec[] {
  const draw = seededDraw(seed)
  return Array.from({ length: n }, (_, i) => ({
    ts: new Date(Date.UTC(2013, 11, 1, hour) + i * 1000 + draw(1000)).toISOString(),
    src: draw(4) === 0 ? `2001:db8::${draw(65536).toString(16)}` : `198.51.${draw(256)}.${draw(256)}`,
    dst: `203.0.113.${draw(256)}`,
    srcPort: 1024 + draw(60000),
    dstPort: draw(5) === 0 ? 40000 : 123,
    cls: (['monlist', 'client', 'response', 'mode6_readvar'] as const)[draw(4)]!,
    country: countries[draw(countries.length)]!,
    bogon: draw(10) === 0,
  }))
}

/** A row the encoders hold: what the expected block is made of (rollbacks applied). */
interface ModelRow {
  sensor: string
  fileId: string
  spec: PacketSpec
  record: number
  /** The run of rows it was added in: a file's, begun again after a rollback. */
  run: number
}

/** Feeds the column encoder the steps; returns the rows it holds then, in the order added. */
function run(steps: Step[], column: EventColumnEncoder, held: ModelRow[] = []): ModelRow[] {
  const marks: { rows: number; columnMark: number }[] = []
  let file: [string, string] = ['', '']
  let record = held.length
  let run = (held.at(-1)?.run ?? -1) + 1
  for (const step of steps) {
    if ('file' in step) {
      file = step.file
      column.setFile(...step.file)
      run++
    } else if ('rows' in step) {
      for (const spec of step.rows) {
        const { packet, enrichment } = makePacket(spec)
        column.add(packet, enrichment, record)
        held.push({ sensor: file[0], fileId: file[1], spec, record, run })
        record++
      }
    } else if ('mark' in step) {
      marks.push({ rows: held.length, columnMark: column.bytes })
    } else {
      const m = marks[step.rollbackTo]!
      column.rollback(m.columnMark, m.rows)
      held.length = m.rows
      run++
    }
  }
  return held
}

/**
 * The rewrite of `held`'s rows as RowBinary, in the order of `events`: runs by sensor name
 * (bytewise), then by their first timestamp, then as added.
 */
function expectedBlock(held: ModelRow[]): Buffer {
  const nanos = (spec: PacketSpec) => {
    const { packet } = makePacket(spec)
    return BigInt(packet.tsSec) * 1_000_000_000n + BigInt(packet.tsNanos)
  }
  const firstTs = new Map<number, bigint>()
  for (const r of held) if (!firstTs.has(r.run)) firstTs.set(r.run, nanos(r.spec))
  const sorted = held
    .map((r, i) => ({ r, i, first: firstTs.get(r.run)! }))
    .sort(
      (a, b) =>
        Buffer.compare(Buffer.from(a.r.sensor), Buffer.from(b.r.sensor)) ||
        (a.first < b.first ? -1 : a.first > b.first ? 1 : 0) ||
        a.r.run - b.r.run ||
        a.i - b.i,
    )
  const row = new EventRowEncoder(64)
  for (const { r } of sorted) {
    row.setFile(r.sensor, r.fileId)
    const { packet, enrichment } = makePacket(r.spec)
    row.add(packet, enrichment, r.record)
  }
  return eventsRowBinaryToNative(row.take())
}

const CASES: { name: string; steps: Step[] }[] = [
  { name: 'one file, one row', steps: [{ file: ['s1', ID_A] }, { rows: rows(1, 1) }] },
  { name: 'one file, IPv4 and IPv6 sources, four countries', steps: [{ file: ['s1', ID_A] }, { rows: rows(500, 2) }] },
  {
    name: 'a group: three files of two sensors, the countries they share listed once',
    steps: [
      { file: ['sensor-a', ID_A] },
      { rows: rows(40, 3) },
      { file: ['sensor-b', ID_B] },
      { rows: rows(30, 4, ['DE', 'JP']) },
      { file: ['sensor-a', ID_C] },
      { rows: rows(20, 5) },
    ],
  },
  {
    name: 'a group read hour by hour across three sensor folders: listed by sensor, then by time',
    steps: [
      { file: ['sensor-c', ID_A] },
      { rows: rows(30, 31, undefined, 1) },
      { file: ['sensor-a', ID_B] },
      { rows: rows(20, 32, ['DE', 'JP'], 3) }, // its low 32 bits of nanoseconds sort before the hour-1 file's
      { file: ['sensor-b', ID_C] },
      { rows: rows(25, 33, ['US'], 1) },
      { file: ['sensor-c', ID_D] },
      { rows: rows(10, 34, undefined, 2) },
      // Closed later than the next hour's file: read after it.
      { file: ['sensor-a', ID_E] },
      { rows: rows(15, 35, ['FR'], 1) },
    ],
  },
  {
    name: 'no country and a country code longer than two bytes (a custom GeoIP database)',
    steps: [{ file: ['s', ID_A] }, { rows: rows(50, 6, ['', 'XK-long', 'JP', 'ÅLAND']) }],
  },
  {
    name: 'a file read in part: its rows and the strings only they used are dropped',
    steps: [
      { file: ['sensor-a', ID_A] },
      { rows: rows(25, 7, ['JP']) },
      { mark: true },
      { file: ['sensor-z', ID_B] },
      { rows: rows(25, 8, ['FR', 'JP']) },
      { rollbackTo: 0 },
      { file: ['sensor-a', ID_C] },
      { rows: rows(10, 9, ['US']) },
    ],
  },
  {
    name: 'a file set up but given no rows adds nothing',
    steps: [{ file: ['unused', ID_B] }, { file: ['s1', ID_A] }, { rows: rows(5, 10) }],
  },
  {
    name: 'more than 256 countries: the indexes widen to 16 bits',
    steps: [
      { file: ['s', ID_A] },
      {
        rows: rows(
          700,
          11,
          Array.from({ length: 300 }, (_, i) => `C${i}`),
        ),
      },
    ],
  },
]

describe('the column encoder writes the Native block the rewrite makes of the same rows', () => {
  it.each(CASES)('$name', ({ steps }) => {
    const column = new EventColumnEncoder(16) // grows, columns copied over
    const held = run(steps, column)
    expect(column.rows).toBe(held.length)
    expect(column.take().equals(expectedBlock(held))).toBe(true)
  })

  /** Cases with rows before their last file: the pipeline splits only there (a group before a file). */
  const lastFileAt = (steps: Step[]) => steps.map((s) => 'file' in s).lastIndexOf(true)
  const splittable = CASES.filter((c) => c.steps.slice(0, lastFileAt(c.steps)).some((s) => 'rows' in s))

  it.each(splittable)(
    'split at a file boundary into two blocks, each what the rewrite makes of its rows: $name',
    ({ steps }) => {
      const column = new EventColumnEncoder(16)
      // Split where the last file's rows start, as the pipeline does when a file outgrows a group.
      const lastFile = lastFileAt(steps)
      const head = [...run(steps.slice(0, lastFile), column)]
      const all = run(steps.slice(lastFile), column, [...head])
      const { body: blocks, at: split } = column.takeSplit(head.length)
      const expectedHead = expectedBlock(head)
      expect(split).toBe(expectedHead.length)
      expect(blocks.subarray(0, split).equals(expectedHead)).toBe(true)
      expect(blocks.subarray(split).equals(expectedBlock(all.slice(head.length)))).toBe(true)
    },
  )

  it("lists a group of several sensors sensor by sensor: each sensor's rows together, as added", () => {
    const column = new EventColumnEncoder(16)
    const held = run(CASES.find((c) => c.name.startsWith('a group read hour by hour'))!.steps, column)
    const block = column.take()
    const inOrderAdded = new EventRowEncoder(64)
    for (const r of held) {
      inOrderAdded.setFile(r.sensor, r.fileId)
      const { packet, enrichment } = makePacket(r.spec)
      inOrderAdded.add(packet, enrichment, r.record)
    }
    // The rows as added would make another block; sensor by sensor they make this one.
    expect(block.equals(eventsRowBinaryToNative(inOrderAdded.take()))).toBe(false)
    expect(block.equals(expectedBlock(held))).toBe(true)
    expect(new Set(held.map((r) => r.sensor)).size).toBe(3)
  })

  it('starts over after take: the next block holds only the rows after it, in a block given back', () => {
    const column = new EventColumnEncoder(16)
    run([{ file: ['s1', ID_A] }, { rows: rows(30, 12) }], column)
    const first = column.take()
    column.recycle(first)
    const held = run([{ file: ['s2', ID_B] }, { rows: rows(20, 13, ['NL']) }], column)
    const second = column.take()
    expect(second.equals(expectedBlock(held))).toBe(true)
    expect(second.buffer).toBe(first.buffer) // the block given back was used again
  })

  it('locates a stand-in file id in a taken block, and renames it for the rows still to come', () => {
    const standIn = '~'.repeat(32)
    const plain = new EventColumnEncoder(16)
    const early = new EventColumnEncoder(16)
    const steps = (id: string): Step[] => [{ file: ['s1', id] }, { rows: rows(40, 21) }]
    // First block: taken under the stand-in, then the id written where the encoder says it is.
    run(steps(ID_A), plain)
    run(steps(standIn), early)
    const { body, fileIdAt } = early.takeLocatingFileId()
    expect(body.subarray(fileIdAt, fileIdAt + 32).toString('latin1')).toBe(standIn)
    body.write(ID_A, fileIdAt, 'latin1')
    expect(body.equals(plain.take())).toBe(true)
    // Rows added under the stand-in after that, then renamed, then more rows of the file and of
    // another: the block is the one made with the id from the start.
    const more = (id: string, e: EventColumnEncoder) => run([{ file: ['s1', id] }, { rows: rows(25, 22) }], e)
    more(ID_A, plain)
    more(standIn, early)
    early.renameFile(standIn, ID_A)
    for (const e of [plain, early]) {
      run([{ rows: rows(10, 23) }, { file: ['s2', ID_B] }, { rows: rows(5, 24) }], e)
    }
    expect(early.take().equals(plain.take())).toBe(true)
    // A block without the file's rows: nothing to locate.
    run([{ file: ['s1', ID_C] }], early)
    expect(early.takeLocatingFileId().fileIdAt).toBe(-1)
  })
})
