import type { Command } from 'commander'
import { stringify as toYaml } from 'yaml'
import { redactConfig } from '../../core/config.js'
import { TeitenError } from '../../core/errors.js'
import { ALL_SETTINGS, addCommonOptions, addSettingFlags, addStoreOptions, contextFrom } from '../context.js'

/**
 * `teiten config print`: the configuration a command would run with (defaults < --config file <
 * TEITEN_* environment < flags), secrets masked, so "why does it write there?" has an answer
 * without reading code. It opens nothing: no store, no GeoIP database.
 */
export function registerConfig(program: Command): void {
  const config = program.command('config').description('show the effective configuration')
  const print = config
    .command('print')
    .description('print the effective configuration (file < env < flags), secrets redacted')
    .option('--format <format>', 'yaml|json', 'yaml')
  addStoreOptions(print)
  addCommonOptions(print)
  // Every setting's flag, so that a command line can be checked before it is run.
  addSettingFlags(print, ALL_SETTINGS)
  print.action((opts: Record<string, unknown>) => {
    const format = String(opts.format)
    if (format !== 'yaml' && format !== 'json') {
      throw new TeitenError('USAGE', `--format must be one of yaml|json, got ${format}`)
    }
    const { config: effective } = contextFrom(opts, {}, ALL_SETTINGS)
    const shown = redactConfig(effective)
    process.stdout.write(format === 'json' ? `${JSON.stringify(shown, null, 2)}\n` : toYaml(shown))
  })
}
