/**
 * A minimal MaxMind DB writer, so tests build fixture databases in memory instead of depending
 * on files. Format: MaxMind DB File Format Specification 2.0,
 * https://maxmind.github.io/MaxMind-DB/ :
 *
 *   [binary search tree: node_count nodes of two records, record_size bits each]
 *   [16 zero bytes: data section separator]
 *   [data section: the records the tree points at]
 *   "\xAB\xCD\xEFMaxMind.com" [metadata map]
 *
 * A record value below node_count is a node number, equal to node_count means "no data",
 * above it points at node_count + 16 + (offset in the data section).
 *
 * Not a general writer: data is never shared through pointers (identical records are
 * deduplicated whole), and networks are inserted in the order given (a later, more specific
 * network splits an earlier one; a later, wider one replaces what it covers).
 */

/** A value with an explicit MaxMind type, where the JS type alone would pick another one. */
export interface MmdbTyped {
  readonly mmdbType: 'uint16' | 'uint32' | 'uint64' | 'uint128' | 'int32' | 'double' | 'float' | 'bytes'
  readonly value: number | bigint | Uint8Array
}

/**
 * Data values. JS types map to: string -> utf8_string, integer 0..2^32-1 -> uint32, other
 * integers from -2^31 -> int32, other numbers -> double, bigint -> uint64 (uint128 when wider),
 * boolean -> boolean, array -> array, plain object -> map, Uint8Array -> bytes.
 */
export type MmdbValue = string | number | bigint | boolean | Uint8Array | MmdbTyped | MmdbValue[] | MmdbMap
export interface MmdbMap {
  [key: string]: MmdbValue
}

export const mmdb = {
  uint16: (value: number): MmdbTyped => ({ mmdbType: 'uint16', value }),
  uint32: (value: number): MmdbTyped => ({ mmdbType: 'uint32', value }),
  uint64: (value: number | bigint): MmdbTyped => ({ mmdbType: 'uint64', value: BigInt(value) }),
  uint128: (value: bigint): MmdbTyped => ({ mmdbType: 'uint128', value }),
  int32: (value: number): MmdbTyped => ({ mmdbType: 'int32', value }),
  double: (value: number): MmdbTyped => ({ mmdbType: 'double', value }),
  float: (value: number): MmdbTyped => ({ mmdbType: 'float', value }),
  bytes: (value: Uint8Array): MmdbTyped => ({ mmdbType: 'bytes', value }),
}

export interface MmdbNetwork {
  /** CIDR: "81.2.69.0/24", "2001:218::/32", "::81.2.69.0/120". IPv4 in an IPv6 tree goes to ::/96. */
  network: string
  data: MmdbValue
}

export interface MmdbWriterOptions {
  ipVersion: 4 | 6
  recordSize?: 24 | 28 | 32
  databaseType: string
  networks: readonly MmdbNetwork[]
  /** Seconds since the epoch; a fixed default keeps fixtures byte-for-byte reproducible. */
  buildEpoch?: number
  description?: Record<string, string>
  languages?: string[]
  /**
   * IPv6 trees: make ::ffff:0:0/96 (IPv4-mapped) and 2002::/16 (6to4) lead into the IPv4
   * subtree at ::/96, as MaxMind's own writer does (its "alias_ipv6_to_ipv4").
   */
  aliasIpv4?: boolean
  /** Replaces or adds metadata keys after the standard ones: for malformed-database tests. */
  metadataOverrides?: MmdbMap
}

export const METADATA_MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com', 'latin1')])
const DATA_SECTION_SEPARATOR = 16
const DEFAULT_BUILD_EPOCH = 1_700_000_000 // 2023-11-14T22:13:20Z

interface TrieNode {
  children: [Child, Child]
}
interface Leaf {
  leaf: MmdbValue
}
type Child = TrieNode | Leaf | null

function isLeaf(child: Child): child is Leaf {
  return child !== null && 'leaf' in child
}

