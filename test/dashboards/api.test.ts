import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exportQueryFromOptions, runExport } from '../../cli/commands/export.js'
import { runSources, sourcesQueryFromOptions } from '../../cli/commands/sources.js'
import { runSql, sqlLimitsFromOptions } from '../../cli/commands/sql.js'
import { silentLogger } from '../../core/logger.js'
import { buildDashboardApp } from '../../dashboards/server/app.js'
import { parseSensorsConfig } from '../../dashboards/server/sensors.js'
import { openStore } from '../../store/open.js'
import { parseDailyQuery, queryDaily } from '../../store/queries.js'
import { DEFAULT_SQL_LIMITS, guardReadOnlySql } from '../../store/research.js'
import type { Store } from '../../store/store.js'
import { tempDir } from '../helpers/tmp.js'
import { SMALL, seedEvents } from './seed.js'

const dir = tempDir()
let store: Store
let app: FastifyInstance
let eventCount = 0

const sensors = parseSensorsConfig(
  { sensors: { 'sensor-a': { addresses: 256 }, 'sensor-b': { prefixes: ['198.51.100.0/25'] } } },
  '/etc/teiten/sensors.yaml',
)

beforeAll(async () => {
  store = await openStore({ dataDir: dir.path, logger: silentLogger, host: false })
  await seedEvents(store, SMALL)
  app = buildDashboardApp({ store, logger: silentLogger, sensors })
  await app.ready()
  eventCount = await countEvents()
})
afterAll(async () => {
  await app?.close()
  await store?.close()
  dir.cleanup()
})

async function countEvents(): Promise<number> {
  const [row] = await store.query<{ n: number }>('SELECT toUInt32(count()) AS n FROM events')
  return row!.n
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'GET', url, headers })
  return { status: res.statusCode, body: res.body, json: () => res.json(), headers: res.headers, raw: res.rawPayload }
}

async function postSql(sql: unknown, target: FastifyInstance = app) {
  const res = await target.inject({ method: 'POST', url: '/api/sql', payload: { sql } })
  return { status: res.statusCode, json: () => res.json() }
}

describe('GET /api/daily', () => {
  it.each([
    ['', {}],
    ['by=day', { by: 'day' }],
    ['by=class&all=1', { by: 'class', all: true }],
    ['by=class&all=true', { by: 'class', all: true }],
    ['by=day,country&all=0', { by: 'day,country', all: false }],
    ['by=', { by: '' }],
    ['class=monlist&country=CN,US', { class: 'monlist', country: 'CN,US' }],
    ['country=CN&country=US&by=day,sensor', { country: ['CN', 'US'], by: 'day,sensor' }],
    ['sensor=sensor-b&by=sensor,class', { sensor: 'sensor-b', by: 'sensor,class' }],
    ['from=2014-01-02&to=2014-01-03', { from: '2014-01-02', to: '2014-01-03' }],
  ])('answers exactly what queryDaily (teiten daily --format json) answers for ?%s', async (qs, input) => {
    const res = await get(`/api/daily?${qs}`)
    expect(res.status).toBe(200)
    const expected = await queryDaily(store, parseDailyQuery(input))
    expect(res.json()).toEqual(expected)
    expect(res.body).toBe(JSON.stringify(expected))
  })

  it('returns the Figure-2 numbers of the seeded days', async () => {
    expect((await get('/api/daily')).json()).toEqual([
      { day: '2014-01-01', country: 'CN', packets: 4, sources: 2 },
      { day: '2014-01-01', country: 'US', packets: 2, sources: 1 },
      { day: '2014-01-01', country: 'DE', packets: 1, sources: 1 },
      { day: '2014-01-02', country: 'CN', packets: 2, sources: 1 },
      { day: '2014-01-02', country: '--', packets: 1, sources: 1 },
      { day: '2014-01-02', country: 'JP', packets: 1, sources: 1 },
      { day: '2014-01-03', country: 'US', packets: 4, sources: 1 },
    ])
    expect((await get('/api/daily?by=&all=1')).json()).toEqual([{ packets: 16, sources: 7 }])
  })

  it.each([
    ["country=CN' OR 1=1 --", /country/],
    ['country=cn', /country/],
    ['class=monlist;DROP TABLE events', /class/],
    ['by=day,bogus', /by/],
    ['by=day,day', /twice/],
    ['from=2014-13-01', /from/],
    ['from=2014-01-03&to=2014-01-01', /after/],
    ['all=yes', /all/],
    ['all=', /all/],
    ['from=2014-01-01&from=2014-01-02', /from/],
    ['unknown=1', /unknown|Unrecognized/i],
  ])('rejects ?%s with 400 and a JSON error', async (qs, message) => {
    const res = await get(`/api/daily?${encodeURI(qs)}`)
    expect(res.status).toBe(400)
    const body = res.json()
    expect(body.error.code).toBe('BAD_PARAMETER')
    expect(body.error.message).toMatch(message)
  })
})

