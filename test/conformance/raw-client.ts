import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type IConnackPacket, type IConnectPacket, type Packet, type PacketCmd } from 'mqtt-packet'

/**
 * A bare MQTT client for the conformance tests: a TCP socket on 127.0.0.1, mqtt-packet's generator and
 * parser for the given protocol version, and hand-built bytes for the packets a client library refuses to
 * send (bad flags, bad UTF-8, a will QoS of 3...). Every wait is bounded: it rejects after its timeout
 * rather than hanging the test, and rejects at once when the server closes the connection first.
 */

export type Version = 4 | 5

const DEFAULT_TIMEOUT_MS = 4000

type Waiter = { match: (p: Packet) => boolean, resolve: (p: Packet) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }

export class RawClient {
  /** Every packet received, in order (also those already taken by next()). */
  readonly received: Packet[] = []
  /** Set when the server's bytes could not be parsed (a malformed packet from the server). */
  parseError: Error | undefined
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>
  private readonly unread: Packet[] = []
  private readonly waiters: Waiter[] = []
  private isClosed = false

  private constructor (readonly socket: Socket, readonly version: Version) {
    const parser = mqttPacket.parser({ protocolVersion: version })
    parser.on('packet', (packet: Packet) => {
      this.received.push(packet)
      const at = this.waiters.findIndex(w => w.match(packet))
      if (at >= 0) {
        const [w] = this.waiters.splice(at, 1)
        clearTimeout(w.timer)
        w.resolve(packet)
      } else {
        this.unread.push(packet)
      }
    })
    parser.on('error', (err: Error) => { this.parseError = err })
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.on('error', () => { /* a reset by the server is a close here */ })
    this.closed = new Promise(resolve => {
      socket.on('close', () => {
        this.isClosed = true
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer)
          w.reject(new Error(`connection closed while waiting for a packet; received: ${describe(this.received)}`))
        }
        resolve()
      })
    })
  }

  static async open (port: number, version: Version = 4): Promise<RawClient> {
    const socket = netConnect({ host: '127.0.0.1', port })
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => { resolve() })
      socket.once('error', reject)
    })
    return new RawClient(socket, version)
  }

  /** Opens a connection and sends CONNECT (defaults: clean, keep alive 0); resolves with the CONNACK. */
  static async connect (port: number, version: Version, connect: Partial<IConnectPacket> = {}): Promise<{ client: RawClient, connack: IConnackPacket }> {
    const client = await RawClient.open(port, version)
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 0, clientId: '', ...connect })
    const connack = await client.next('connack') as IConnackPacket
    return { client, connack }
  }

  get isOpen (): boolean { return !this.isClosed }

  /** Sends a packet encoded by mqtt-packet for this client's protocol version. */
  send (packet: Packet): void {
    this.sendBytes(mqttPacket.generate(packet, { protocolVersion: this.version }))
  }

  sendBytes (bytes: Buffer | Uint8Array): void {
    if (!this.isClosed) this.socket.write(bytes)
  }

  /** The next packet (not yet taken) of one of the given types, waiting up to timeoutMs for it. */
  async next (cmd: PacketCmd | PacketCmd[], timeoutMs = DEFAULT_TIMEOUT_MS, where: (p: Packet) => boolean = () => true): Promise<Packet> {
    const cmds = Array.isArray(cmd) ? cmd : [cmd]
    const match = (p: Packet): boolean => cmds.includes(p.cmd) && where(p)
    const at = this.unread.findIndex(match)
    if (at >= 0) return this.unread.splice(at, 1)[0]
    if (this.isClosed) throw new Error(`connection closed before a ${cmds.join('/')}; received: ${describe(this.received)}`)
    return await new Promise<Packet>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new Error(`no ${cmds.join('/')} within ${timeoutMs} ms; received: ${describe(this.received)}`))
      }, timeoutMs)
      const waiter: Waiter = { match, resolve, reject, timer }
      this.waiters.push(waiter)
    })
  }

  /** Like next(), but resolves undefined when the server closes the connection first. */
  async nextOrClose (cmd: PacketCmd | PacketCmd[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Packet | undefined> {
    try {
      return await this.next(cmd, timeoutMs)
    } catch (err) {
      if (this.isClosed) return undefined
      throw err
    }
  }

  /** Packets received and not taken by next(), optionally of one type. */
  pending (cmd?: PacketCmd): Packet[] {
    return this.unread.filter(p => cmd === undefined || p.cmd === cmd)
  }

  /** Waits (bounded) for the server to close the connection; rejects if it stays open. */
  async awaitClose (timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.closed,
      new Promise<void>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`the server kept the connection open for ${timeoutMs} ms; received: ${describe(this.received)}`)) }, timeoutMs)
      })
    ]).finally(() => { clearTimeout(timer) })
  }

  /** Proves the connection still works: a PINGREQ answered by a PINGRESP. */
  async ping (timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.send({ cmd: 'pingreq' })
    await this.next('pingresp', timeoutMs)
  }

  /** Closes the socket from this side without DISCONNECT (the server sees a network failure). */
  destroy (): void {
    this.socket.destroy()
  }

  /** A normal DISCONNECT (reason 0 in v5), then the socket ends. */
  disconnect (reasonCode?: number): void {
    this.send(this.version === 5 ? { cmd: 'disconnect', reasonCode: reasonCode ?? 0 } : { cmd: 'disconnect' })
    this.socket.end()
  }
}

