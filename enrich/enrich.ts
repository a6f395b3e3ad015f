/**
 * The enrich stage: one call per packet fills the whole Enrichment (core/event.ts) in place:
 * NTP class and header fields from the payload, bogon flag and country of the SOURCE address
 * (Figure 2 counts accesses by where they come from).
 */
import { DecodedUdpPacket, type Enrichment, type NtpClassId, type UdpPacket, UNKNOWN_COUNTRY } from '../core/event.js'
import { isBogon } from './bogon.js'
import { classifyNtp, classifyNtpAt } from './classify.js'

/** What enrich needs from a GeoIP database: GeoIp implements it; tests may pass a stub. */
export interface CountryLookup {
  country(addr16: Buffer, ipVersion: 4 | 6): string
}

/** A blank Enrichment to reuse across packets (the hot path allocates none). */
export function newEnrichment(): Enrichment {
  return {
    classId: 7,
    ntpVersion: 0,
    ntpMode: 0,
    ntpCode: 0,
    ntpImpl: 0,
    country: UNKNOWN_COUNTRY,
    bogon: false,
  }
}

/**
 * Fills `out` for `packet` and returns the class id. A bogon source gets '--' whatever the
 * database says (ip-location-db, for one, maps parts of 192.168.0.0/16 to AU), and is not looked
 * up at all. `geo` null means no GeoIP: every country is '--'.
 */
export function enrich(packet: UdpPacket, out: Enrichment, geo: CountryLookup | null): NtpClassId {
  // udpLength - 8 is what the sender put in the datagram; a UDP length below 8 is nonsense and
  // comes out negative, which classifyNtp treats as unknown.
  // The decoders' packets are classified where the payload lies (no view per packet).
  const classId =
    packet instanceof DecodedUdpPacket
      ? classifyNtpAt(packet.bytes, packet.payloadStart, packet.payloadLength, packet.udpLength - 8, out)
      : classifyNtp(packet.payload, packet.udpLength - 8, out)
  const bogon = isBogon(packet.src)
  out.bogon = bogon
  out.country = bogon || geo === null ? UNKNOWN_COUNTRY : geo.country(packet.src, packet.ipVersion)
  return classId
}

/** `enrich` bound to one database, for stages that want a `(packet, out)` callback. */
export function makeEnricher(geo: CountryLookup | null): (packet: UdpPacket, out: Enrichment) => NtpClassId {
  return (packet, out) => enrich(packet, out, geo)
}