describe('GET /api/hourly', () => {
  it('splits a day into UTC hours', async () => {
    const res = await get('/api/hourly?day=2014-01-03')
    expect(res.status).toBe(200)
    expect(res.json()).toEqual([
      { hour: '2014-01-03T00:00:00Z', country: 'US', packets: 2, sources: 1 },
      { hour: '2014-01-03T05:00:00Z', country: 'US', packets: 1, sources: 1 },
      { hour: '2014-01-03T23:00:00Z', country: 'US', packets: 1, sources: 1 },
    ])
  })

  it('takes the daily filters and keys', async () => {
    expect((await get('/api/hourly?day=2014-01-01&by=class&all=1')).json()).toEqual([
      { class: 'monlist', packets: 5, sources: 2 },
      { class: 'client', packets: 1, sources: 1 },
      { class: 'mode6_readvar', packets: 1, sources: 1 },
      { class: 'response', packets: 1, sources: 1 },
    ])
    expect((await get('/api/hourly?day=2014-01-01&by=hour&country=US&sensor=sensor-b')).json()).toEqual([
      { hour: '2014-01-01T03:00:00Z', packets: 2, sources: 1 },
    ])
  })

  it.each([
    ['', /day/],
    ['day=2014-02-30', /day/],
    ['day=2014-01-01&by=day', /by/],
    ['day=2014-01-01&from=2014-01-01', /from|Unrecognized/i],
  ])('rejects ?%s with 400', async (qs, message) => {
    const res = await get(`/api/hourly?${qs}`)
    expect(res.status).toBe(400)
    expect(res.json().error.message).toMatch(message)
  })
})

describe('GET /api/sources', () => {
  it('ranks sources by packets with their history facts', async () => {
    const rows = (await get('/api/sources')).json()
    expect(rows.map((r: { address: string }) => r.address)).toEqual([
      '2.2.2.2',
      '1.1.1.1',
      '1.1.1.2',
      '3.3.3.3',
      '10.0.0.1',
      '2001:200::5',
    ])
    expect(rows[1]).toEqual({
      address: '1.1.1.1',
      country: 'CN',
      bogon: false,
      first_seen: '2014-01-01T01:00:00.000000000Z',
      last_seen: '2014-01-02T06:01:00.000000000Z',
      packets: 5,
      dark_addresses: 5,
      classes: ['monlist'],
      sensors: ['sensor-a', 'sensor-b'],
      days_active: 2,
    })
    expect(rows[4]).toMatchObject({ address: '10.0.0.1', country: '--', bogon: true })
  })

  it.each([
    ['order=sources&limit=2', ['1.1.1.1', '1.1.1.2']],
    ['order=dark_addresses&limit=1', ['1.1.1.1']],
    ['order=first_seen&limit=2', ['10.0.0.1', '2001:200::5']],
    ['order=first_seen&dir=asc&limit=2', ['1.1.1.1', '1.1.1.2']],
    ['order=days_active&limit=2', ['1.1.1.1', '2.2.2.2']],
    ['country=CN&class=monlist', ['1.1.1.1']],
    ['from=2014-01-03', ['2.2.2.2']],
    ['all=1&country=DE', ['3.3.3.3', '9.9.9.9']],
    ['sensor=sensor-b&from=2014-01-02&to=2014-01-02', ['1.1.1.1']],
  ])('?%s lists %j', async (qs, addresses) => {
    const res = await get(`/api/sources?${qs}`)
    expect(res.status).toBe(200)
    expect(res.json().map((r: { address: string }) => r.address)).toEqual(addresses)
  })

  it.each([
    'limit=0',
    'limit=abc',
    'limit=10001',
    'order=packets DESC',
    'order=src',
    'dir=up',
    "country=US') --",
    'by=day',
  ])('rejects ?%s with 400', async (qs) => {
    const res = await get(`/api/sources?${encodeURI(qs)}`)
    expect(res.status).toBe(400)
    expect(res.json().error.code).toBe('BAD_PARAMETER')
  })
})