function describe (packets: Packet[]): string {
  if (packets.length === 0) return 'nothing'
  return packets.map(p => {
    const code = 'reasonCode' in p && p.reasonCode !== undefined ? ` 0x${p.reasonCode.toString(16)}` : ('returnCode' in p && p.returnCode !== undefined ? ` rc=${p.returnCode}` : '')
    return `${p.cmd}${code}`
  }).join(', ')
}

// ---- hand-built bytes --------------------------------------------------------------------------

/** The MQTT Variable Byte Integer (remaining length, property lengths). */
export function varint (n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}

/** A length-prefixed string or binary field from raw bytes (which may be invalid UTF-8 on purpose). */
export function field (bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
  const len = Buffer.alloc(2)
  len.writeUInt16BE(b.length)
  return Buffer.concat([len, b])
}

/** A whole packet: first byte (type << 4 | flags), remaining length, body. */
export function packet (firstByte: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body)
  return Buffer.concat([Buffer.from([firstByte]), varint(b.length), b])
}

export function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

export interface RawConnect {
  protocolName?: Buffer | string
  level?: number
  /** The connect flags byte as sent (computed from the fields below when absent). */
  flags?: number
  keepalive?: number
  clientId?: Buffer | string
  clean?: boolean
  will?: { topic: Buffer | string, payload: Buffer | string, qos: number, retain?: boolean, properties?: Buffer }
  username?: Buffer | string
  password?: Buffer | string
  /** v5 CONNECT properties, already encoded (without their length); level 5 gets an empty list by default. */
  properties?: Buffer
}

/** A CONNECT built byte by byte, so that any field can be wrong. */
export function rawConnect (c: RawConnect): Buffer {
  const level = c.level ?? 4
  const v5 = (level & 0x7f) === 5
  const flags = c.flags ?? (
    ((c.clean ?? true) ? 0x02 : 0) |
    (c.will !== undefined ? 0x04 | ((c.will.qos & 3) << 3) | (c.will.retain === true ? 0x20 : 0) : 0) |
    (c.password !== undefined ? 0x40 : 0) |
    (c.username !== undefined ? 0x80 : 0))
  const parts: Buffer[] = [field(c.protocolName ?? 'MQTT'), Buffer.from([level, flags]), u16(c.keepalive ?? 0)]
  if (v5) parts.push(props(c.properties ?? Buffer.alloc(0)))
  parts.push(field(c.clientId ?? ''))
  if (c.will !== undefined) {
    if (v5) parts.push(props(c.will.properties ?? Buffer.alloc(0)))
    parts.push(field(c.will.topic), field(c.will.payload))
  }
  if (c.username !== undefined) parts.push(field(c.username))
  if (c.password !== undefined) parts.push(field(c.password))
  return packet(0x10, ...parts)
}

