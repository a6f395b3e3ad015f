/**
 * The order a run reads its captures in (pipeline/files.ts expandPaths): a spool oldest first
 * across its sensor folders, so the store's weekly partitions get their rows together.
 */
import { utimesSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { expandPaths } from '../../pipeline/files.js'
import { generate, pcap, tempDir, writeCapture } from './helpers.js'

const work = tempDir('teiten-files-')
afterAll(() => work.cleanup())

const bytes = pcap(generate({ seed: 93, packets: 5 }).packets)

/** A capture whose modification time is `seconds` after the epoch. */
function captureAt(path: string, seconds: number): string {
  writeCapture(path, bytes)
  utimesSync(path, seconds, seconds)
  return path
}

describe('the order of a run', () => {
  const spool = join(work.path, 'spool')
  // Written in path order, timed in hour order: the two disagree.
  const a0 = captureAt(join(spool, 'sensor-a', '00.pcap'), 1_000)
  const a1 = captureAt(join(spool, 'sensor-a', '01.pcap'), 2_000)
  const b0 = captureAt(join(spool, 'sensor-b', '00.pcap'), 1_000)
  const b1 = captureAt(join(spool, 'sensor-b', '01.pcap'), 2_000)
  const c0 = captureAt(join(spool, 'sensor-c', 'nested', '00.pcap'), 1_500)

  it('reads a spool oldest first across its sensor folders, files of the same time in path order', async () => {
    const files = await expandPaths([spool])
    expect(files.map((f) => f.path)).toEqual([a0, b0, c0, a1, b1])
    expect(files.map((f) => f.sensor)).toEqual(['sensor-a', 'sensor-b', 'nested', 'sensor-a', 'sensor-b'])
    expect(files.every((f) => f.size === bytes.length)).toBe(true)
  })

  it('keeps named files where they were named, each folder named sorted in its place', async () => {
    const other = join(work.path, 'other')
    const late = captureAt(join(other, 'a-late.pcap'), 3_000)
    const early = captureAt(join(other, 'b-early.pcap'), 100)
    const files = await expandPaths([b1, other, a0, early])
    // `early` comes with its folder, so naming it again adds nothing.
    expect(files.map((f) => f.path)).toEqual([b1, early, late, a0])
    expect((await expandPaths([a1, a0])).map((f) => f.path)).toEqual([a1, a0])
  })
})
