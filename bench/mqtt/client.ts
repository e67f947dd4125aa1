import net from 'node:net'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import mqttPacket, { type Packet } from 'mqtt-packet'
import WebSocket, { createWebSocketStream } from 'ws'

/** Where a load generator connects: a TCP MQTT port or an MQTT-over-WebSocket URL. */
export type Endpoint = { kind: 'tcp', host: string, port: number } | { kind: 'ws', url: string }

const HANDSHAKE_TIMEOUT_MS = 10_000

/** CONNECT credentials: a user name and password, or a token's name and the token. */
export interface Credentials {
  username: string
  password: string
}

/** MQTT protocol level: 4 = 3.1.1, 5 = 5.0. */
export type ProtocolVersion = 4 | 5

/**
 * Encodes a PUBLISH once; load generators write (copies of) these bytes, never re-encode per message. At
 * protocol level 5 it carries an empty property list (one byte, after the message id).
 */
export function encodePublish (topic: string, payload: Buffer, qos: 0 | 1 | 2 = 0, messageId?: number, protocolVersion: ProtocolVersion = 4): Buffer {
  return mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos > 0 ? { messageId: messageId ?? 1 } : {}) }, { protocolVersion })
}

/** Where the payload starts in an encoded PUBLISH (it is last), whatever the protocol level. */
export function payloadOffset (encoded: Buffer, payload: Buffer): number {
  return encoded.length - payload.length
}

/**
 * Where the bytes after the topic start in an encoded PUBLISH: the message id for QoS 1/2, the payload
 * for QoS 0. A template encoded once can so be stamped with an id and a sequence number without running
 * the encoder again.
 */
export function afterTopicOffset (encoded: Buffer, topic: string): number {
  let i = 1
  while ((encoded[i] & 0x80) !== 0) i++ // remaining-length varint
  return i + 1 + 2 + Buffer.byteLength(topic)
}

/**
 * An acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) template; the id goes in bytes 2..3. The same 4 bytes
 * serve MQTT 5, where reason code 0 (success) without properties may be left out [MQTT-3.4.2.1].
 */
export function encodeAck (cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'): Buffer {
  return mqttPacket.generate({ cmd, messageId: 1 })
}

/** A copy of a 4-byte ack template carrying `messageId`. */
export function stampAck (template: Buffer, messageId: number): Buffer {
  const b = Buffer.allocUnsafe(template.length)
  template.copy(b)
  b.writeUInt16BE(messageId, 2)
  return b
}

/**
 * A minimal MQTT 3.1.1 client over a raw TCP socket or a WebSocket stream: packets are written as
 * pre-encoded bytes and parsed with mqtt-packet's parser. It honours backpressure: `write` returns
 * false when the stream buffer is full and `drained()` waits for it.
 */
export class RawClient {
  /** Called for every packet that is not a handshake reply (CONNACK/SUBACK). */
  onPacket: (packet: Packet) => void = () => {}
  /** Called once when the connection closes, for whatever reason (the auth reload scenario counts them). */
  onClose: () => void = () => {}
  private readonly parser: ReturnType<typeof mqttPacket.parser>
  private handshake: { cmd: 'connack' | 'suback', resolve: (p: Packet) => void, reject: (e: Error) => void } | undefined
  private closed = false
  /** True once close() was called: a close that follows is not a disconnect by the broker. */
  private closing = false

  private constructor (readonly stream: Duplex, readonly protocolVersion: ProtocolVersion) {
    this.parser = mqttPacket.parser({ protocolVersion })
    this.parser.on('packet', (packet: Packet) => {
      const h = this.handshake
      if (h !== undefined && packet.cmd === h.cmd) {
        this.handshake = undefined
        h.resolve(packet)
        return
      }
      this.onPacket(packet)
    })
    this.parser.on('error', (err: Error) => { this.fail(err) })
    stream.on('data', (chunk: Buffer) => {
      // acks written while parsing one chunk leave in one writev instead of one syscall each
      stream.cork()
      this.parser.parse(chunk)
      process.nextTick(() => { stream.uncork() })
    })
    stream.on('error', (err: Error) => { this.fail(err) })
    stream.on('close', () => {
      this.closed = true
      this.fail(new Error('connection closed'))
      this.onClose()
    })
  }

  private fail (err: Error): void {
    const h = this.handshake
    this.handshake = undefined
    h?.reject(err)
  }

  get isClosed (): boolean { return this.closed }
  /** Closed by the other side (or by an error), not by close(). */
  get droppedByPeer (): boolean { return this.closed && !this.closing }

