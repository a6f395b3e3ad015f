// Worker entry of the fuzz run: plain Node, no bundler. The sources are TypeScript imported with
// .js suffixes (as tsc wants); Node strips the types itself, and this hook maps a missing
// ./x.js to ./x.ts.
import { registerHooks } from 'node:module'

registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context)
    } catch (err) {
      if (err?.code === 'ERR_MODULE_NOT_FOUND' && /^\.\.?\//.test(specifier) && specifier.endsWith('.js')) {
        return next(`${specifier.slice(0, -3)}.ts`, context)
      }
      throw err
    }
  },
})

await import('./engine.js')
