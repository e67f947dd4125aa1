import type { FastifyInstance } from 'fastify'
import type { HttpContext } from '../app.js'
import { NotFound } from '../../../engines/errors.js'

/** What the MQTT front-end knows of a connected client that the bus does not (src/server.ts hands it in). */
export interface MqttClientDetails {
  /** 3, 4 (3.1.1) or 5. */
  version: number
  address: string
  user: string | null
  transport: string
  /** Seconds, as granted at CONNECT; absent while the front-end does not tell it. */
  keepAlive?: number
}

/** The MQTT front-end as the operator routes see it: a client's details, and disconnecting it. */
export interface MqttDirectory {
  details: (clientId: string) => MqttClientDetails | undefined
  /** Ends the client's connection (MQTT 5: DISCONNECT 0x98 Administrative action); false when not connected. */
  disconnect: (clientId: string) => boolean
}

/** MQTT 5 reason code 0x98: the connection was ended by an administrative action. */
const ADMINISTRATIVE_ACTION = 0x98

/** A directory over the MQTT front-end's connections (protocols/mqtt/front-end.ts's client()). */
export function mqttDirectory (front: {
  client: (clientId: string) => { version: number, address: string, transport: string, keepAlive?: number, principal: { name: string | null } | null, fail: (code: number, reason: string) => void } | undefined
}): MqttDirectory {
  return {
    details: id => {
      const c = front.client(id)
      if (c === undefined) return undefined
      return { version: c.version, address: c.address, user: c.principal?.name ?? null, transport: c.transport, ...(c.keepAlive !== undefined ? { keepAlive: c.keepAlive } : {}) }
    },
    disconnect: id => {
      const c = front.client(id)
      if (c === undefined) return false
      c.fail(ADMINISTRATIVE_ACTION, 'disconnected by an operator')
      return true
    }
  }
}

/**
 * Routes for operators (and the dashboard) to look into the MQTT sessions with their connections, and to
 * disconnect one. (A queue's next messages without leasing them: GET /v1/queues/{name}/peek, queues.ts.)
 */
export function registerInspectRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { pubsub } = ctx.engines

  app.get('/v1/pubsub/clients', {
    config: { acl: { resource: 'system', action: 'dashboard', name: { fixed: 'dashboard' } } },
    schema: {
      tags: ['pubsub'],
      summary: 'MQTT sessions, connected or waiting offline, with their connection when connected',
      description: 'version 4 is MQTT 3.1.1, 5 is MQTT 5.0. expiryInterval in seconds (4294967295: never).',
      response: {
        200: {
          type: 'object',
          properties: {
            clients: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  clientId: { type: 'string' },
                  connected: { type: 'boolean' },
                  subscriptions: { type: 'integer' },
                  inflight: { type: 'integer' },
                  queued: { type: 'integer' },
                  expiryInterval: { type: 'integer' },
                  version: { type: 'integer' },
                  address: { type: 'string' },
                  user: { type: ['string', 'null'] },
                  transport: { type: 'string' },
                  keepAlive: { type: 'integer', description: 'seconds, as granted at CONNECT' }
                }
              }
            }
          }
        }
      }
    }
  }, async (_request, reply) => {
    void reply.header('cache-control', 'no-store')
    return {
      clients: pubsub.clients().map(s => ({ ...s, ...(s.connected ? ctx.mqtt?.details(s.clientId) : undefined) }))
    }
  })

  app.delete<{ Params: { id: string } }>('/v1/pubsub/clients/:id', {
    config: { acl: { resource: 'system', action: 'admin', name: { fixed: 'clients' } } },
    schema: {
      tags: ['pubsub'],
      summary: 'Disconnect an MQTT client (MQTT 5: DISCONNECT 0x98 Administrative action); its session stays as its expiry says',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 65535 } } }
    }
  }, async (request, reply) => {
    if (ctx.mqtt?.disconnect(request.params.id) !== true) throw new NotFound(`no MQTT client "${request.params.id}" is connected`)
    return await reply.code(204).send()
  })
}
