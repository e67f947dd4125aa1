import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type IConnackPacket, type IPublishPacket, type Packet, type QoS } from 'mqtt-packet'

/**
 * The subscriber of the session model test: a bare MQTT client on mqtt-packet whose acknowledgements can be
 * held back (PUBACK for QoS 1, PUBREC for QoS 2, PUBCOMP after a PUBREL), which MQTT.js cannot do.
 *
 * It keeps the client's side of the session across its connections (ClientSession) the way MQTT 3.1.1
 * §4.3.3 / MQTT 5 §4.3.3 method B describes it: a QoS 2 packet id is stored when the PUBLISH is first
 * received and released at PUBREL. A QoS 2 PUBLISH whose id is stored is a resend, not a new message for the
 * application ("delivered" below counts only what the application is handed).
 */

export type Version = 4 | 5

/** What the application was handed, in order. */
export interface Delivered { topic: string, payload: string, qos: QoS, dup: boolean }

/** The client's half of the session: outlives a connection, discarded with the session. */
export class ClientSession {
  /** QoS 2 packet ids received and not yet released (PUBREL). */
  readonly awaitingRelease = new Set<number>()
  /** Everything handed to the application over the run, in order. */
  readonly delivered: Delivered[] = []
  /** QoS 1 packet ids received whose PUBACK has not been written: a PUBLISH with one of them is a resend. */
  readonly unacknowledged = new Set<number>()
  /** QoS 2 resends of ids not yet released: received, acknowledged, not handed to the application. */
  resendsHeld = 0
  /** Resends (ids the client had not acknowledged or released) that came with DUP 0 (MQTT-3.3.1-1 wants 1). */
  readonly resendsWithoutDup: string[] = []
  /** New QoS 1/2 messages sent while the client's receive maximum was in flight already (MQTT-3.3.4-9). */
  readonly overReceiveMaximum: string[] = []
  /** Packets the client did not expect, over all its connections (for the failure message). */
  readonly protocolErrors: string[] = []

  discard (): void {
    this.awaitingRelease.clear()
    this.unacknowledged.clear()
  }
}

const WAIT_MS = 5000

export interface ConnectOptions {
  port: number
  version: Version
  clientId: string
  cleanStart: boolean
  /** v5: the session expiry interval (seconds); 3.1.1: a persistent session is clean session 0. */
  sessionExpiry: number
  /** v5: the most QoS 1/2 messages the broker may have in flight to this connection (absent: 65,535). */
  receiveMaximum?: number
}

export class Subscriber {
  /** While true, acknowledgements are queued in `held` instead of being written. */
  holding = false
  private readonly held: Packet[] = []
  private nextId = 1
  private readonly pending = new Map<number, (p: Packet) => void>()
  /**
   * QoS 1/2 ids this connection received (PUBLISH, or PUBREL of an earlier PUBLISH) whose PUBACK / PUBCOMP it
   * has not written: a lower bound of what the broker counts in flight to it, so a new message arriving
   * while it is at the receive maximum is a violation, never a false alarm.
   */
  private readonly inFlight = new Set<number>()
  private receiveMaximum: number | undefined
  private closed = false
  readonly closedPromise: Promise<void>

  private constructor (private readonly socket: Socket, readonly version: Version, private readonly session: ClientSession) {
    this.closedPromise = new Promise(resolve => {
      socket.on('close', () => {
        this.closed = true
        resolve()
      })
    })
    socket.on('error', () => { /* a reset (the broker was killed) is a close here */ })
  }

