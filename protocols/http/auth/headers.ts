import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { problem, sendProblem } from '../problem.js'

/** The methods of the API, for Allow and Access-Control-Allow-Methods. */
export const METHODS = 'GET, HEAD, PUT, POST, DELETE, OPTIONS'
/** Request headers a browser may send cross-origin (beyond the CORS-safelisted ones). */
export const ALLOWED_HEADERS = 'Authorization, Content-Type, If-Match, If-None-Match, Last-Event-ID'
/** Answer headers a browser's script may read: every header the routes set (grep reply.header) and the auth ones. */
export const EXPOSED_HEADERS = 'ETag, Tetra-TTL, Tetra-Next, Link, Retry-After, WWW-Authenticate'
/** How long a browser may keep a preflight's answer (seconds). */
const PREFLIGHT_MAX_AGE = '600'
/** One year, as HSTS preload lists ask. */
const HSTS = 'max-age=31536000'

/** --cors-origin: undefined = same-origin only (no CORS header at all); '*' = any origin. */
export interface CorsPolicy { any: boolean, origins: ReadonlySet<string> }

export function corsPolicy (list: readonly string[]): CorsPolicy | undefined {
  if (list.length === 0) return undefined
  // an origin is scheme://host[:port], compared as the browser sends it (no trailing slash)
  return { any: list.includes('*'), origins: new Set(list.filter(o => o !== '*').map(o => o.replace(/\/+$/, ''))) }
}

function allowedOrigin (cors: CorsPolicy | undefined, origin: string | undefined): string | undefined {
  if (cors === undefined || origin === undefined) return undefined
  if (cors.any) return '*'
  return cors.origins.has(origin) ? origin : undefined
}

/**
 * Security headers on every answer, and the CORS answer headers for an allowed origin. They are set on
 * the raw response so that SSE streams, which take the reply over, carry them too (node merges them into
 * writeHead). Strict-Transport-Security only over TLS: on plain HTTP it would be ignored, or worse, pin
 * a host that has no HTTPS.
 */
export function securityHeadersHook (cors: CorsPolicy | undefined, tls: boolean): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  return (request, reply, done) => {
    const raw = reply.raw
    raw.setHeader('x-content-type-options', 'nosniff')
    raw.setHeader('referrer-policy', 'no-referrer')
    raw.setHeader('x-frame-options', 'DENY')
    if (tls) raw.setHeader('strict-transport-security', HSTS)
    if (cors !== undefined) {
      const allowed = allowedOrigin(cors, request.headers.origin)
      if (allowed !== undefined) {
        raw.setHeader('access-control-allow-origin', allowed)
        raw.setHeader('access-control-expose-headers', EXPOSED_HEADERS)
      }
      // the answer depends on Origin whenever origins are listed one by one (caches must not mix them)
      if (!cors.any) raw.setHeader('vary', 'Origin')
    }
    done()
  }
}

/**
 * OPTIONS on any path: a CORS preflight (Origin and Access-Control-Request-Method) from an allowed
 * origin gets 204 with the methods, headers and max age; from any other origin 403 (without CORS
 * headers the browser refuses the request). A plain OPTIONS gets 204 with Allow (RFC 9110 9.3.7).
 */
export function registerPreflight (app: FastifyInstance, cors: CorsPolicy | undefined): void {
  app.options('/*', { schema: { hide: true }, config: { acl: { open: 'CORS preflight (browsers send no credentials with it)' } } }, async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined || request.headers['access-control-request-method'] === undefined) {
      return await reply.code(204).header('allow', METHODS).send()
    }
    if (allowedOrigin(cors, origin) === undefined) {
      return await sendProblem(reply, problem(403, `origin ${JSON.stringify(origin.slice(0, 200))} may not call this API from a browser (--cors-origin)`))
    }
    return await reply.code(204)
      .header('access-control-allow-methods', METHODS)
      .header('access-control-allow-headers', ALLOWED_HEADERS)
      .header('access-control-max-age', PREFLIGHT_MAX_AGE)
      .send()
  })
}
