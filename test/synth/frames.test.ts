import { describe, expect, it } from 'vitest'
import {
  buildFragments,
  buildFrame,
  type DatagramSpec,
  formatIp,
  type LinkSpec,
  parseIp,
  patchFrame,
  TCP_SYN,
  writeMonlistKitProbe,
  writeMonlistResponse,
  writeNmapMonlistProbe,
  zeroFill,
} from '../../synth/frames.js'
import { buildPayloadCatalog, type PayloadVariant } from '../../synth/payloads.js'
import { Rng } from '../../synth/rng.js'
import { referenceClass } from './oracle.js'

/** RFC 1071 sum written out again, so the builders' checksum code is not its own judge. */
function onesSum(bytes: Uint8Array, start: number, end: number, init = 0): number {
  let s = init
  for (let i = start; i < end; i += 2) s += (bytes[i] << 8) | (i + 1 < end ? bytes[i + 1] : 0)
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000)
  return s
}

/** Checks the IPv4 header checksum and the UDP/TCP/ICMP(v6) checksum of an unfragmented frame. */
function checksumsOk(frame: Buffer, l3: number): boolean {
  const version = frame[l3] >> 4
  let proto: number
  let l4: number
  let l4len: number
  let pseudo: number
  if (version === 4) {
    const hl = (frame[l3] & 15) * 4
    if (onesSum(frame, l3, l3 + hl) !== 0xffff) return false
    proto = frame[l3 + 9]
    l4 = l3 + hl
    l4len = frame.readUInt16BE(l3 + 2) - hl
    pseudo = onesSum(frame, l3 + 12, l3 + 20, proto + l4len)
  } else {
    proto = frame[l3 + 6]
    l4 = l3 + 40
    while (proto === 0 || proto === 60 || proto === 43 || proto === 44) {
      proto = frame[l4]
      l4 += proto === 44 ? 8 : (frame[l4 + 1] + 1) * 8
    }
    l4len = frame.readUInt16BE(l3 + 4) - (l4 - l3 - 40)
    pseudo = onesSum(frame, l3 + 8, l3 + 40, proto + l4len)
  }
  if (proto === 17 && version === 4 && frame.readUInt16BE(l4 + 6) === 0) return true
  const withPseudo = proto === 17 || proto === 6 || proto === 58
  return onesSum(frame, l4, l4 + l4len, withPseudo ? pseudo : 0) === 0xffff
}

const SRC4 = parseIp('8.8.4.4')
const DST4 = parseIp('150.95.218.7')
const SRC6 = parseIp('2a00:1450:4001::99')
const DST6 = parseIp('2400:8500:1301:51::5')
const KIT = Buffer.from([0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0])

function udp4(payload: Uint8Array = KIT): DatagramSpec {
  return { ip: { v: 4, src: SRC4, dst: DST4 }, l4: { kind: 'udp', sport: 40000, dport: 123, payload } }
}

describe('NTP payload builders', () => {
  it('write the 8-byte kit probe and the 48-byte nmap monlist probe', () => {
    const buf = Buffer.alloc(64, 0xee)
    expect(writeMonlistKitProbe(buf, 1)).toBe(8)
    expect(buf.subarray(1, 9).toString('hex')).toBe('1700032a00000000')
    expect(writeNmapMonlistProbe(buf, 0)).toBe(48)
    expect(buf.subarray(0, 4).toString('hex')).toBe('1700032a')
    expect(buf.subarray(4, 48).every((b) => b === 0)).toBe(true)
  })

  it('make the largest monlist response 440 bytes, a 468-byte IPv4 packet', () => {
    const buf = Buffer.alloc(1024)
    const n = writeMonlistResponse(buf, 0, 6, zeroFill, { more: true })
    expect(n).toBe(440)
    expect(buf.subarray(0, 4).toString('hex')).toBe('d700032a')
    const frame = Buffer.alloc(600)
    const layout = buildFrame(frame, 0, { link: { kind: 'raw' }, datagram: udp4(buf.subarray(0, n)) })
    expect(frame.readUInt16BE(2)).toBe(468)
    expect(layout.length).toBe(468)
  })

  it('give every catalogue payload the class that the rules assign to its bytes', () => {
    const catalog = buildPayloadCatalog(new Rng(7))
    const names = new Set(catalog.map((v) => v.name))
    expect(names.size).toBe(catalog.length)
    for (const v of catalog) {
      expect({ name: v.name, cls: referenceClass(v.bytes, v.bytes.length) }).toEqual({ name: v.name, cls: v.cls })
    }
    // Every class is represented, several times over.
    for (const cls of ['monlist', 'mode7_other', 'mode6_readvar', 'mode6_other', 'client', 'response', 'other_ntp']) {
      expect(catalog.filter((v) => v.cls === cls).length).toBeGreaterThanOrEqual(3)
    }
  })

  it('only allow cuts that keep the class whether the UDP length or the bytes present are read', () => {
    const catalog = buildPayloadCatalog(new Rng(7))
    const allowed = (v: PayloadVariant, present: number) =>
      v.cut === 'head4' ? present >= 4 : v.cut === 'ntp48' ? present >= 48 && present % 4 === 0 : false
    for (const v of catalog) {
      for (let present = 1; present < v.bytes.length; present++) {
        if (!allowed(v, present)) continue
        expect({ name: v.name, present, cls: referenceClass(v.bytes.subarray(0, present), present) }).toEqual({
          name: v.name,
          present,
          cls: v.cls,
        })
      }
    }
  })
})

