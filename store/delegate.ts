import { Agent, request } from 'node:http'
import { type ErrorCode, ERROR_CODES, TeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { InsertOptions, QueryParams, Settings, Store } from './store.js'

/** A Store that forwards every call to the teiten process holding the embedded directory. */
class DelegatedStore implements Store {
  readonly kind = 'delegated' as const
  private readonly agent: Agent

  constructor(private readonly socketPath: string) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 4 })
  }

  private call(path: string, body: Buffer | string, contentType: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': contentType },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', reject)
          res.on('end', () => {
            const data = Buffer.concat(chunks)
            if ((res.statusCode ?? 500) < 300) return resolve(data)
            try {
              const { code, message } = JSON.parse(data.toString('utf8')) as { code: string; message: string }
              const known = (code in ERROR_CODES ? code : 'STORE_QUERY_FAILED') as ErrorCode
              reject(new TeitenError(known, message))
            } catch {
              reject(new TeitenError('STORE_QUERY_FAILED', `store host answered ${res.statusCode}`))
            }
          })
        },
      )
      req.on('error', (err) =>
        reject(
          new TeitenError('STORE_UNAVAILABLE', `store host at ${this.socketPath}: ${err.message}`, {}, { cause: err }),
        ),
      )
      req.end(body)
    })
  }

  async query<T>(sql: string, params?: QueryParams, settings?: Settings): Promise<T[]> {
    const data = await this.call('/query', JSON.stringify({ sql, params, settings }), 'application/json')
    return JSON.parse(data.toString('utf8')) as T[]
  }

  queryRaw(sql: string, params: QueryParams | undefined, format: string, settings?: Settings): Promise<Buffer> {
    return this.call('/query', JSON.stringify({ sql, params, settings, format }), 'application/json')
  }

  async command(sql: string, params?: QueryParams, settings?: Settings): Promise<void> {
    await this.call('/command', JSON.stringify({ sql, params, settings }), 'application/json')
  }

  async insertRowBinary(
    table: string,
    structure: string,
    body: Buffer,
    dedupToken?: string,
    options: InsertOptions = {},
  ): Promise<void> {
    try {
      if (options.after) await options.after
      if (body.length === 0) return
      const q = new URLSearchParams({ table, structure })
      if (dedupToken !== undefined) q.set('token', dedupToken)
      if (options.format === 'Native') q.set('format', 'Native')
      await this.call(`/insert?${q}`, body, 'application/octet-stream')
    } finally {
      options.onBodyRead?.()
    }
  }

  async close(): Promise<void> {
    this.agent.destroy()
  }
}

export async function connectDelegate(socketPath: string, logger: Logger): Promise<Store> {
  const store = new DelegatedStore(socketPath)
  try {
    await store.query('SELECT 1 AS ok')
  } catch (err) {
    logger.debug({ err }, 'no store host answered')
    await store.close()
    throw err
  }
  return store
}
