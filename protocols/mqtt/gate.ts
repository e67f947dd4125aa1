import type { AedesPublishPacket, Client, ConnectPacket, PublishPacket } from 'aedes'
import type { AuthFailure, AuthService, Principal } from '../../engines/auth/types.js'
import type { PubSub } from '../../engines/pubsub/pubsub.js'
import type { BusLimit, ConnectRefusal, MqttGate, PublishVerdict } from '../../engines/pubsub/mqtt-gate.js'
import { parseShare } from '../../engines/pubsub/shared.js'
import type { LimitName, SecurityCounters } from '../security-metrics.js'
import { peerCommonName } from '../tls-identity.js'
import { ConnectRate, isLoopback } from './connect-rate.js'
import { capPacketSize, onClientPacket, refuseConnect, remoteAddress } from './connections.js'
import { InflightWindow } from './inflight.js'

/**
 * The MQTT front-end's decisions (README "Security / MQTT"), installed on the bus as its MqttGate: who may
 * connect (credentials, connection caps, connect rate), publish, subscribe and receive, and what happens
 * when the auth file changes. Every connection keeps its Principal; the Principal caches its own
 * decisions per topic, so the hot paths (a PUBLISH, a delivery) cost one map lookup.
 */

export interface MqttSecuritySettings {
  /** --mqtt-deny-disconnect: a denied PUBLISH closes the connection instead of being dropped. */
  denyDisconnect: boolean
  maxPacketSize: number
  /** 0: no cap. */
  maxConnections: number
  /** 0: no cap. Named principals only (users, tokens, certificates). */
  maxConnectionsPerUser: number
  /** Per IP address and second; 0: no cap. */
  connectRate: number
  maxInflight: number
  /** --mqtt-max-waiting: messages of a connected clean-session client waiting for a free in-flight slot; 0: no cap (none dropped). */
  maxWaiting: number
  /**
   * Whether clients on loopback (127.0.0.0/8, ::1) are rate-limited too (default false: local tools,
   * sidecars and benchmarks open many connections from there, and a local client can already do anything).
   */
  rateLimitLoopback?: boolean
}

/** The client certificate's CN, when TLS verified it (the TLS socket, or a WSS upgrade request's socket). */
export type CertificateName = (client: Client) => string | undefined

const certificateOf: CertificateName = client => peerCommonName(client.conn) ?? peerCommonName(client.req?.socket)

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const SERVER_UNAVAILABLE = 3
const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

interface Connection {
  address: string
  /** Admitted by preConnect: counted in the total. */
  admitted: boolean
  /** Set once authenticated; null after revocation. */
  principal: Principal | null
  /** The key of its per-user count (named principals only). */
  user: string | null
}

const BUS_LIMITS: Record<BusLimit, LimitName> = {
  topic_length: 'mqtt_max_topic_length',
  topic_levels: 'mqtt_max_topic_levels',
  queued: 'mqtt_max_queued'
}

function refusal (returnCode: ConnectRefusal['returnCode'], message: string): ConnectRefusal {
  return Object.assign(new Error(message), { returnCode })
}

export class MqttFrontGate implements MqttGate {
  private readonly connections = new WeakMap<Client, Connection>()
  /** Authenticated, connected clients: the ones revocation walks through. */
  private readonly live = new Set<Client>()
  private admitted = 0
  private readonly perUser = new Map<string, number>()
  private readonly rate: ConnectRate
  private readonly removeListener: () => void

  constructor (
    private readonly pubsub: PubSub,
    private readonly auth: AuthService,
    private readonly settings: MqttSecuritySettings,
    private readonly security: SecurityCounters,
    private readonly certificateName: CertificateName = certificateOf
  ) {
    this.rate = new ConnectRate(settings.connectRate)
    this.removeListener = auth.onChange(() => { this.revalidate() })
    pubsub.broker.on('clientError', (_client, err) => {
      // aedes' own cap on inbound QoS 2 awaiting PUBREL (set from --mqtt-max-inflight) closed a connection
      if (err.message.startsWith('maxInflightInbound exceeded')) security.limit('mqtt_max_inflight')
    })
  }

  // ---- connections --------------------------------------------------------------------------------------

  readonly accept = (client: Client): void => {
    const connection: Connection = { address: remoteAddress(client), admitted: false, principal: null, user: null }
    this.connections.set(client, connection)
    capPacketSize(client, this.settings.maxPacketSize, () => { this.security.limit('mqtt_max_packet_size') })
    const window = new InflightWindow(client, {
      maxInflight: this.settings.maxInflight,
      maxWaiting: this.settings.maxWaiting,
      dropped: () => { this.security.limit('mqtt_max_inflight') }
    })
    onClientPacket(client, packet => {
      if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') window.acknowledged(packet.messageId)
    })
    client.conn.once('close', () => { this.release(client, connection) })
  }

