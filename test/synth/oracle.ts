/**
 * Independent checks for the synthetic corpus: tshark as the oracle of what the files contain,
 * and a reference implementation of the ground-truth class rules written from their definition
 * (not shared with synth/ or enrich/).
 */
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import type { NtpClass } from '../../core/event.js'

const run = promisify(execFile)

/** Fails (never skips) when tshark is missing: these tests are the corpus's only outside witness. */
export function requireTshark(): void {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    throw new Error(
      'tshark is required by test/synth (it is the oracle for the synthetic captures): apt-get install -y tshark',
    )
  }
}

/** The class rules of the ground truth, from the payload bytes and the UDP-length payload size. */
export function referenceClass(payload: Uint8Array, length: number): NtpClass {
  if (length === 0) return 'non_ntp'
  const b0 = payload[0]
  const vn = (b0 >> 3) & 7
  const mode = b0 & 7
  if (vn >= 5) return 'non_ntp'
  if (mode <= 5 && (length < 48 || length % 4 !== 0)) return 'non_ntp'
  if (mode === 7) {
    if (b0 & 0x80) return 'response'
    const impl = payload[2]
    const code = payload[3]
    return (impl === 2 || impl === 3) && (code === 42 || code === 20) ? 'monlist' : 'mode7_other'
  }
  if (mode === 6) {
    const b1 = payload[1]
    if (b1 & 0x80) return 'response'
    return (b1 & 0x1f) === 2 ? 'mode6_readvar' : 'mode6_other'
  }
  if (mode === 4 || mode === 5) return 'response'
  if (mode === 3) return vn >= 1 ? 'client' : 'other_ntp'
  return 'other_ntp'
}

export interface TsharkFrame {
  /** Capture time in whole seconds, or null (Simple Packet Block). */
  sec: number | null
  protocols: string[]
  src: string
  srcPort: number
  dstPort: number
  udpLength: number
  payload: Buffer
}

const FIELDS = [
  'frame.time_epoch',
  'frame.protocols',
  'ip.src',
  'ipv6.src',
  'udp.srcport',
  'udp.dstport',
  'udp.length',
  'udp.payload',
]

/** Every frame tshark shows, with reassembly off so that first fragments are dissected as UDP. */
export async function tsharkFrames(file: string): Promise<TsharkFrame[]> {
  const args = ['-n', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-r', file, '-T', 'fields']
  args.push('-E', 'separator=/t', '-E', 'occurrence=f')
  for (const f of FIELDS) args.push('-e', f)
  const { stdout } = await run('tshark', args, { maxBuffer: 1 << 30, encoding: 'utf8' })
  const frames: TsharkFrame[] = []
  for (const line of stdout.split('\n')) {
    if (line === '') continue
    const [epoch, protocols, ip4, ip6, sport, dport, ulen, payload] = line.split('\t')
    frames.push({
      // The integer part of the text: a double cannot hold 1388534399.999999998.
      sec: epoch ? Number(epoch.split('.')[0]) : null,
      protocols: protocols.split(':'),
      src: ip4 || ip6,
      srcPort: sport ? Number(sport) : -1,
      dstPort: dport ? Number(dport) : -1,
      udpLength: ulen ? Number(ulen) : -1,
      payload: Buffer.from((payload ?? '').replaceAll(':', ''), 'hex'),
    })
  }
  return frames
}

const LINK_PROTOCOLS = new Set(['eth', 'raw', 'sll', 'null'])

/** A capture record (tshark also shows pcapng Custom Blocks as frames: protocol "data" only). */
export function isRecord(f: TsharkFrame): boolean {
  return LINK_PROTOCOLS.has(f.protocols[0])
}

/**
 * The ground truth's "kept": the first network header is followed (after IPv6 extension
 * headers) by UDP, so ICMP quotes and tunnels do not count, and a port is 123.
 */
export function isKept(f: TsharkFrame): boolean {
  const p = f.protocols
  let i = p.findIndex((x) => x === 'ip' || x === 'ipv6')
  if (i < 0) return false
  i++
  while (i < p.length && p[i].startsWith('ipv6.')) i++
  return p[i] === 'udp' && (f.srcPort === 123 || f.dstPort === 123)
}

/** Runs `fn` over items with at most `limit` in flight (tshark runs are process-bound). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
