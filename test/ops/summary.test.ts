/**
 * The run's summary says how many countries its stored rows come from: each counted once over
 * every file of the run, two-letter codes and longer names alike (a database may answer with
 * something other than ISO alpha-2), and a file skipped as already stored adds none.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Enrichment, UdpPacket } from '../../core/event.js'
import { silentLogger } from '../../core/logger.js'
import { expandPaths } from '../../pipeline/files.js'
import { type Enricher, ingestFiles } from '../../pipeline/ingest.js'
import { StoreSink } from '../../store/ledger.js'
import { openStore } from '../../store/open.js'
import type { Store } from '../../store/store.js'
import { generate, pcap, tempDir, testEnricher, writeCapture } from './helpers.js'

const work = tempDir('teiten-summary-')
let store: Store

/** The test enricher, with 'NL' answered as a name that is not a two-letter code. */
function renaming(): Enricher {
  const inner = testEnricher()
  return {
    enrich(packet: UdpPacket, out: Enrichment) {
      inner.enrich(packet, out)
      if (out.country === 'NL') out.country = 'Netherlands'
    },
  }
}

beforeAll(async () => {
  store = await openStore({ dataDir: join(work.path, 'data'), logger: silentLogger, host: false })
  for (let i = 0; i < 3; i++) {
    const g = generate({ seed: 700 + i, packets: 600 + 50 * i })
    writeCapture(join(work.path, 'spool', `f${i}.pcap`), pcap(g.packets))
  }
}, 60_000)

afterAll(async () => {
  await store?.close()
  work.cleanup()
})

const storedCountries = async () => {
  const [row] = await store.query<{ n: string }>('SELECT toString(uniqExact(country)) AS n FROM events')
  return Number(row!.n)
}

describe('the summary of a run', () => {
  it('counts each country of the stored rows once across files, names and codes alike', async () => {
    const files = await expandPaths([join(work.path, 'spool')])
    const summary = await ingestFiles(files, { sink: new StoreSink(store), enricher: renaming(), logger: silentLogger })
    expect(summary.filesIngested).toBe(3)
    const [named] = await store.query<{ n: string }>(
      "SELECT toString(count()) AS n FROM events WHERE country = 'Netherlands'",
    )
    expect(Number(named!.n)).toBeGreaterThan(0)
    // Six countries in the generator; every one met in every file.
    expect(await storedCountries()).toBe(6)
    expect(summary.countries).toBe(6)

    const again = await ingestFiles(files, { sink: new StoreSink(store), enricher: renaming(), logger: silentLogger })
    expect(again.filesSkipped).toBe(3)
    expect(again.countries).toBe(0)
  }, 60_000)
})
