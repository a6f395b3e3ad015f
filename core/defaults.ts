/**
 * Defaults that the CLI's option help names, apart from the modules that use them: `teiten
 * --help` and every command load only what they run (cli/main.ts), not fastify or kafkajs.
 */

/** Largest export the dashboard's API produces, in events. */
export const DEFAULT_EXPORT_MAX_ROWS = 1_000_000

/**
 * A sink that dies (SIGKILL, lost host) keeps its partitions this long. Shorter than kafkajs'
 * 30 s so work moves on sooner; long enough for any one insert, since heartbeats are sent
 * between messages (and during retry pauses), not during an insert.
 */
export const DEFAULT_SESSION_TIMEOUT_MS = 15_000
