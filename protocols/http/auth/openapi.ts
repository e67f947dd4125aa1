import type { FastifySchema, RouteOptions } from 'fastify'
import { accessOf, actionsOf, isOpen, isRule, type NameSource, type RouteAccess } from './declare.js'

/** The OpenAPI security schemes (components.securitySchemes). */
export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'A token printed by `tetra token` (Authorization: Bearer <token>).' },
  basic: { type: 'http', scheme: 'basic', description: 'A user of the auth file and its password, or a token\'s name and the token as password.' },
  ticket: { type: 'apiKey', in: 'query', name: 'ticket', description: 'A single-use ticket from POST /v1/auth/ticket, valid 60 s, on the SSE routes only (browsers\' EventSource cannot send headers).' }
} as const

const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' } }
} as const

function problemAnswer (description: string, headers?: Record<string, { type: 'string' | 'integer', description: string }>): Record<string, unknown> {
  return { description, ...(headers !== undefined ? { headers } : {}), content: { 'application/problem+json': { schema: problemSchema } } }
}

const UNAUTHORIZED = problemAnswer('No credentials (and no anonymous access), or wrong, expired or revoked ones', {
  'WWW-Authenticate': { type: 'string', description: 'Bearer realm="tetra", Basic realm="tetra"' }
})
const FORBIDDEN = problemAnswer('The ACL does not allow this principal the action on this resource; detail names both')
const TOO_MANY = problemAnswer('--http-rate-limit (with Retry-After) or --sse-max-streams reached for this principal', {
  'Retry-After': { type: 'integer', description: 'Seconds until a request is allowed again' }
})

function describeName (source: NameSource): string {
  if ('fixed' in source) return `"${source.fixed}"`
  if ('one' in source) return `${source.one}.${source.field}`
  if ('each' in source) return `each of ${source.each}.${source.field}${source.key !== undefined ? `[].${source.key}` : '[]'}`
  if ('prefix' in source) return `every name starting with ${source.prefix}.${source.field}`
  if ('filters' in source) return `the topic filters ${source.filters}.${source.field}`
  return source.doc
}

/** The declaration as the document shows it (`x-tetra-acl`); README's table follows it. */
export function describeAccess (access: RouteAccess | undefined): Record<string, unknown> {
  if (access === undefined) return { undeclared: true }
  if (isOpen(access)) return { open: access.open }
  if (!isRule(access)) return { authenticated: access.authenticated }
  return {
    resource: access.resource,
    actions: actionsOf(access),
    name: access.name !== undefined ? describeName(access.name) : 'none (a list: the answer holds only what the principal may use)',
    ...(access.results !== undefined ? { results: `${access.results.array}[] cut to the items whose ${access.results.field} the principal may use` } : {}),
    ...(access.deliver === true ? { deliver: 'each event checked at delivery' } : {}),
    ...(access.ticket === true ? { ticket: true } : {})
  }
}

/**
 * @fastify/swagger's transform: every operation gets its `security` (none for open routes), its 401, 403
 * and 429 answers as problem+json and `x-tetra-acl`, all from the route's declaration.
 */
export function openApiTransform ({ schema, url, route }: { schema: FastifySchema, url: string, route: RouteOptions }): { schema: FastifySchema, url: string } {
  if (schema === undefined || schema === null || (schema as { hide?: boolean }).hide === true) return { schema, url }
  const access = accessOf(url, route.config?.acl)
  const out: Record<string, unknown> = { ...schema, 'x-tetra-acl': describeAccess(access) }
  if (access !== undefined && isOpen(access)) {
    out.security = []
    return { schema: out, url }
  }
  const ticket = access !== undefined && isRule(access) && access.ticket === true
  out.security = [{ bearer: [] }, { basic: [] }, ...(ticket ? [{ ticket: [] }] : [])]
  const answers = (schema.response ?? { 200: { description: 'Default Response', type: 'null' } }) as Record<string, unknown>
  const canDeny = access === undefined || (isRule(access) && access.name !== undefined)
  out.response = { ...answers, 401: UNAUTHORIZED, ...(canDeny ? { 403: FORBIDDEN } : {}), 429: TOO_MANY }
  return { schema: out, url }
}
