/**
 * The one error type of teiten. Every failure a user or a script can see carries a stable
 * `code` (scripts match on it; never rename one), a human message, and where it happened
 * (`file`, `offset` in bytes of the decoded stream: for gzip'd captures the offset is in the
 * decompressed bytes, which is what a hex dump of `zcat FILE` shows).
 */
export const ERROR_CODES = {
  // capture framing
  CAPTURE_UNKNOWN_FORMAT: 'not a pcap, pcapng or gzip capture (bad magic)',
  CAPTURE_TRUNCATED: 'capture ends in the middle of a record',
  CAPTURE_BAD_HEADER: 'malformed file or section header',
  CAPTURE_BAD_RECORD: 'malformed record header',
  CAPTURE_CAPLEN_TOO_LARGE: 'record length beyond the sane bound',
  CAPTURE_BAD_BLOCK_LENGTH: 'pcapng block length is invalid',
  CAPTURE_UNKNOWN_INTERFACE: 'pcapng packet names an interface that was not described',
  CAPTURE_GZIP_CORRUPT: 'gzip stream is corrupt',
  CAPTURE_GZIP_BOMB: 'gzip stream expands beyond the allowed ratio or size',
  CAPTURE_READ_FAILED: 'the file could not be read',
  // configuration and usage
  USAGE: 'bad command-line usage',
  CONFIG_INVALID: 'invalid configuration',
  GEOIP_OPEN_FAILED: 'the GeoIP database could not be opened',
  GEOIP_UNSUPPORTED: 'the GeoIP database has no country data teiten understands',
  // storage
  STORE_LOCKED: 'the embedded data directory is in use by another process',
  STORE_UNAVAILABLE: 'ClickHouse could not be reached',
  STORE_QUERY_FAILED: 'a ClickHouse query failed',
  STORE_INSERT_FAILED: 'a ClickHouse insert failed',
  STORE_SCHEMA_NEWER: 'the data directory was written by a newer teiten',
  REPORT_LOCKED: 'another scheduler is writing reports into this folder',
  // streaming
  KAFKA_UNAVAILABLE: 'the Kafka broker could not be reached',
  KAFKA_BAD_MESSAGE: 'a Kafka message could not be decoded',
  // queries
  QUERY_REJECTED: 'the query is not allowed',
  BAD_PARAMETER: 'a parameter is invalid',
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface ErrorContext {
  file?: string
  offset?: number
  [key: string]: unknown
}

export class TeitenError extends Error {
  override readonly name = 'TeitenError'
  readonly code: ErrorCode
  readonly context: ErrorContext

  constructor(code: ErrorCode, message?: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code], options)
    this.code = code
    this.context = context
  }

  get file(): string | undefined {
    return this.context.file
  }

  get offset(): number | undefined {
    return this.context.offset
  }

  /** One line for stderr: `FILE: offset N: message [CODE]`. */
  toLine(): string {
    const where: string[] = []
    if (this.context.file !== undefined) where.push(this.context.file)
    if (this.context.offset !== undefined) where.push(`offset ${this.context.offset}`)
    const prefix = where.length > 0 ? `${where.join(': ')}: ` : ''
    return `${prefix}${this.message} [${this.code}]`
  }
}

export function isTeitenError(err: unknown, code?: ErrorCode): err is TeitenError {
  return err instanceof TeitenError && (code === undefined || err.code === code)
}

/** Wraps anything thrown into a TeitenError of the given code, keeping the original as `cause`. */
export function wrapError(err: unknown, code: ErrorCode, context: ErrorContext = {}): TeitenError {
  if (err instanceof TeitenError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new TeitenError(code, message, context, { cause: err })
}
