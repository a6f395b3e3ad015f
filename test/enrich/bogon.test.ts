import { describe, expect, it } from 'vitest'
import { isTeitenError } from '../../core/errors.js'
import { isBogon, isBogon4 } from '../../enrich/bogon.js'
import { parseAddress } from '../helpers/mmdb-writer.js'

/** 16-byte address as teiten stores it: IPv4 as ::ffff:a.b.c.d. */
function addr16(text: string): Buffer {
  return Buffer.from(text.includes(':') ? parseAddress(text, 6) : parseAddress(`::ffff:${text}`, 6))
}

describe('isBogon: IPv4 (stored IPv4-mapped)', () => {
  // Each block tested at both edges and one address either side of it.
  it.each([
    ['0.0.0.0', true, '0/8 this network'],
    ['0.255.255.255', true, '0/8 last'],
    ['1.0.0.0', false, 'after 0/8'],
    ['9.255.255.255', false, 'before 10/8'],
    ['10.0.0.0', true, '10/8 RFC 1918'],
    ['10.255.255.255', true, '10/8 last'],
    ['11.0.0.0', false, 'after 10/8'],
    ['100.63.255.255', false, 'before 100.64/10'],
    ['100.64.0.0', true, '100.64/10 CGN'],
    ['100.127.255.255', true, '100.64/10 last'],
    ['100.128.0.0', false, 'after 100.64/10'],
    ['127.0.0.1', true, 'loopback'],
    ['169.253.255.255', false, 'before 169.254/16'],
    ['169.254.10.20', true, 'link local'],
    ['169.255.0.0', false, 'after 169.254/16'],
    ['172.15.255.255', false, 'before 172.16/12'],
    ['172.16.0.0', true, '172.16/12 RFC 1918'],
    ['172.31.255.255', true, '172.16/12 last'],
    ['172.32.0.0', false, 'after 172.16/12'],
    ['192.0.0.1', true, '192.0.0/24 IETF protocol assignments'],
    ['192.0.0.9', false, '192.0.0.9/32 PCP anycast: globally reachable'],
    ['192.0.0.10', false, '192.0.0.10/32 TURN anycast: globally reachable'],
    ['192.0.0.170', true, '192.0.0.170/31 NAT64 discovery'],
    ['192.0.1.0', false, 'after 192.0.0/24'],
    ['192.0.2.99', true, 'TEST-NET-1'],
    ['192.31.196.1', false, 'AS112-v4: globally reachable'],
    ['192.88.98.255', false, 'before 192.88.99/24'],
    ['192.88.99.1', true, '6to4 relay anycast (deprecated)'],
    ['192.167.255.255', false, 'before 192.168/16'],
    ['192.168.1.1', true, '192.168/16 RFC 1918'],
    ['192.169.0.0', false, 'after 192.168/16'],
    ['198.17.255.255', false, 'before 198.18/15'],
    ['198.18.0.0', true, 'benchmarking'],
    ['198.19.255.255', true, 'benchmarking last'],
    ['198.20.0.0', false, 'after 198.18/15'],
    ['198.51.100.7', true, 'TEST-NET-2'],
    ['203.0.113.9', true, 'TEST-NET-3'],
    ['203.0.114.0', false, 'after TEST-NET-3'],
    ['223.255.255.255', false, 'last unicast before multicast'],
    ['224.0.0.1', true, 'multicast'],
    ['239.255.255.255', true, 'multicast last'],
    ['240.0.0.1', true, 'reserved 240/4'],
    ['255.255.255.255', true, 'limited broadcast'],
    ['8.8.8.8', false, 'public'],
    ['81.2.69.142', false, 'public'],
    ['133.1.2.3', false, 'public (JP)'],
  ])('%s -> %s (%s)', (text, bogon) => {
    expect(isBogon(addr16(text))).toBe(bogon)
  })

  it('agrees with a naive CIDR reference on block edges and 50k pseudo-random addresses', () => {
    const blocks: Array<[string, number]> = [
      ['0.0.0.0', 8],
      ['10.0.0.0', 8],
      ['100.64.0.0', 10],
      ['127.0.0.0', 8],
      ['169.254.0.0', 16],
      ['172.16.0.0', 12],
      ['192.0.0.0', 24],
      ['192.0.2.0', 24],
      ['192.88.99.0', 24],
      ['192.168.0.0', 16],
      ['198.18.0.0', 15],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
      ['224.0.0.0', 4],
      ['240.0.0.0', 4],
    ]
    const toU32 = (t: string) => Buffer.from(parseAddress(t, 4)).readUInt32BE(0)
    const exceptions = new Set([toU32('192.0.0.9'), toU32('192.0.0.10')])
    const reference = (a: number) =>
      !exceptions.has(a) &&
      blocks.some(([net, len]) => {
        const shift = 32 - len
        return a >>> shift === toU32(net) >>> shift
      })
    const probes: number[] = []
    for (const [net, len] of blocks) {
      const start = toU32(net)
      const end = (start + 2 ** (32 - len) - 1) >>> 0
      probes.push(start, end, (start - 1) >>> 0, (end + 1) >>> 0)
    }
    let x = 0x12345678
    for (let i = 0; i < 50_000; i++) {
      x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0
      probes.push(x)
    }
    const disagreements = probes.filter((a) => isBogon4(a) !== reference(a))
    expect(disagreements).toEqual([])
  })
})

