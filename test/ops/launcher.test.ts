/**
 * bin/teiten.js started by a Node older than 24 (the machine's /usr/bin/node, as a direct
 * `node_modules/.bin/teiten` or a shell PATH gets it) re-runs itself on the bundled Node 24:
 * without that the CLI dies at import time (node:zlib has no zstd before Node 23.8).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { BIN, cliEnv, generate, pcap, tempDir, writeCapture } from './helpers.js'

function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    const r = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' })
    if (r.status === 0 && Number(r.stdout.split('.')[0]) < 24) return candidate
  }
  return undefined
}

const OLD_NODE = olderNode()

describe('the launcher on an older Node', () => {
  it.skipIf(!OLD_NODE)('stores and counts every packet of a capture when started by a Node older than 24', () => {
    const dir = tempDir('teiten-launcher-')
    try {
      const { packets, truth } = generate({ seed: 71, packets: 500 })
      const file = writeCapture(`${dir.path}/spool/s1/a.pcap`, pcap(packets))
      const env = cliEnv({ TEITEN_LOG_LEVEL: 'warn' })
      const ingest = spawnSync(OLD_NODE!, [BIN, 'ingest', file, '--data', `${dir.path}/data`, '--no-progress'], {
        env,
        encoding: 'utf8',
      })
      expect(ingest.stderr).not.toMatch(/SyntaxError|does not provide an export/)
      expect(ingest.status).toBe(0)
      const sum = (args: string[]) => {
        const r = spawnSync(OLD_NODE!, [BIN, 'daily', '--data', `${dir.path}/data`, ...args, '--format', 'json'], {
          env,
          encoding: 'utf8',
        })
        expect(r.status).toBe(0)
        return (JSON.parse(r.stdout) as { packets: number }[]).reduce((n, row) => n + row.packets, 0)
      }
      const sumOf = (counts: Record<string, number>) => Object.values(counts).reduce((n, c) => n + c, 0)
      expect(sum(['--by', 'day', '--all'])).toBe(truth.kept)
      expect(sum(['--by', 'day'])).toBe(sumOf(truth.access))
      expect(truth.kept).toBeGreaterThan(0)
    } finally {
      dir.cleanup()
    }
  })
})

describe('install scripts', () => {
  // npm 12 skips the install scripts of dependencies that package.json's allowScripts does not
  // approve: without `node`'s there is no bundled Node 24 (the README's `npm install` would set up
  // a tree the launcher and the tests cannot run on), without chdb's no engine.
  it('approves every dependency in the lockfile that has an install script, and nothing else', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      allowScripts?: Record<string, boolean>
    }
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean }>
    }
    const withScripts = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.hasInstallScript)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
      .sort()
    expect(withScripts).toContain('node')
    const approved = Object.entries(pkg.allowScripts ?? {})
      .filter(([, yes]) => yes)
      .map(([name]) => name)
      .sort()
    expect(approved).toEqual(withScripts)
  })
})
