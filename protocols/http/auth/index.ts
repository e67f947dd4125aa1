import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import type { AuthResult, AuthService, Principal } from '../../../engines/auth/types.js'
import type { SecurityCounters } from '../../security-metrics.js'
import { problem, sendProblem } from '../problem.js'
import { accessOf, actionsOf, isOpen, isRule, type RouteAccess } from './declare.js'
import { compileCheck, compileResultsFilter, nameDecider } from './enforce.js'
import { Authenticator, CHALLENGE } from './credentials.js'
import { corsPolicy, registerPreflight, securityHeadersHook } from './headers.js'
import { RateLimiter } from '../../rate-limit.js'
import { principalKey, SseSessions, type StreamRules } from './sse-sessions.js'
import { Tickets } from './tickets.js'

export interface HttpSecurityOptions {
  auth: AuthService
  security: SecurityCounters
  /** Requests per second per principal (burst of the same size); 0 = no limit. */
  httpRateLimit: number
  sseMaxStreams: number
  corsOrigin: readonly string[]
  /** The server speaks HTTPS: Strict-Transport-Security is sent. */
  tls: boolean
  /** The CN of a verified client certificate on a socket (protocols/tls-identity.ts). */
  peerCommonName: (socket: unknown) => string | undefined
  now: () => number
}

/** What the auth routes (routes/auth.ts) and SseStream use. */
export interface HttpSecurity {
  auth: AuthService
  tickets: Tickets
  sessions: SseSessions
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The HTTP security front (installHttpSecurity); absent on an app built without it. */
    httpSecurity?: HttpSecurity
  }
}

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
type SerializationHook = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => void

function append<T> (existing: T | T[] | undefined, hook: T): T[] {
  return existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook]
}

function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}

const FAILURE_DETAIL: Record<string, string> = {
  missing: 'credentials required: send Authorization: Bearer <token> or Basic <user:password>',
  invalid: 'invalid credentials',
  expired: 'the token has expired'
}

/**
 * The HTTP side of the security model, installed once on the app before any route:
 * - security headers and CORS on every answer (a global onRequest hook), and the OPTIONS preflight;
 * - per route, from its declaration (`config.acl`, compiled at onRoute): authentication in onRequest,
 *   before the body is read (credentials, a ticket on SSE routes, a client certificate, or anonymous),
 *   the rate limit, then ONE preHandler hook that checks the declared resource and action on the
 *   validated request, and a preSerialization step that cuts list answers to what the principal may use;
 * - SSE streams counted per principal and re-checked when the auth file changes (sse-sessions.ts).
 * Without an auth file nothing is authenticated or checked: only headers and the limits cost anything.
 */
