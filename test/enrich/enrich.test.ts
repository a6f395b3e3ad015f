import { describe, expect, it } from 'vitest'
import { CLASS_ID, type NtpClass, type UdpPacket } from '../../core/event.js'
import { type CountryLookup, enrich, makeEnricher, newEnrichment } from '../../enrich/enrich.js'
import { GeoIp } from '../../enrich/geoip.js'
import { addr16, countryCodeDb } from './fixtures.js'

const NMAP_MONLIST = Buffer.concat([Buffer.from([0x17, 0x00, 0x03, 0x2a]), Buffer.alloc(44)]) // 48 bytes
const CLIENT_V4 = Buffer.concat([Buffer.from([0x23]), Buffer.alloc(47)]) // 48 bytes

function packet(src: string, dst: string, payload: Buffer, over: Partial<UdpPacket> = {}): UdpPacket {
  const ipVersion = src.includes(':') ? 6 : 4
  return {
    tsSec: 1_389_000_000,
    tsNanos: 0,
    ipVersion,
    src: addr16(src),
    dst: addr16(dst),
    srcPort: 40_000,
    dstPort: 123,
    ttl: 50,
    ipLength: (ipVersion === 4 ? 20 : 40) + 8 + payload.length,
    udpLength: 8 + payload.length,
    payload,
    wireLength: 14 + (ipVersion === 4 ? 20 : 40) + 8 + payload.length,
    ...over,
  }
}

const geo = GeoIp.fromBuffer(countryCodeDb(), 'fixture.mmdb')

describe('enrich', () => {
  it.each<[string, UdpPacket, NtpClass, string, boolean]>([
    ['monlist probe from Japan', packet('133.1.2.3', '198.51.100.1', NMAP_MONLIST), 'monlist', 'JP', false],
    [
      'country is the SOURCE, not the destination',
      packet('81.2.69.142', '133.1.2.3', CLIENT_V4),
      'client',
      'GB',
      false,
    ],
    // The fixture maps 192.168.0.0/16 to AU, as ip-location-db does: bogon wins.
    [
      'monlist probe from a private source: bogon, --',
      packet('192.168.1.1', '133.1.2.3', NMAP_MONLIST),
      'monlist',
      '--',
      true,
    ],
    ['unknown public source: --, not bogon', packet('134.0.0.1', '133.1.2.3', CLIENT_V4), 'client', '--', false],
    ['IPv6 client from Japan', packet('2001:218::1', '2001:db8::123', CLIENT_V4), 'client', 'JP', false],
    ['IPv6 link-local source: bogon', packet('fe80::1', '2001:db8::123', CLIENT_V4), 'client', '--', true],
    ['documentation source: bogon', packet('2001:db8::1', '2001:218::1', CLIENT_V4), 'client', '--', true],
    [
      'snaplen-cut client (22 of 48 bytes captured) is still a client',
      packet('133.1.2.3', '198.51.100.1', CLIENT_V4.subarray(0, 22), { udpLength: 56 }),
      'client',
      'JP',
      false,
    ],
    [
      'UDP length below 8 is not believed: judged by the bytes present',
      packet('133.1.2.3', '198.51.100.1', CLIENT_V4, { udpLength: 4 }),
      'client',
      'JP',
      false,
    ],
  ])('%s', (_name, p, cls, country, bogon) => {
    const out = newEnrichment()
    const got = enrich(p, out, geo)
    expect(got).toBe(CLASS_ID[cls])
    expect(out).toMatchObject({ classId: CLASS_ID[cls], country, bogon })
  })

  it('fills the NTP header fields', () => {
    const out = newEnrichment()
    enrich(packet('133.1.2.3', '198.51.100.1', NMAP_MONLIST), out, geo)
    expect(out).toEqual({
      classId: CLASS_ID.monlist,
      ntpVersion: 2,
      ntpMode: 7,
      ntpCode: 42,
      ntpImpl: 3,
      country: 'JP',
      bogon: false,
    })
  })

  it('does not consult the database for a bogon source', () => {
    const calls: string[] = []
    const spy: CountryLookup = {
      country: (a) => {
        calls.push(a.toString('hex'))
        return 'AU'
      },
    }
    const out = newEnrichment()
    enrich(packet('10.0.0.1', '133.1.2.3', CLIENT_V4), out, spy)
    enrich(packet('133.1.2.3', '10.0.0.1', CLIENT_V4), out, spy)
    expect(calls).toEqual([addr16('133.1.2.3').toString('hex')])
  })

  it('without a database every country is --, bogons still flagged', () => {
    const out = newEnrichment()
    enrich(packet('133.1.2.3', '198.51.100.1', CLIENT_V4), out, null)
    expect(out).toMatchObject({ country: '--', bogon: false })
    enrich(packet('127.0.0.1', '198.51.100.1', CLIENT_V4), out, null)
    expect(out).toMatchObject({ country: '--', bogon: true })
  })

  it('a reused Enrichment carries nothing over from the previous packet', () => {
    const run = makeEnricher(geo)
    const out = newEnrichment()
    run(packet('192.168.1.1', '133.1.2.3', NMAP_MONLIST), out)
    run(packet('2001:218::1', '2001:db8::123', CLIENT_V4), out)
    expect(out).toEqual({
      classId: CLASS_ID.client,
      ntpVersion: 4,
      ntpMode: 3,
      ntpCode: 0,
      ntpImpl: 0,
      country: 'JP',
      bogon: false,
    })
  })

  it('with the default database, sources it wrongly places (private, documentation) still come out --', async () => {
    const real = await GeoIp.open()
    const out = newEnrichment()
    for (const src of ['192.168.1.1', '10.1.2.3', '2001:db8::1', '100.64.0.1']) {
      enrich(packet(src, '133.1.2.3', CLIENT_V4), out, real)
      expect({ src, country: out.country, bogon: out.bogon }).toEqual({ src, country: '--', bogon: true })
    }
  })
})
