/**
 * The operator's view, through the built CLI (`npm run build` first): configuration layers and
 * their errors, `config print`, log volume and content, `ingest --watch` with its metrics
 * endpoint and a graceful SIGTERM.
 */
import { writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import {
  addTruth,
  emptyTruth,
  generate,
  gzip,
  logLines,
  pcap,
  pcapng,
  runCli,
  startCli,
  tempDir,
  writeCapture,
} from './helpers.js'

const work = tempDir('teiten-cli-')
afterAll(() => work.cleanup())

function configFile(name: string, text: string): string {
  const path = join(work.path, name)
  writeFileSync(path, text)
  return path
}

async function printed(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await runCli(['config', 'print', '--format', 'json', ...args], env)
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

describe('configuration', () => {
  const file = configFile(
    'teiten.yaml',
    [
      'dataDir: /from/file',
      'clickhouseUrl: http://ingest:file-secret@ch.example:8123/teiten',
      'log: { level: warn }',
      'watch: { settleMs: 5000 }',
      'serve: { token: file-token }',
      '',
    ].join('\n'),
  )

  it('layers defaults < file < environment < flags', async () => {
    const fromFile = await printed(['--config', file])
    expect(fromFile).toMatchObject({ dataDir: '/from/file', log: { level: 'warn', format: 'json' } })
    expect(fromFile.watch).toEqual({ settleMs: 5000, pollIntervalMs: 1000 }) // default kept beside the file's key

    const fromEnv = await printed(['--config', file], { TEITEN_DATA: '/from/env', TEITEN_LOG_LEVEL: 'error' })
    expect(fromEnv).toMatchObject({ dataDir: '/from/env', log: { level: 'error' } })

    const fromFlags = await printed(['--config', file, '--data', '/from/flag', '--log-level', 'debug'], {
      TEITEN_DATA: '/from/env',
      TEITEN_LOG_LEVEL: 'error',
    })
    expect(fromFlags).toMatchObject({ dataDir: '/from/flag', log: { level: 'debug' } })

    const defaults = await printed([])
    expect(defaults).toMatchObject({ dataDir: './teiten-data', watch: { settleMs: 30000, pollIntervalMs: 1000 } })
  })

  it('prints YAML or JSON with secrets redacted', async () => {
    const yaml = await runCli(['config', 'print', '--config', file], { TEITEN_TOKEN: 'env-token' })
    expect(yaml.code).toBe(0)
    const parsed = parseYaml(yaml.stdout) as Record<string, unknown>
    expect(parsed.clickhouseUrl).toBe('http://ingest:***@ch.example:8123/teiten')
    expect(parsed.serve).toMatchObject({ token: '***' })
    for (const secret of ['file-secret', 'file-token', 'env-token']) expect(yaml.stdout).not.toContain(secret)
    const json = await printed(['--config', file])
    expect(JSON.stringify(json)).not.toContain('file-secret')
  })

  it.each([
    ['a misspelt top-level key', 'dataDri: /x\n', 'dataDri'],
    ['an unknown nested key', 'watch: { settle: 5 }\n', 'settle'],
    ['a value of the wrong type', 'watch: { pollIntervalMs: fast }\n', 'watch.pollIntervalMs'],
  ])('rejects %s with exit 2 and names it', async (_what, text, named) => {
    const bad = configFile(`bad-${named}.yaml`, text)
    for (const args of [
      ['config', 'print', '--config', bad],
      ['ingest', '--config', bad, '--data', join(work.path, 'never'), work.path],
    ]) {
      const r = await runCli(args)
      expect(r.code).toBe(2)
      expect(r.stderr).toContain(named)
      expect(r.stderr).toContain('[CONFIG_INVALID]')
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1)
    }
  })

  it('rejects bad numbers and contradictory arguments with exit 2', async () => {
    const cases: [string[], string][] = [
      [['ingest', '--watch', work.path, '--settle-ms', 'soon'], '--settle-ms'],
      [['ingest', '--watch', work.path, '--metrics-port', '-1'], '--metrics-port'],
      [['ingest', '--watch', work.path, '--metrics-port', '70000'], 'metricsPort'],
      [['ingest', work.path, '--retention-days', '1.5'], '--retention-days'],
      [['ingest', '--watch', work.path, work.path], 'not both'],
      [['ingest'], 'missing capture paths'],
      [['ingest', '--watch', join(work.path, 'no-such-spool')], 'no such directory'],
      [['config', 'print', '--format', 'xml'], 'yaml|json'],
    ]
    for (const [args, named] of cases) {
      const r = await runCli([...args, '--data', join(work.path, 'never')])
      expect({ args, code: r.code }).toEqual({ args, code: 2 })
      expect(r.stderr).toContain(named)
    }
  })
})

describe('logs', () => {
  it('a debug-level ingest logs per file, never per packet, and no secrets', async () => {
    const lineCounts: number[] = []
    for (const packets of [300, 30_000]) {
      const dir = join(work.path, `logs-${packets}`)
      for (let i = 0; i < 3; i++) {
        writeCapture(join(dir, 'spool', 'sensor-a', `f${i}.pcap`), pcap(generate({ seed: i, packets }).packets))
      }
      const r = await runCli(
        ['ingest', join(dir, 'spool'), '--data', join(dir, 'data'), '--log-level', 'debug', '--log-format', 'json'],
        { TEITEN_TOKEN: 'never-logged-token' },
      )
      expect(r.code).toBe(0)
      const lines = r.stderr.split('\n').filter(Boolean)
      expect(logLines(r.stderr)).toHaveLength(lines.length) // every line is structured
      expect(r.stderr).not.toContain('never-logged-token')
      const perFile = logLines(r.stderr).filter((l) => l.msg === 'file read')
      expect(perFile.map((l) => l.records)).toEqual([packets, packets, packets])
      // One refresh when every file is read (beside the last inserts) and one at the end, which
      // logs only when those inserts changed days after the first: one or two lines, by timing.
      const refreshes = logLines(r.stderr).filter((l) => l.msg === 'rollups refreshed').length
      expect(refreshes).toBeGreaterThanOrEqual(1)
      expect(refreshes).toBeLessThanOrEqual(2)
      lineCounts.push(lines.length - refreshes)
    }
    // 100 times the packets, the same number of lines.
    expect(lineCounts[1]).toBe(lineCounts[0])
    expect(lineCounts[0]).toBeLessThan(3 * 3 + 10)
  })
})

/** GET over plain HTTP; resolves with status and body. */
function get(url: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }))
    })
      .on('error', reject)
      .end()
  })
}

