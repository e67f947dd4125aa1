import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { AuthService, Principal } from '../../engines/auth/types.js'
import type { BusMessage, Origin, Outlet, SessionHandle, SessionRequest } from '../../engines/pubsub/types.js'
import type { TopicLimits } from '../../engines/pubsub/topics.js'
import type { SecurityCounters } from '../security-metrics.js'
import { Connection } from './connection.js'
import { MqttGate, type MqttSecuritySettings } from './gate.js'
import { RC } from './reason.js'
import { parseShared } from './topics.js'

/**
 * The MQTT 3.1.1 + 5.0 front-end: every transport (tcp.ts, tls.ts, websocket.ts) hands its connections to
 * one handle(); each becomes a Connection (connection.ts) whose packets go to one handler per packet type
 * (handlers/), and whose session lives on the bus, reached through the bus's contract (engines/pubsub/types.ts).
 */

/** What the front-end needs of the bus (engines/pubsub/pubsub.ts's PubSub provides it). */
export interface MqttBus {
  connect (request: SessionRequest, outlet: Outlet): Promise<SessionHandle>
  route (message: BusMessage, origin: Origin): Promise<void> | undefined
  readonly topicLimits: TopicLimits
}

/** The protocol settings beside the security ones (README "MQTT 5"); absent ones take these defaults. */
export interface MqttProtocolSettings {
  /** --mqtt-keepalive-min: a v5 client asking for less (0 included) is told this (Server Keep Alive). */
  keepAliveMin: number
  /** --mqtt-keepalive-max: a v5 client asking for more (or 0) is told this; a 3.1.1 client asking for more is refused (0x02). */
  keepAliveMax: number
  /** --mqtt-topic-alias-max: topic aliases a v5 client may set (0: none). */
  topicAliasMax: number
  /** --mqtt-receive-maximum: QoS 1/2 publishes a v5 client may have unacknowledged by the broker. */
  receiveMaximum: number
  /** --mqtt-max-qos: the highest QoS accepted and granted. */
  maxQos: 0 | 1 | 2
  /** --mqtt-retain-available: whether retained publishes are accepted. */
  retainAvailable: boolean
  /** Bytes a subscriber may have unsent before QoS 0 messages to it are dropped (and counted). */
  sendBufferBytes: number
  /** Prefix of the Response Information a v5 client gets when it asks for one; the client id follows. */
  responseInformationPrefix: string
}

export type MqttSettings = MqttSecuritySettings & Partial<MqttProtocolSettings>

export const PROTOCOL_DEFAULTS: MqttProtocolSettings = {
  keepAliveMin: 0,
  keepAliveMax: 65535,
  topicAliasMax: 10,
  receiveMaximum: 1000,
  maxQos: 2,
  retainAvailable: true,
  // 4 MB lost up to 10% of a 10 -> 1 fan-in that outran its reader; 16 MB none (nats-server allows 64 MB)
  sendBufferBytes: 16 * 1024 * 1024,
  responseInformationPrefix: 'response/'
}

export interface MqttFrontEndStats {
  /** QoS 0 messages not sent because the subscriber's send buffer was over --sendBufferBytes. */
  droppedQos0: number
  /** Messages not sent because they were over the client's Maximum Packet Size. */
  droppedTooLarge: number
}

/** The front-end serving a bus, for the transports that are given the bus (websocket.ts). */
const frontEnds = new WeakMap<object, MqttFrontEnd>()

export function frontEndOf (bus: object): MqttFrontEnd | undefined {
  return frontEnds.get(bus)
}

export class MqttFrontEnd {
  readonly settings: MqttSecuritySettings & MqttProtocolSettings
  readonly gate: MqttGate
  readonly stats: MqttFrontEndStats = { droppedQos0: 0, droppedTooLarge: 0 }
  /** Every open connection (for shutdown). */
  private readonly connections = new Set<Connection>()
  /** Connected clients by client id (CONNACK sent, not yet closed). */
  private readonly clients = new Map<string, Connection>()
  private closing = false
  /** Debug log of client errors (none by default). */
  log: (message: string, details: Record<string, unknown>) => void = () => {}

  constructor (
    readonly bus: MqttBus,
    auth: AuthService,
    settings: MqttSettings,
    readonly security: SecurityCounters
  ) {
    this.settings = Object.assign({}, PROTOCOL_DEFAULTS, stripUndefined(settings)) as MqttSecuritySettings & MqttProtocolSettings
    this.gate = new MqttGate(auth, this.settings, security)
    frontEnds.set(bus, this)
  }

