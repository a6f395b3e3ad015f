import type { Logger } from '../core/logger.js'
import { makeEnricher } from '../enrich/enrich.js'
import { GeoIp } from '../enrich/geoip.js'
import type { Enricher } from '../pipeline/ingest.js'

export async function openEnricher(
  geoipPath: string | undefined,
  logger: Logger,
): Promise<Enricher & { geoip: GeoIp }> {
  const geoip = await GeoIp.open(geoipPath)
  logger.info({ geoip: geoip.info() }, 'GeoIP database')
  return { enrich: makeEnricher(geoip), geoip }
}