describe('GET /api/source/:addr', () => {
  it('gives one source its days and totals', async () => {
    const res = await get('/api/source/1.1.1.1')
    expect(res.status).toBe(200)
    const h = res.json()
    expect(h.address).toBe('1.1.1.1')
    expect(h.totals).toMatchObject({
      packets: 5,
      dark_addresses: 5,
      days_active: 2,
      countries: ['CN'],
      bogon: false,
      classes: ['monlist'],
    })
    expect(h.days).toEqual([
      expect.objectContaining({ day: '2014-01-01', packets: 3, dark_addresses: 3, sensors: ['sensor-a'] }),
      expect.objectContaining({ day: '2014-01-02', packets: 2, dark_addresses: 2, sensors: ['sensor-b'] }),
    ])
  })

  it('accepts IPv6 and the IPv4-mapped spelling of an IPv4 source', async () => {
    expect((await get(`/api/source/${encodeURIComponent('2001:200::5')}`)).json()).toMatchObject({
      address: '2001:200::5',
      totals: { country: 'JP' },
    })
    expect((await get(`/api/source/${encodeURIComponent('::ffff:2.2.2.2')}`)).json().totals.packets).toBe(6)
    expect((await get('/api/source/10.0.0.1')).json().totals.bogon).toBe(true)
  })

  it.each([
    ['not-an-ip', 400],
    [encodeURIComponent("1.1.1.1' OR 1=1 --"), 400],
    ['1.1.1.1?addr=2.2.2.2', 400],
    ['1.1.1.1?class=bogus', 400],
    ['1.1.1.1?from=2014-01-03', 404],
    ['8.8.8.8', 404],
  ])('answers /api/source/%s with %i', async (path, status) => {
    const res = await get(`/api/source/${path}`)
    expect(res.status).toBe(status)
    expect(res.json().error.code).toBe(status === 404 ? 'NOT_FOUND' : 'BAD_PARAMETER')
  })
})

describe('GET /api/meta', () => {
  it('describes the store: range, sensors with their sizes, countries, classes', async () => {
    const meta = (await get('/api/meta')).json()
    expect(meta.range).toEqual({ from: '2014-01-01', to: '2014-01-03' })
    expect(meta.packets).toEqual({ access: 15, all: 16 })
    expect(meta.sensors).toEqual([
      { sensor: 'sensor-a', packets: 8, from: '2014-01-01', to: '2014-01-02', addresses: 256 },
      { sensor: 'sensor-b', packets: 8, from: '2014-01-01', to: '2014-01-03', addresses: 128 },
    ])
    expect(meta.countries[0]).toEqual({ country: 'CN', packets: 6 })
    expect(meta.classes[0]).toEqual({ class: 'monlist', packets: 12 })
    expect(meta.sensorsConfig).toMatchObject({ configured: true, source: 'sensors.yaml', missing: [] })
    expect(meta.store).toBe('embedded')
  })

  it('says when there is no sensors file, and which sensors would need one', async () => {
    const bare = buildDashboardApp({ store, logger: silentLogger })
    const meta = (await bare.inject({ url: '/api/meta' })).json()
    expect(meta.sensorsConfig).toEqual({ configured: false, missing: ['sensor-a', 'sensor-b'] })
    expect(meta.sensors[0].addresses).toBeNull()
    await bare.close()
  })

  it('takes no parameters', async () => {
    expect((await get('/api/meta?x=1')).status).toBe(400)
  })
})

