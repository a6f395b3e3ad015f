import { existsSync, unlinkSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { isTeitenError } from '../core/errors.js'
import type { Logger } from '../core/logger.js'
import type { QueryParams, Settings, Store } from './store.js'

/**
 * chDB lets one process hold a data directory. The process that holds it serves the store to
 * other teiten commands on a Unix socket inside that directory (mode 0600: same user only), so
 * an analyst's `teiten serve` and a running `teiten ingest` share one store instead of one
 * of them failing on the lock.
 */
export interface StoreHost {
  close(): Promise<void>
}

interface QueryRequest {
  sql: string
  params?: QueryParams
  settings?: Settings
  format?: string
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function fail(res: ServerResponse, err: unknown): void {
  const body = isTeitenError(err)
    ? { code: err.code, message: err.message }
    : { code: 'STORE_QUERY_FAILED', message: (err as Error)?.message ?? String(err) }
  res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

export async function startStoreHost(store: Store, socketPath: string, logger: Logger): Promise<StoreHost> {
  // A socket file left by a process that died: the engine lock is ours now, so it is stale.
  if (existsSync(socketPath)) unlinkSync(socketPath)
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://store')
      const body = await readBody(req)
      if (req.method !== 'POST') {
        res.writeHead(405).end()
        return
      }
      if (url.pathname === '/insert') {
        const table = url.searchParams.get('table') ?? ''
        const structure = url.searchParams.get('structure') ?? ''
        const token = url.searchParams.get('token') ?? undefined
        const format = url.searchParams.get('format') === 'Native' ? 'Native' : undefined
        await store.insertRowBinary(table, structure, body, token, { format })
        res.writeHead(204).end()
        return
      }
      const request = JSON.parse(body.toString('utf8')) as QueryRequest
      if (url.pathname === '/query') {
        if (request.format) {
          const bytes = await store.queryRaw(request.sql, request.params, request.format, request.settings)
          res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(bytes)
        } else {
          const rows = await store.query(request.sql, request.params, request.settings)
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows))
        }
        return
      }
      if (url.pathname === '/command') {
        await store.command(request.sql, request.params, request.settings)
        res.writeHead(204).end()
        return
      }
      res.writeHead(404).end()
    } catch (err) {
      logger.debug({ err }, 'delegated store request failed')
      fail(res, err)
    }
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ path: socketPath, readableAll: false, writableAll: false }, () => resolve())
  })
  server.unref()
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        try {
          unlinkSync(socketPath)
        } catch {}
      }),
  }
}
