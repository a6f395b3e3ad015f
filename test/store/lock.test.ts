import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isTeitenError } from '../../core/errors.js'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
import { queryDaily, parseDailyQuery } from '../../store/queries.js'
import { EventRowEncoder } from '../../store/rowbinary.js'
import { EVENT_STRUCTURE } from '../../store/schema.js'
import { makePacket } from '../helpers/packets.js'
import { tempDir } from '../helpers/tmp.js'

const root = join(import.meta.dirname, '..', '..')

/** Another process holding the embedded directory, like a long-running `teiten serve`. */
async function holder(dataDir: string, host: boolean): Promise<ChildProcess> {
  const script = `
    const { openStore } = await import(${JSON.stringify(join(root, 'dist/store/open.js'))})
    const { silentLogger } = await import(${JSON.stringify(join(root, 'dist/core/logger.js'))})
    await openStore({ dataDir: ${JSON.stringify(dataDir)}, logger: silentLogger, host: ${host}, role: 'test holder' })
    process.stdout.write('ready\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  expect(chunk.toString()).toContain('ready')
  return child
}

let child: ChildProcess | undefined
afterEach(() => {
  child?.kill('SIGKILL')
  child = undefined
})

describe('embedded data directory held by another process', () => {
  it('works through the holder when the holder serves the store', async () => {
    const dir = tempDir()
    child = await holder(dir.path, true)
    const store = await openStore({ dataDir: dir.path, logger: silentLogger })
    expect(store.kind).toBe('delegated')
    const enc = new EventRowEncoder(64)
    enc.setFile('s1', 'c'.repeat(32))
    const { packet, enrichment } = makePacket({
      ts: '2014-01-10T10:00:00Z',
      src: '1.1.1.1',
      cls: 'monlist',
      country: 'AU',
    })
    enc.add(packet, enrichment, 0)
    const body = enc.take()
    await store.insertRowBinary('events', EVENT_STRUCTURE, body, 'tok-1')
    await store.insertRowBinary('events', EVENT_STRUCTURE, body, 'tok-1')
    expect(await queryDaily(store, parseDailyQuery({}))).toEqual([
      { day: '2014-01-10', country: 'AU', packets: 1, sources: 1 },
    ])
    await expect(store.query('SELECT nonexistent_function(1)')).rejects.toThrow(
      /nonexistent_function|Unknown function/i,
    )
    await store.close()
    dir.cleanup()
  })

  it('answers a command through the holder without an engine error on its stderr', async () => {
    const dir = tempDir()
    child = await holder(dir.path, true)
    const cli = spawn(
      process.execPath,
      [join(root, 'bin', 'teiten.js'), 'sql', '--data', dir.path, 'SELECT 6 * 7 AS answer', '--format', 'csv'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
    cli.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    const [code] = (await once(cli, 'exit')) as [number]
    expect(stdout).toContain('42')
    expect(code).toBe(0)
    expect(stderr).not.toMatch(/Exception|Cannot lock/)
    dir.cleanup()
  })

  it('says who holds the directory and what to do when it cannot delegate', async () => {
    const dir = tempDir()
    child = await holder(dir.path, false)
    const err = await openStore({ dataDir: dir.path, logger: silentLogger }).catch((e) => e)
    expect(isTeitenError(err, 'STORE_LOCKED')).toBe(true)
    expect(err.message).toMatch(/in use by/)
    expect(err.message).toMatch(/--clickhouse URL/)
    expect(err.message).toMatch(/--data DIR/)
    dir.cleanup()
  })

  it('takes the directory over once its holder has died', async () => {
    const dir = tempDir()
    child = await holder(dir.path, true)
    child.kill('SIGKILL')
    await once(child, 'exit')
    const store = await openStore({ dataDir: dir.path, logger: silentLogger })
    expect(store.kind).toBe('embedded')
    await store.close()
    dir.cleanup()
  })
})