  /** A new connection (TCP or TLS socket, or a WebSocket stream with its upgrade request). */
  handle (stream: Duplex, request?: IncomingMessage, transport = request !== undefined ? 'mqtt_ws' : 'mqtt_tcp'): void {
    if (this.closing) {
      stream.destroy()
      return
    }
    const connection = new Connection(this, stream, request, transport)
    this.connections.add(connection)
  }

  /** Connected MQTT clients (past CONNACK). */
  get connectedClients (): number { return this.clients.size }

  /** The connected client of a client id. */
  client (clientId: string): Connection | undefined { return this.clients.get(clientId) }

  /** The subscriptions (filters as sent) of a connected client's session. */
  subscriptionsOf (clientId: string): string[] {
    return this.clients.get(clientId)?.session?.subscriptions().map(s => s.filter) ?? []
  }

  /** A CONNECT was accepted: the client id is registered to this connection. */
  registered (connection: Connection): void {
    this.clients.set(connection.clientId, connection)
  }

  /** Called once by each connection when it ends. */
  closed (connection: Connection): void {
    this.connections.delete(connection)
    if (this.clients.get(connection.clientId) === connection) this.clients.delete(connection.clientId)
    this.gate.leave(connection)
  }

  /** Malformed input from a client (counted by transport, logged at debug). */
  bad (connection: Connection): void {
    this.security.bad(connection.transport)
  }

  /**
   * A CONNECT naming a protocol or level the broker does not speak (MQTT-3.1.2-1, -2): CONNACK 0x01 in the
   * 3.1.1 form (what 3.1 and 3.1.1 clients read; an unknown level is answered so too), or 0x84 in the MQTT 5
   * form when the level is 5 and the name is wrong; then the connection closes.
   */
  unsupported (connection: Connection, level: number): void {
    this.bad(connection)
    const bytes = level === 5
      ? Buffer.from([0x20, 0x03, 0x00, RC.unsupportedVersion, 0x00])
      : Buffer.from([0x20, 0x02, 0x00, 0x01])
    connection.writer.release()
    connection.writer.write(bytes)
    connection.end()
  }

  /** The principal's rules changed: subscriptions they no longer allow are cut (no UNSUBACK: the client asked nothing). */
  cutSubscriptions (connection: Connection, principal: Principal): void {
    const session = connection.session
    if (session === null) return
    const cut = session.subscriptions().map(s => s.filter).filter(filter => !principal.canSubscribe(parseShared(filter)?.filter ?? filter))
    if (cut.length > 0) void session.unsubscribe(cut).catch(() => {})
  }

  /**
   * Shutdown: no new connections; each open one is told (v5: DISCONNECT 0x8B, server shutting down) and
   * closed, and its session detached.
   */
  close (): void {
    this.closing = true
    this.gate.close()
    for (const connection of [...this.connections]) {
      if (connection.state === 'connected') connection.fail(RC.serverShuttingDown, 'the server is shutting down')
      else connection.destroy()
    }
  }
}

function stripUndefined<T extends object> (settings: T): Partial<T> {
  return Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** The front-end's settings from the configuration (src/config.ts). */
export function mqttSettings (config: {
  mqttDenyDisconnect: boolean
  mqttMaxPacketSize: number
  mqttMaxConnections: number
  mqttMaxConnectionsPerUser: number
  mqttConnectRate: number
  mqttMaxInflight: number
  mqttMaxWaiting: number
  mqttKeepAliveMin: number
  mqttKeepAliveMax: number
  mqttTopicAliasMax: number
  mqttReceiveMaximum: number
  mqttMaxQos: number
  mqttRetainAvailable: boolean
}): MqttSettings {
  return {
    denyDisconnect: config.mqttDenyDisconnect,
    maxPacketSize: config.mqttMaxPacketSize,
    maxConnections: config.mqttMaxConnections,
    maxConnectionsPerUser: config.mqttMaxConnectionsPerUser,
    connectRate: config.mqttConnectRate,
    maxInflight: config.mqttMaxInflight,
    maxWaiting: config.mqttMaxWaiting,
    keepAliveMin: config.mqttKeepAliveMin,
    keepAliveMax: config.mqttKeepAliveMax,
    topicAliasMax: config.mqttTopicAliasMax,
    receiveMaximum: config.mqttReceiveMaximum,
    maxQos: Math.min(2, Math.max(0, config.mqttMaxQos)) as 0 | 1 | 2,
    retainAvailable: config.mqttRetainAvailable
  }
}