describe('POST /api/sql', () => {
  it('runs a SELECT over the teiten tables and returns typed columns', async () => {
    const res = await postSql(
      'SELECT country, sum(packets) AS p FROM daily_agg WHERE access GROUP BY country ORDER BY p DESC, country',
    )
    expect(res.status).toBe(200)
    expect(res.json()).toMatchObject({
      columns: [
        { name: 'country', type: 'LowCardinality(String)' },
        { name: 'p', type: 'UInt64' },
      ],
      rows: [
        ['CN', '6'],
        ['US', '6'],
        ['--', '1'],
        ['DE', '1'],
        ['JP', '1'],
      ],
    })
  })

  it.each([
    'WITH t AS (SELECT 1 AS x) SELECT x FROM t',
    'SELECT count() FROM events /* ; DROP TABLE events */',
    'select number from numbers(3) union all select 1',
    'SELECT * FROM numbers(5) WHERE number IN (SELECT 1)',
    "SELECT IPv6NumToString(src) FROM events WHERE country = 'CN'' OR 1=1 --' LIMIT 1",
    '  SELECT 1 ; ',
  ])('accepts %s', async (sql) => {
    const res = await postSql(sql)
    expect(res.status).toBe(200)
  })

  it.each([
    ['SELECT 1; DROP TABLE events', /single|Multi-statements/i],
    ['SELECT 1; SELECT 2', /single|Multi-statements/i],
    ['DROP TABLE events', /SELECT/],
    ['INSERT INTO events SELECT * FROM events', /SELECT/],
    ['ALTER TABLE events DELETE WHERE 1', /SELECT/],
    ['CREATE TABLE x (a UInt8) ENGINE = Memory', /SELECT/],
    ['TRUNCATE TABLE events', /SELECT/],
    ['OPTIMIZE TABLE events FINAL', /SELECT/],
    ['SET readonly = 0', /SELECT/],
    ['SYSTEM DROP DNS CACHE', /SELECT/],
    ['KILL QUERY WHERE 1', /SELECT/],
    ['SHOW TABLES', /SELECT/],
    ['EXPLAIN SELECT 1', /SELECT/],
    ["SELECT * FROM file('/etc/passwd')", /file/],
    ["SELECT * FROM fIlE('/etc/passwd', 'LineAsString')", /file/],
    ["SELECT file('/etc/passwd')", /file/],
    ["SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')", /url/],
    ["SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')", /s3/],
    ["SELECT * FROM remote('127.0.0.1', system.one)", /remote/],
    ["SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')", /mysql/],
    ["SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')", /postgresql/],
    ["SELECT * FROM jdbc('jdbc:x', 'db', 't')", /jdbc/],
    ["SELECT * FROM hdfs('hdfs://127.0.0.1:9000/x', 'CSV', 'a String')", /hdfs/],
    ["SELECT * FROM input('a String')", /input/],
    ["SELECT * FROM executable('x.sh', 'CSV', 'a String')", /executable/],
    ["SELECT * FROM azureBlobStorage('http://127.0.0.1:1', 'c', 'b')", /azureblobstorage/],
    ["SELECT * FROM icebergS3('http://127.0.0.1:1/x')", /iceberg/i],
    ["SELECT * FROM merge(currentDatabase(), '.*')", /merge/],
    ["SELECT * FROM filesystem('/')", /filesystem/],
    ["SELECT * FROM events WHERE src IN (SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a IPv6'))", /url/],
    ["WITH (SELECT any(line) FROM file('/etc/passwd', 'LineAsString')) AS x SELECT x", /file/],
    ["SELECT * FROM generateRandom('a UInt8')", /table function/],
    ['SELECT * FROM system.users', /system/],
    ['SELECT name FROM INFORMATION_SCHEMA.tables', /INFORMATION_SCHEMA/i],
    ['SELECT 1 WHERE 1 IN system.tables', /system/],
    ['SELECT 1 SETTINGS readonly = 0', /SETTINGS|readonly/],
    ['SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)', /SETTINGS/],
    ["SELECT 1 INTO OUTFILE '/tmp/teiten-should-not-exist'", /OUTFILE/],
    ['SELECT 1 FORMAT CSV', /FORMAT|statement/i],
    ['SELEC 1', /single valid statement/],
    ['', /empty/],
  ])('refuses %s', async (sql, message) => {
    const res = await postSql(sql)
    expect(res.status).toBe(400)
    const body = res.json()
    expect(['QUERY_REJECTED', 'BAD_PARAMETER']).toContain(body.error.code)
    expect(body.error.message).toMatch(message)
  })

  it('leaves the store untouched after the attempts above', async () => {
    expect(await countEvents()).toBe(eventCount)
    expect(existsSync('/tmp/teiten-should-not-exist')).toBe(false)
    const [{ n }] = await store.query<{ n: number }>(
      "SELECT toUInt32(count()) AS n FROM system.tables WHERE database = currentDatabase() AND name = 'events'",
    )
    expect(n).toBe(1)
  })

  it('refuses a result larger than the row limit instead of truncating it', async () => {
    const res = await postSql('SELECT number FROM numbers(100000)')
    expect(res.status).toBe(400)
    expect(res.json().error).toMatchObject({ code: 'QUERY_REJECTED', message: expect.stringMatching(/LIMIT/) })
  })

  it("keeps a failed query's partial output out of the next answers (chDB hands it to the next query)", async () => {
    const expected = await queryDaily(store, parseDailyQuery({}))
    const failing = 'SELECT number, throwIf(number = 200000) AS x FROM numbers(300000)'
    const [sql, daily, meta] = await Promise.all([postSql(failing), get('/api/daily'), get('/api/meta')])
    expect(sql.status).toBe(400)
    expect(daily.json()).toEqual(expected)
    expect(meta.status).toBe(200)
    expect((await postSql('SELECT 42 AS answer')).json().rows).toEqual([[42]])
    // Through the CLI path (no dashboard in front), the guard absorbs it itself.
    await expect(runSql(store, failing, 'json', sqlLimitsFromOptions({ maxRows: '500000' }))).rejects.toThrow(/throwIf/)
    expect(await queryDaily(store, parseDailyQuery({}))).toEqual(expected)
  })

  it('reports an engine error in the user query as 400, not 500', async () => {
    const res = await postSql('SELECT no_such_column FROM events')
    expect(res.status).toBe(400)
    expect(res.json().error.code, JSON.stringify(res.json())).toBe('STORE_QUERY_FAILED')
  })

  it('runs the query with readonly=1 and the limits', async () => {
    const res = await postSql(
      "SELECT getSetting('readonly') AS ro, getSetting('max_result_rows') AS mr, getSetting('max_execution_time') AS mt",
    )
    expect(res.json().rows).toEqual([[1, DEFAULT_SQL_LIMITS.maxResultRows, DEFAULT_SQL_LIMITS.maxExecutionSeconds]])
  })

  it.each([
    [{ payload: 'SELECT 1', headers: { 'content-type': 'text/plain' } }, 400],
    [{ payload: 'SELECT 1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
    [{ payload: '{"sql": ', headers: { 'content-type': 'application/json' } }, 400],
    [{ payload: { query: 'SELECT 1' } }, 400],
    [{ payload: { sql: 'SELECT 1', extra: 1 } }, 400],
    [{ payload: { sql: 42 } }, 400],
    [{ payload: ['SELECT 1'] }, 400],
  ])('rejects the body %j', async (req, status) => {
    const res = await app.inject({ method: 'POST', url: '/api/sql', ...(req as object) })
    expect(res.statusCode).toBe(status)
    expect(res.json().error.code).toBeTruthy()
  })

  it('guards the canonical text, so the check and the run see the same statement', async () => {
    expect(await guardReadOnlySql(store, 'select  1 -- comment\n')).toBe('SELECT 1')
  })
})

describe('GET /api/export', () => {
  it('streams the events of a range as CSV with text addresses and class names', async () => {
    const res = await get('/api/export?from=2014-01-01&to=2014-01-02&format=csv')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/text\/csv/)
    expect(res.headers['content-disposition']).toBe('attachment; filename="teiten-events_2014-01-01_2014-01-02.csv"')
    const lines = res.body.trim().split('\n')
    expect(lines[0]).toBe(
      '"ts","sensor","src","src_port","dst","dst_port","ip_version","ttl","ip_len","udp_len","payload_len","wire_len","class","ntp_version","ntp_mode","ntp_code","ntp_impl","country","bogon","file_id","record"',
    )
    expect(lines).toHaveLength(1 + 11)
    expect(lines[1]).toMatch(
      /^"2014-01-01 01:00:00\.000000000","sensor-a","1\.1\.1\.1",40000,"203\.0\.113\.1",123,4,.*"monlist",.*"CN",false,/,
    )
    expect(lines.some((l) => l.includes('"2001:200::5"'))).toBe(true)
    const all = await get('/api/export?from=2014-01-01&to=2014-01-01&all=1')
    expect(all.body.trim().split('\n')).toHaveLength(1 + 8)
    const filtered = await get('/api/export?from=2014-01-01&to=2014-01-03&country=US&class=monlist')
    expect(filtered.body.trim().split('\n')).toHaveLength(1 + 6)
  })

  it('writes Parquet that ClickHouse reads back', async () => {
    const res = await get('/api/export?from=2014-01-01&to=2014-01-03&format=parquet')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/vnd.apache.parquet')
    expect(res.raw.subarray(0, 4).toString()).toBe('PAR1')
    const path = join(dir.path, 'export.parquet')
    writeFileSync(path, res.raw)
    const rows = await store.query<{ n: number; src: string }>(
      `SELECT toUInt32(count()) AS n, any(src) AS src FROM file('${path}', Parquet) WHERE country = 'JP'`,
    )
    expect(rows).toEqual([{ n: 1, src: '2001:200::5' }])
  })

  it('refuses an export above the row limit before reading events', async () => {
    const small = buildDashboardApp({ store, logger: silentLogger, exportMaxRows: 5 })
    const res = await small.inject({ url: '/api/export?from=2014-01-01&to=2014-01-03' })
    expect(res.statusCode).toBe(400)
    expect(res.json().error).toMatchObject({
      code: 'QUERY_REJECTED',
      message: expect.stringMatching(/15 events.*limit of 5/),
    })
    await small.close()
  })

  it.each([
    'from=2014-01-01',
    'to=2014-01-01',
    'from=2014-01-01&to=2014-01-01&format=xlsx',
    'from=2014-01-01&to=2014-01-01&path=/etc/passwd',
  ])('rejects ?%s with 400', async (qs) => {
    const res = await get(`/api/export?${qs}`)
    expect(res.status).toBe(400)
  })
})

describe('the page and its assets', () => {
  it.each([
    ['/', /text\/html/, '宛先ポート 123/UDP'],
    ['/app.js', /javascript/, 'window.__teiten'],
    ['/style.css', /text\/css/, '.panel'],
    ['/vendor/echarts.min.js', /javascript/, 'echarts'],
    ['/favicon.svg', /svg/, '<svg'],
  ])('serves %s offline from a fixed table', async (url, type, content) => {
    const res = await get(url)
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(type)
    expect(res.body).toContain(content)
    expect(res.headers['content-security-policy']).toContain("script-src 'self'")
  })

  it.each(['/../../etc/passwd', '/vendor/../package.json', '/app.js/../../package.json', '/nope'])(
    'serves nothing else: %s',
    async (url) => {
      const res = await get(url)
      expect(res.status).toBe(404)
      expect(res.json().error.code).toBe('NOT_FOUND')
    },
  )

  it('answers only to loopback host names (DNS rebinding)', async () => {
    expect((await get('/api/meta', { host: 'evil.example:8080' })).status).toBe(421)
    expect((await get('/api/meta', { host: '127.0.0.1:8080' })).status).toBe(200)
    expect((await get('/api/meta', { host: '[::1]:8080' })).status).toBe(200)
  })
})

describe('token', () => {
  let secured: FastifyInstance
  beforeAll(async () => {
    secured = buildDashboardApp({ store, logger: silentLogger, token: 's3cret-token' })
    await secured.ready()
  })
  afterAll(async () => {
    await secured?.close()
  })

  it.each([
    ['/api/meta', undefined, 401],
    ['/api/daily', 'Bearer wrong', 401],
    ['/api/daily', 'Bearer s3cret-token-and-more', 401],
    ['/api/daily', 'Basic czNjcmV0LXRva2Vu', 401],
    ['/api/daily', 'Bearer ', 401],
    ['/api/openapi.json', undefined, 401],
    ['/api/nope', undefined, 401],
    ['/api/daily', 'Bearer s3cret-token', 200],
    ['/api/daily', 'bearer s3cret-token', 200],
    ['/', undefined, 200],
    ['/vendor/echarts.min.js', undefined, 200],
  ])('GET %s with Authorization %s answers %i', async (url, auth, status) => {
    const res = await secured.inject({ url, headers: auth === undefined ? {} : { authorization: auth } })
    expect(res.statusCode).toBe(status)
    if (status === 401) {
      expect(res.json().error.code).toBe('UNAUTHORIZED')
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/)
    }
  })

  it('guards POST /api/sql too', async () => {
    const res = await secured.inject({ method: 'POST', url: '/api/sql', payload: { sql: 'SELECT 1' } })
    expect(res.statusCode).toBe(401)
  })
})

