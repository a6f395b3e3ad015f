/**
 * The catalogue of UDP payloads the corpus is made of, each with the class the generator
 * asserts for it. The class is chosen here, by whoever wrote the variant, from the class rules
 * of the ground truth (see corpus.ts); it is never computed by running a classifier, so the
 * truth stays independent of enrich/. test/synth checks the catalogue against the rules.
 */
import type { NtpClass } from '../core/event.js'
import {
  type ByteFill,
  MONLIST_ITEM_SIZE,
  NTP_UNIX_OFFSET,
  NTPDC_REQUEST_LENGTH,
  writeBytes,
  writeMode6,
  writeMode7,
  writeMonlistKitProbe,
  writeMonlistResponse,
  writeNmapMonlistProbe,
  writeNtpPacket,
} from './frames.js'
import type { Rng } from './rng.js'

/**
 * How a payload may be cut short (snaplen, first fragment) without its class depending on
 * whether a classifier reads the UDP length or the bytes present:
 * - 'none': never cut (its class depends on its exact length, or it is too short to cut);
 * - 'head4': any cut that keeps at least 4 bytes (mode 6/7 and VN 5-7: decided by bytes 0-3);
 * - 'ntp48': cuts that keep at least 48 bytes and a multiple of 4 (modes 0-5 of valid length).
 */
export type CutRule = 'none' | 'head4' | 'ntp48'

export interface PayloadVariant {
  name: string
  cls: NtpClass
  bytes: Buffer
  cut: CutRule
}

function make(name: string, cls: NtpClass, cut: CutRule, write: (buf: Buffer) => number): PayloadVariant {
  const scratch = Buffer.alloc(2048)
  const n = write(scratch)
  return { name, cls, cut, bytes: Buffer.from(scratch.subarray(0, n)) }
}

/** The ntpd 4.2.6 system variables a READVAR response carries (what amplification scans harvest). */
const READVAR_TEXT =
  'version="ntpd 4.2.6p5@1.2349-o Fri Apr 13 12:52:27 UTC 2012 (1)", processor="x86_64", ' +
  'system="Linux/3.2.0-4-amd64", leap=00, stratum=2, precision=-23, rootdelay=25.326, ' +
  'rootdisp=49.418, refid=133.243.238.164, reftime=d65a2c7e.8b6f2b3a  Thu, Dec 19 2013 ' +
  '6:13:50.544, clock=d65a2f1c.2d8ac6b0  Thu, Dec 19 2013  6:25:00.178, peer=26851, tc=10, ' +
  'mintc=3, offset=-0.524, frequency=-11.902, sys_jitter=0.612, clk_jitter=0.481, clk_wander=0.003'

/**
 * Builds the catalogue. Random filler (timestamps, MACs, monlist items) comes from `rng`, so the
 * catalogue is part of what the seed determines.
 */
