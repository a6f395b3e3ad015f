import type { Logger } from '../core/logger.js'
import { createEnricher } from '../enrich/enrich.js'
import { GeoIp } from '../enrich/geoip.js'
import type { Enricher } from '../pipeline/ingest.js'

export async function openEnricher(geoipPath: string | undefined, logger: Logger): Promise<Enricher> {
  const geoip = await GeoIp.open(geoipPath)
  logger.info({ geoip: geoip.describe() }, 'GeoIP database')
  return createEnricher(geoip)
}