/** A v5 property list: its length, then the properties. */
export function props (encoded: Buffer): Buffer {
  return Buffer.concat([varint(encoded.length), encoded])
}

/** A PUBLISH with a raw topic (v4 when properties is undefined, v5 otherwise). */
export function rawPublish (topic: Buffer | string, payload: Buffer | string, opts: { qos?: number, retain?: boolean, dup?: boolean, id?: number, properties?: Buffer, flags?: number } = {}): Buffer {
  const qos = opts.qos ?? 0
  const first = 0x30 | (opts.flags ?? ((opts.dup === true ? 8 : 0) | (qos << 1) | (opts.retain === true ? 1 : 0)))
  const parts = [field(topic)]
  if (qos > 0 || (opts.flags !== undefined && ((opts.flags >> 1) & 3) > 0)) parts.push(u16(opts.id ?? 1))
  if (opts.properties !== undefined) parts.push(props(opts.properties))
  parts.push(typeof payload === 'string' ? Buffer.from(payload) : payload)
  return packet(first, ...parts)
}

/** A SUBSCRIBE with raw filters and option bytes (v5 when properties is given). */
export function rawSubscribe (id: number, entries: Array<{ filter: Buffer | string, options: number }>, opts: { properties?: Buffer, flags?: number } = {}): Buffer {
  const parts = [u16(id)]
  if (opts.properties !== undefined) parts.push(props(opts.properties))
  for (const e of entries) parts.push(field(e.filter), Buffer.from([e.options]))
  return packet(0x80 | (opts.flags ?? 0x02), ...parts)
}

/** An UNSUBSCRIBE with raw filters (possibly none). */
export function rawUnsubscribe (id: number, filters: Array<Buffer | string>, opts: { properties?: Buffer, flags?: number } = {}): Buffer {
  const parts = [u16(id)]
  if (opts.properties !== undefined) parts.push(props(opts.properties))
  for (const f of filters) parts.push(field(f))
  return packet(0xa0 | (opts.flags ?? 0x02), ...parts)
}

/** Invalid UTF-8 (MQTT 3.1.1 §1.5.3, 5.0 §1.5.4) and the null character, each inside an otherwise valid topic. */
export const BAD_UTF8: Array<{ name: string, bytes: Buffer }> = [
  { name: 'an overlong encoding of "/" (C0 AF)', bytes: Buffer.from([0x61, 0xc0, 0xaf, 0x62]) },
  { name: 'a surrogate U+D800 (ED A0 80)', bytes: Buffer.from([0x61, 0xed, 0xa0, 0x80]) },
  { name: 'a code point beyond U+10FFFF (F4 90 80 80)', bytes: Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80]) },
  { name: 'a lone continuation byte (80)', bytes: Buffer.from([0x61, 0x80, 0x62]) }
]
export const NUL_TOPIC = Buffer.from([0x61, 0x00, 0x62])

/** Single v5 properties, encoded (identifier byte, then the value), to build lists that mqtt-packet would refuse. */
export const prop = {
  byte: (id: number, v: number): Buffer => Buffer.from([id, v]),
  u16: (id: number, v: number): Buffer => Buffer.concat([Buffer.from([id]), u16(v)]),
  u32: (id: number, v: number): Buffer => { const b = Buffer.alloc(5); b[0] = id; b.writeUInt32BE(v, 1); return b },
  varint: (id: number, v: number): Buffer => Buffer.concat([Buffer.from([id]), varint(v)]),
  str: (id: number, s: Buffer | string): Buffer => Buffer.concat([Buffer.from([id]), field(s)]),
  pair: (id: number, k: Buffer | string, v: Buffer | string): Buffer => Buffer.concat([Buffer.from([id]), field(k), field(v)])
}

