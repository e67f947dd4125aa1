/**
 * The identity and ACL model every front-end asks (DESIGN §1: engines/auth). Engines never ask it;
 * front-ends authenticate a connection or request once, then ask its Principal for each decision.
 */

/** What a rule protects. */
export type ResourceKind = 'topic' | 'store' | 'queue' | 'stream' | 'system'

/** The actions of each resource kind, as the auth file spells them. */
export const ACTIONS = {
  topic: ['publish', 'subscribe'],
  store: ['read', 'write'],
  queue: ['push', 'receive', 'admin'],
  stream: ['append', 'read', 'admin'],
  system: ['metrics', 'dashboard', 'admin']
} as const satisfies Record<ResourceKind, readonly string[]>

export type ActionOf<R extends ResourceKind> = typeof ACTIONS[R][number]
export type Action = ActionOf<ResourceKind>

/** How a principal proved who it is. */
export type PrincipalKind = 'user' | 'token' | 'certificate' | 'anonymous' | 'open'

/** A short summary of a principal for `GET /v1/auth/whoami` and the dashboard. */
export interface PrincipalSummary {
  name: string | null
  kind: PrincipalKind
  roles: string[]
  /** The rules that apply, with %u and %c already replaced where known. */
  rules: Array<{ resource: ResourceKind, pattern: string, actions: string[], effect: 'allow' | 'deny' }>
  expiresAt: number | null
}

/**
 * Who is asking, with its rules compiled. A front-end keeps one per connection (MQTT) or gets one per
 * request (HTTP; the same object for the same credentials until the next reload, so its decision cache
 * is shared). Immutable: after a reload, `Auth.refresh()` gives the principal under the new file.
 */
export interface Principal {
  /** User, token or certificate user name; null for anonymous and open access. */
  readonly name: string | null
  readonly kind: PrincipalKind
  readonly roles: readonly string[]
  /** MQTT client id (for %c patterns); undefined outside MQTT. */
  readonly clientId: string | undefined
  /** Milliseconds since the epoch when its token expires; null when it does not. */
  readonly expiresAt: number | null
  /**
   * Whether this principal may do `action` on the resource `name` (a topic name, a key, a queue or stream
   * name; for `system`, the route's name such as "metrics"). A deny rule wins over any allow; nothing
   * allowed is denied. Cached per principal.
   */
  can (resource: ResourceKind, name: string, action: Action): boolean
  /**
   * Whether a subscription to the topic filter may be granted: some allow rule covers every topic the
   * filter matches and no deny rule covers all of them. Topics inside it that a deny rule covers are then
   * filtered at delivery with `can('topic', topic, 'subscribe')`.
   */
  canSubscribe (filter: string): boolean
  /**
   * Whether a scan over every name that starts with `prefix` may be granted for store/queue/stream
   * (same rule as canSubscribe: an allow covering the whole prefix, no deny covering all of it).
   */
  canPrefix (resource: 'store' | 'queue' | 'stream', prefix: string, action: Action): boolean
  summary (): PrincipalSummary
}

/** Why a credential was refused (front-ends map it: HTTP 401; MQTT CONNACK 0x04 / 0x05). */
export type AuthFailure = 'missing' | 'invalid' | 'expired'

export type AuthResult = { ok: true, principal: Principal } | { ok: false, failure: AuthFailure }

/**
 * The auth engine (engines/auth/auth.ts implements it). Without an auth file it is `open`: every
 * credential-less client gets a principal allowed everything (the broker only allows that on loopback or
 * with --allow-anonymous).
 */
export interface AuthService {
  /** False when no auth file is configured: everyone is allowed everything. */
  readonly enabled: boolean
  /** Incremented at every successful reload and every token expiry; front-ends compare it to drop caches. */
  readonly generation: number
  /** A client without credentials: the anonymous principal, or a 'missing' failure when the file has no `anonymous`. */
  anonymous (clientId?: string): AuthResult
  /** A user name and password, or a token name and the token itself as password (MQTT CONNECT, HTTP Basic). */
  password (name: string, password: string | Buffer, clientId?: string): Promise<AuthResult>
  /** A bearer token (HTTP Authorization: Bearer). Synchronous: tokens are looked up by their hash. */
  token (token: string, clientId?: string): AuthResult
  /** A client certificate's common name, verified by TLS against --tls-ca: the user of that name. */
  certificate (commonName: string, clientId?: string): AuthResult
  /**
   * The same identity under the current auth file: a new principal (roles or rules may have changed),
   * the same object when nothing changed for it, or null when it is revoked (user or token removed, token
   * expired, password changed, anonymous access withdrawn).
   */
  refresh (principal: Principal): Principal | null
  /** Called after every reload and token expiry (within 1 s of the change); returns the remover. */
  onChange (listener: () => void): () => void
  /** Reads the file again; throws AuthFileError (and keeps the current model) when it is malformed. */
  reload (): Promise<void>
  close (): void
}
