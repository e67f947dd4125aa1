import type { AuthFailure, AuthService, Principal } from '../../engines/auth/types.js'
import type { LimitName, SecurityCounters } from '../security-metrics.js'
import { ConnectRate, isLoopback } from './connect-rate.js'

/**
 * The MQTT front-end's decisions (README "Security / MQTT"): who may connect (credentials, connection caps,
 * connect rate), publish, subscribe and receive, and what happens to open connections when the auth file
 * changes. Each connection keeps its Principal, which caches its own decisions per topic: a PUBLISH or a
 * delivery costs one map lookup.
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
  /** --mqtt-max-waiting: messages of a connected clean-session client waiting for a free in-flight slot; 0: no cap. */
  maxWaiting: number
  /**
   * Whether clients on loopback (127.0.0.0/8, ::1) are rate-limited too (default false: local tools,
   * sidecars and benchmarks open many connections from there, and a local client can already do anything).
   */
  rateLimitLoopback?: boolean
}

/** A connection as the gate sees it (protocols/mqtt/connection.ts). */
export interface GatePeer {
  readonly address: string
  readonly clientId: string
  /** The client certificate's CN when TLS verified one. */
  readonly certificateName: string | undefined
  /** Set once authenticated; null after revocation. */
  principal: Principal | null
  /** Its principal is gone (user removed, password changed, token expired): the connection ends. */
  revoke (): void
  /** Its principal's rules changed: subscriptions they no longer allow are cut, the connection stays. */
  rulesChanged (principal: Principal): void
}

/** Why a CONNECT was refused by the gate; the connection maps it to its protocol's code. */
export type ConnectDenial = 'bad-credentials' | 'not-authorized' | 'per-user' | 'unavailable'

interface Admission {
  admitted: boolean
  /** The key of its per-user count (named principals only). */
  user: string | null
}

export class MqttGate {
  private readonly admissions = new WeakMap<GatePeer, Admission>()
  /** Authenticated, connected peers: the ones revocation walks through. */
  private readonly live = new Set<GatePeer>()
  private admitted = 0
  private readonly perUser = new Map<string, number>()
  private readonly rate: ConnectRate
  private readonly removeListener: () => void

  constructor (
    private readonly auth: AuthService,
    readonly settings: MqttSecuritySettings,
    private readonly security: SecurityCounters
  ) {
    this.rate = new ConnectRate(settings.connectRate)
    this.removeListener = auth.onChange(() => { this.revalidate() })
  }

  get enabled (): boolean { return this.auth.enabled }

  limit (name: LimitName): void { this.security.limit(name) }

  /**
   * Connect rate per address, then the total cap, before any credential is checked (a flood costs no
   * password hashing): the limit that refused, or null (admitted, counted until leave()).
   */
  admit (peer: GatePeer): LimitName | null {
    const limited = this.settings.rateLimitLoopback === true || !isLoopback(peer.address)
    let refused: LimitName | null = null
    if (limited && !this.rate.take(peer.address)) refused = 'mqtt_connect_rate'
    else if (this.settings.maxConnections > 0 && this.admitted >= this.settings.maxConnections) refused = 'mqtt_max_connections'
    if (refused !== null) {
      this.security.limit(refused)
      return refused
    }
    this.admitted++
    this.admissions.set(peer, { admitted: true, user: null })
    return null
  }

  /** The connection ended: its places in the counts are given back. */
  leave (peer: GatePeer): void {
    this.live.delete(peer)
    const admission = this.admissions.get(peer)
    if (admission === undefined) return
    this.admissions.delete(peer)
    if (admission.admitted) this.admitted--
    if (admission.user !== null) {
      const left = (this.perUser.get(admission.user) ?? 1) - 1
      if (left <= 0) this.perUser.delete(admission.user)
      else this.perUser.set(admission.user, left)
    }
  }