export function writeMmdb(options: MmdbWriterOptions): Buffer {
  const recordSize = options.recordSize ?? 28
  const root: TrieNode = { children: [null, null] }

  for (const { network, data } of options.networks) {
    const [bits, prefixLength] = parseNetwork(network, options.ipVersion)
    if (prefixLength === 0) throw new Error(`mmdb-writer: a /0 network cannot be stored (${network})`)
    insert(root, bits, prefixLength, { leaf: data })
  }

  if (options.aliasIpv4) {
    if (options.ipVersion !== 6) throw new Error('mmdb-writer: aliasIpv4 needs an IPv6 tree')
    const ipv4Root = nodeAt(root, new Uint8Array(16), 96)
    setChild(root, parseAddress('::ffff:0:0', 6), 96, ipv4Root)
    setChild(root, parseAddress('2002::', 6), 16, ipv4Root)
  }

  // Number the nodes breadth-first; an aliased node is reached twice but numbered once.
  const numbers = new Map<TrieNode, number>()
  const order: TrieNode[] = []
  numbers.set(root, 0)
  order.push(root)
  for (let i = 0; i < order.length; i++) {
    for (const child of order[i].children) {
      if (child !== null && !isLeaf(child) && !numbers.has(child)) {
        numbers.set(child, order.length)
        order.push(child)
      }
    }
  }
  const nodeCount = order.length

  const data = new DataSectionWriter()
  const recordValue = (child: Child): number => {
    if (child === null) return nodeCount
    if (isLeaf(child)) return nodeCount + DATA_SECTION_SEPARATOR + data.offsetOf(child.leaf)
    return numbers.get(child)!
  }
  const nodeBytes = recordSize / 4
  const tree = Buffer.alloc(nodeCount * nodeBytes)
  const limit = 2 ** recordSize
  order.forEach((node, n) => {
    const left = recordValue(node.children[0])
    const right = recordValue(node.children[1])
    if (left >= limit || right >= limit) throw new Error(`mmdb-writer: record value too large for ${recordSize} bits`)
    writeNode(tree, n * nodeBytes, recordSize, left, right)
  })

  const metadata: MmdbMap = {
    node_count: mmdb.uint32(nodeCount),
    record_size: mmdb.uint16(recordSize),
    ip_version: mmdb.uint16(options.ipVersion),
    database_type: options.databaseType,
    languages: options.languages ?? ['en'],
    binary_format_major_version: mmdb.uint16(2),
    binary_format_minor_version: mmdb.uint16(0),
    build_epoch: mmdb.uint64(options.buildEpoch ?? DEFAULT_BUILD_EPOCH),
    description: options.description ?? { en: `teiten test fixture (${options.databaseType})` },
    ...options.metadataOverrides,
  }
  return Buffer.concat([
    tree,
    Buffer.alloc(DATA_SECTION_SEPARATOR),
    data.bytes(),
    METADATA_MARKER,
    encodeValue(metadata),
  ])
}

function insert(root: TrieNode, bits: Uint8Array, prefixLength: number, leaf: Leaf): void {
  let node = root
  for (let depth = 0; depth < prefixLength - 1; depth++) {
    node = descend(node, bitAt(bits, depth))
  }
  node.children[bitAt(bits, prefixLength - 1)] = leaf
}

/** The child node on `bit`, created if empty and split if it is a leaf (both halves keep it). */
function descend(node: TrieNode, bit: number): TrieNode {
  const child = node.children[bit]
  if (child === null) {
    const created: TrieNode = { children: [null, null] }
    node.children[bit] = created
    return created
  }
  if (isLeaf(child)) {
    const split: TrieNode = { children: [child, child] }
    node.children[bit] = split
    return split
  }
  return child
}

function nodeAt(root: TrieNode, bits: Uint8Array, depth: number): TrieNode {
  let node = root
  for (let i = 0; i < depth; i++) node = descend(node, bitAt(bits, i))
  return node
}

function setChild(root: TrieNode, bits: Uint8Array, depth: number, target: TrieNode): void {
  const parent = nodeAt(root, bits, depth - 1)
  parent.children[bitAt(bits, depth - 1)] = target
}

function writeNode(buf: Buffer, offset: number, recordSize: number, left: number, right: number): void {
  switch (recordSize) {
    case 24:
      buf.writeUIntBE(left, offset, 3)
      buf.writeUIntBE(right, offset + 3, 3)
      return
    case 28:
      // The middle byte holds the top nibble of each record: left's high, right's low.
      buf.writeUIntBE(left & 0xffffff, offset, 3)
      buf[offset + 3] = (((left >>> 24) & 0x0f) << 4) | ((right >>> 24) & 0x0f)
      buf.writeUIntBE(right & 0xffffff, offset + 4, 3)
      return
    case 32:
      buf.writeUInt32BE(left, offset)
      buf.writeUInt32BE(right, offset + 4)
      return
    default:
      throw new Error(`mmdb-writer: unsupported record size ${recordSize}`)
  }
}

