import { it } from 'vitest'
import { silentLogger } from '../../core/logger.js'
import { openStore } from '../../store/open.js'
it('open', async () => {
  const t0 = performance.now()
  const s = await openStore({ dataDir: '/tmp/tt/data', logger: silentLogger, host: false })
  console.log('open ms', performance.now() - t0)
  await s.close()
})
