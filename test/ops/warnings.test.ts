/**
 * Every Kafka command printed kafkajs's "TimeoutNegativeWarning: -1795712960754 is a negative
 * number" (a timer of `-1 - Date.now()` ms, cli/main.ts dropKafkajsTimerWarning). The CLI drops
 * that one warning and nothing else.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const main = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js')

const run = (timerMs: string) => {
  const script = `
    const { dropKafkajsTimerWarning } = await import(${JSON.stringify(main)})
    dropKafkajsTimerWarning()
    setTimeout(() => {}, ${timerMs})
    process.emitWarning('something else', 'UserWarning')
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  expect(r.status).toBe(0)
  expect(r.stderr).toMatch(/UserWarning: something else/)
  return r.stderr
}

// Node prints a TimeoutNegativeWarning once per process: one process per case.
describe('process warnings of the CLI', () => {
  it("drop kafkajs's timer of minus a clock reading", () => {
    expect(run('-1 - Date.now()')).not.toMatch(/negative number/)
  })

  it('keep any other negative timer, and every other warning', () => {
    expect(run('-5')).toMatch(/TimeoutNegativeWarning: -5 is a negative number/)
  })
})
