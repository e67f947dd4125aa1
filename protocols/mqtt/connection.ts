import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import mqttPacket from 'mqtt-packet'
import type { Principal } from '../../engines/auth/types.js'
import type { SessionHandle } from '../../engines/pubsub/types.js'
import { peerCommonName } from '../tls-identity.js'
import type { GatePeer } from './gate.js'
import { createParser, type MqttParser } from './parser.js'
import { PacketReader } from './reader.js'
import { RC } from './reason.js'
import { Writer } from './writer.js'
import { drained } from './flow.js'
import type { InboundAliases, OutboundAliases } from './aliases.js'
import type { WaitingWindow } from './inflight.js'
import type { MqttFrontEnd } from './front-end.js'
import { dispatch } from './handlers/index.js'
import { handleConnect } from './handlers/connect.js'

/**
 * One MQTT connection: its parser and writer, its state (CONNECTING until the CONNECT is answered,
 * CONNECTED, CLOSED), its keepalive, and what the handlers (handlers/) keep between packets. The first
 * packet must be a CONNECT (MQTT-3.1.0-1); packets that come while the CONNECT is being answered wait and
 * are handled after the CONNACK, in order.
 */

export type ConnectionState = 'connecting' | 'connected' | 'closed'

/** A packet with its user properties in the order sent (every property block of the packet, in order). */
export type OrderedPacket = mqttPacket.Packet & { userPropertyList?: Array<[string, string]> }

/** How long a connection may take to send its CONNECT. */
const CONNECT_TIMEOUT_MS = 30_000
/** Packets that may wait while the CONNECT is answered before the socket is paused. */
const PENDING_PAUSE = 1000
/** A connection closed by the broker that does not close its side goes after this. */
const LINGER_MS = 1000

export class Connection implements GatePeer {
  state: ConnectionState = 'connecting'
  /** 3 (3.1), 4 (3.1.1) or 5, from the CONNECT. */
  version: 3 | 4 | 5 = 4
  clientId = ''
  principal: Principal | null = null
  readonly address: string
  readonly certificateName: string | undefined
  session: SessionHandle | null = null
  readonly writer: Writer
  readonly parser: MqttParser
  private readonly reader: PacketReader

  // ---- set at CONNECT ----
  /** v5: the client's Request Problem Information (false: no reason strings or user properties on acks). */
  problemInformation = true
  /** v5: the client's Maximum Packet Size. */
  clientMaxPacket = Number.POSITIVE_INFINITY
  inboundAliases: InboundAliases | null = null
  outboundAliases: OutboundAliases | null = null
  /** --mqtt-max-waiting for a session that ends with the connection (inflight.ts); null: the bus's window alone. */
  window: WaitingWindow | null = null
  /** The session expiry the CONNECT asked for (seconds; a DISCONNECT may not raise it from 0, MQTT-3.14.2-2). */
  sessionExpiry = 0
  /** Whether the session is left with the will (false after a normal DISCONNECT and after revocation). */
  publishWill = true
  /** v5: a session expiry given at DISCONNECT. */
  expiryAtDisconnect: number | undefined

  // ---- inbound flow ----
  /** QoS 1 publishes received and not yet acknowledged. */
  inboundQos1 = 0
  /** Ids of QoS 2 publishes received on this connection and not yet released (PUBREL). */
  readonly inboundQos2 = new Set<number>()
  /** The last acknowledgement that waits for durable writes; later ones go after it (in the order of their publishes). */
  ackTail: Promise<void> | null = null

  /** Packets (or the reason a packet was malformed) that came while the CONNECT was answered. */
  private pending: Array<mqttPacket.Packet | string> | null = null
  /** Subscribers this connection (a publisher) is paused for (flow.ts). */
  readonly waitingFor = new Set<Connection>()
  /** Publishers paused for this connection (a subscriber) to drain. */
  readonly slowFor = new Set<Connection>()
  private keepAliveTimer: NodeJS.Timeout | null = null
  private connectTimer: NodeJS.Timeout | null
  /** Packets since the last keepalive check. */
  private activity = 0
  private idleChecks = 0

