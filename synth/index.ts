/**
 * Synthetic captures with known ground truth: frame builders, streaming capture writers, and
 * the seeded corpus generator. See corpus.ts for the truth's definitions.
 */
export * from './corpus.js'
export * from './frames.js'
export * from './geo.js'
export { buildPayloadCatalog, type CutRule, type PayloadVariant } from './payloads.js'
export {
  type CountryWeight,
  DAILY_JST,
  DAILY_UTC,
  DEFAULT_COUNTRIES,
  DEFAULT_SENSORS,
  DEFAULT_SURGE,
  HOURLY,
  type Rotation,
  type SensorSpec,
  type SurgeSpec,
} from './population.js'
export { cumulative, Rng } from './rng.js'
export { LINK_CHOICES, LINK_VARIANTS, type LinkChoice, NOISE_KINDS } from './templates.js'
export * from './writers.js'
