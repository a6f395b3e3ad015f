import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CLASS_ID, type Enrichment, NTP_CLASSES, type NtpClass } from '../../core/event.js'
import { classifyNtp } from '../../enrich/classify.js'

function blank(): Enrichment {
  // Poisoned so a field the classifier forgets to set shows up.
  return { classId: 0, ntpVersion: 99, ntpMode: 99, ntpCode: 99, ntpImpl: 99, country: '--', bogon: false }
}

/** Bytes, zero-padded to `length` when given. */
function bytes(head: number[], length = head.length): Buffer {
  const buf = Buffer.alloc(length)
  Buffer.from(head).copy(buf)
  return buf
}

interface Case {
  name: string
  payload: Buffer
  /** udpLength - 8; default: the bytes present. */
  claimed?: number
  cls: NtpClass
  vn: number
  mode: number
  code?: number
  impl?: number
}

// Byte 0 bits: mode 0-5/6: LI(2) VN(3) Mode(3); mode 7: R M VN(3) Mode(3).
const cases: Case[] = [
  // ---- mode 7: CVE-2013-5211 monlist and its relatives --------------------------------------
  {
    // nmap scripts/ntp-monlist.nse getPrivateMode(): 8-byte header then 40 zero data bytes.
    name: 'nmap ntp-monlist probe (48 bytes, impl 3, MON_GETLIST_1) is monlist',
    payload: bytes([0x17 /* R0 M0 VN2 mode7 */, 0x00 /* A0 seq0 */, 0x03 /* IMPL_XNTPD */, 0x2a /* 42 */], 48),
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    name: 'the 8-byte attack-kit probe is monlist (mode 7 has no 48-byte rule)',
    payload: bytes([0x17, 0x00, 0x03, 0x2a, 0x00, 0x00 /* err|nitems */, 0x00, 0x00 /* mbz|itemsize */]),
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    // ET sid 2017918 (reconstructed): content:"|00 02 2A|"; offset:1; depth:3; byte_test R clear, mode bits 7.
    name: 'ET 2017918 shape: impl 2 (IMPL_XNTPD_OLD) MON_GETLIST_1 request is monlist',
    payload: bytes([0x17, 0x00, 0x02 /* IMPL_XNTPD_OLD */, 0x2a], 8),
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 2,
    code: 42,
  },
  {
    // ET sid 2017919 does not test VN: its own test pcaps use 0x0f (VN1).
    name: 'ET 2017919 shape with VN1 (0x0f 00 03 2a) is monlist',
    payload: bytes([0x0f /* R0 M0 VN1 mode7 */, 0x00, 0x03, 0x2a]),
    cls: 'monlist',
    vn: 1,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    name: 'ntpdc VN3 monlist request (0x1f) is monlist',
    payload: bytes([0x1f /* R0 M0 VN3 mode7 */, 0x00, 0x03, 0x2a], 48),
    cls: 'monlist',
    vn: 3,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    name: 'old MON_GETLIST (request 20) is monlist too',
    payload: bytes([0x17, 0x00, 0x03, 0x14 /* REQ_MON_GETLIST */], 48),
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 20,
  },
  {
    name: 'an authenticated monlist request (A bit set) is still monlist',
    payload: bytes([0x17, 0x80 /* A1 seq0 */, 0x03, 0x2a], 48 + 4 + 16),
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    // ET sids 2017920/2017921 (reconstructed): from port 123, |00 0x 2a| at offset 1, R and M set.
    name: 'ET 2017920/2017921 monlist response (0xd7: R M VN2 mode7) is response',
    payload: bytes(
      [0xd7 /* R1 M1 VN2 mode7 */, 0x00, 0x03, 0x2a, 0x00, 0x06 /* 6 items */, 0x00, 0x48 /* 72 B */],
      440,
    ),
    cls: 'response',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    name: 'last monlist response packet (0x97: R, no M) is response',
    payload: bytes([0x97 /* R1 M0 VN2 mode7 */, 0x05, 0x02, 0x2a], 80),
    cls: 'response',
    vn: 2,
    mode: 7,
    impl: 2,
    code: 42,
  },
  {
    name: 'nmap PEER_LIST request (request 0) is mode7_other',
    payload: bytes([0x17, 0x00, 0x03, 0x00 /* REQ_PEER_LIST */], 48),
    cls: 'mode7_other',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 0,
  },
  {
    name: 'MON_GETLIST_1 to implementation 0 (IMPL_UNIV) is mode7_other',
    payload: bytes([0x17, 0x00, 0x00 /* IMPL_UNIV */, 0x2a], 48),
    cls: 'mode7_other',
    vn: 2,
    mode: 7,
    impl: 0,
    code: 42,
  },
  {
    name: 'a 1-byte mode 7 request cannot be shown to be monlist: mode7_other',
    payload: bytes([0x17]),
    cls: 'mode7_other',
    vn: 2,
    mode: 7,
    impl: 0,
    code: 0,
  },
  {
    name: 'a 3-byte mode 7 request (no request code byte) is mode7_other, impl read',
    payload: bytes([0x17, 0x00, 0x03]),
    cls: 'mode7_other',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 0,
  },
  {
    name: 'a 1-byte mode 7 payload with R set is a response (R is in byte 0)',
    payload: bytes([0x97]),
    cls: 'response',
    vn: 2,
    mode: 7,
  },
  {
    name: 'VN5 mode 7 with monlist bytes is non_ntp, fields still decoded',
    payload: bytes([0x2f /* R0 M0 VN5 mode7 */, 0x00, 0x03, 0x2a], 48),
    cls: 'non_ntp',
    vn: 5,
    mode: 7,
    impl: 3,
    code: 42,
  },
  {
    name: 'ASCII "GET " parses as VN0 mode 7 (0x47): mode7_other, not monlist',
    payload: Buffer.from('GET / HTTP/1.0\r\n\r\n', 'latin1'),
    cls: 'mode7_other',
    vn: 0,
    mode: 7,
    impl: 0x54 /* 'T' */,
    code: 0x20 /* ' ' */,
  },
  // ---- mode 6: control messages --------------------------------------------------------------
  {
    // nmap scripts/ntp-info.nse rlreq, same shape as `ntpq -c rv`.
    name: 'ntpq/nmap READVAR request (0x16 0x02) is mode6_readvar',
    payload: bytes([
      0x16 /* LI0 VN2 mode6 */, 0x02 /* R0 E0 M0 op2 */, 0x00, 0x01 /* seq 1 */, 0x00, 0x00 /* status */, 0x00,
      0x00 /* assoc */, 0x00, 0x00 /* offset */, 0x00, 0x00 /* count */,
    ]),
    cls: 'mode6_readvar',
    vn: 2,
    mode: 6,
    code: 2,
  },
  {
    name: 'ntpq VN4 READVAR (0x26 0x02) is mode6_readvar',
    payload: bytes([0x26 /* LI0 VN4 mode6 */, 0x02, 0x00, 0x02], 12),
    cls: 'mode6_readvar',
    vn: 4,
    mode: 6,
    code: 2,
  },
  {
    name: 'READVAR response (0x16 0x82) is response',
    payload: bytes([0x16, 0x82 /* R1 E0 M0 op2 */, 0x00, 0x01, 0x06, 0x15, 0x00, 0x00, 0x00, 0x00, 0x01, 0xa4], 432),
    cls: 'response',
    vn: 2,
    mode: 6,
    code: 2,
  },
  {
    name: 'error response (0x16 0xc2) is response',
    payload: bytes([0x16, 0xc2 /* R1 E1 M0 op2 */, 0x00, 0x01], 12),
    cls: 'response',
    vn: 2,
    mode: 6,
    code: 2,
  },
  {
    name: 'READSTAT request (opcode 1) is mode6_other',
    payload: bytes([0x16, 0x01 /* op1 READSTAT */, 0x00, 0x01], 12),
    cls: 'mode6_other',
    vn: 2,
    mode: 6,
    code: 1,
  },
  {
    name: 'a 1-byte mode 6 payload is mode6_other (no opcode byte)',
    payload: bytes([0x16]),
    cls: 'mode6_other',
    vn: 2,
    mode: 6,
    code: 0,
  },
  {
    name: 'VN6 mode 6 READVAR is non_ntp',
    payload: bytes([0x36 /* LI0 VN6 mode6 */, 0x02], 12),
    cls: 'non_ntp',
    vn: 6,
    mode: 6,
    code: 2,
  },
  // ---- modes 0-5: time packets -----------------------------------------------------------------
  {
    name: 'VN4 client request (0x23, 48 bytes) is client',
    payload: bytes([0x23 /* LI0 VN4 mode3 */], 48),
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    // nmap scripts/ntp-info.nse treq and nmap-payloads' udp/123 probe.
    name: 'nmap time request (0xe3: LI3 VN4 mode3) is client',
    payload: bytes([0xe3, 0x00, 0x04, 0xfa, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01], 48),
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    name: 'VN3 client (0x1b, ntpdate / w32time) is client',
    payload: bytes([0x1b /* LI0 VN3 mode3 */], 48),
    cls: 'client',
    vn: 3,
    mode: 3,
  },
  {
    name: 'SNTP VN1 client (0x0b) is client',
    payload: bytes([0x0b /* LI0 VN1 mode3 */], 48),
    cls: 'client',
    vn: 1,
    mode: 3,
  },
  {
    name: 'VN0 client (0x03) is other_ntp',
    payload: bytes([0x03 /* LI0 VN0 mode3 */], 48),
    cls: 'other_ntp',
    vn: 0,
    mode: 3,
  },
  {
    name: 'server response (0x24) is response',
    payload: bytes([0x24 /* LI0 VN4 mode4 */, 0x02 /* stratum */, 0x03, 0xe9], 48),
    cls: 'response',
    vn: 4,
    mode: 4,
  },
  {
    name: 'broadcast (0x25) is response',
    payload: bytes([0x25 /* LI0 VN4 mode5 */], 48),
    cls: 'response',
    vn: 4,
    mode: 5,
  },
  {
    name: 'symmetric active (0x21) is other_ntp',
    payload: bytes([0x21 /* mode1 */], 48),
    cls: 'other_ntp',
    vn: 4,
    mode: 1,
  },
  {
    name: 'symmetric passive (0x22) is other_ntp',
    payload: bytes([0x22 /* mode2 */], 48),
    cls: 'other_ntp',
    vn: 4,
    mode: 2,
  },
  {
    name: '48 zero bytes (mode 0, reserved) is other_ntp',
    payload: bytes([], 48),
    cls: 'other_ntp',
    vn: 0,
    mode: 0,
  },
  {
    name: 'client with key id + MD5 MAC (68 bytes) is client',
    payload: bytes([0x23], 48 + 4 + 16),
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    name: 'client with crypto-NAK (52 bytes) is client',
    payload: bytes([0x23], 52),
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    name: 'client one byte short (47 bytes) is non_ntp',
    payload: bytes([0x23], 47),
    cls: 'non_ntp',
    vn: 4,
    mode: 3,
  },
  {
    name: 'client of 50 bytes (not a multiple of 4) is non_ntp',
    payload: bytes([0x23], 50),
    cls: 'non_ntp',
    vn: 4,
    mode: 3,
  },
  {
    name: 'response of 12 bytes is non_ntp (the 48-byte rule covers modes 0-5)',
    payload: bytes([0x24], 12),
    cls: 'non_ntp',
    vn: 4,
    mode: 4,
  },
  {
    name: 'VN5 client (0x2b, 48 bytes) is non_ntp',
    payload: bytes([0x2b /* LI0 VN5 mode3 */], 48),
    cls: 'non_ntp',
    vn: 5,
    mode: 3,
  },
  {
    name: 'VN7 (0xff) junk is non_ntp',
    payload: bytes([0xff, 0xff, 0xff, 0xff]),
    cls: 'non_ntp',
    vn: 7,
    mode: 7,
    impl: 0xff,
    code: 0xff,
  },
  {
    name: 'ASCII "hello\\n" (0x68: VN5) is non_ntp',
    payload: Buffer.from('hello\n', 'latin1'),
    cls: 'non_ntp',
    vn: 5,
    mode: 0,
  },
  // ---- lengths: bytes present vs length claimed --------------------------------------------
  {
    name: 'empty payload is non_ntp with every field 0',
    payload: Buffer.alloc(0),
    cls: 'non_ntp',
    vn: 0,
    mode: 0,
  },
  {
    name: 'empty payload is non_ntp even when the UDP header claims 48 bytes',
    payload: Buffer.alloc(0),
    claimed: 48,
    cls: 'non_ntp',
    vn: 0,
    mode: 0,
  },
  {
    name: 'snaplen-cut client (22 of 48 bytes present) is client',
    payload: bytes([0x23], 22),
    claimed: 48,
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    name: 'snaplen-cut server response (22 of 48) is response',
    payload: bytes([0x24], 22),
    claimed: 48,
    cls: 'response',
    vn: 4,
    mode: 4,
  },
  {
    name: 'snaplen-cut datagram that claimed 50 bytes is non_ntp',
    payload: bytes([0x23], 22),
    claimed: 50,
    cls: 'non_ntp',
    vn: 4,
    mode: 3,
  },
  {
    name: 'unknown claimed length (-1) judges the 22 bytes present: non_ntp',
    payload: bytes([0x23], 22),
    claimed: -1,
    cls: 'non_ntp',
    vn: 4,
    mode: 3,
  },
  {
    name: 'claimed length below the bytes present is not believed (48 present, claims 8)',
    payload: bytes([0x23], 48),
    claimed: 8,
    cls: 'client',
    vn: 4,
    mode: 3,
  },
  {
    name: 'snaplen-cut monlist probe (4 of 48 bytes) is monlist',
    payload: bytes([0x17, 0x00, 0x03, 0x2a]),
    claimed: 48,
    cls: 'monlist',
    vn: 2,
    mode: 7,
    impl: 3,
    code: 42,
  },
]