  constructor (readonly front: MqttFrontEnd, readonly stream: Duplex, request: IncomingMessage | undefined, readonly transport: string) {
    const socket = stream as Duplex & { remoteAddress?: string }
    this.address = request?.socket?.remoteAddress ?? socket.remoteAddress ?? 'unknown'
    this.certificateName = peerCommonName(stream) ?? peerCommonName(request?.socket)
    this.writer = new Writer(stream)
    this.parser = createParser(front.settings.maxPacketSize)
    this.parser.on('packet', packet => {
      const malformed = this.parser.malformed
      if (malformed !== null) this.parser.malformed = null
      if (this.parser.pairs.length > 0) {
        (packet as OrderedPacket).userPropertyList = this.parser.pairs
        this.parser.pairs = []
      }
      this.onPacket(packet, malformed)
    })
    this.parser.on('error', (err: Error) => { this.onParseError(err, this.parser.oversize) })
    this.reader = new PacketReader(this.parser, {
      packet: packet => { this.onPacket(packet, null) },
      malformed: reason => { this.onPacket(null, reason) },
      error: (err, oversize) => { this.onParseError(err, oversize) }
    })
    stream.on('data', (chunk: Buffer) => { if (this.state !== 'closed') this.reader.push(chunk) })
    stream.on('drain', () => { drained(this) })
    stream.on('error', () => { this.closed() })
    stream.on('close', () => { this.closed() })
    stream.on('end', () => { this.closed() })
    this.connectTimer = setTimeout(() => { this.destroy() }, CONNECT_TIMEOUT_MS)
    this.connectTimer.unref()
  }

  get v5 (): boolean { return this.version === 5 }

  /** (A getter: TypeScript does not narrow it across an await.) */
  get isClosed (): boolean { return this.state === 'closed' }

  // ---- reading ------------------------------------------------------------------------------------------

  /** A packet, or (packet null) the reason one was malformed. */
  private onPacket (packet: mqttPacket.Packet | null, malformed: string | null): void {
    if (this.state === 'closed') return
    this.activity++
    if (this.pending !== null) {
      // a malformed packet behind the CONNECT waits too: the CONNACK goes first, then the refusal
      this.pending.push(malformed ?? packet!)
      if (this.pending.length === PENDING_PAUSE) this.stream.pause()
      return
    }
    if (malformed !== null || packet === null) {
      this.fail(RC.malformed, malformed ?? 'malformed packet')
      return
    }
    if (this.session === null) {
      if (packet.cmd !== 'connect') {
        // MQTT-3.1.0-1: the first packet is a CONNECT
        this.front.bad(this)
        this.destroy()
        return
      }
      this.pending = []
      this.reader.version = packet.protocolVersion ?? 4
      this.writer.hold()
      if (this.connectTimer !== null) clearTimeout(this.connectTimer)
      this.connectTimer = null
      void handleConnect(this, packet)
      return
    }
    dispatch(this, packet)
  }

  private onParseError (err: Error, oversize: number): void {
    if (this.state === 'closed') return
    const parser = this.parser
    if (oversize > 0) {
      this.front.gate.limit('mqtt_max_packet_size')
      this.fail(RC.packetTooLarge, err.message)
      return
    }
    if (parser.unsupported !== null && this.session === null && this.pending === null) {
      this.front.unsupported(this, parser.unsupported.level)
      return
    }
    this.front.bad(this)
    this.fail(RC.malformed, err.message)
  }

  /** The CONNACK went out (accepted): the packets that came meanwhile are handled, in order. */
  connected (): void {
    this.writer.release()
    const pending = this.pending ?? []
    this.pending = null
    for (const packet of pending) {
      if (this.state !== 'connected') return
      if (typeof packet === 'string') this.fail(RC.malformed, packet)
      else dispatch(this, packet)
    }
    if (pending.length >= PENDING_PAUSE) this.stream.resume()
  }

  // ---- keepalive ----------------------------------------------------------------------------------------

  /**
   * MQTT-3.1.2-24: closed when nothing came for 1.5 x the keepalive. Checked three times per such span,
   * by a packet count rather than a timer reset per packet: a packet costs an increment.
   */
  startKeepAlive (seconds: number): void {
    if (seconds === 0) return
    this.keepAliveTimer = setInterval(() => {
      if (this.activity > 0) {
        this.activity = 0
        this.idleChecks = 0
      } else if (++this.idleChecks >= 3) this.fail(RC.keepAliveTimeout, 'keep alive timeout')
    }, seconds * 500)
    this.keepAliveTimer.unref()
  }

