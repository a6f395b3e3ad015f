import { NTP_CLASSES } from '../../core/event.js'
import { DAILY_KEYS } from '../../store/queries.js'
import { EXPORT_FORMATS, HOURLY_KEYS, SOURCE_ORDERS } from '../../store/research.js'

/**
 * The OpenAPI 3 description served at /api/openapi.json. Written by hand next to the routes;
 * test/dashboards/api.test.ts checks that every route is described and that every described
 * query parameter is accepted (and nothing else).
 */

type Json = Record<string, unknown>

const q = (name: string, description: string, schema: Json, required = false): Json => ({
  name,
  in: 'query',
  required,
  description,
  schema,
})

const day = { type: 'string', format: 'date', pattern: '^\\d{4}-\\d{2}-\\d{2}$' }
const csvOf = (items: Json) => ({
  oneOf: [
    { type: 'string', description: 'comma-separated list' },
    { type: 'array', items },
  ],
})

const P = {
  from: q('from', 'first day (UTC), inclusive', day),
  to: q('to', 'last day (UTC), inclusive', day),
  all: q(
    'all',
    'count every kept UDP/123 packet, backscatter from port 123 included (default: accesses to port 123 only)',
    {
      type: 'string',
      enum: ['1', 'true', '0', 'false'],
    },
  ),
  sensor: q('sensor', 'only these sensors', csvOf({ type: 'string', maxLength: 128 })),
  class: q('class', 'only these packet classes', csvOf({ type: 'string', enum: [...NTP_CLASSES] })),
  country: q(
    'country',
    'only these source countries (ISO 3166-1 alpha-2 in capitals; -- = unknown or bogon)',
    csvOf({ type: 'string', pattern: '^([A-Z]{2}|--)$' }),
  ),
}
const FILTERS = [P.all, P.sensor, P.class, P.country]

const err = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})
const ERRORS = { 400: err('invalid or unknown parameter'), 401: err('missing or wrong bearer token') }
const json = (schema: Json, description = 'OK') => ({ description, content: { 'application/json': { schema } } })
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })

const sourceSummary = {
  country: { type: 'string', description: 'latest country of the source' },
  bogon: { type: 'boolean' },
  first_seen: { type: 'string', description: 'ISO 8601, nanoseconds, UTC' },
  last_seen: { type: 'string' },
  packets: { type: 'integer' },
  dark_addresses: { type: 'integer', description: 'distinct monitored (dark) addresses the source sent to' },
  classes: { type: 'array', items: { type: 'string', enum: [...NTP_CLASSES] } },
  sensors: { type: 'array', items: { type: 'string' } },
  days_active: { type: 'integer' },
}

