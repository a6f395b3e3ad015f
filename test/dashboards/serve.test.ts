import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command } from 'commander'
import { afterAll, describe, expect, it } from 'vitest'
import { registerServe } from '../../cli/commands/serve.js'
import { countPrefixAddresses, parseCidr, parseSensorsConfig } from '../../dashboards/server/sensors.js'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
afterAll(() => dir.cleanup())

describe('sensors file', () => {
  it.each([
    [['198.51.100.0/24'], 256],
    [['198.51.100.0/24', '198.51.100.128/25'], 256],
    [['198.51.100.0/24', '198.51.100.0/24'], 256],
    [['198.51.100.0/25', '198.51.100.128/25'], 256],
    [['10.0.0.0/24', '10.0.1.0/24'], 512],
    [['203.0.113.7/32'], 1],
    [['10.0.0.0/8', '10.20.0.0/16'], 16_777_216],
    [['2001:db8::/120'], 256],
    [['2001:db8::/120', '2001:db8::80/121'], 256],
    [['::ffff:198.51.100.0/120'], 256],
    [['198.51.100.0/24', '2001:db8::/120'], 512],
  ])('counts %j as %i monitored addresses', (prefixes, count) => {
    expect(countPrefixAddresses(prefixes)).toBe(count)
  })

  it.each([
    ['198.51.100.1/24', /host bits/],
    ['198.51.100.0/33', /beyond/],
    ['198.51.100.0', /CIDR/],
    ['not-an-ip/24', /CIDR/],
    ['2001:db8::1/64', /host bits/],
  ])('refuses the prefix %s', (prefix, message) => {
    expect(() => parseCidr(prefix)).toThrow(message)
  })

  it.each([
    [{ sensors: { a: { addresses: 0 } } }, /addresses|sensors/],
    [{ sensors: { a: { addresses: 256, prefixes: ['10.0.0.0/24'] } } }, /sensors/],
    [{ sensors: { a: { prefixes: [] } } }, /sensors/],
    [{ sensors: { a: { prefixes: ['10.0.0.1/24'] } } }, /sensors\.a\.prefixes: .*host bits/],
    [{ sensor: {} }, /sensors/],
    [[], /sensors/],
  ])('refuses the sensors file %j with CONFIG_INVALID', (data, message) => {
    expect(() => parseSensorsConfig(data, 'x.yaml')).toThrow(message)
    try {
      parseSensorsConfig(data, 'x.yaml')
    } catch (err) {
      expect((err as { code: string }).code).toBe('CONFIG_INVALID')
    }
  })
})

describe('teiten serve', () => {
  it('opens the store, serves the page and a token-guarded API on loopback, and stops', async () => {
    const sensors = join(dir.path, 'sensors.json')
    writeFileSync(sensors, JSON.stringify({ sensors: { 'sensor-a': { prefixes: ['198.51.100.0/24'] } } }))
    const program = new Command().exitOverride()
    const stop = new AbortController()
    let listening!: (url: string) => void
    const url = new Promise<string>((resolve) => {
      listening = resolve
    })
    registerServe(program, { onListening: (u) => listening(u), stop: stop.signal })
    process.env.TEITEN_TOKEN = 'from-env'
    const run = program.parseAsync([
      'node',
      'teiten',
      'serve',
      '--data',
      join(dir.path, 'data'),
      '--port',
      '0',
      '--sensors',
      sensors,
      '--log-level',
      'silent',
    ])
    try {
      const base = await Promise.race([
        url,
        run.then(() => Promise.reject(new Error('serve returned before listening'))),
      ])
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
      expect((await fetch(base)).status).toBe(200)
      expect((await fetch(new URL('/api/meta', base))).status).toBe(401)
      const meta = await fetch(new URL('/api/meta', base), { headers: { authorization: 'Bearer from-env' } })
      expect(meta.status).toBe(200)
      expect(((await meta.json()) as { sensorsConfig: unknown }).sensorsConfig).toMatchObject({
        configured: true,
        source: 'sensors.json',
        sensors: { 'sensor-a': { addresses: 256 } },
      })
    } finally {
      delete process.env.TEITEN_TOKEN
      stop.abort()
      await run
    }
  })

  it.each([
    ['--port', 'http'],
    ['--port', '70000'],
    ['--export-max-rows', '0'],
  ])('refuses %s %s', async (flag, value) => {
    const program = new Command().exitOverride()
    registerServe(program)
    await expect(
      program.parseAsync(['node', 'teiten', 'serve', flag, value, '--data', join(dir.path, 'unused')]),
    ).rejects.toThrow(new RegExp(flag))
  })
})
