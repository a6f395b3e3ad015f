import type { QueryParams, Settings, Store } from '../../store/store.js'

/**
 * The dashboard's view of the store: one statement at a time, and after a statement that
 * failed, a throwaway query in the same turn. chDB 3.4 hands the partial output of a query
 * that failed while streaming to whichever query runs next on the session; without the turn,
 * a researcher's failing SELECT could put its rows into another request's answer.
 *
 * Only the embedded engine needs it (a ClickHouse server answers each HTTP request apart).
 * Statements of other teiten processes that reach this store through the host socket do not
 * pass here; the store itself should serialize them too.
 */
export function serialStore(inner: Store): Store {
  if (inner.kind === 'server') return inner
  let tail: Promise<unknown> = Promise.resolve()
  const turn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = async () => {
      try {
        return await fn()
      } catch (err) {
        try {
          await inner.queryRaw('SELECT 1', undefined, 'TSV', { readonly: 2 })
        } catch {}
        throw err
      }
    }
    const result = tail.then(run, run)
    tail = result.catch(() => undefined)
    return result
  }
  return {
    kind: inner.kind,
    query: <T>(sql: string, params?: QueryParams, settings?: Settings) => turn(() => inner.query<T>(sql, params, settings)),
    queryRaw: (sql: string, params: QueryParams | undefined, format: string, settings?: Settings) =>
      turn(() => inner.queryRaw(sql, params, format, settings)),
    command: (sql: string, params?: QueryParams, settings?: Settings) => turn(() => inner.command(sql, params, settings)),
    insertRowBinary: (table: string, structure: string, body: Buffer, dedupToken?: string) =>
      turn(() => inner.insertRowBinary(table, structure, body, dedupToken)),
    // The caller that opened the store closes it.
    close: async () => {},
  }
}