export function openApiDocument(options: { tokenRequired: boolean }): Json {
  return {
    openapi: '3.0.3',
    info: {
      title: 'teiten dashboard API',
      version: '1',
      description:
        'Daily, hourly and per-source counts of UDP/123 (NTP) packets seen by darknet sensors, from the ClickHouse ' +
        'aggregates teiten keeps. Every error answers {error:{code,message}}; unknown query parameters are rejected. ' +
        (options.tokenRequired
          ? 'This server requires `Authorization: Bearer <token>` on every /api/ request.'
          : 'This server runs without a token (loopback only unless started with --host).'),
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: {
                  type: 'string',
                  description:
                    'stable: BAD_PARAMETER, QUERY_REJECTED, UNAUTHORIZED, NOT_FOUND, STORE_QUERY_FAILED, STORE_UNAVAILABLE, INTERNAL',
                },
                message: { type: 'string' },
              },
            },
          },
        },
        DailyRow: {
          type: 'object',
          description: 'the keys asked for in `by`, then packets and sources (exactly `teiten daily --format json`)',
          properties: {
            day: day,
            sensor: { type: 'string' },
            country: { type: 'string' },
            class: { type: 'string', enum: [...NTP_CLASSES] },
            packets: { type: 'integer' },
            sources: { type: 'integer', description: 'distinct source addresses (exact)' },
          },
          required: ['packets', 'sources'],
        },
        HourlyRow: {
          type: 'object',
          properties: {
            hour: { type: 'string', description: 'start of the hour, ISO 8601 UTC' },
            sensor: { type: 'string' },
            country: { type: 'string' },
            class: { type: 'string', enum: [...NTP_CLASSES] },
            packets: { type: 'integer' },
            sources: { type: 'integer' },
          },
          required: ['packets', 'sources'],
        },
        SourceRow: {
          type: 'object',
          properties: { address: { type: 'string' }, ...sourceSummary },
        },
        SourceHistory: {
          type: 'object',
          properties: {
            address: { type: 'string' },
            totals: {
              type: 'object',
              properties: { ...sourceSummary, countries: { type: 'array', items: { type: 'string' } } },
            },
            days: {
              type: 'array',
              items: { type: 'object', properties: { day, ...sourceSummary } },
            },
          },
        },
        Meta: {
          type: 'object',
          properties: {
            range: { type: 'object', nullable: true, properties: { from: day, to: day } },
            packets: { type: 'object', properties: { access: { type: 'integer' }, all: { type: 'integer' } } },
            sensors: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  sensor: { type: 'string' },
                  packets: { type: 'integer' },
                  from: day,
                  to: day,
                  addresses: {
                    type: 'number',
                    nullable: true,
                    description: 'monitored addresses, from the sensors file',
                  },
                },
              },
            },
            countries: { type: 'array', items: { type: 'object' } },
            classes: { type: 'array', items: { type: 'object' } },
            sensorsConfig: {
              type: 'object',
              description: 'whether "packets per monitored address" can be computed, and from which file',
            },
            store: { type: 'string', enum: ['embedded', 'server', 'delegated'] },
            limits: { type: 'object' },
          },
        },
        SqlRequest: {
          type: 'object',
          required: ['sql'],
          additionalProperties: false,
          properties: {
            sql: {
              type: 'string',
              maxLength: 65536,
              example: 'SELECT country, sum(packets) FROM daily_agg GROUP BY country',
            },
          },
        },
        SqlResult: {
          type: 'object',
          properties: {
            columns: {
              type: 'array',
              items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string' } } },
            },
            rows: {
              type: 'array',
              items: { type: 'array', items: {} },
              description: '64-bit integers arrive as strings (exact)',
            },
            statistics: { type: 'object' },
          },
        },
      },
    },
    security: options.tokenRequired ? [{ bearer: [] }] : [],
    paths: {
      '/api/meta': {
        get: {
          summary: 'What the store holds: date range, sensors, countries, classes, sensors-file status',
          responses: { 200: json(ref('Meta')), 401: ERRORS[401] },
        },
      },
      '/api/daily': {
        get: {
          summary: 'Daily counts (Figure 2 of the NPA advisory): the same rows as `teiten daily --format json`',
          parameters: [
            P.from,
            P.to,
            q('by', 'grouping keys; empty for one total row', {
              type: 'string',
              example: 'day,country',
              pattern: `^((${DAILY_KEYS.join('|')})(,(${DAILY_KEYS.join('|')}))*)?$`,
            }),
            ...FILTERS,
          ],
          responses: { 200: json({ type: 'array', items: ref('DailyRow') }), ...ERRORS },
        },
      },
      '/api/hourly': {
        get: {
          summary: 'Hourly counts of one day, from hourly_agg and the hours of the source-day rows',
          parameters: [
            q('day', 'the day (UTC)', day, true),
            q('by', 'grouping keys (default hour,country)', {
              type: 'string',
              pattern: `^((${HOURLY_KEYS.join('|')})(,(${HOURLY_KEYS.join('|')}))*)?$`,
            }),
            ...FILTERS,
          ],
          responses: { 200: json({ type: 'array', items: ref('HourlyRow') }), ...ERRORS },
        },
      },
      '/api/sources': {
        get: {
          summary: 'Top sources of a range, from source_daily',
          parameters: [
            P.from,
            P.to,
            ...FILTERS,
            q('limit', 'rows (1-10000, default 50)', { type: 'integer', minimum: 1, maximum: 10000 }),
            q(
              'order',
              'ranking: packets (default); sources = dark_addresses (distinct monitored addresses reached); days_active; first_seen; last_seen',
              {
                type: 'string',
                enum: Object.keys(SOURCE_ORDERS),
              },
            ),
            q('dir', 'desc (default) or asc', { type: 'string', enum: ['desc', 'asc'] }),
          ],
          responses: { 200: json({ type: 'array', items: ref('SourceRow') }), ...ERRORS },
        },
      },
      '/api/source/{addr}': {
        get: {
          summary: "One source's history: per-day rows and totals",
          parameters: [
            {
              name: 'addr',
              in: 'path',
              required: true,
              description: 'IPv4 or IPv6 address',
              schema: { type: 'string' },
            },
            P.from,
            P.to,
            ...FILTERS,
          ],
          responses: {
            200: json(ref('SourceHistory')),
            ...ERRORS,
            404: err('the store has no packets from this address'),
          },
        },
      },
      '/api/sql': {
        post: {
          summary: 'A read-only SELECT over the teiten tables',
          description:
            'Exactly one SELECT (or WITH … SELECT). The text is parsed by ClickHouse (formatQuerySingleLine, EXPLAIN AST): ' +
            'other statements, several statements, SETTINGS/FORMAT/INTO OUTFILE, the system databases and table functions ' +
            'that read files, URLs or other servers are refused. It runs with readonly=1 and limits on time, memory and result size.',
          requestBody: { required: true, content: { 'application/json': { schema: ref('SqlRequest') } } },
          responses: { 200: json(ref('SqlResult')), ...ERRORS },
        },
      },
      '/api/export': {
        get: {
          summary: 'The events of a range, as CSV (streamed day by day) or Parquet; refused above the row limit',
          parameters: [
            q('from', 'first day (UTC)', day, true),
            q('to', 'last day (UTC)', day, true),
            q('format', 'csv (default) or parquet', { type: 'string', enum: [...EXPORT_FORMATS] }),
            ...FILTERS,
          ],
          responses: {
            200: {
              description: 'the events',
              content: {
                'text/csv': { schema: { type: 'string' } },
                'application/vnd.apache.parquet': { schema: { type: 'string', format: 'binary' } },
              },
            },
            ...ERRORS,
          },
        },
      },
      '/api/openapi.json': {
        get: { summary: 'This document', responses: { 200: json({ type: 'object' }), 401: ERRORS[401] } },
      },
    },
  }
}