describe('isBogon: IPv6', () => {
  it.each([
    ['::', true, 'unspecified'],
    ['::1', true, 'loopback'],
    ['::ffff:8.8.8.8', false, 'IPv4-mapped: judged as IPv4'],
    ['::ffff:10.1.2.3', true, 'IPv4-mapped private'],
    ['::8.8.8.8', true, 'IPv4-compatible (deprecated) is outside 2000::/3'],
    ['64:ff9b::8.8.8.8', false, 'NAT64 well-known prefix with a global IPv4'],
    ['64:ff9b::192.168.0.1', true, 'NAT64 well-known prefix with a private IPv4'],
    ['64:ff9b:1::1', true, 'local-use NAT64'],
    ['100::1', true, 'discard-only'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', true, 'Teredo, RFC 4380 example: client 192.0.2.45 (TEST-NET-1)'],
    ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', false, 'Teredo with client 8.8.8.8'],
    ['2001:1::1', false, 'PCP anycast'],
    ['2001:1::2', false, 'TURN anycast'],
    ['2001:1::3', false, 'DNS-SD SRP anycast'],
    ['2001:1::4', true, 'rest of 2001:1::/32'],
    ['2001:2::1', true, 'benchmarking'],
    ['2001:3::1', false, 'AMT'],
    ['2001:4:112::1', false, 'AS112-v6'],
    ['2001:4:113::1', true, 'next to AS112-v6'],
    ['2001:10::1', true, 'deprecated ORCHID'],
    ['2001:20::1', false, 'ORCHIDv2'],
    ['2001:2f:ffff::1', false, 'ORCHIDv2 last /32'],
    ['2001:30::1', false, 'DRIP DETs'],
    ['2001:40::1', true, 'unassigned in 2001::/23'],
    ['2001:1ff:ffff::1', true, 'last of 2001::/23'],
    ['2001:200::1', false, 'first after 2001::/23 (WIDE, JP)'],
    ['2001:218::1', false, 'NTT (JP)'],
    ['2001:db8::1', true, 'documentation'],
    ['2002:808:808::1', false, '6to4 of 8.8.8.8'],
    ['2002:c0a8:101::1', true, '6to4 of 192.168.1.1'],
    ['2400:cb00::1', false, 'public'],
    ['2620:4f:8000::1', false, 'AS112 direct delegation: globally reachable'],
    ['3fff::1', true, 'documentation (RFC 9637)'],
    ['3fff:fff:ffff::1', true, 'documentation last'],
    ['3fff:1000::1', false, 'after 3fff::/20'],
    ['5f00::1', true, 'SRv6 SIDs'],
    ['1fff:ffff::1', true, 'below 2000::/3'],
    ['4000::1', true, 'above 2000::/3'],
    ['fc00::1', true, 'ULA'],
    ['fd12:3456::1', true, 'ULA'],
    ['fe80::1', true, 'link-local'],
    ['fec0::1', true, 'site-local (deprecated)'],
    ['ff02::1', true, 'multicast'],
  ])('%s -> %s (%s)', (text, bogon) => {
    expect(isBogon(addr16(text))).toBe(bogon)
  })

  it('rejects an address that is not 16 bytes with BAD_PARAMETER', () => {
    let caught: unknown
    try {
      isBogon(Buffer.from([10, 0, 0, 1]))
    } catch (err) {
      caught = err
    }
    expect(isTeitenError(caught, 'BAD_PARAMETER')).toBe(true)
  })
})
