import { defineConfig } from 'vitest/config'

/**
 * `npm run fuzz`: the fuzz tests at full size (1,000,000 cases unless TEITEN_FUZZ_CASES says
 * otherwise). The normal `vitest run` runs the same test with a small default.
 */
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.test.ts'],
    env: { TEITEN_FUZZ_CASES: process.env.TEITEN_FUZZ_CASES ?? '1000000' },
    testTimeout: 3_600_000,
    pool: 'forks',
  },
})
