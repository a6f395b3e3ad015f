#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `prepare` on install).
// teiten needs Node 24 (zstd in node:zlib, among others). The project brings it as the `node`
// npm package; `npm run`/`npx` put it first on the PATH, but a direct `node_modules/.bin/teiten`
// or a shell whose `node` is older lands here on that older Node: run the bundled one instead.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const MIN_MAJOR = 24
const major = Number(process.versions.node.split('.')[0])

function bundledNode() {
  try {
    const pkg = createRequire(import.meta.url).resolve('node/package.json')
    const bin = join(dirname(pkg), 'bin', process.platform === 'win32' ? 'node.exe' : 'node')
    return existsSync(bin) ? bin : undefined
  } catch {
    return undefined
  }
}

if (major < MIN_MAJOR && !process.env.TEITEN_NODE_REEXEC) {
  const node = bundledNode()
  if (!node) {
    console.error(
      `teiten: needs Node.js ${MIN_MAJOR} or newer (this is ${process.version}); run \`npm install\` in the project (it brings Node ${MIN_MAJOR}) or install it.`,
    )
    process.exit(2)
  }
  const child = spawn(node, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, TEITEN_NODE_REEXEC: '1' },
  })
  // The child does the work; signals meant for teiten (a supervisor's SIGTERM) reach it too.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal)
    else process.exit(code ?? 1)
  })
} else {
  import('../dist/cli/main.js')
    .then((m) => m.main(process.argv))
    .catch((err) => {
      console.error(err?.stack ?? String(err))
      process.exit(70)
    })
}