describe('classifyNtp', () => {
  it.each(cases)('$name', (c) => {
    const out = blank()
    const got = classifyNtp(c.payload, c.claimed ?? c.payload.length, out)
    expect({
      cls: NTP_CLASSES[got],
      classId: out.classId,
      vn: out.ntpVersion,
      mode: out.ntpMode,
      code: out.ntpCode,
      impl: out.ntpImpl,
    }).toEqual({
      cls: c.cls,
      classId: CLASS_ID[c.cls],
      vn: c.vn,
      mode: c.mode,
      code: c.code ?? 0,
      impl: c.impl ?? 0,
    })
  })

  it('every class is reachable from the table (the private id constants match CLASS_ID)', () => {
    expect(new Set(cases.map((c) => c.cls))).toEqual(new Set(NTP_CLASSES))
  })

  it('fills every field on a reused Enrichment (no value leaks from the previous packet)', () => {
    const out = blank()
    classifyNtp(bytes([0x17, 0x00, 0x03, 0x2a], 48), 48, out)
    classifyNtp(bytes([0x23], 48), 48, out)
    expect(out).toMatchObject({ classId: CLASS_ID.client, ntpVersion: 4, ntpMode: 3, ntpCode: 0, ntpImpl: 0 })
  })

  it('never throws and always returns a class it also stored, for any bytes and any claimed length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: -10, max: 200 }), (raw, claimed) => {
        const out = blank()
        const got = classifyNtp(Buffer.from(raw), claimed, out)
        expect(got).toBe(out.classId)
        expect(got).toBeGreaterThanOrEqual(0)
        expect(got).toBeLessThan(NTP_CLASSES.length)
        if (raw.length === 0) expect(got).toBe(CLASS_ID.non_ntp)
        if (raw.length > 0 && (raw[0] >>> 3) % 8 >= 5) expect(got).toBe(CLASS_ID.non_ntp)
      }),
      { numRuns: 2000, seed: 5211 },
    )
  })
})