describe('frame builders', () => {
  it('compute correct checksums, and keep them correct after patching addresses, ports, id and TTL', () => {
    const buf = Buffer.alloc(2048)
    const specs: DatagramSpec[] = [
      udp4(),
      { ip: { v: 4, src: SRC4, dst: DST4, options: Uint8Array.of(0x94, 4, 0, 0) }, l4: udp4().l4 },
      { ip: { v: 6, src: SRC6, dst: DST6, ext: [{ kind: 'hop-by-hop' }, { kind: 'routing' }] }, l4: udp4().l4 },
      { ip: { v: 4, src: SRC4, dst: DST4 }, l4: { kind: 'tcp', sport: 5, dport: 23, flags: TCP_SYN, seq: 9 } },
      {
        ip: { v: 6, src: SRC6, dst: DST6 },
        l4: { kind: 'icmp-unreachable', quote: { ...udp4(), ip: { v: 6, src: DST6, dst: SRC6 } } },
      },
      { ip: { v: 4, src: SRC4, dst: DST4 }, l4: { kind: 'icmp-unreachable', quote: udp4(), quoteBytes: 28 } },
    ]
    const rng = new Rng(3)
    for (const datagram of specs) {
      const layout = buildFrame(buf, 0, { link: { kind: 'ethernet' }, datagram })
      expect(checksumsOk(buf, 14)).toBe(true)
      for (let i = 0; i < 50; i++) {
        const v6 = layout.addrLength === 16
        const src = Buffer.alloc(v6 ? 16 : 4)
        const dst = Buffer.alloc(v6 ? 16 : 4)
        rng.fill(src, 0, src.length)
        rng.fill(dst, 0, dst.length)
        patchFrame(buf, 0, layout, src, dst, rng.int(65536), rng.int(65536), rng.u32(), rng.int(256))
        expect(checksumsOk(buf, 14)).toBe(true)
        expect(buf.subarray(layout.srcOffset, layout.srcOffset + src.length).equals(src)).toBe(true)
      }
    }
  })

  it('build at any offset into layouts relative to the frame, so templates can be copied anywhere', () => {
    const a = Buffer.alloc(256)
    const layout = buildFrame(a, 7, { link: { kind: 'sll2' }, datagram: udp4() })
    const b = Buffer.alloc(256)
    a.copy(b, 30, 7, 7 + layout.length)
    patchFrame(b, 30, layout, parseIp('1.2.3.4'), parseIp('5.6.7.8'), 1234, 123, 77, 9)
    expect(checksumsOk(b, 30 + 20)).toBe(true)
    expect(b.readUInt16BE(30 + 20 + 20)).toBe(1234)
    expect(formatIp(b, 30 + layout.dstOffset, 4)).toBe('5.6.7.8')
  })

  it('pad short Ethernet frames to 60 bytes without changing the IP and UDP lengths', () => {
    for (const padding of ['zero', 'junk'] as const) {
      const buf = Buffer.alloc(128, 0x11)
      const layout = buildFrame(buf, 0, { link: { kind: 'ethernet', padding }, datagram: udp4(Buffer.alloc(0)) })
      expect(layout.length).toBe(60)
      expect(buf.readUInt16BE(14 + 2)).toBe(28)
      expect(buf.readUInt16BE(14 + 20 + 4)).toBe(8)
      const pad = buf.subarray(14 + 28, 60)
      expect(pad.every((b) => b === 0)).toBe(padding === 'zero')
    }
    const noPad = buildFrame(Buffer.alloc(128), 0, { link: { kind: 'ethernet', padding: 'none' }, datagram: udp4() })
    expect(noPad.length).toBe(14 + 20 + 8 + 8)
  })

  it('write VLAN, QinQ, SLL, SLL2, raw and both byte orders of the BSD NULL family', () => {
    const buf = Buffer.alloc(256)
    const header = (link: LinkSpec, v: 4 | 6 = 4) => {
      const d: DatagramSpec = v === 4 ? udp4() : { ...udp4(), ip: { v: 6, src: SRC6, dst: DST6 } }
      const layout = buildFrame(buf, 0, { link, datagram: d })
      return Buffer.from(buf.subarray(0, layout.l3Offset))
    }
    expect(
      header({ kind: 'ethernet', vlans: [101] })
        .subarray(12)
        .toString('hex'),
    ).toBe('810000650800')
    expect(
      header({ kind: 'ethernet', vlans: [20, 301] })
        .subarray(12)
        .toString('hex'),
    ).toBe('88a800148100012d0800')
    expect(header({ kind: 'raw' }).length).toBe(0)
    expect(header({ kind: 'sll' }, 6).readUInt16BE(14)).toBe(0x86dd)
    expect(header({ kind: 'sll2' }).readUInt16BE(0)).toBe(0x0800)
    expect(header({ kind: 'sll2' }).length).toBe(20)
    expect(header({ kind: 'null', bigEndian: false }).toString('hex')).toBe('02000000')
    expect(header({ kind: 'null', bigEndian: true }).toString('hex')).toBe('00000002')
    expect(header({ kind: 'null', bigEndian: true, af6: 24 }, 6).toString('hex')).toBe('00000018')
  })

  it('fragment a datagram: the first fragment carries the UDP header, the others only data', () => {
    const payload = Buffer.alloc(440)
    new Rng(1).fill(payload, 0, payload.length)
    for (const v of [4, 6] as const) {
      const d: DatagramSpec =
        v === 4
          ? { ip: { v: 4, src: SRC4, dst: DST4 }, l4: { kind: 'udp', sport: 123, dport: 50000, payload } }
          : {
              ip: { v: 6, src: SRC6, dst: DST6, ext: [{ kind: 'hop-by-hop' }] },
              l4: { kind: 'udp', sport: 123, dport: 50000, payload },
            }
      const frames = buildFragments({ kind: 'raw' }, d, 128, 0xbeef)
      expect(frames.length).toBe(Math.ceil(448 / 128))
      const pieces: Buffer[] = []
      frames.forEach((f, i) => {
        const b = f.bytes
        let offset8: number
        let more: boolean
        let dataStart: number
        if (v === 4) {
          const flags = b.readUInt16BE(6)
          more = (flags & 0x2000) !== 0
          offset8 = flags & 0x1fff
          expect(b.readUInt16BE(4)).toBe(0xbeef)
          expect(b[9]).toBe(17)
          dataStart = 20
          expect(onesSum(b, 0, 20)).toBe(0xffff)
        } else {
          expect(b[6]).toBe(0) // hop-by-hop first
          expect(b[40]).toBe(44) // then the fragment header
          const frag = 48
          expect(b[frag]).toBe(17)
          offset8 = b.readUInt16BE(frag + 2) >> 3
          more = (b.readUInt16BE(frag + 2) & 1) === 1
          expect(b.readUInt32BE(frag + 4)).toBe(0xbeef)
          dataStart = 56
        }
        expect(more).toBe(i < frames.length - 1)
        expect(offset8 * 8).toBe(i * 128)
        expect(f.layout.sportOffset >= 0).toBe(i === 0)
        pieces.push(b.subarray(dataStart))
      })
      const transport = Buffer.concat(pieces)
      expect(transport.readUInt16BE(0)).toBe(123)
      expect(transport.readUInt16BE(4)).toBe(448)
      expect(transport.subarray(8).equals(payload)).toBe(true)
      // The first fragment's UDP checksum covers the whole datagram.
      const pseudo =
        v === 4
          ? onesSum(SRC4, 0, 4, onesSum(DST4, 0, 4, 17 + 448))
          : onesSum(SRC6, 0, 16, onesSum(DST6, 0, 16, 17 + 448))
      expect(onesSum(transport, 0, transport.length, pseudo)).toBe(0xffff)
    }
  })

  it('parse and print addresses, IPv6 per RFC 5952', () => {
    for (const text of [
      '0.0.0.0',
      '150.95.218.7',
      '::',
      '2001:db8::1',
      '2400:8500:1301:51::5',
      '1:0:1:0:1:0:1:0',
      'fe80::1:0:0:1',
    ]) {
      expect(formatIp(parseIp(text))).toBe(text)
    }
    expect(formatIp(parseIp('2001:0db8:0000:0000:0001:0000:0000:0001'))).toBe('2001:db8::1:0:0:1')
    expect(formatIp(parseIp('::ffff:1.2.3.4'))).toBe('::ffff:102:304')
    expect(() => parseIp('1.2.3')).toThrow()
    expect(() => parseIp('1::2::3')).toThrow()
    expect(() => parseIp('256.1.1.1')).toThrow()
  })
})
