/**
 * NTP classification of one UDP/123 payload: exactly one class per packet (core/event.ts
 * NTP_CLASSES), plus the header fields the store keeps. Pure byte arithmetic on the payload:
 * no allocation, nothing read without a bounds check, never throws on any input.
 */
import type { Enrichment, NtpClassId } from '../core/event.js'

// NtpClassId values, spelled out so the hot path compares small integers (order of NTP_CLASSES;
// test/enrich/classify.test.ts pins each one to CLASS_ID so the two cannot drift apart).
const MONLIST = 0 as const
const MODE7_OTHER = 1 as const
const MODE6_READVAR = 2 as const
const MODE6_OTHER = 3 as const
const CLIENT = 4 as const
const RESPONSE = 5 as const
const OTHER_NTP = 6 as const
const NON_NTP = 7 as const

/** ntpd include/ntp_request.h: implementation numbers a monlist request may name. */
export const IMPL_XNTPD_OLD = 2
export const IMPL_XNTPD = 3
/** ntpd include/ntp_request.h: REQ_MON_GETLIST (v1 records) and REQ_MON_GETLIST_1 (v2 records). */
export const REQ_MON_GETLIST = 20
export const REQ_MON_GETLIST_1 = 42
/** RFC 1305 appendix B / RFC 9327: control opcode "read variables". */
export const CTL_OP_READVAR = 2

/** Shortest header an NTP time packet (modes 0-5) can have: RFC 5905 section 7.3. */
const NTP_HEADER_LENGTH = 48

/**
 * Classifies one NTP payload and fills `out.classId`, `ntpVersion`, `ntpMode`, `ntpCode`,
 * `ntpImpl`; returns the class id.
 *
 * `payload` holds the bytes present in the capture (already cut at the UDP length, possibly
 * shorter when the snaplen cut the record). `claimedPayloadLength` is what the UDP header
 * claims (udpLength - 8); pass -1 when it is unknown.
 *
 * Length rule, and why it uses the claimed length: "shorter than 48 bytes or not a multiple of
 * 4" describes what the sender put on the wire. A snaplen cut is an artefact of our sensor, and
 * letting it decide the class would make Figure 2's counts depend on how the capture was
 * configured (a 48-byte client request behind 42 bytes of Ethernet/IPv4/UDP headers is cut to
 * 22 payload bytes by a 64-byte snaplen). So when the claimed length is known and at least the
 * bytes present, the rule judges the claimed length, and everything else is read from the bytes
 * present: every rule needs only bytes 0-3, which any realistic snaplen keeps. A claimed length
 * below the bytes present contradicts the decoder's contract (the payload is delimited by it),
 * so it is treated as unknown, as is a negative one (a UDP length below 8), and the rule falls
 * back to the bytes present.
 *
 * An empty payload has no byte 0 to read: it is `non_ntp` with every field 0, whatever length
 * the header claims (there is nothing to show it was NTP).
 *
 * Header fields are decoded from the bytes present whatever the class (a VN 5 mode 7 datagram
 * is `non_ntp` but still reports mode 7 and its byte 3), so a query can see what the junk looked
 * like; a field whose byte is not present is 0.
 */
export function classifyNtp(payload: Uint8Array, claimedPayloadLength: number, out: Enrichment): NtpClassId {
  return classifyNtpAt(payload, 0, payload.length, claimedPayloadLength, out)
}

/** classifyNtp over the payload at `bytes[start, start + present)`: no view needed per packet. */
export function classifyNtpAt(
  bytes: Uint8Array,
  start: number,
  present: number,
  claimedPayloadLength: number,
  out: Enrichment,
): NtpClassId {
  out.ntpCode = 0
  out.ntpImpl = 0
  if (present === 0) {
    out.ntpVersion = 0
    out.ntpMode = 0
    out.classId = NON_NTP
    return NON_NTP
  }

  const b0 = bytes[start]
  const version = (b0 >>> 3) & 0x07
  const mode = b0 & 0x07
  out.ntpVersion = version
  out.ntpMode = mode

  let classId: NtpClassId
  if (mode === 7) {
    classId = classifyMode7(bytes, start, present, b0, out)
  } else if (mode === 6) {
    classId = classifyMode6(bytes, start, present, out)
  } else {
    // biome-ignore lint/complexity/useMathMinMax: unlike Math.max, a NaN claim falls back to the bytes present
    const length = claimedPayloadLength >= present ? claimedPayloadLength : present
    classId = classifyTimePacket(version, mode, length)
  }
  // VN 5-7 is checked last only so the header fields above are still filled in.
  if (version >= 5) classId = NON_NTP
  out.classId = classId
  return classId
}