function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  if (line === undefined) throw new Error(`no ${name}{${labels}} in metrics`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('ingest --watch', () => {
  it('follows a spool, serves metrics on loopback, exits 0 on SIGTERM and resumes without re-reading', async () => {
    const dir = join(work.path, 'watch')
    const spool = join(dir, 'spool')
    const data = join(dir, 'data')
    const a = generate({ seed: 50, packets: 4000 })
    const b = generate({ seed: 51, packets: 3000 })
    const c = generate({ seed: 52, packets: 2000 })
    writeCapture(join(spool, 'tokyo', 'a.pcap'), pcap(a.packets))
    writeCapture(join(spool, 'tokyo', 'b.pcap.gz'), gzip(pcap(b.packets)))
    writeCapture(join(spool, 'osaka', 'c.pcapng'), pcapng(c.packets))
    const truth = addTruth(addTruth(addTruth(emptyTruth(), a.truth), b.truth), c.truth)
    const config = configFile('watch.yaml', 'watch: { pollIntervalMs: 50 }\n')
    const args = ['ingest', '--watch', spool, '--data', data, '--config', config, '--settle-ms', '100']

    const run = startCli([...args, '--metrics-port', '0'])
    const served = JSON.parse(await run.waitFor(/"metrics served"/)) as { endpoint: string }
    expect(served.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    for (let seen = 0; seen < 3; ) {
      await run.waitFor(/"file ingested"/)
      seen = logLines(run.stderr()).filter((l) => l.msg === 'file ingested').length
      if (seen < 3) await new Promise((r) => setTimeout(r, 50))
    }
    const m = await get(served.endpoint)
    expect(m.status).toBe(200)
    expect(m.type).toContain('text/plain')
    expect(metricValue(m.body, 'teiten_packets_read_total')).toBe(truth.records)
    expect(metricValue(m.body, 'teiten_packets_kept_total')).toBe(truth.kept)
    expect(metricValue(m.body, 'teiten_packets_dropped_total', 'reason="not_udp"')).toBe(truth.dropped.not_udp)
    expect(metricValue(m.body, 'teiten_packets_dropped_total', 'reason="not_port_123"')).toBe(
      truth.dropped.not_port_123,
    )
    expect(metricValue(m.body, 'teiten_packets_dropped_total', 'reason="malformed"')).toBe(0)
    expect(metricValue(m.body, 'teiten_files_total', 'outcome="ingested"')).toBe(3)
    expect(metricValue(m.body, 'teiten_files_total', 'outcome="failed"')).toBe(0)
    expect(metricValue(m.body, 'teiten_batch_insert_seconds_count', 'sink="store"')).toBe(3)
    expect(metricValue(m.body, 'teiten_sink_rows_total', 'sink="store"')).toBe(truth.kept)
    const hits = metricValue(m.body, 'teiten_geoip_cache_lookups_total', 'result="hit"')
    const misses = metricValue(m.body, 'teiten_geoip_cache_lookups_total', 'result="miss"')
    expect(hits + misses).toBeGreaterThan(0)
    expect(metricValue(m.body, 'teiten_geoip_cache_hit_ratio')).toBeCloseTo(hits / (hits + misses), 6)
    expect(m.body).toContain('teiten_kafka_consumer_lag')
    // Bounded labels: no file, folder or address ever becomes a label value.
    expect(m.body).not.toContain(spool)
    expect(m.body).not.toMatch(/tokyo|osaka|\d+\.\d+\.\d+\.\d+/)
    expect((await get(served.endpoint.replace('/metrics', '/'))).status).toBe(404)
    // Loopback only: the same port on another address of this machine refuses.
    const port = new URL(served.endpoint).port
    const other = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)
    if (other) await expect(get(`http://${other.address}:${port}/metrics`)).rejects.toThrow(/ECONNREFUSED/)

    run.child.kill('SIGTERM')
    const done = await run.done
    expect(done.code).toBe(0)
    expect(logLines(done.stderr).some((l) => l.msg === 'spool watch stopped')).toBe(true)

    // Restarted: nothing is read again, a new file is.
    const d = generate({ seed: 53, packets: 1000 })
    writeCapture(join(spool, 'osaka', 'd.pcap'), pcap(d.packets))
    const again = startCli(args)
    await again.waitFor(/"file ingested"/)
    again.child.kill('SIGINT')
    const second = await again.done
    expect(second.code).toBe(0)
    const ingested = logLines(second.stderr).filter((l) => l.msg === 'file ingested')
    expect(ingested.map((l) => l.file)).toEqual([join(spool, 'osaka', 'd.pcap')])

    const daily = await runCli(['daily', '--data', data, '--by', 'day', '--all', '--format', 'json'])
    expect(daily.code).toBe(0)
    const rows = JSON.parse(daily.stdout) as { packets: number }[]
    expect(rows.reduce((n, r) => n + Number(r.packets), 0)).toBe(truth.kept + d.truth.kept)
  })
})

describe('serve --metrics-port', () => {
  it('counts requests by route pattern and status class on loopback, never by URL', async () => {
    const data = join(work.path, 'serve-data')
    const run = startCli(['serve', '--data', data, '--port', '0', '--metrics-port', '0'])
    try {
      const served = JSON.parse(await run.waitFor(/"metrics served"/)) as { endpoint: string }
      expect(served.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      const base = (await run.waitFor(/^teiten: dashboard at /)).replace(/^teiten: dashboard at (\S+?)\/?$/, '$1')
      expect((await get(`${base}/api/meta`)).status).toBe(200)
      expect((await get(`${base}/api/meta`)).status).toBe(200)
      expect((await get(`${base}/api/daily?by=day`)).status).toBe(200)
      expect((await get(`${base}/api/source/not-an-address`)).status).toBe(400)
      expect((await get(`${base}/no/such/page-1234`)).status).toBe(404)
      const m = await get(served.endpoint)
      expect(m.status).toBe(200)
      expect(metricValue(m.body, 'teiten_http_requests_total', 'route="/api/meta",status="2xx"')).toBe(2)
      expect(metricValue(m.body, 'teiten_http_requests_total', 'route="/api/source/:addr",status="4xx"')).toBe(1)
      expect(metricValue(m.body, 'teiten_http_requests_total', 'route="/api/daily",status="2xx"')).toBe(1)
      expect(metricValue(m.body, 'teiten_http_request_seconds_count', 'route="/api/meta"')).toBe(2)
      expect(m.body).not.toContain('not-an-address')
      expect(m.body).not.toContain('page-1234')
      expect(m.body).not.toContain('by=day')
      expect(m.body).toContain('teiten_process_cpu_seconds_total')
    } finally {
      run.child.kill('SIGTERM')
      expect((await run.done).code).toBe(0)
    }
  })
})