function bitAt(bits: Uint8Array, index: number): number {
  return (bits[index >>> 3] >>> (7 - (index & 7))) & 1
}

function parseNetwork(cidr: string, treeVersion: 4 | 6): [Uint8Array, number] {
  const slash = cidr.indexOf('/')
  if (slash < 0) throw new Error(`mmdb-writer: not a CIDR network: ${cidr}`)
  const address = cidr.slice(0, slash)
  const prefixLength = Number(cidr.slice(slash + 1))
  const isV6 = address.includes(':')
  if (!isV6) {
    if (!(prefixLength >= 0 && prefixLength <= 32)) throw new Error(`mmdb-writer: bad prefix in ${cidr}`)
    const v4 = parseAddress(address, 4)
    if (treeVersion === 4) return [v4, prefixLength]
    const bits = new Uint8Array(16)
    bits.set(v4, 12)
    return [bits, prefixLength + 96]
  }
  if (treeVersion === 4) throw new Error(`mmdb-writer: IPv6 network ${cidr} in an IPv4 tree`)
  if (!(prefixLength >= 0 && prefixLength <= 128)) throw new Error(`mmdb-writer: bad prefix in ${cidr}`)
  return [parseAddress(address, 6), prefixLength]
}

/** Dotted quad, or RFC 4291 text (with "::" and an optional trailing dotted quad). */
export function parseAddress(text: string, version: 4 | 6): Uint8Array {
  if (version === 4) {
    const parts = text.split('.')
    if (parts.length !== 4) throw new Error(`mmdb-writer: bad IPv4 address ${text}`)
    return Uint8Array.from(
      parts.map((p) => {
        const n = Number(p)
        if (!/^\d{1,3}$/.test(p) || n > 255) throw new Error(`mmdb-writer: bad IPv4 address ${text}`)
        return n
      }),
    )
  }
  let head = text
  let tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseAddress(text.slice(lastColon + 1), 4)
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]]
    head = text.slice(0, lastColon + 1)
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1)
  }
  const groups = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').map((g) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`mmdb-writer: bad IPv6 address ${text}`)
          return Number.parseInt(g, 16)
        })
  let words: number[]
  const gap = head.indexOf('::')
  if (gap >= 0) {
    const left = groups(head.slice(0, gap))
    const right = [...groups(head.slice(gap + 2)), ...tail]
    const fill = 8 - left.length - right.length
    if (fill < 0) throw new Error(`mmdb-writer: bad IPv6 address ${text}`)
    words = [...left, ...new Array<number>(fill).fill(0), ...right]
  } else {
    words = [...groups(head), ...tail]
  }
  if (words.length !== 8) throw new Error(`mmdb-writer: bad IPv6 address ${text}`)
  const bytes = new Uint8Array(16)
  words.forEach((w, i) => {
    bytes[i * 2] = w >>> 8
    bytes[i * 2 + 1] = w & 0xff
  })
  return bytes
}

class DataSectionWriter {
  private readonly chunks: Buffer[] = []
  private length = 0
  private readonly offsets = new Map<string, number>()

  offsetOf(value: MmdbValue): number {
    const key = stableKey(value)
    const known = this.offsets.get(key)
    if (known !== undefined) return known
    const encoded = encodeValue(value)
    const offset = this.length
    this.chunks.push(encoded)
    this.length += encoded.length
    this.offsets.set(key, offset)
    return offset
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }
}