describe('GET /api/openapi.json', () => {
  const samples: Record<string, string> = {
    from: '2014-01-01',
    to: '2014-01-03',
    day: '2014-01-03',
    by: 'day',
    all: '1',
    sensor: 'sensor-a',
    class: 'monlist',
    country: 'CN',
    limit: '5',
    order: 'packets',
    dir: 'asc',
    format: 'csv',
  }

  it('is OpenAPI 3 and describes every endpoint', async () => {
    const doc = (await get('/api/openapi.json')).json()
    expect(doc.openapi).toMatch(/^3\./)
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/daily',
        '/api/export',
        '/api/hourly',
        '/api/meta',
        '/api/openapi.json',
        '/api/source/{addr}',
        '/api/sources',
        '/api/sql',
      ].sort(),
    )
    for (const path of Object.keys(doc.paths)) {
      const concrete = path.replace('{addr}', '1.1.1.1')
      const method = Object.keys(doc.paths[path])[0]!
      const res = await app.inject({
        method: method.toUpperCase() as 'GET',
        url: concrete,
        payload: method === 'post' ? { sql: 'SELECT 1' } : undefined,
      })
      expect(res.statusCode, path).not.toBe(404)
    }
  })

  it('documents only parameters the endpoints accept', async () => {
    const doc = (await get('/api/openapi.json')).json()
    for (const [path, item] of Object.entries(
      doc.paths as Record<string, Record<string, { parameters?: { name: string; in: string; required?: boolean }[] }>>,
    )) {
      const op = item.get
      if (!op?.parameters) continue
      const query = op.parameters.filter((p) => p.in === 'query')
      const required = query.filter((p) => p.required).map((p) => `${p.name}=${samples[p.name]}`)
      for (const p of query) {
        const sample = (name: string) => (name === 'by' && path === '/api/hourly' ? 'hour' : samples[name])
        const qs = [...new Set([...required, `${p.name}=${sample(p.name)}`])].join('&')
        const res = await get(`${path.replace('{addr}', '1.1.1.1')}?${qs}`)
        expect(res.status, `${path}?${qs}`).toBe(200)
      }
    }
  })
})

