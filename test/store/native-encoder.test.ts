/**
 * The column encoder (store/native-encoder.ts) makes, for any sequence of files, rows, rollbacks
 * and splits, exactly the Native block(s) the store's rewrite (store/native.ts) makes of the same
 * rows encoded as RowBinary (store/rowbinary.ts): byte for byte, dictionaries included. The
 * store then inserts either the same way; the end-to-end tests count what it stored.
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

function rows(n: number, seed: number, countries = ['JP', 'US', 'CN', '--']): PacketSpec[] {
  const draw = seededDraw(seed)
  return Array.from({ length: n }, (_, i) => ({
    ts: new Date(Date.UTC(2013, 11, 1) + i * 1000 + draw(1000)).toISOString(),
    src: draw(4) === 0 ? `2001:db8::${draw(65536).toString(16)}` : `198.51.${draw(256)}.${draw(256)}`,
    dst: `203.0.113.${draw(256)}`,
    srcPort: 1024 + draw(60000),
    dstPort: draw(5) === 0 ? 40000 : 123,
    cls: (['monlist', 'client', 'response', 'mode6_readvar'] as const)[draw(4)]!,
    country: countries[draw(countries.length)]!,
    bogon: draw(10) === 0,
  }))
}

/** Feeds both encoders the same steps; returns the RowBinary encoder's marks for rollbacks. */
function run(steps: Step[], row: EventRowEncoder, column: EventColumnEncoder): void {
  const marks: { offset: number; rows: number; columnMark: number }[] = []
  let record = 0
  for (const step of steps) {
    if ('file' in step) {
      row.setFile(...step.file)
      column.setFile(...step.file)
    } else if ('rows' in step) {
      for (const spec of step.rows) {
        const { packet, enrichment } = makePacket(spec)
        row.add(packet, enrichment, record)
        column.add(packet, enrichment, record)
        record++
      }
    } else if ('mark' in step) {
      marks.push({ offset: row.bytes, rows: row.rows, columnMark: column.bytes })
    } else {
      const m = marks[step.rollbackTo]!
      row.rollback(m.offset, m.rows)
      column.rollback(m.columnMark, m.rows)
    }
  }
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
    const row = new EventRowEncoder(64)
    const column = new EventColumnEncoder(16) // grows, columns copied over
    run(steps, row, column)
    expect(column.rows).toBe(row.rows)
    const expected = eventsRowBinaryToNative(row.take())
    const block = column.take()
    expect(block.equals(expected)).toBe(true)
  })

  /** Cases with rows before their last file: the pipeline splits only there (a group before a file). */
  const lastFileAt = (steps: Step[]) => steps.map((s) => 'file' in s).lastIndexOf(true)
  const splittable = CASES.filter((c) => c.steps.slice(0, lastFileAt(c.steps)).some((s) => 'rows' in s))

  it.each(splittable)(
    'split at a file boundary into two blocks, each what the rewrite makes of its rows: $name',
    ({ steps }) => {
      const row = new EventRowEncoder(64)
      const column = new EventColumnEncoder(16)
      // Split where the last file's rows start, as the pipeline does when a file outgrows a group.
      const lastFile = lastFileAt(steps)
      run(steps.slice(0, lastFile), row, column)
      const at = { offset: row.bytes, rows: row.rows }
      run(steps.slice(lastFile), row, column)
      const body = row.take()
      const { body: blocks, at: split } = column.takeSplit(at.rows)
      const head = eventsRowBinaryToNative(body.subarray(0, at.offset))
      const tail = eventsRowBinaryToNative(body.subarray(at.offset))
      expect(split).toBe(head.length)
      expect(blocks.subarray(0, split).equals(head)).toBe(true)
      expect(blocks.subarray(split).equals(tail)).toBe(true)
    },
  )

  it('starts over after take: the next block holds only the rows after it, in a block given back', () => {
    const row = new EventRowEncoder(64)
    const column = new EventColumnEncoder(16)
    run([{ file: ['s1', ID_A] }, { rows: rows(30, 12) }], row, column)
    row.take()
    const first = column.take()
    column.recycle(first)
    run([{ file: ['s2', ID_B] }, { rows: rows(20, 13, ['NL']) }], row, column)
    const second = column.take()
    expect(second.equals(eventsRowBinaryToNative(row.take()))).toBe(true)
    expect(second.buffer).toBe(first.buffer) // the block given back was used again
  })

  it('locates a stand-in file id in a taken block, and renames it for the rows still to come', () => {
    const standIn = '~'.repeat(32)
    const plain = new EventColumnEncoder(16)
    const early = new EventColumnEncoder(16)
    const steps = (id: string): Step[] => [{ file: ['s1', id] }, { rows: rows(40, 21) }]
    // First block: taken under the stand-in, then the id written where the encoder says it is.
    run(steps(ID_A), new EventRowEncoder(64), plain)
    run(steps(standIn), new EventRowEncoder(64), early)
    const { body, fileIdAt } = early.takeLocatingFileId()
    expect(body.subarray(fileIdAt, fileIdAt + 32).toString('latin1')).toBe(standIn)
    body.write(ID_A, fileIdAt, 'latin1')
    expect(body.equals(plain.take())).toBe(true)
    // Rows added under the stand-in after that, then renamed, then more rows of the file and of
    // another: the block is the one made with the id from the start.
    const more = (id: string, e: EventColumnEncoder) =>
      run([{ file: ['s1', id] }, { rows: rows(25, 22) }], new EventRowEncoder(64), e)
    more(ID_A, plain)
    more(standIn, early)
    early.renameFile(standIn, ID_A)
    for (const e of [plain, early]) {
      run([{ rows: rows(10, 23) }, { file: ['s2', ID_B] }, { rows: rows(5, 24) }], new EventRowEncoder(64), e)
    }
    expect(early.take().equals(plain.take())).toBe(true)
    // A block without the file's rows: nothing to locate.
    run([{ file: ['s1', ID_C] }], new EventRowEncoder(64), early)
    expect(early.takeLocatingFileId().fileIdAt).toBe(-1)
  })
})
