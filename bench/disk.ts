import { spawnSync } from 'node:child_process'

/**
 * Writes the page cache holds for the disk, written out before a timed run starts: a run must
 * not pay for the writeback of the stage before it. In the first full run of round 24 the Kafka
 * section's embedded ingest came right after the 1e9-event store was built (GBs of parts): 71.7 s
 * at 28.7 CPU s, against 11.2-13.1 s at 20.4-24.0 CPU s in the rounds, its writes throttled
 * behind that writeback (and its ratio to the Kafka path read 272%); the 2M-packet check right
 * after the spool took 7.28 s at 5.4 CPU s (2.4 s at 3.8 CPU s in round 23).
 */
export function settleWrites(): void {
  spawnSync('sync', { stdio: 'ignore' })
}