  /**
   * Opens the connection and completes CONNECT/CONNACK, with credentials when given; `clean: false` asks for a
   * persistent session (at protocol level 5: clean start 0 and a session expiry interval of an hour, which is
   * what a 3.1.1 persistent session is). A refused CONNACK throws an error naming its return or reason code.
   */
  static async connect (endpoint: Endpoint, clientId: string, clean = true, credentials?: Credentials, protocolVersion: ProtocolVersion = 4): Promise<RawClient> {
    let stream: Duplex
    if (endpoint.kind === 'tcp') {
      const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true })
      await once(socket, 'connect')
      stream = socket
    } else {
      const ws = new WebSocket(endpoint.url, 'mqtt', { perMessageDeflate: false })
      await once(ws, 'open')
      stream = createWebSocketStream(ws)
    }
    const client = new RawClient(stream, protocolVersion)
    const connect = mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion,
      clientId,
      clean,
      keepalive: 0,
      ...(protocolVersion === 5 && !clean ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      ...(credentials === undefined ? {} : { username: credentials.username, password: Buffer.from(credentials.password) })
    }, { protocolVersion })
    let connack: Packet
    try {
      connack = await client.exchange('connack', connect)
    } catch (err) {
      client.close()
      throw err
    }
    const code = connack.cmd === 'connack' ? connack.returnCode ?? connack.reasonCode ?? 0 : -1
    if (code !== 0) {
      client.close()
      throw new Error(`${clientId}: connection refused (CONNACK ${code})`)
    }
    return client
  }

  /** Subscribes to one filter and waits for the SUBACK; a refused subscription throws. */
  async subscribe (filter: string, qos: 0 | 1 | 2): Promise<void> {
    await this.subscribeMany([filter], qos)
  }

  /** Subscribes to the filters in one SUBSCRIBE and waits for the SUBACK; any refused filter throws. */
  async subscribeMany (filters: string[], qos: 0 | 1 | 2): Promise<void> {
    const request = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map(topic => ({ topic, qos })) }, { protocolVersion: this.protocolVersion })
    const suback = await this.exchange('suback', request)
    if (suback.cmd !== 'suback' || suback.granted.some(g => typeof g === 'number' && g >= 0x80)) throw new Error(`subscription to ${filters.join(', ')} refused`)
  }

  private async exchange (cmd: 'connack' | 'suback', request: Buffer): Promise<Packet> {
    const reply = new Promise<Packet>((resolve, reject) => { this.handshake = { cmd, resolve, reject } })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no ${cmd} within ${HANDSHAKE_TIMEOUT_MS} ms`)) }, HANDSHAKE_TIMEOUT_MS)
    })
    this.stream.write(request)
    try {
      return await Promise.race([reply, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Writes bytes; false means the buffer is full and the caller must await `drained()`. */
  write (bytes: Buffer): boolean {
    return this.stream.write(bytes)
  }

  /** Resolves on 'drain', or when the connection closes (the caller then sees `isClosed`). */
  async drained (): Promise<void> {
    if (this.closed) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.stream.off('drain', done)
        this.stream.off('close', done)
        resolve()
      }
      this.stream.on('drain', done)
      this.stream.on('close', done)
    })
  }

  close (): void {
    this.closing = true
    if (!this.closed) this.stream.destroy()
  }
}

/**
 * Writes `count` messages as `batch`-sized chunks of the pre-encoded packet, waiting for 'drain' when the
 * socket buffer is full; stops early once past the deadline. Resolves with the number written.
 */
export async function pump (client: RawClient, packet: Buffer, count: number, batch: number, deadline = Infinity): Promise<number> {
  const chunk = Buffer.concat(Array.from({ length: batch }, () => packet))
  let sent = 0
  while (sent < count && !client.isClosed) {
    const n = Math.min(batch, count - sent)
    const ok = client.write(n === batch ? chunk : chunk.subarray(0, n * packet.length))
    sent += n
    if (!ok) {
      await client.drained()
      if (performance.now() > deadline) break
    }
  }
  return sent
}

/** How long receivers may stay silent, once sending is over, before what has not arrived counts as lost. */
export const IDLE_LIMIT_MS = 3000

/**
 * Resolves when `done()` holds, when nothing arrived for IDLE_LIMIT_MS after `sending` settled, or at the
 * deadline; reports whether it gave up.
 */
export async function settle (done: () => boolean, progress: () => number, sending: Promise<unknown>, deadline: number): Promise<boolean> {
  let finishedSending = false
  void sending.then(() => { finishedSending = true })
  let last = progress()
  let lastChange = performance.now()
  for (;;) {
    if (done()) return false
    const now = performance.now()
    if (now > deadline) return true
    const p = progress()
    if (p !== last) { last = p; lastChange = now } else if (finishedSending && now - lastChange > IDLE_LIMIT_MS) return true
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
