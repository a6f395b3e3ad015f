/**
 * Small files are stored several to an insert (EventGroup), and the ledger rows that complete
 * them are written after it. A crash between the two (or before the insert got through) leaves
 * the members pending; the next run must store every packet exactly once, also when it is given
 * only some of the members, also when it is a watch taking one file at a time through the
 * metrics wrapper, and must refuse (not guess) when a member is gone.
 */
import { renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { createMetrics, instrumentSink } from '../../core/metrics.js'
import { expandPaths } from '../../pipeline/files.js'
import { ingestFiles } from '../../pipeline/ingest.js'
import type { EventSink } from '../../pipeline/sink.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import {
  addTruth,
  emptyTruth,
  eventStats,
  generate,
  pcap,
  storedCounts,
  type Truth,
  tempDir,
  testEnricher,
  truncateAll,
  writeCapture,
} from '../ops/helpers.js'

const work = tempDir('teiten-group-')
let store: Store
let truth: Truth
const spool = join(work.path, 'spool')

beforeAll(async () => {
  store = await openStore({ dataDir: join(work.path, 'data'), logger: silentLogger, host: false })
  truth = emptyTruth()
  for (let i = 0; i < 12; i++) {
    const g = generate({ seed: 100 + i, packets: 400 + 37 * i, startSec: Date.UTC(2024, 0, 1 + (i % 3)) / 1000 })
    writeCapture(join(spool, i % 2 === 0 ? 'east' : 'west', `f${String(i).padStart(2, '0')}.pcap`), pcap(g.packets))
    truth = addTruth(truth, g.truth)
  }
}, 60_000)

afterAll(async () => {
  await store?.close()
  work.cleanup()
})

async function ledger(): Promise<Record<string, number>> {
  const rows = await store.query<{ status: string; n: string }>(
    'SELECT toString(status) AS status, toString(count()) AS n FROM ingested_files FINAL GROUP BY status',
  )
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]))
}

async function expectExact(): Promise<void> {
  expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
  const counts = await storedCounts(store)
  expect(counts.all).toEqual(truth.all)
  expect(counts.access).toEqual(truth.access)
  expect(await ledger()).toEqual({ complete: 12 })
}

const ingest = async (paths: string[], sink: EventSink = new StoreSink(store)) =>
  ingestFiles(await expandPaths(paths), { sink, enricher: testEnricher(), logger: silentLogger })

/** A store sink that fails on cue: `stage` is where the "crash" happens. */
function crashing(stage: 'insert' | 'ledger'): EventSink {
  const inner = new StoreSink(store)
  return {
    identityScheme: () => inner.identityScheme(),
    batchRows: () => inner.batchRows(),
    lookupFile: (id) => inner.lookupFile(id),
    lookupFiles: (ids) => inner.lookupFiles(ids),
    groupMembers: (g) => inner.groupMembers(g),
    writeBatch: (b) => inner.writeBatch(b),
    async finishFile() {
      throw new Error('crash before the ledger row')
    },
    async writeGroup(group) {
      if (stage === 'insert') {
        // The pending rows are written, the insert never arrives.
        await inner.writeGroup({ ...group, body: Buffer.alloc(0) })
        throw new Error('crash before the insert')
      }
      await inner.writeGroup(group)
    },
    async finishFiles() {
      throw new Error('crash before the ledger rows')
    },
    close: async () => {},
  }
}

describe('group inserts of small files', () => {
  it('store twelve files in one insert with exact counts and one ledger row each', async () => {
    await truncateAll(store)
    const summary = await ingest([spool])
    expect(summary.filesIngested).toBe(12)
    expect(summary.kept).toBe(truth.kept)
    expect(summary.outcomes.map((o) => o.file.path)).toEqual((await expandPaths([spool])).map((f) => f.path))
    await expectExact()
  })

  it.each(['ledger', 'insert'] as const)(
    'complete an insert interrupted at the %s step on the next run, counting every packet once',
    async (stage) => {
      await truncateAll(store)
      await expect(ingest([spool], crashing(stage))).rejects.toThrow(/crash/)
      expect(await ledger()).toEqual({ pending: 12 })
      // Only one sensor's files given: the others are found where the ledger saw them.
      const east = await ingest([join(spool, 'east')])
      expect(east.filesFailed).toBe(0)
      await expectExact()
      expect((await ingest([spool])).filesSkipped).toBe(12)
      await expectExact()
    },
  )

  it('count once a file stored alone before a crash and with others after it', async () => {
    await truncateAll(store)
    const files = await expandPaths([spool])
    await expect(
      ingestFiles([files[0]!], { sink: crashing('ledger'), enricher: testEnricher(), logger: silentLogger }),
    ).rejects.toThrow(/crash/)
    expect(await ledger()).toEqual({ pending: 1 })
    await ingest([spool])
    await expectExact()
  })

  it('complete it in a watch: one file at a time, through the metrics wrapper', async () => {
    await truncateAll(store)
    await expect(ingest([spool], crashing('ledger'))).rejects.toThrow(/crash/)
    const sink = instrumentSink(new StoreSink(store), createMetrics(), 'store')
    for (const f of await expandPaths([spool])) {
      const r = await ingestFiles([f], { sink, enricher: testEnricher(), logger: silentLogger })
      expect(r.filesFailed).toBe(0)
    }
    await expectExact()
  })

  it('never read a pending file as new through a sink that cannot complete groups', async () => {
    await truncateAll(store)
    await expect(ingest([spool], crashing('ledger'))).rejects.toThrow(/crash/)
    const inner = new StoreSink(store)
    const plain: EventSink = {
      identityScheme: () => inner.identityScheme(),
      batchRows: () => inner.batchRows(),
      lookupFile: (id) => inner.lookupFile(id),
      writeBatch: (b) => inner.writeBatch(b),
      finishFile: (r) => inner.finishFile(r),
      close: async () => {},
    }
    const r = await ingest([spool], plain)
    expect(r.filesFailed).toBe(12)
    expect(r.outcomes[0]!.error?.message).toContain('interrupted')
    expect(await eventStats(store)).toEqual({ events: truth.kept, duplicates: 0 })
    await ingest([spool])
    await expectExact()
  })

  it('refuse to complete an interrupted insert when a member is gone, and store nothing twice', async () => {
    await truncateAll(store)
    const files = await expandPaths([spool])
    await expect(
      ingestFiles(files, { sink: crashing('ledger'), enricher: testEnricher(), logger: silentLogger }),
    ).rejects.toThrow(/crash/)
    const gone = files[3]!.path
    const saved = join(work.path, 'saved.pcap')
    rmSync(saved, { force: true })
    renameSync(gone, saved)
    try {
      const r = await ingest([spool])
      expect(r.filesFailed).toBe(11)
      expect(r.outcomes[0]!.error?.message).toContain('gone or changed')
      expect(await ledger()).toEqual({ pending: 12 })
    } finally {
      renameSync(saved, gone)
    }
    await ingest([spool])
    await expectExact()
  })
})
