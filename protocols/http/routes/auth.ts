import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Principal } from '../../../engines/auth/types.js'
import { TooManyRequests, Unauthorized } from '../../../engines/errors.js'
import type { HttpSecurity } from '../auth/index.js'
import { TICKET_TTL_SECONDS } from '../auth/tickets.js'

const ruleSchema = {
  type: 'object',
  properties: {
    resource: { type: 'string' },
    pattern: { type: 'string' },
    actions: { type: 'array', items: { type: 'string' } },
    effect: { type: 'string', enum: ['allow', 'deny'] }
  }
} as const

const tags = ['auth']

/** /v1/auth: who am I, and single-use tickets for EventSource. */
export function registerAuthRoutes (app: FastifyInstance, front: HttpSecurity): void {
  /** The request's principal; without an auth file, the open principal (everyone may do everything). */
  const principalOf = (request: FastifyRequest): Principal => {
    if (request.principal !== null) return request.principal
    const anonymous = front.auth.anonymous()
    if (!anonymous.ok) throw new Unauthorized('credentials required')
    return anonymous.principal
  }

  app.post<{ Body: { path?: string } | undefined }>('/v1/auth/ticket', {
    config: { acl: { authenticated: 'any principal: the ticket carries its own identity, no more' } },
    preValidation: (request, _reply, done) => {
      if (request.body === undefined || request.body === null) request.body = {}
      done()
    },
    schema: {
      tags,
      summary: 'A single-use ticket for one SSE request (browsers\' EventSource cannot send headers)',
      description: `Pass it as ?ticket= on an SSE route (GET /v1/pubsub/subscribe, /v1/store/watch, /v1/streams/{name}/tail): it stands for the credentials of this request, once, within ${TICKET_TTL_SECONDS} s. With path, only on that path. A used, expired or foreign ticket gets 401. Tokens and passwords never go in a URL.`,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { path: { type: 'string', pattern: '^/', maxLength: 4096, description: 'The SSE path it is for, e.g. /v1/pubsub/subscribe (a query part is ignored)' } }
      },
      response: { 200: { type: 'object', properties: { ticket: { type: 'string' }, expiresIn: { type: 'integer', description: 'seconds' } } } }
    }
  }, async (request, reply) => {
    const path = request.body?.path
    const ticket = front.tickets.issue(principalOf(request), path === undefined ? undefined : path.split('?')[0])
    if (ticket === undefined) throw new TooManyRequests('too many tickets outstanding; use the ones issued, or wait a minute')
    void reply.header('cache-control', 'no-store')
    return { ticket, expiresIn: TICKET_TTL_SECONDS }
  })

  app.get('/v1/auth/whoami', {
    config: { acl: { authenticated: 'any principal: it tells the client who it is' } },
    schema: {
      tags,
      summary: 'Who this request is, and the rules that apply to it',
      description: 'kind: user, token, certificate, anonymous, or open (no auth file: everything is allowed). rules have %u and %c replaced. expiresAt: ms since the epoch for a token that expires.',
      response: {
        200: {
          type: 'object',
          properties: {
            name: { type: ['string', 'null'] },
            kind: { type: 'string' },
            roles: { type: 'array', items: { type: 'string' } },
            rules: { type: 'array', items: ruleSchema },
            expiresAt: { type: ['integer', 'null'] }
          }
        }
      }
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store')
    return principalOf(request).summary()
  })
}
