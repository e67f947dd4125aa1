import type { FastifyRequest } from 'fastify'
import type { ActionOf, Principal, ResourceKind } from '../../../engines/auth/types.js'

/**
 * What a route needs of the ACL, declared beside its schema as `config: { acl: ... }` (DESIGN §7
 * "Declare, then enforce once"). One hook enforces it (enforce.ts); the OpenAPI document's `security`,
 * its 401/403/429 answers and `x-tetra-acl` are generated from it (openapi.ts), so they cannot drift.
 */
export type RouteAccess = OpenAccess | AuthenticatedAccess | RuleAccess

/** No credentials asked (probes, the CORS preflight, the MQTT WebSocket that authenticates at CONNECT). */
export interface OpenAccess { open: string }

/** Any principal the auth file accepts (anonymous too when the file allows anonymous access). */
export interface AuthenticatedAccess { authenticated: string }

/** Where the request names what it touches; the part is read after validation (the preHandler hook). */
export type RequestPart = 'params' | 'query' | 'body'

export type NameSource =
  /** One name: a path parameter ('*' for the wildcard), a query parameter or a body field. */
  | { one: RequestPart, field: string }
  /** Several names: a list of strings, or of objects whose `key` field is the name (mget, mset). */
  | { each: RequestPart, field: string, key?: string }
  /** A scan of every name starting with it (absent: ''), granted by Principal.canPrefix. */
  | { prefix: RequestPart, field: string }
  /** MQTT topic filters (a string or a list), granted by Principal.canSubscribe. */
  | { filters: RequestPart, field: string }
  /** A fixed name: the system routes ('metrics', 'dashboard'). */
  | { fixed: string }
  /** A name the request gives less plainly (a key before /incr, an index's prefix); described in `doc`. */
  | { resolve: (request: FastifyRequest) => Target, doc: string }

/** What a resolver found: one name or a prefix. */
export type Target = { name: string } | { prefix: string }

interface RuleOf<R extends ResourceKind> {
  resource: R
  /** The action needed; a list means any one of them. */
  action: ActionOf<R> | ReadonlyArray<ActionOf<R>>
  /** Absent: a list route, callable by any principal, whose answer is cut to what it may see (`results`). */
  name?: NameSource
  /** The answer's list (`array` of objects) is cut to the items whose `field` the principal may use. */
  results?: { array: string, field: string, prefix?: boolean }
  /** SSE: every event is checked at delivery against the name it concerns (SseStream.permits). */
  deliver?: boolean
  /** SSE: a `?ticket=` from POST /v1/auth/ticket stands in for credentials (browsers' EventSource). */
  ticket?: boolean
}

export type RuleAccess = { [R in ResourceKind]: RuleOf<R> }[ResourceKind]

declare module 'fastify' {
  interface FastifyContextConfig {
    acl?: RouteAccess
  }
  interface FastifyRequest {
    /** Who is asking; null when auth is off (no auth file: everyone is allowed everything) or on open routes. */
    principal: Principal | null
  }
}

export const isOpen = (a: RouteAccess): a is OpenAccess => 'open' in a
export const isRule = (a: RouteAccess): a is RuleAccess => 'resource' in a

/** The actions of a rule as a list. */
export function actionsOf (rule: RuleAccess): readonly string[] {
  return typeof rule.action === 'string' ? [rule.action] : rule.action
}

/** Every queue action: what GET one queue asks (any of them). */
export const QUEUE_ANY = ['push', 'receive', 'admin'] as const
/** Every stream action: what listing streams asks (any of them). */
export const STREAM_ANY = ['append', 'read', 'admin'] as const

/**
 * Routes that plugins register, which cannot carry a declaration: by path prefix. Swagger UI's pages
 * and files under /docs go with the document they show; /mqtt authenticates at MQTT CONNECT.
 */
export const PLUGIN_ROUTES: ReadonlyArray<{ prefix: string, access: RouteAccess }> = [
  { prefix: '/docs', access: { authenticated: 'the API documentation (Swagger UI)' } },
  { prefix: '/mqtt', access: { open: 'MQTT over WebSocket: the MQTT CONNECT authenticates' } }
]

/** The declaration of a route: its own, a plugin route's, or undefined (then every request is refused). */
export function accessOf (url: string, declared: RouteAccess | undefined): RouteAccess | undefined {
  if (declared !== undefined) return declared
  for (const p of PLUGIN_ROUTES) if (url === p.prefix || url.startsWith(p.prefix + '/')) return p.access
  return undefined
}
