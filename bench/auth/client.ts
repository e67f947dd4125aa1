import net from 'node:net'
import { once } from 'node:events'
import mqttPacket, { type Packet } from 'mqtt-packet'

/**
 * A minimal MQTT 3.1.1 client over a raw TCP socket for the auth benchmarks: bench/mqtt/client.ts's
 * RawClient with credentials in CONNECT (that one connects anonymously). Packets are written as
 * pre-encoded bytes and parsed with mqtt-packet's parser; `write` returning false means waiting for
 * `drained()`. A close is recorded (the reload scenario counts them) and reported to `onClose`.
 */

export interface Credentials {
  /** User name, or a token's name. */
  username: string
  /** Password, or the token itself. */
  password: string
}

const HANDSHAKE_TIMEOUT_MS = 10_000

export class AuthClient {
  /** Every packet that is not the awaited CONNACK/SUBACK. */
  onPacket: (packet: Packet) => void = () => {}
  /** Called once when the connection closes, for whatever reason. */
  onClose: () => void = () => {}
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 })
  private handshake: { cmd: 'connack' | 'suback', resolve: (p: Packet) => void, reject: (e: Error) => void } | undefined
  private closed = false
  /** True once close() was called: a close that follows is not a disconnect by the broker. */
  private closing = false

  private constructor (readonly socket: net.Socket) {
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
    socket.on('data', (chunk: Buffer) => {
      // acks written while parsing one chunk leave in one writev
      socket.cork()
      this.parser.parse(chunk)
      process.nextTick(() => { socket.uncork() })
    })
    socket.on('error', (err: Error) => { this.fail(err) })
    socket.on('close', () => {
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
   * Connects and completes CONNECT/CONNACK, with credentials when given; a refused CONNACK throws an
   * error naming its return code.
   */
  static async connect (host: string, port: number, clientId: string, credentials?: Credentials, clean = true): Promise<AuthClient> {
    const socket = net.connect({ host, port, noDelay: true })
    await once(socket, 'connect')
    const client = new AuthClient(socket)
    const connect = mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId,
      clean,
      keepalive: 0,
      ...(credentials === undefined ? {} : { username: credentials.username, password: Buffer.from(credentials.password) })
    })
    const connack = await client.exchange('connack', connect)
    const code = connack.cmd === 'connack' ? connack.returnCode ?? 0 : -1
    if (code !== 0) {
      client.close()
      throw new Error(`${clientId}: connection refused (CONNACK ${code})`)
    }
    return client
  }

  /** Subscribes to one filter and waits for the SUBACK; a refused subscription (0x80) throws. */
  async subscribe (filter: string, qos: 0 | 1 | 2): Promise<void> {
    const suback = await this.exchange('suback', mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }))
    if (suback.cmd !== 'suback' || suback.granted.some(g => typeof g === 'number' && g >= 0x80)) throw new Error(`subscription to ${filter} refused`)
  }

  private async exchange (cmd: 'connack' | 'suback', request: Buffer): Promise<Packet> {
    const reply = new Promise<Packet>((resolve, reject) => { this.handshake = { cmd, resolve, reject } })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no ${cmd} within ${HANDSHAKE_TIMEOUT_MS} ms`)) }, HANDSHAKE_TIMEOUT_MS)
    })
    this.socket.write(request)
    try {
      return await Promise.race([reply, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  write (bytes: Buffer): boolean {
    return this.socket.write(bytes)
  }

  /** Resolves on 'drain', or when the connection closes (the caller then sees `isClosed`). */
  async drained (): Promise<void> {
    if (this.closed) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.socket.off('drain', done)
        this.socket.off('close', done)
        resolve()
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  close (): void {
    this.closing = true
    if (!this.closed) this.socket.destroy()
  }
}

/**
 * Writes `count` copies of a pre-encoded packet in chunks of `batch`, waiting for 'drain' when the
 * socket buffer is full; stops early past the deadline. Resolves with the number written.
 */
export async function pump (client: AuthClient, packet: Buffer, count: number, batch: number, deadline = Infinity): Promise<number> {
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