  /**
   * CONNECT's credentials: user name + password (or token name + token) -> a user or token; none -> the
   * TLS client certificate's user when TLS verified one, else anonymous. `replacing(user)`: whether the
   * connection takes over a connected session of the same user (MQTT-3.1.4-2), which is not refused by
   * the per-user cap since the old one is about to go.
   */
  async authenticate (peer: GatePeer, username: string | undefined, password: Buffer | undefined, replacing: (user: string) => boolean): Promise<ConnectDenial | null> {
    let result: { principal: Principal } | { failure: AuthFailure }
    try {
      result = await this.identify(peer, username, password)
    } catch {
      return 'unavailable'
    }
    if ('failure' in result) {
      this.security.authFailure('mqtt', result.failure)
      return result.failure === 'missing' ? 'not-authorized' : 'bad-credentials'
    }
    const admission = this.admissions.get(peer)
    if (admission === undefined) return 'not-authorized'
    const principal = result.principal
    const user = principal.name !== null && principal.kind !== 'anonymous' && principal.kind !== 'open' ? `${principal.kind}:${principal.name}` : null
    if (user !== null && this.settings.maxConnectionsPerUser > 0 && (this.perUser.get(user) ?? 0) >= this.settings.maxConnectionsPerUser && !replacing(user)) {
      this.security.limit('mqtt_max_connections_per_user')
      return 'per-user'
    }
    if (user !== null) this.perUser.set(user, (this.perUser.get(user) ?? 0) + 1)
    admission.user = user
    peer.principal = principal
    this.live.add(peer)
    return null
  }

  /** The per-user key of an authenticated peer (for the takeover check). */
  userOf (peer: GatePeer): string | null {
    return this.admissions.get(peer)?.user ?? null
  }

  private async identify (peer: GatePeer, username: string | undefined, password: Buffer | undefined): Promise<{ principal: Principal } | { failure: AuthFailure }> {
    const clientId = peer.clientId
    if (username !== undefined && password !== undefined) {
      const result = await this.auth.password(username, password, clientId)
      return result.ok ? { principal: result.principal } : { failure: result.failure }
    }
    // a password without a user name (MQTT 5 allows it; 3.1.1 was refused at CONNECT) proves nothing either
    if (password !== undefined && this.auth.enabled) return { failure: 'invalid' }
    if (peer.certificateName !== undefined) {
      const result = this.auth.certificate(peer.certificateName, clientId)
      return result.ok ? { principal: result.principal } : { failure: result.failure }
    }
    // a user name alone proves nothing
    if (username !== undefined && this.auth.enabled) return { failure: 'invalid' }
    const result = this.auth.anonymous(clientId)
    return result.ok ? { principal: result.principal } : { failure: result.failure }
  }

  // ---- decisions ----------------------------------------------------------------------------------------

  /** A PUBLISH or a will; a denial is counted. */
  canPublish (peer: GatePeer, topic: string): boolean {
    if (!this.auth.enabled) return true
    if (peer.principal !== null && peer.principal.can('topic', topic, 'publish')) return true
    this.security.deny('mqtt', 'publish')
    return false
  }

  /** One filter of a SUBSCRIBE (a $share's inner filter): refused unless an allow rule covers all of it. */
  canSubscribe (peer: GatePeer, filter: string): boolean {
    if (!this.auth.enabled) return true
    if (peer.principal !== null && peer.principal.canSubscribe(filter)) return true
    this.security.deny('mqtt', 'subscribe')
    return false
  }

  /** Each message to a client, so that a deny rule inside an allowed wildcard is honoured. */
  canReceive (peer: GatePeer, topic: string): boolean {
    if (!this.auth.enabled) return true
    return peer.principal !== null && peer.principal.can('topic', topic, 'subscribe')
  }

  // ---- revocation ---------------------------------------------------------------------------------------

  /**
   * After every reload and token expiry: each connection's principal under the file in force. Revoked: the
   * connection closes (its will is not published: its principal is gone). Changed: the new rules apply from
   * now on, and subscriptions they no longer allow are cut. Unchanged: nothing happens.
   */
  private revalidate (): void {
    for (const peer of [...this.live]) {
      const principal = peer.principal
      if (principal === null) continue
      const next = this.auth.refresh(principal)
      if (next === principal) continue
      peer.principal = next
      if (next === null) {
        this.live.delete(peer)
        peer.revoke()
      } else peer.rulesChanged(next)
    }
  }

  close (): void {
    this.removeListener()
  }
}