describe('researcher CLI', () => {
  it('teiten sources renders the same rows as the API, as table, CSV and JSON', async () => {
    const query = sourcesQueryFromOptions({ limit: '2', order: 'packets', dir: 'desc', country: 'CN,US' })
    const json = JSON.parse(await runSources(store, query, 'json'))
    expect(json).toEqual((await get('/api/sources?limit=2&country=CN,US')).json())
    const csv = (await runSources(store, query, 'csv')).trim().split('\n')
    expect(csv[0]).toBe('address,country,bogon,first_seen,last_seen,packets,dark_addresses,classes,sensors,days_active')
    expect(csv[2]).toBe(
      '1.1.1.1,CN,false,2014-01-01T01:00:00.000000000Z,2014-01-02T06:01:00.000000000Z,5,5,monlist,sensor-a sensor-b,2',
    )
    const table = await runSources(store, query, 'table')
    expect(table.split('\n')[0]).toMatch(/^address\s+country\s+bogon/)
    expect(() => sourcesQueryFromOptions({ order: 'src' })).toThrow(/order/)
  })

  it('teiten sql runs the same guard', async () => {
    const limits = sqlLimitsFromOptions({})
    expect(
      await runSql(
        store,
        "SELECT country, count() AS n FROM events WHERE country = 'JP' GROUP BY country",
        'csv',
        limits,
      ),
    ).toBe('country,n\nJP,1\n')
    await expect(runSql(store, 'SELECT 1; DROP TABLE events', 'table', limits)).rejects.toThrow(/single|Multi/i)
    await expect(runSql(store, "SELECT * FROM url('http://127.0.0.1:1/')", 'table', limits)).rejects.toThrow(/url/)
    expect(() => sqlLimitsFromOptions({ maxRows: '0' })).toThrow(/max-rows/)
  })

  it('teiten export writes CSV day by day with one header', async () => {
    const query = exportQueryFromOptions({ from: '2014-01-01', to: '2014-01-03', format: 'csv', country: 'US' })
    const out = new PassThrough()
    const chunks: Buffer[] = []
    out.on('data', (c: Buffer) => chunks.push(c))
    await runExport(store, query, out, 10)
    const lines = Buffer.concat(chunks).toString('utf8').trim().split('\n')
    expect(lines.filter((l) => l.startsWith('"ts"'))).toHaveLength(1)
    expect(lines).toHaveLength(1 + 6)
    expect(() => exportQueryFromOptions({ from: '2014-01-01' })).toThrow(/--from and --to/)
  })

  it('teiten export refuses Parquet above --max-rows', async () => {
    const query = exportQueryFromOptions({ from: '2014-01-01', to: '2014-01-03', format: 'parquet' })
    await expect(runExport(store, query, new PassThrough(), 3)).rejects.toThrow(/limit of 3/)
  })
})