  // ---- writing ------------------------------------------------------------------------------------------

  send (bytes: Buffer): void {
    if (this.state !== 'closed') this.writer.write(bytes)
  }

  /** Encodes any packet but PUBLISH (encode.ts) with mqtt-packet, in the connection's protocol version. */
  sendPacket (packet: mqttPacket.Packet): void {
    if (this.state === 'closed') return
    this.writer.write(mqttPacket.generate(packet, { protocolVersion: this.version }))
  }

  /** A v5 reason string, unless the client asked for none (Request Problem Information 0). */
  reasonProperties (reason: string): { reasonString: string } | undefined {
    return this.problemInformation ? { reasonString: reason } : undefined
  }

  // ---- acknowledgements in order ------------------------------------------------------------------------

  /**
   * Runs `send` (an acknowledgement) once `durable` is done and every acknowledgement before it has gone:
   * MQTT-4.6.0-2/3, acknowledgements in the order of their publishes, although a publish kept nowhere is
   * done at once and one kept somewhere waits for its writes. Nothing waits: at once, no promise made.
   * A failed durable write (storage unavailable) closes the connection without the acknowledgement: the
   * client sends the message again.
   */
  ackAfter (durable: Promise<void> | undefined, send: () => void): void {
    const previous = this.ackTail
    if (durable === undefined && previous === null) {
      send()
      return
    }
    const wait = durable === undefined ? previous! : previous === null ? durable : Promise.all([previous, durable])
    const tail: Promise<void> = wait.then(() => {
      if (this.ackTail === tail) this.ackTail = null
      if (this.state !== 'closed') send()
    }, (err: unknown) => {
      if (this.ackTail === tail) this.ackTail = null
      this.front.log('publish not stored', { clientId: this.clientId, err: err instanceof Error ? err.message : String(err) })
      this.fail(RC.unspecified, 'the message could not be stored')
    })
    this.ackTail = tail
  }

  chainAck (send: () => void): void {
    this.ackAfter(undefined, send)
  }

  // ---- ending -------------------------------------------------------------------------------------------

  /**
   * The broker ends the connection: a v5 client connected past CONNACK gets a DISCONNECT with the reason
   * code and string first (MQTT 5 §4.13); a 3.1.1 client is just closed (it has no such packet).
   */
  fail (code: number, reason: string): void {
    if (this.state === 'closed') return
    if (this.v5 && this.state === 'connected') {
      // reason strings may go on a DISCONNECT whatever the client asked (MQTT-3.1.2-29 exempts it)
      this.writer.write(mqttPacket.generate({ cmd: 'disconnect', reasonCode: code, properties: { reasonString: reason } }, { protocolVersion: 5 }))
    }
    this.end()
  }

  /** Flushes what is queued, ends the stream, and closes it for good if the client keeps it open. */
  end (): void {
    if (this.state === 'closed') return
    this.writer.end()
    this.closed()
    setTimeout(() => { this.stream.destroy() }, LINGER_MS).unref()
  }

  destroy (): void {
    this.writer.discard()
    this.closed()
    this.stream.destroy()
  }

  /** Once, whichever way the connection ended: timers stop, the session is detached, counts given back. */
  private closed (): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    if (this.keepAliveTimer !== null) clearInterval(this.keepAliveTimer)
    this.pending = null
    drained(this)
    const session = this.session
    if (session !== null) {
      session.detach({ publishWill: this.publishWill, ...(this.expiryAtDisconnect !== undefined ? { expiryInterval: this.expiryAtDisconnect } : {}) })
    }
    this.front.closed(this)
  }

  // ---- the gate's calls ---------------------------------------------------------------------------------

  revoke (): void {
    this.publishWill = false
    this.fail(RC.notAuthorized, 'the credentials of this connection were revoked')
  }

  rulesChanged (principal: Principal): void {
    this.front.cutSubscriptions(this, principal)
  }
}