/*
 * Mode 7 (private, ntpdc) header: ntpd include/ntp_request.h.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |R|M| VN  | Mode|A|  Sequence   | Implementation|   Req Code    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Err  | Number of data items  |  MBZ  |   Size of data item   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                                                               |
 *   |            Data (Minimum 0 octets, maximum 500 octets)        |
 *   |                                                               |
 *                            [...]
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |               Encryption Keyid (when A bit set)               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                                                               |
 *   |          Message Authentication Code (when A bit set)         |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * R and M take the place of LI, so the response test reads bit 7 of byte 0. Mode 7 has no
 * minimum length rule: attack kits send the bare 8-byte header. A payload too short to hold
 * byte 3 cannot be shown to be a monlist request, so it is `mode7_other` (the class that
 * under-claims rather than inflating CVE-2013-5211 counts); R is in byte 0, so a response is
 * recognised at any length. The A bit and sequence are ignored: an authenticated monlist
 * request is still a monlist request (ET sids 2017918/2017919 additionally require byte 1 = 0
 * because they target the un-authenticated kind only).
 */
function classifyMode7(bytes: Uint8Array, start: number, present: number, b0: number, out: Enrichment): NtpClassId {
  if (present > 2) out.ntpImpl = bytes[start + 2]
  if (present > 3) out.ntpCode = bytes[start + 3]
  if ((b0 & 0x80) !== 0) return RESPONSE
  if (present < 4) return MODE7_OTHER
  const impl = bytes[start + 2]
  const code = bytes[start + 3]
  if ((impl === IMPL_XNTPD || impl === IMPL_XNTPD_OLD) && (code === REQ_MON_GETLIST_1 || code === REQ_MON_GETLIST)) {
    return MONLIST
  }
  return MODE7_OTHER
}

/*
 * Mode 6 (control, ntpq) header: RFC 1305 appendix B, as redrawn by draft-ietf-ntp-mode-6-cmds
 * (RFC 9327).
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |LI |  VN |Mode |R|E|M| OpCode  |       Sequence Number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |            Status             |       Association ID          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |            Offset             |            Count              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * /                    Data (up to 468 bytes)                     /
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Padding (optional)                         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * /              Authenticator (optional, 96 bits)                /
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Both R and the opcode live in byte 1; a 1-byte mode 6 payload shows neither, so it is
 * `mode6_other` (a control packet we cannot say more about), not a response and not READVAR.
 */
function classifyMode6(bytes: Uint8Array, start: number, present: number, out: Enrichment): NtpClassId {
  if (present < 2) return MODE6_OTHER
  const b1 = bytes[start + 1]
  const opcode = b1 & 0x1f
  out.ntpCode = opcode
  if ((b1 & 0x80) !== 0) return RESPONSE
  return opcode === CTL_OP_READVAR ? MODE6_READVAR : MODE6_OTHER
}

/*
 * Modes 0-5: the time packet of RFC 5905 section 7.3 (figure 8).
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |LI | VN  |Mode |    Stratum     |     Poll      |  Precision   |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                         Root Delay                            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                         Root Dispersion                       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                          Reference ID                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                                                               |
 *    +                     Reference Timestamp (64)                  +
 *    |                                                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                                                               |
 *    +                      Origin Timestamp (64)                    +
 *    |                                                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                                                               |
 *    +                      Receive Timestamp (64)                   +
 *    |                                                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                                                               |
 *    +                      Transmit Timestamp (64)                  +
 *    |                                                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    .                                                               .
 *    .                    Extension Field 1 (variable)               .
 *    .                    Extension Field 2 (variable)               .
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                          Key Identifier                       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                            dgst (128)                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Everything after the 48-byte header is a whole number of 32-bit words (extension fields,
 * key id, MAC), which is what makes "not a multiple of 4" a reliable junk test.
 */
function classifyTimePacket(version: number, mode: number, length: number): NtpClassId {
  if (length < NTP_HEADER_LENGTH || (length & 3) !== 0) return NON_NTP
  if (mode === 4 || mode === 5) return RESPONSE
  if (mode === 3 && version >= 1) return CLIENT
  // Mode 3 with VN 0 is no NTP version anyone implements; modes 0-2 are reserved or peering.
  return OTHER_NTP
}
