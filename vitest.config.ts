import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // chDB binds one data directory per process: files run in separate forks.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
})