export function installHttpSecurity (app: FastifyInstance, options: HttpSecurityOptions): HttpSecurity {
  const { auth, security } = options
  const cors = corsPolicy(options.corsOrigin)
  const authenticator = new Authenticator(auth, options.peerCommonName)
  const limiter = options.httpRateLimit > 0 ? new RateLimiter(options.httpRateLimit, options.now) : undefined
  const tickets = new Tickets(options.now)
  const streamRules = new WeakMap<RouteAccess, StreamRules>()
  const sessions = new SseSessions(auth, options.sseMaxStreams, security, request => {
    const acl = request.routeOptions.config.acl
    return acl !== undefined ? streamRules.get(acl) : undefined
  })
  const front: HttpSecurity = { auth, tickets, sessions }

  app.decorateRequest('principal', null)
  app.decorate('httpSecurity', front)
  app.addHook('onRequest', securityHeadersHook(cors, options.tls))
  // a body over --http-body-limit (or a route's own limit) is refused by fastify's parser: counted here
  app.addHook('onError', (_request, _reply, error, done) => {
    if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') security.limit('http_body_limit')
    done()
  })
  app.addHook('onClose', (_instance, done) => {
    sessions.dispose()
    done()
  })

  const unauthorized = (reply: FastifyReply, failure: string, detail: string): void => {
    security.authFailure('http', failure)
    void sendProblem(reply.header('www-authenticate', CHALLENGE).header('cache-control', 'no-store'), problem(401, detail))
  }

  /** Past authentication: the rate limit, then on to the route. */
  const admit = (request: FastifyRequest, reply: FastifyReply, principal: Principal | null, done: HookHandlerDoneFunction): void => {
    if (limiter !== undefined) {
      const wait = limiter.take(principalKey(principal, request))
      if (wait > 0) {
        security.limit('http_rate_limit')
        void sendProblem(reply.header('retry-after', String(wait)), problem(429, `rate limit: at most ${options.httpRateLimit} requests per second per principal (--http-rate-limit); retry after ${wait} s`))
        return
      }
    }
    done()
  }

  const settle = (request: FastifyRequest, reply: FastifyReply, result: AuthResult, done: HookHandlerDoneFunction): void => {
    if (!result.ok) {
      unauthorized(reply, result.failure, FAILURE_DETAIL[result.failure] ?? 'invalid credentials')
      return
    }
    request.principal = result.principal
    admit(request, reply, result.principal, done)
  }

  const authenticateHook = (acceptsTicket: boolean): Hook => (request, reply, done) => {
    const query = request.query as Record<string, unknown> | undefined
    if (query !== undefined && query !== null) {
      // a secret in a URL ends up in logs, proxies and browser histories: only single-use tickets go there
      if (query.token !== undefined || query.access_token !== undefined) {
        unauthorized(reply, 'invalid', 'credentials are not accepted in the URL: send an Authorization header, or use a ticket (POST /v1/auth/ticket) on an SSE route')
        return
      }
      const ticket = query.ticket
      if (ticket !== undefined) {
        if (!acceptsTicket || typeof ticket !== 'string') {
          unauthorized(reply, 'invalid', 'a ticket is accepted only on the SSE routes (pubsub subscribe, store watch, stream tail)')
          return
        }
        const use = tickets.use(ticket, pathOf(request.url))
        if (!use.ok) {
          unauthorized(reply, 'invalid', use.reason)
          return
        }
        const principal = auth.refresh(use.principal)
        if (principal === null) {
          unauthorized(reply, 'revoked', 'the credentials of this ticket were revoked or expired')
          return
        }
        settle(request, reply, { ok: true, principal }, done)
        return
      }
    }
    const result = authenticator.authenticate(request.headers.authorization, request.raw.socket)
    if (result instanceof Promise) result.then(r => { settle(request, reply, r, done) }, (err: Error) => { done(err) })
    else settle(request, reply, result, done)
  }

  const undeclared: Hook = (_request, reply) => {
    void sendProblem(reply, problem(403, 'forbidden: this route declares no access rule'))
  }

  const rateLimitByAddress: Hook = (request, reply, done) => { admit(request, reply, null, done) }

  app.addHook('onRoute', (route: RouteOptions) => {
    const access = accessOf(route.url, route.config?.acl)
    const rule = access !== undefined && isRule(access) ? access : undefined
    if (rule?.ticket === true) addTicketParameter(route)
    if (access !== undefined && isOpen(access)) return

    if (!auth.enabled) {
      if (limiter !== undefined) route.onRequest = append(route.onRequest, rateLimitByAddress)
      return
    }
    if (access === undefined) {
      route.onRequest = append(route.onRequest, undeclared)
      return
    }
    route.onRequest = append(route.onRequest, authenticateHook(rule?.ticket === true))
    if (rule === undefined) return

    const check = compileCheck(rule)
    const action = actionsOf(rule)[0]
    streamRules.set(rule, { action, check, deliver: rule.deliver === true ? nameDecider(rule) : null })
    if (check !== null) {
      const authorize: Hook = (request, reply, done) => {
        const principal = request.principal
        const denied = principal === null ? null : check(principal, request)
        if (denied === null) {
          done()
          return
        }
        security.deny('http', action)
        void sendProblem(reply, problem(403, denied))
      }
      route.preHandler = append(route.preHandler, authorize)
    }
    const cut = compileResultsFilter(rule)
    if (cut !== undefined) {
      const filterResults: SerializationHook = (request, reply, payload, done) => {
        const principal = request.principal
        done(null, principal === null || reply.statusCode !== 200 ? payload : cut(principal, payload))
      }
      route.preSerialization = append(route.preSerialization as SerializationHook | SerializationHook[] | undefined, filterResults) as RouteOptions['preSerialization']
    }
  })

  registerPreflight(app, cors)
  return front
}

/** SSE routes take `?ticket=`: the query schema (often additionalProperties: false) learns it. */
function addTicketParameter (route: RouteOptions): void {
  const schema = route.schema as { querystring?: { properties?: Record<string, unknown> } } | undefined
  if (schema?.querystring === undefined) return
  route.schema = {
    ...schema,
    querystring: {
      ...schema.querystring,
      properties: { ...schema.querystring.properties, ticket: { type: 'string', description: 'A single-use ticket from POST /v1/auth/ticket' } }
    }
  }
}