describe('sensors file', () => {
  it('reads the YAML the --sensors flag names', async () => {
    const path = join(dir.path, 'sensors.yaml')
    writeFileSync(
      path,
      'sensors:\n  sensor-a: { addresses: 256 }\n  sensor-b:\n    prefixes: ["198.51.100.0/24", "198.51.100.128/25"]\n',
    )
    const { loadSensorsFile } = await import('../../dashboards/server/sensors.js')
    expect(loadSensorsFile(path)).toEqual({
      source: 'sensors.yaml',
      sensors: {
        'sensor-a': { addresses: 256 },
        'sensor-b': { addresses: 256, prefixes: ['198.51.100.0/24', '198.51.100.128/25'] },
      },
    })
    expect(readFileSync(path, 'utf8')).toContain('sensors:')
  })
})

describe('Grafana dashboard', () => {
  // Grafana's own variable syntax, not a template literal.
  const DATASOURCE_VAR = ['$', '{datasource}'].join('')
  type Target = {
    refId: string
    datasource: { type: string; uid: string }
    editorType: string
    format: number
    rawSql: string
  }
  type Panel = {
    id: number
    type: string
    title: string
    datasource?: { type: string; uid: string }
    targets: Target[]
  }
  const dashboardPath = join(process.cwd(), 'dashboards/grafana/dashboards/teiten.json')
  const dash = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    uid: string
    panels: Panel[]
    templating: { list: { name: string; type: string; query: unknown; current: { value: unknown } }[] }
  }

  /** The plugin's macros and variables, as Grafana would expand them for a UTC range and selection. */
  function expand(
    sql: string,
    range: { from: string; to: string },
    selected: Record<string, string[]> = {},
    topn = '10',
  ): string {
    let out = sql
    for (;;) {
      const start = out.indexOf('$__conditionalAll(')
      if (start < 0) break
      let depth = 0
      let end = start + '$__conditionalAll'.length
      for (; end < out.length; end++) {
        if (out[end] === '(') depth++
        else if (out[end] === ')' && --depth === 0) break
      }
      const inner = out.slice(start + '$__conditionalAll('.length, end)
      const comma = inner.lastIndexOf(',')
      const variable = inner
        .slice(comma + 1)
        .trim()
        .replace('$', '')
      const values = selected[variable]
      const replacement = values
        ? inner.slice(0, comma).replace(`\${${variable}:singlequote}`, values.map((v) => `'${v}'`).join(','))
        : '1=1'
      out = out.slice(0, start) + replacement + out.slice(end + 1)
    }
    out = out
      .replace(/\$__dateFilter\((\w+)\)/g, `$1 >= toDate('${range.from}') AND $1 <= toDate('${range.to}')`)
      .replace(
        /\$__timeFilter\((\w+)\)/g,
        `$1 >= toDateTime('${range.from} 00:00:00', 'UTC') AND $1 <= toDateTime('${range.to} 23:59:59', 'UTC')`,
      )
      .replace(/\$\{topn\}/g, topn)
    expect(out, 'every macro and variable expanded').not.toMatch(/\$/)
    return out
  }

  const range = { from: '2014-01-01', to: '2014-01-03' }
  const figure2 = () => dash.panels.find((p) => p.title.includes('発信元国・地域別アクセス件数'))!

  it('reads ClickHouse through the grafana-clickhouse-datasource plugin, uid clickhouse by default', () => {
    const ds = dash.templating.list.find((v) => v.name === 'datasource')!
    expect(ds).toMatchObject({
      type: 'datasource',
      query: 'grafana-clickhouse-datasource',
      current: { value: 'clickhouse' },
    })
    for (const panel of dash.panels) {
      expect(panel.datasource).toEqual({ type: 'grafana-clickhouse-datasource', uid: DATASOURCE_VAR })
      for (const t of panel.targets) {
        expect(t.datasource).toEqual({ type: 'grafana-clickhouse-datasource', uid: DATASOURCE_VAR })
        expect(t.editorType).toBe('sql')
      }
    }
    expect(figure2().type).toBe('timeseries')
  })

  it('runs every panel and variable query against the real schema', async () => {
    for (const panel of dash.panels) {
      for (const t of panel.targets) {
        await expect(
          store.query(expand(t.rawSql, range), undefined, { readonly: 2 }),
          panel.title,
        ).resolves.toBeInstanceOf(Array)
        await expect(
          store.query(expand(t.rawSql, range, { class: ['monlist'], country: ['CN', 'US'], sensor: ['sensor-b'] })),
        ).resolves.toBeInstanceOf(Array)
      }
    }
    for (const v of dash.templating.list.filter((x) => x.type === 'query')) {
      const sql = (v.query as { rawSql: string }).rawSql
      expect(await store.query(sql), v.name).not.toHaveLength(0)
    }
  })

  it('draws Figure 2 with the numbers of /api/daily, top N plus other', async () => {
    const sql = figure2().targets[0]!.rawSql
    const asDaily = (rows: { time: string; country: string; packets: number }[]) =>
      rows.map((r) => ({ day: r.time.slice(0, 10), country: r.country, packets: Number(r.packets) }))
    const sort = (rows: { day: string; country: string; packets: number }[]) =>
      [...rows].sort((a, b) => (a.day + a.country < b.day + b.country ? -1 : 1))
    const api = (await get('/api/daily')).json() as { day: string; country: string; packets: number }[]
    const panel = asDaily(await store.query(expand(sql, range)))
    expect(sort(panel)).toEqual(sort(api.map(({ day, country, packets }) => ({ day, country, packets }))))
    const monlist = asDaily(await store.query(expand(sql, range, { class: ['monlist'] }, '1')))
    // monlist: US 6 packets, CN 5, JP 1, so the top 1 is US and the rest is "other".
    expect(sort(monlist)).toEqual([
      { day: '2014-01-01', country: 'US', packets: 2 },
      { day: '2014-01-01', country: 'other', packets: 3 },
      { day: '2014-01-02', country: 'other', packets: 3 },
      { day: '2014-01-03', country: 'US', packets: 4 },
    ])
  })

  it('is provisioned from the directory docker-compose mounts', () => {
    const provider = parseYaml(
      readFileSync(join(process.cwd(), 'dashboards/grafana/provisioning/dashboards/teiten.yaml'), 'utf8'),
    )
    expect(provider.providers[0]).toMatchObject({ type: 'file', options: { path: '/var/lib/grafana/dashboards' } })
    expect(dash.uid).toBe('teiten-ntp')
  })
})
