/**
 * core/metrics.ts: what the counters say after a real ingest (exact, against the generator's
 * truth), that series stay bounded however many files pass, the sink instrumentation, and the
 * loopback HTTP endpoint.
 */
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { TeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { createMetrics, instrumentSink, startMetricsServer } from '../../core/metrics.js'
import { ingestFiles } from '../../pipeline/ingest.js'
import type { EventBatch, EventSink, FileRecord } from '../../pipeline/sink.js'
import { addTruth, emptyTruth, generate, pcap, tempDir, testEnricher, writeCapture } from './helpers.js'
import { BATCH_ROWS } from '../../pipeline/sink.js'

const work = tempDir('teiten-metrics-')
afterAll(() => work.cleanup())

/** An in-memory sink with a ledger: enough to drive ingestFiles without ClickHouse. */
function memorySink(): EventSink & { rows: number } {
  const ledger = new Map<string, FileRecord>()
  const sink = {
    rows: 0,
    identityScheme: async () => 'xxh128' as const,
    batchRows: async () => BATCH_ROWS,
    lookupFile: async (id: string) => ledger.get(id),
    writeBatch: async (b: EventBatch) => {
      sink.rows += b.rows
    },
    finishFile: async (r: FileRecord) => {
      ledger.set(r.fileId, r)
    },
    close: async () => {},
  }
  return sink
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  if (!line) throw new Error(`no ${series}`)
  return Number(line.split(' ').at(-1))
}

function seriesCount(text: string): number {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length
}

describe('ingest counters', () => {
  it('count packets, drop reasons, files and cache lookups exactly, with a fixed set of series', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const sink = memorySink()
    let hits = 0
    let misses = 0
    const base = testEnricher()
    const enricher = {
      enrich: base.enrich,
      // A stand-in for GeoIp.cacheStats(): one miss per ten lookups.
      cacheStats: () => {
        misses = Math.floor(base.lookups / 10)
        hits = base.lookups - misses
        return { hits, misses }
      },
    }
    const truth = emptyTruth()
    const seriesAfter: number[] = []
    for (let i = 0; i < 6; i++) {
      const g = generate({ seed: 100 + i, packets: 1500 })
      addTruth(truth, g.truth)
      const path = writeCapture(join(work.path, `s${i}`, `f${i}.pcap`), pcap(g.packets))
      await ingestFiles([{ path, size: 0, sensor: `s${i}` }], {
        sink: instrumentSink(sink, metrics, 'store'),
        enricher,
        logger: silentLogger,
        metrics,
      })
      seriesAfter.push(seriesCount(await metrics.registry.metrics()))
    }
    // Re-reading a file is a skip.
    await ingestFiles([{ path: join(work.path, 's0', 'f0.pcap'), size: 0, sensor: 's0' }], {
      sink,
      enricher,
      logger: silentLogger,
      metrics,
    })
    const text = await metrics.registry.metrics()
    expect(value(text, 'teiten_packets_read_total')).toBe(truth.records)
    expect(value(text, 'teiten_packets_kept_total')).toBe(truth.kept)
    for (const [reason, n] of Object.entries(truth.dropped)) {
      expect(value(text, `teiten_packets_dropped_total{reason="${reason}"}`)).toBe(n)
    }
    expect(value(text, 'teiten_packets_dropped_total{reason="malformed"}')).toBe(0)
    expect(value(text, 'teiten_files_total{outcome="ingested"}')).toBe(6)
    expect(value(text, 'teiten_files_total{outcome="skipped"}')).toBe(1)
    expect(value(text, 'teiten_sink_rows_total{sink="store"}')).toBe(truth.kept)
    expect(value(text, 'teiten_sink_batches_total{sink="store",result="ok"}')).toBe(6)
    expect(value(text, 'teiten_batch_insert_seconds_count{sink="store"}')).toBe(6)
    expect(value(text, 'teiten_geoip_cache_lookups_total{result="hit"}')).toBe(hits)
    expect(value(text, 'teiten_geoip_cache_lookups_total{result="miss"}')).toBe(misses)
    expect(value(text, 'teiten_geoip_cache_hit_ratio')).toBeCloseTo(hits / (hits + misses), 9)
    // Six sensors and files later, not one series more than after the first.
    expect(new Set(seriesAfter).size).toBe(1)
    expect(text).not.toContain(work.path)
  })

  it('instrumentSink counts failed batches and passes the error on', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const failing: EventSink = {
      ...memorySink(),
      writeBatch: async () => {
        throw new TeitenError('STORE_INSERT_FAILED', 'disk full')
      },
    }
    let t = 0
    const sink = instrumentSink(failing, metrics, 'kafka', () => (t += 250))
    await expect(
      sink.writeBatch({ fileId: 'f', sensor: 's', batchNo: 0, rows: 3, body: Buffer.alloc(0) }),
    ).rejects.toThrow('disk full')
    const ok = instrumentSink(memorySink(), metrics, 'kafka', () => (t += 250))
    await ok.writeBatch({ fileId: 'f', sensor: 's', batchNo: 0, rows: 3, body: Buffer.alloc(0) })
    const text = await metrics.registry.metrics()
    expect(value(text, 'teiten_sink_batches_total{sink="kafka",result="error"}')).toBe(1)
    expect(value(text, 'teiten_sink_batches_total{sink="kafka",result="ok"}')).toBe(1)
    expect(value(text, 'teiten_batch_insert_seconds_sum{sink="kafka"}')).toBe(0.25)
    expect(value(text, 'teiten_batch_insert_seconds_bucket{le="0.25",sink="kafka"}')).toBe(1)
    expect(value(text, 'teiten_sink_rows_total{sink="kafka"}')).toBe(3)
  })

  it('defines the Kafka metrics others set, and process metrics unless told not to', async () => {
    const metrics = createMetrics({ version: '9.9.9' })
    metrics.kafkaLag.set({ topic: 'teiten.ntp.events', partition: '0' }, 42)
    metrics.kafkaMessages.inc({ direction: 'produced' }, 7)
    const text = await metrics.registry.metrics()
    expect(value(text, 'teiten_kafka_consumer_lag{topic="teiten.ntp.events",partition="0"}')).toBe(42)
    expect(value(text, 'teiten_kafka_messages_total{direction="produced"}')).toBe(7)
    expect(value(text, 'teiten_build_info{version="9.9.9"}')).toBe(1)
    expect(text).toContain('teiten_process_resident_memory_bytes')
    // Two registries never share state (tests, or two components in one process).
    expect(await createMetrics({ defaultMetrics: false }).registry.metrics()).not.toContain(
      'teiten_kafka_consumer_lag{',
    )
  })
})

describe('metrics endpoint', () => {
  it('serves /metrics on 127.0.0.1, 404 elsewhere, 405 for writes', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    metrics.packetsRead.inc(5)
    const server = await startMetricsServer(metrics, { port: 0 })
    try {
      expect(server.host).toBe('127.0.0.1')
      const res = await fetch(server.url)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain('text/plain')
      expect(await res.text()).toContain('teiten_packets_read_total 5')
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404)
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(405)
    } finally {
      await server.close()
    }
  })

  it('says which port is taken', async () => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as { port: number }).port
    try {
      const err = await startMetricsServer(createMetrics({ defaultMetrics: false }), { port }).catch((e) => e)
      expect(err).toBeInstanceOf(TeitenError)
      expect((err as TeitenError).message).toBe(`metrics port ${port} on 127.0.0.1 is in use`)
    } finally {
      blocker.close()
    }
  })
})