  private release (client: Client, connection: Connection): void {
    this.live.delete(client)
    if (connection.admitted) {
      connection.admitted = false
      this.admitted--
    }
    if (connection.user !== null) {
      const left = (this.perUser.get(connection.user) ?? 1) - 1
      if (left <= 0) this.perUser.delete(connection.user)
      else this.perUser.set(connection.user, left)
      connection.user = null
    }
  }

  /** Connect rate per address, then the total cap: CONNACK 0x03 (server unavailable), before any credential is checked. */
  readonly preConnect = (client: Client, _packet: ConnectPacket, callback: (error: Error | null, ok: boolean) => void): void => {
    const connection = this.connections.get(client)
    if (connection === undefined) {
      callback(null, true)
      return
    }
    const limited = this.settings.rateLimitLoopback === true || !isLoopback(connection.address)
    if (limited && !this.rate.take(connection.address)) return this.refuse(client, 'mqtt_connect_rate', callback)
    if (this.settings.maxConnections > 0 && this.admitted >= this.settings.maxConnections) return this.refuse(client, 'mqtt_max_connections', callback)
    connection.admitted = true
    this.admitted++
    callback(null, true)
  }

  private refuse (client: Client, limit: LimitName, callback: (error: Error | null, ok: boolean) => void): void {
    this.security.limit(limit)
    refuseConnect(client, SERVER_UNAVAILABLE)
    callback(null, false)
  }

  /**
   * CONNECT's credentials: user name + password (or token name + token) -> a user or token; none -> the
   * TLS client certificate's user when TLS verified one, else anonymous. Wrong credentials: 0x04; none
   * where anonymous access is off, or a user over its connection cap: 0x05.
   */
  readonly authenticate = (client: Client, username: string | undefined, password: Buffer | undefined, callback: (error: ConnectRefusal | null, ok: boolean) => void): void => {
    void this.identify(client, username, password).then(result => {
      if ('failure' in result) {
        this.security.authFailure('mqtt', result.failure)
        callback(refusal(result.failure === 'missing' ? NOT_AUTHORIZED : BAD_CREDENTIALS, result.failure === 'missing' ? 'not authorized' : 'bad user name or password'), false)
        return
      }
      const connection = this.connections.get(client)
      if (connection === undefined || client.closed) {
        callback(refusal(NOT_AUTHORIZED, 'not authorized'), false)
        return
      }
      const principal = result.principal
      const user = principal.name !== null && principal.kind !== 'anonymous' && principal.kind !== 'open' ? `${principal.kind}:${principal.name}` : null
      if (user !== null && this.settings.maxConnectionsPerUser > 0 && (this.perUser.get(user) ?? 0) >= this.settings.maxConnectionsPerUser && !this.replaces(client, user)) {
        this.security.limit('mqtt_max_connections_per_user')
        callback(refusal(NOT_AUTHORIZED, 'too many connections of this user'), false)
        return
      }
      if (user !== null) this.perUser.set(user, (this.perUser.get(user) ?? 0) + 1)
      connection.user = user
      connection.principal = principal
      this.live.add(client)
      callback(null, true)
    }, () => {
      callback(refusal(SERVER_UNAVAILABLE, 'server unavailable'), false)
    })
  }

  /** Whether the connection takes over a session of the same user (MQTT-3.1.4-2): the old one is about to go. */
  private replaces (client: Client, user: string): boolean {
    const clients = (this.pubsub.broker as unknown as { clients: Record<string, Client | undefined> }).clients
    const previous = clients[client.id]
    return previous !== undefined && this.connections.get(previous)?.user === user
  }

  private async identify (client: Client, username: string | undefined, password: Buffer | undefined): Promise<{ principal: Principal } | { failure: AuthFailure }> {
    const clientId = client.id
    if (username !== undefined && password !== undefined) {
      const result = await this.auth.password(username, password, clientId)
      return result.ok ? { principal: result.principal } : { failure: result.failure }
    }
    // MQTT-3.1.2-22: no password without a user name (mqtt-packet refuses that packet already)
    if (password !== undefined) return { failure: 'invalid' }
    const commonName = this.certificateName(client)
    if (commonName !== undefined) {
      const result = this.auth.certificate(commonName, clientId)
      return result.ok ? { principal: result.principal } : { failure: result.failure }
    }
    // a user name alone proves nothing
    if (username !== undefined) return this.auth.enabled ? { failure: 'invalid' } : this.anonymous(clientId)
    return this.anonymous(clientId)
  }