export function buildPayloadCatalog(rng: Rng): PayloadVariant[] {
  const fill: ByteFill = (buf, offset, length) => rng.fill(buf, offset, length)
  const now = (): { seconds: number; fraction: number } => ({
    seconds: NTP_UNIX_OFFSET + 1_383_000_000 + rng.int(10_000_000),
    fraction: rng.u32(),
  })
  const client =
    (vn: number, li = 0, trailer = 0) =>
    (buf: Buffer) =>
      writeNtpPacket(buf, 0, { li, vn, mode: 3, poll: 6, precision: -20, transmit: now(), trailer, fill })
  const server =
    (vn: number, mode: number, trailer = 0) =>
    (buf: Buffer) =>
      writeNtpPacket(buf, 0, {
        vn,
        mode,
        stratum: 2,
        poll: 6,
        precision: -22,
        rootDelay: 0x000006a0,
        rootDispersion: 0x00000c4e,
        refId: 0x85f3eea4,
        reference: now(),
        origin: now(),
        receive: now(),
        transmit: now(),
        trailer,
        fill,
      })
  const ntpdcRequest = (impl: number, code: number) => (buf: Buffer) =>
    writeMode7(buf, 0, { vn: 2, impl, code, length: NTPDC_REQUEST_LENGTH })
  const junk = (first: number, length: number) => (buf: Buffer) => {
    buf[0] = first
    rng.fill(buf, 1, length - 1)
    return length
  }
  const text = (s: string) => (buf: Buffer) => writeBytes(buf, 0, Buffer.from(s, 'latin1'))

  return [
    // monlist: mode 7 request, impl 2 or 3, code 42 (MON_GETLIST_1) or 20 (MON_GETLIST).
    make('monlist.kit', 'monlist', 'head4', (b) => writeMonlistKitProbe(b, 0)),
    make('monlist.nmap', 'monlist', 'head4', (b) => writeNmapMonlistProbe(b, 0)),
    make('monlist.ntpdc', 'monlist', 'head4', ntpdcRequest(3, 42)),
    make('monlist.ntpdc-impl2', 'monlist', 'head4', ntpdcRequest(2, 42)),
    make('monlist.getlist', 'monlist', 'head4', ntpdcRequest(3, 20)),
    make('monlist.vn3', 'monlist', 'head4', (b) => writeMode7(b, 0, { vn: 3, impl: 3, code: 42, length: 8 })),
    make('monlist.vn4-48', 'monlist', 'head4', (b) => writeMode7(b, 0, { vn: 4, impl: 3, code: 42, length: 48 })),
    // Edge cases of the rule: VN 0 is not excluded for mode 7, nor is the more bit of a request.
    make('monlist.vn0', 'monlist', 'head4', (b) => writeMode7(b, 0, { vn: 0, impl: 3, code: 42, length: 8 })),
    make('monlist.more-bit', 'monlist', 'head4', (b) => writeMode7(b, 0, { more: true, impl: 2, code: 20, length: 8 })),
    // mode 7 requests that are not monlist.
    make('mode7.peer-list', 'mode7_other', 'head4', ntpdcRequest(3, 0)),
    make('mode7.sys-info', 'mode7_other', 'head4', ntpdcRequest(3, 4)),
    make('mode7.sys-stats', 'mode7_other', 'head4', ntpdcRequest(3, 6)),
    make('mode7.if-stats', 'mode7_other', 'head4', ntpdcRequest(3, 44)),
    make('mode7.impl0-code42', 'mode7_other', 'head4', (b) => writeMode7(b, 0, { impl: 0, code: 42, length: 8 })),
    make('mode7.impl3-code43', 'mode7_other', 'head4', (b) => writeMode7(b, 0, { impl: 3, code: 43, length: 8 })),
    make('mode7.four-bytes', 'mode7_other', 'head4', (b) => writeMode7(b, 0, { impl: 3, code: 1, length: 4 })),
    // mode 6 READVAR requests (opcode 2; the more bit does not change the opcode).
    make('mode6.readvar', 'mode6_readvar', 'head4', (b) => writeMode6(b, 0, { opcode: 2, sequence: 1 })),
    make('mode6.readvar-vn3', 'mode6_readvar', 'head4', (b) => writeMode6(b, 0, { vn: 3, opcode: 2, sequence: 7 })),
    make('mode6.readvar-vn0', 'mode6_readvar', 'head4', (b) => writeMode6(b, 0, { vn: 0, opcode: 2 })),
    make('mode6.readvar-assoc', 'mode6_readvar', 'head4', (b) => writeMode6(b, 0, { opcode: 2, associd: 0xc1a4 })),
    make('mode6.readvar-names', 'mode6_readvar', 'head4', (b) =>
      writeMode6(b, 0, { opcode: 2, data: 'version,system,stratum' }),
    ),
    make('mode6.readvar-more', 'mode6_readvar', 'head4', (b) => writeMode6(b, 0, { more: true, opcode: 2 })),
    // mode 6 requests with other opcodes.
    make('mode6.readstat', 'mode6_other', 'head4', (b) => writeMode6(b, 0, { opcode: 1 })),
    make('mode6.read-mru', 'mode6_other', 'head4', (b) =>
      writeMode6(b, 0, { opcode: 10, data: 'nonce=3b5ad6e0a1c2f00f4b9c1d2e, frags=32' }),
    ),
    make('mode6.req-nonce', 'mode6_other', 'head4', (b) => writeMode6(b, 0, { opcode: 12 })),
    make('mode6.opcode0', 'mode6_other', 'head4', (b) => writeMode6(b, 0, { opcode: 0 })),
    make('mode6.opcode31', 'mode6_other', 'head4', (b) => writeMode6(b, 0, { opcode: 31 })),
    // Responses: mode 4 and 5, and mode 6/7 with the response bit.
    make('response.server-v4', 'response', 'ntp48', server(4, 4)),
    make('response.server-v3', 'response', 'ntp48', server(3, 4)),
    make('response.server-mac', 'response', 'ntp48', server(4, 4, 20)),
    make('response.broadcast', 'response', 'ntp48', server(4, 5)),
    make('response.kiss-rate', 'response', 'ntp48', (b) =>
      writeNtpPacket(b, 0, { li: 3, vn: 4, mode: 4, stratum: 0, refId: 'RATE', transmit: now() }),
    ),
    make('response.monlist-1', 'response', 'head4', (b) => writeMonlistResponse(b, 0, 1, fill)),
    make('response.monlist-3', 'response', 'head4', (b) => writeMonlistResponse(b, 0, 3, fill)),
    make('response.monlist-6', 'response', 'head4', (b) => writeMonlistResponse(b, 0, 6, fill, { more: true })),
    make('response.monlist-6-impl2', 'response', 'head4', (b) =>
      writeMonlistResponse(b, 0, 6, fill, { impl: 2, more: true }),
    ),
    make('response.mode7-error', 'response', 'head4', (b) =>
      writeMode7(b, 0, { response: true, impl: 3, code: 42, err: 4, length: 8 }),
    ),
    make('response.readvar', 'response', 'head4', (b) =>
      writeMode6(b, 0, { response: true, opcode: 2, status: 0x0615, data: READVAR_TEXT }),
    ),
    make('response.readstat', 'response', 'head4', (b) =>
      writeMode6(b, 0, { response: true, opcode: 1, status: 0x0615, data: Buffer.from('68ed961a68ee9624', 'hex') }),
    ),
    make('response.mode6-error', 'response', 'head4', (b) =>
      writeMode6(b, 0, { response: true, error: true, opcode: 2, status: 0x0400 }),
    ),
    // Clients: mode 3, VN 1-4, valid length.
    make('client.v4', 'client', 'ntp48', client(4)),
    make('client.v4-nmap', 'client', 'ntp48', (b) => {
      // nmap's and masscan's NTP probe: LI 3 (unsynchronised), VN 4, stratum 0, poll 4, ...
      const n = writeNtpPacket(b, 0, { li: 3, vn: 4, mode: 3, poll: 4, precision: -6 })
      b.writeUInt32BE(0x00010000, 4)
      b.writeUInt32BE(0x00010000, 8)
      b.writeUInt32BE(0xc54f234b, 40)
      b.writeUInt32BE(0x71b152f3, 44)
      return n
    }),
    make('client.v3', 'client', 'ntp48', client(3)),
    make('client.v2', 'client', 'ntp48', client(2)),
    make('client.v1', 'client', 'ntp48', client(1)),
    make('client.v4-mac', 'client', 'ntp48', client(4, 0, 20)),
    make('client.v4-ext', 'client', 'ntp48', client(4, 0, 36)),
    // Other NTP: mode 3 VN 0 and modes 0-2.
    make('other.client-vn0', 'other_ntp', 'ntp48', client(0)),
    make('other.mode0', 'other_ntp', 'ntp48', server(4, 0)),
    make('other.mode0-zeros', 'other_ntp', 'ntp48', (b) => {
      b.fill(0, 0, 48)
      return 48
    }),
    make('other.symmetric-active', 'other_ntp', 'ntp48', server(4, 1)),
    make('other.symmetric-passive', 'other_ntp', 'ntp48', server(3, 2)),
    // Not NTP: empty, VN 5-7 (whatever the mode), modes 0-5 too short or not a multiple of 4.
    make('non_ntp.empty', 'non_ntp', 'none', () => 0),
    make('non_ntp.vn5-client', 'non_ntp', 'head4', junk(0x2b, 48)),
    make('non_ntp.vn6-client', 'non_ntp', 'head4', junk(0x33, 48)),
    make('non_ntp.vn7-monlist', 'non_ntp', 'head4', (b) => {
      // Looks like the kit probe but VN 7: the VN rule comes before the mode 7 rules.
      writeMonlistKitProbe(b, 0)
      b[0] = 0x3f
      return 8
    }),
    make('non_ntp.vn5-readvar', 'non_ntp', 'head4', (b) => {
      const n = writeMode6(b, 0, { opcode: 2 })
      b[0] = 0x2e
      return n
    }),
    make('non_ntp.vn7-junk', 'non_ntp', 'head4', junk(0xff, 100)),
    make('non_ntp.client-47', 'non_ntp', 'none', (b) => client(4)(b) - 1),
    make('non_ntp.client-49', 'non_ntp', 'none', (b) => {
      client(3)(b)
      b[48] = 0
      return 49
    }),
    make('non_ntp.server-40', 'non_ntp', 'none', (b) => server(4, 4)(b) - 8),
    make('non_ntp.newline', 'non_ntp', 'none', text('\n')),
    make('non_ntp.crlf2', 'non_ntp', 'none', text('\r\n\r\n')),
    make('non_ntp.zeros-8', 'non_ntp', 'none', (b) => {
      b.fill(0, 0, 8)
      return 8
    }),
    make('non_ntp.client-50', 'non_ntp', 'none', (b) => {
      client(4)(b)
      b.fill(0, 48, 50)
      return 50
    }),
  ]
}

/** Index of a variant by name; throws when the catalogue lacks it (a programming error). */
export function variantIndex(catalog: readonly PayloadVariant[], name: string): number {
  const i = catalog.findIndex((v) => v.name === name)
  if (i < 0) throw new Error(`no payload variant ${name}`)
  return i
}

/** Largest payload in the catalogue (sizes scratch buffers). */
export const MAX_PAYLOAD = 8 + 6 * MONLIST_ITEM_SIZE + 600
