#!/usr/bin/env node
// The README's main job on bundled sample captures: generate them (deterministic, with their
// ground truth), ingest them into the embedded store, print the Figure-2 table.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const teiten = join(root, 'bin', 'teiten.js')
const run = (args) => {
  const status = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' }).status ?? 1
  if (status !== 0) process.exit(status)
}
const samples = join(root, 'samples')
if (!existsSync(join(samples, 'captures'))) run([join(root, 'dist', 'scripts', 'gen-samples.js'), samples])
run([teiten, 'ingest', join(samples, 'captures'), '--log-level', 'warn'])
run([teiten, 'daily', '--log-level', 'warn'])