  /**
   * Connects; resolves to the CONNACK. On "session present" 0 the client discards its half of the session
   * (3.1.1 §3.2.2.2, v5 §3.2.2.1.1: the client's state must not outlive the server's).
   */
  static async connect (o: ConnectOptions, session: ClientSession): Promise<{ client: Subscriber, connack: IConnackPacket }> {
    const socket = netConnect({ host: '127.0.0.1', port: o.port })
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => { resolve() })
      socket.once('error', reject)
    })
    const client = new Subscriber(socket, o.version, session)
    client.receiveMaximum = o.version === 5 ? o.receiveMaximum : undefined
    const parser = mqttPacket.parser({ protocolVersion: o.version })
    let onConnack: (p: IConnackPacket) => void = () => {}
    const connack = new Promise<IConnackPacket>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no CONNACK within ${WAIT_MS} ms`)) }, WAIT_MS)
      onConnack = p => { clearTimeout(timer); resolve(p) }
      void client.closedPromise.then(() => { clearTimeout(timer); reject(new Error('closed before CONNACK')) })
    })
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connack') onConnack(p)
      else client.onPacket(p)
    })
    parser.on('error', (err: Error) => { session.protocolErrors.push(`unparsable bytes from the broker: ${err.message}`) })
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    client.write({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: o.version,
      clientId: o.clientId,
      clean: o.cleanStart,
      keepalive: 0,
      ...(o.version === 5 ? { properties: { sessionExpiryInterval: o.sessionExpiry, ...(o.receiveMaximum !== undefined ? { receiveMaximum: o.receiveMaximum } : {}) } } : {})
    })
    const ack = await connack
    const code = o.version === 5 ? ack.reasonCode : ack.returnCode
    if (code === 0 && !ack.sessionPresent) session.discard()
    return { client, connack: ack }
  }

  get isClosed (): boolean { return this.closed }

  private write (packet: Packet): void {
    if (this.closed) return
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.version }))
    if (packet.cmd === 'puback') this.session.unacknowledged.delete(packet.messageId!)
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') this.inFlight.delete(packet.messageId!)
  }

  private ack (packet: Packet): void {
    if (this.holding) this.held.push(packet)
    else this.write(packet)
  }

  private onPacket (p: Packet): void {
    switch (p.cmd) {
      case 'publish': this.onPublish(p); break
      case 'pubrel':
        this.inFlight.add(p.messageId!)
        this.session.awaitingRelease.delete(p.messageId!)
        this.ack({ cmd: 'pubcomp', messageId: p.messageId })
        break
      case 'suback':
      case 'unsuback': {
        const resolve = this.pending.get(p.messageId!)
        this.pending.delete(p.messageId!)
        if (resolve === undefined) this.session.protocolErrors.push(`${p.cmd} for unknown id ${p.messageId}`)
        else resolve(p)
        break
      }
      case 'disconnect': break
      default: this.session.protocolErrors.push(`unexpected ${p.cmd}`)
    }
  }

  private onPublish (p: IPublishPacket): void {
    const d: Delivered = { topic: p.topic, payload: p.payload.toString(), qos: p.qos, dup: p.dup }
    if (p.qos === 0) {
      this.session.delivered.push(d)
      return
    }
    const resend = p.qos === 1 ? this.session.unacknowledged.has(p.messageId!) : this.session.awaitingRelease.has(p.messageId!)
    if (resend && !p.dup) this.session.resendsWithoutDup.push(`${p.payload.toString()} (qos ${p.qos}, id ${p.messageId})`)
    if (!resend && this.receiveMaximum !== undefined && this.inFlight.size >= this.receiveMaximum) {
      this.session.overReceiveMaximum.push(`${p.payload.toString()} (qos ${p.qos}) with ${this.inFlight.size} in flight, receive maximum ${this.receiveMaximum}`)
    }
    this.inFlight.add(p.messageId!)
    if (p.qos === 1) {
      this.session.unacknowledged.add(p.messageId!)
      this.session.delivered.push(d)
      this.ack({ cmd: 'puback', messageId: p.messageId })
      return
    }
    // QoS 2: a stored id is a resend of a message the application already has
    if (!this.session.awaitingRelease.has(p.messageId!)) {
      this.session.awaitingRelease.add(p.messageId!)
      this.session.delivered.push(d)
    } else this.session.resendsHeld++
    this.ack({ cmd: 'pubrec', messageId: p.messageId })
  }

  /** Writes the acknowledgements held back, in the order they were due, and stops holding. */
  giveAcks (): void {
    this.holding = false
    for (const p of this.held.splice(0)) this.write(p)
  }

  private async request (packet: Packet & { messageId?: number }): Promise<Packet> {
    const id = this.nextId++
    packet.messageId = id
    const answer = new Promise<Packet>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no answer to ${packet.cmd} within ${WAIT_MS} ms`)) }, WAIT_MS)
      this.pending.set(id, p => { clearTimeout(timer); resolve(p) })
    })
    this.write(packet)
    return await answer
  }

  /** SUBSCRIBE one filter; resolves to the granted QoS (or failure code). */
  async subscribe (topic: string, qos: QoS): Promise<number> {
    const suback = await this.request({ cmd: 'subscribe', subscriptions: [{ topic, qos }] })
    return (suback as { granted: number[] }).granted[0]
  }

  async unsubscribe (topic: string): Promise<void> {
    await this.request({ cmd: 'unsubscribe', unsubscriptions: [topic] })
  }

  /**
   * A normal DISCONNECT (v5 reason 0: the will is not sent), then the close. v5: `sessionExpiry` changes the
   * session's expiry interval at DISCONNECT (§3.14.2.2.2; 0 ends the session now).
   */
  async disconnect (sessionExpiry?: number): Promise<void> {
    this.write(this.version === 5 && sessionExpiry !== undefined
      ? { cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: sessionExpiry } }
      : { cmd: 'disconnect' })
    this.socket.end()
    await this.closedPromise
  }

  /** The connection goes away without DISCONNECT. */
  async drop (): Promise<void> {
    this.socket.destroy()
    await this.closedPromise
  }
}