/** v5 property identifiers (MQTT 5.0 §2.2.2.2). */
export const P = {
  payloadFormat: 0x01,
  messageExpiry: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionId: 0x0b,
  sessionExpiry: 0x11,
  assignedClientId: 0x12,
  serverKeepAlive: 0x13,
  authMethod: 0x15,
  authData: 0x16,
  requestProblemInfo: 0x17,
  willDelay: 0x18,
  requestResponseInfo: 0x19,
  responseInfo: 0x1a,
  reasonString: 0x1f,
  receiveMaximum: 0x21,
  topicAliasMaximum: 0x22,
  topicAlias: 0x23,
  maximumQoS: 0x24,
  retainAvailable: 0x25,
  userProperty: 0x26,
  maximumPacketSize: 0x27
} as const

function readVarint (b: Buffer, at: number): { value: number, next: number } {
  let value = 0
  let mult = 1
  let i = at
  for (;;) {
    const byte = b[i++]
    value += (byte & 0x7f) * mult
    if ((byte & 0x80) === 0) return { value, next: i }
    mult *= 128
  }
}

const PROP_SIZE: Record<number, 'byte' | 'u16' | 'u32' | 'varint' | 'str' | 'pair'> = {
  0x01: 'byte', 0x17: 'byte', 0x19: 'byte', 0x24: 'byte', 0x25: 'byte', 0x28: 'byte', 0x29: 'byte', 0x2a: 'byte',
  0x13: 'u16', 0x21: 'u16', 0x22: 'u16', 0x23: 'u16',
  0x02: 'u32', 0x11: 'u32', 0x18: 'u32', 0x27: 'u32',
  0x0b: 'varint',
  0x03: 'str', 0x08: 'str', 0x09: 'str', 0x12: 'str', 0x15: 'str', 0x16: 'str', 0x1a: 'str', 0x1c: 'str', 0x1f: 'str',
  0x26: 'pair'
}

/**
 * The User Properties of every v5 PUBLISH in a byte stream from the server, in wire order (mqtt-packet's
 * parsed form groups values by name and so cannot show the order of interleaved names).
 */
export function wireUserProperties (stream: Buffer): Array<Array<[string, string]>> {
  const out: Array<Array<[string, string]>> = []
  let at = 0
  while (at < stream.length) {
    const first = stream[at]
    const { value: length, next } = readVarint(stream, at + 1)
    const end = next + length
    if ((first >> 4) === 3) {
      const qos = (first >> 1) & 3
      let i = next + 2 + stream.readUInt16BE(next)
      if (qos > 0) i += 2
      const props = readVarint(stream, i)
      const propsEnd = props.next + props.value
      const list: Array<[string, string]> = []
      let j = props.next
      while (j < propsEnd) {
        const id = stream[j++]
        const kind = PROP_SIZE[id]
        if (kind === 'byte') j += 1
        else if (kind === 'u16') j += 2
        else if (kind === 'u32') j += 4
        else if (kind === 'varint') j = readVarint(stream, j).next
        else if (kind === 'str') j += 2 + stream.readUInt16BE(j)
        else if (kind === 'pair') {
          const kl = stream.readUInt16BE(j)
          const k = stream.subarray(j + 2, j + 2 + kl).toString('utf8')
          j += 2 + kl
          const vl = stream.readUInt16BE(j)
          const v = stream.subarray(j + 2, j + 2 + vl).toString('utf8')
          j += 2 + vl
          list.push([k, v])
        } else break
      }
      out.push(list)
    }
    at = end
  }
  return out
}