function stableKey(value: MmdbValue): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`
    if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') }
    return v
  })
}

// Data field types, MaxMind DB spec "Output Data Section".
const T = {
  pointer: 1,
  utf8: 2,
  double: 3,
  bytes: 4,
  uint16: 5,
  uint32: 6,
  map: 7,
  int32: 8,
  uint64: 9,
  uint128: 10,
  array: 11,
  boolean: 14,
  float: 15,
} as const

/** Control byte(s): type in the top 3 bits (0 = extended, type - 7 in the next byte), then size. */
function control(type: number, size: number): Buffer {
  const head: number[] = []
  let sizeBits: number
  const sizeBytes: number[] = []
  if (size < 29) {
    sizeBits = size
  } else if (size < 29 + 256) {
    sizeBits = 29
    sizeBytes.push(size - 29)
  } else if (size < 285 + 65_536) {
    sizeBits = 30
    const v = size - 285
    sizeBytes.push(v >>> 8, v & 0xff)
  } else {
    sizeBits = 31
    const v = size - 65_821
    sizeBytes.push((v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff)
  }
  if (type <= 7) {
    head.push((type << 5) | sizeBits)
  } else {
    head.push(sizeBits, type - 7)
  }
  return Buffer.from([...head, ...sizeBytes])
}

function minimalBigEndian(value: bigint, maxBytes: number): Buffer {
  if (value < 0n) throw new Error('mmdb-writer: unsigned value is negative')
  const bytes: number[] = []
  let v = value
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn))
    v >>= 8n
  }
  if (bytes.length > maxBytes) throw new Error(`mmdb-writer: value ${value} needs more than ${maxBytes} bytes`)
  return Buffer.from(bytes)
}

function encodeValue(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([control(T.utf8, bytes.length), bytes])
  }
  if (typeof value === 'boolean') return control(T.boolean, value ? 1 : 0)
  if (typeof value === 'bigint') {
    return value < 1n << 64n ? encodeTyped({ mmdbType: 'uint64', value }) : encodeTyped({ mmdbType: 'uint128', value })
  }
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return encodeTyped(mmdb.uint32(value))
    if (Number.isInteger(value) && value >= -0x80000000 && value < 0) return encodeTyped(mmdb.int32(value))
    return encodeTyped(mmdb.double(value))
  }
  if (value instanceof Uint8Array) return encodeTyped(mmdb.bytes(value))
  if (Array.isArray(value)) {
    return Buffer.concat([control(T.array, value.length), ...value.map(encodeValue)])
  }
  if ('mmdbType' in value && typeof value.mmdbType === 'string' && 'value' in value) {
    return encodeTyped(value as MmdbTyped)
  }
  const entries = Object.entries(value as MmdbMap)
  const parts: Buffer[] = [control(T.map, entries.length)]
  for (const [k, v] of entries) parts.push(encodeValue(k), encodeValue(v))
  return Buffer.concat(parts)
}

function encodeTyped(typed: MmdbTyped): Buffer {
  const { mmdbType, value } = typed
  switch (mmdbType) {
    case 'uint16':
    case 'uint32':
    case 'uint64':
    case 'uint128': {
      const max = { uint16: 2, uint32: 4, uint64: 8, uint128: 16 }[mmdbType]
      const bytes = minimalBigEndian(BigInt(value as number | bigint), max)
      return Buffer.concat([control(T[mmdbType], bytes.length), bytes])
    }
    case 'int32': {
      const n = value as number
      const bytes = Buffer.alloc(4)
      bytes.writeInt32BE(n)
      // Positive values may be shortened; a negative one needs all 4 bytes for its sign.
      const trimmed = n >= 0 ? minimalBigEndian(BigInt(n), 4) : bytes
      return Buffer.concat([control(T.int32, trimmed.length), trimmed])
    }
    case 'double': {
      const bytes = Buffer.alloc(8)
      bytes.writeDoubleBE(value as number)
      return Buffer.concat([control(T.double, 8), bytes])
    }
    case 'float': {
      const bytes = Buffer.alloc(4)
      bytes.writeFloatBE(value as number)
      return Buffer.concat([control(T.float, 4), bytes])
    }
    case 'bytes': {
      const bytes = Buffer.from(value as Uint8Array)
      return Buffer.concat([control(T.bytes, bytes.length), bytes])
    }
  }
}

/** Records as ip-location-db's country databases store them. */
export function countryCodeRecord(code: string): MmdbMap {
  return { country_code: code }
}

/** Records as MaxMind GeoIP2/GeoLite2 Country databases store them (trimmed to what matters). */
export function geoip2CountryRecord(country: string | null, registered: string | null = country): MmdbMap {
  const record: MmdbMap = {}
  if (country !== null) record.country = { geoname_id: 1, iso_code: country, names: { en: country } }
  if (registered !== null)
    record.registered_country = { geoname_id: 2, iso_code: registered, names: { en: registered } }
  return record
}
