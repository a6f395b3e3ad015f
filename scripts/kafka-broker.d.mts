// Types for scripts/kafka-broker.mjs (plain JS so the CLI runs without a build).

export declare const KAFKA_VERSION: string
export declare const SCALA_BINARY_VERSION: string
export declare const REPO_ROOT: string
export declare const DEFAULT_DIR: string
export declare const DEFAULT_CACHE: string
export declare const DEFAULT_PORT: number
export declare const DEFAULT_HOST: string

export interface BrokerOptions {
  /** Data, config, log and pid file. Default: TEITEN_KAFKA_DIR or .kafka/ of the repo. */
  dir?: string
  /** Client port on 127.0.0.1. Default: TEITEN_KAFKA_PORT or 9092. */
  port?: number
  /** KRaft controller port. Default: port + 1. */
  controllerPort?: number
  /** Kafka release. Default: TEITEN_KAFKA_VERSION or KAFKA_VERSION. */
  version?: string
  /** Jar cache. Default: TEITEN_KAFKA_CACHE or .cache/kafka/ of the repo. */
  cacheDir?: string
  /** JVM heap (-Xmx and -Xms). Default: TEITEN_KAFKA_HEAP or 512m. */
  heap?: string
  /** How long to wait for the broker to serve clients. Default 120 s. */
  timeoutMs?: number
  /** Keep the broker running after this process exits (the CLI). Default false: killed at exit. */
  detached?: boolean
  /** Progress messages (the jar download). */
  log?: (msg: string) => void
}

export interface BrokerHandle {
  /** Bootstrap servers, e.g. ['127.0.0.1:9092']. */
  brokers: string[]
  host: string
  port: number
  controllerPort: number
  dir: string
  logFile: string
  version: string
  /** Pid of the current JVM (changes on restart). */
  pid: number
  /** Whether this start formatted fresh storage. */
  formatted: boolean
  /** Whether this start downloaded the jars, and how long that took. */
  fetched: boolean
  fetchMs: number
  /** Milliseconds from JVM launch to serving clients (last start or restart). */
  startMs: number
  /** SIGTERM, wait up to graceMs (default 30 s), then SIGKILL. Idempotent. */
  stop(opts?: { graceMs?: number }): Promise<void>
  /** Stop, then start again on the same data, ports and version; resolves when serving. */
  restart(): Promise<void>
}

export declare function startBroker(opts?: BrokerOptions): Promise<BrokerHandle>
export declare function stopBroker(opts?: { dir?: string; graceMs?: number }): Promise<boolean>
export declare function brokerStatus(dir?: string): {
  pid: number
  port?: number
  controllerPort?: number
  version?: string
  started?: string
  stale: boolean
} | null
export declare function ensureKafka(opts?: { version?: string; cacheDir?: string; log?: (msg: string) => void }): {
  libDir: string
  classpath: string
  fetched: boolean
  fetchMs: number
}
export declare function findJava(): { bin: string; major: number }
/** API key -> [minVersion, maxVersion] as the broker advertises them (ApiVersions v0). */
export declare function apiVersions(
  host: string,
  port: number,
  timeoutMs?: number,
): Promise<Map<number, [number, number]>>
/** Resolves to the broker list when host:port is a Kafka broker serving clients, else null. */
export declare function probeBroker(
  host: string,
  port: number,
  timeoutMs?: number,
): Promise<{ apiKeys: number; brokers: string[] } | null>
export declare function logTail(logFile: string, lines?: number): string
export declare function paths(dir: string): {
  dir: string
  dataDir: string
  propsFile: string
  logFile: string
  pidFile: string
}
export declare function envOptions(env?: NodeJS.ProcessEnv): {
  dir: string
  port: number
  controllerPort: number
  version: string
  cacheDir: string
  heap: string
  timeoutMs: number
}