  private anonymous (clientId: string): { principal: Principal } | { failure: AuthFailure } {
    const result = this.auth.anonymous(clientId)
    return result.ok ? { principal: result.principal } : { failure: result.failure }
  }

  // ---- decisions ----------------------------------------------------------------------------------------

  private principalOf (client: Client): Principal | null {
    return this.connections.get(client)?.principal ?? null
  }

  /**
   * A PUBLISH, or a will (at CONNECT and when it is published). Denied: dropped and still acknowledged
   * (MQTT 3.1.1 has no refusal for a PUBLISH), or with --mqtt-deny-disconnect the connection closes. A
   * will left by a previous broker process (client null) was allowed at its CONNECT.
   */
  readonly authorizePublish = (client: Client | null, packet: PublishPacket): PublishVerdict => {
    if (client === null || !this.auth.enabled) return 'allow'
    const principal = this.principalOf(client)
    if (principal !== null && principal.can('topic', packet.topic, 'publish')) return 'allow'
    this.security.deny('mqtt', 'publish')
    return this.settings.denyDisconnect ? new Error(`publish to "${packet.topic}" denied`) : 'drop'
  }

  /** One filter of a SUBSCRIBE or of a restored session: 0x80 unless an allow rule covers it all. */
  readonly authorizeSubscribe = (client: Client, filter: string): boolean => {
    if (!this.auth.enabled) return true
    const principal = this.principalOf(client)
    if (principal !== null && principal.canSubscribe(filter)) return true
    this.security.deny('mqtt', 'subscribe')
    return false
  }

  /** Each message to a client, so that a deny rule inside an allowed wildcard is honoured. */
  readonly authorizeForward = (client: Client, packet: AedesPublishPacket): boolean => {
    if (!this.auth.enabled) return true
    const principal = this.principalOf(client)
    return principal !== null && principal.can('topic', packet.topic, 'subscribe')
  }

  readonly limit = (name: BusLimit): void => {
    this.security.limit(BUS_LIMITS[name])
  }

  // ---- revocation ---------------------------------------------------------------------------------------

  /**
   * After every reload and token expiry: each connection's principal under the file in force. Revoked
   * (user or token gone, password changed, token expired): the connection closes (its will is not
   * published: its principal is gone). Changed: the new rules apply from now on, and subscriptions they no
   * longer allow are cut (from a persistent session too). Unchanged: nothing happens.
   */
  private revalidate (): void {
    for (const client of [...this.live]) {
      const connection = this.connections.get(client)
      const principal = connection?.principal ?? null
      if (connection === undefined || principal === null) continue
      const next = this.auth.refresh(principal)
      if (next === principal) continue
      connection.principal = next
      if (next === null) {
        this.live.delete(client)
        client.close()
        continue
      }
      const cut = this.pubsub.subscriptionsOf(client).filter(filter => !next.canSubscribe(parseShare(filter)?.filter ?? filter))
      if (cut.length > 0) void this.pubsub.cutSubscriptions(client, cut).catch(() => {})
    }
  }

  close (): void {
    this.removeListener()
  }
}

/** Builds the MQTT front-end's gate and installs it on the bus (every transport: TCP, TLS, WebSocket). */
export function installMqttGate (pubsub: PubSub, auth: AuthService, settings: MqttSecuritySettings, security: SecurityCounters, certificateName?: CertificateName): MqttFrontGate {
  const gate = new MqttFrontGate(pubsub, auth, settings, security, certificateName)
  pubsub.setMqttGate(gate)
  return gate
}

/** The settings of README's MQTT limits, from the configuration (src/config.ts). */
export function mqttSecuritySettings (config: {
  mqttDenyDisconnect: boolean
  mqttMaxPacketSize: number
  mqttMaxConnections: number
  mqttMaxConnectionsPerUser: number
  mqttConnectRate: number
  mqttMaxInflight: number
  mqttMaxWaiting: number
}): MqttSecuritySettings {
  return {
    denyDisconnect: config.mqttDenyDisconnect,
    maxPacketSize: config.mqttMaxPacketSize,
    maxConnections: config.mqttMaxConnections,
    maxConnectionsPerUser: config.mqttMaxConnectionsPerUser,
    connectRate: config.mqttConnectRate,
    maxInflight: config.mqttMaxInflight,
    maxWaiting: config.mqttMaxWaiting
  }
}
