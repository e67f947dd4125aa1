import type { FastifyInstance } from 'fastify'
import type { HttpContext } from '../app.js'
import type { BusMessage, QoS } from '../../../engines/pubsub/pubsub.js'
import { decodePayload, encodePayload, encodingSchema, type PayloadEncoding } from '../payload.js'
import { SseStream } from '../sse.js'

/** A reader that falls this far behind loses messages (QoS 0 semantics) instead of growing the heap. */
const SSE_MAX_BUFFERED_BYTES = 8 * 1024 * 1024

const messageSchema = {
  type: 'object',
  properties: {
    topic: { type: 'string' },
    payload: {},
    encoding: { type: 'string', enum: ['base64', 'utf8'] },
    qos: { type: 'integer' },
    retain: { type: 'boolean' }
  }
} as const

function messageJson (m: BusMessage): Record<string, unknown> {
  return { topic: m.topic, ...encodePayload(m.payload), qos: m.qos, retain: m.retain }
}

interface PublishBody { topic: string, payload: unknown, encoding?: PayloadEncoding, qos?: QoS, retain?: boolean }
interface FilterQuery { filter: string[], retained?: boolean }

export function registerPubSubRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { pubsub } = ctx.engines

  app.post<{ Body: PublishBody }>('/v1/pubsub/publish', {
    config: { acl: { resource: 'topic', action: 'publish', name: { one: 'body', field: 'topic' } } },
    schema: {
      tags: ['pubsub'],
      summary: 'Publish a message to an MQTT topic',
      description: 'Reaches MQTT (TCP and WebSocket) and SSE subscribers with MQTT semantics. A retained publish with an empty payload (payload "" with encoding "utf8") clears the retained message.',
      body: {
        type: 'object',
        required: ['topic', 'payload'],
        additionalProperties: false,
        properties: {
          topic: { type: 'string', minLength: 1 },
          payload: {},
          encoding: encodingSchema,
          qos: { type: 'integer', enum: [0, 1, 2] },
          retain: { type: 'boolean' }
        }
      },
      response: { 200: { type: 'object', properties: { topic: { type: 'string' }, bytes: { type: 'integer' } } } }
    }
  }, async (request) => {
    const { topic, encoding, qos, retain } = request.body
    const payload = decodePayload(request.body.payload, encoding)
    await pubsub.publish({ topic, payload, qos: qos ?? 0, retain: retain ?? false }, 'http')
    return { topic, bytes: payload.length }
  })

  const filterQuery = {
    type: 'object',
    required: ['filter'],
    additionalProperties: false,
    properties: {
      filter: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 100 },
      retained: { type: 'boolean' }
    }
  } as const

  app.get<{ Querystring: FilterQuery }>('/v1/pubsub/subscribe', {
    config: { acl: { resource: 'topic', action: 'subscribe', name: { filters: 'query', field: 'filter' }, deliver: true, ticket: true } },
    schema: {
      tags: ['pubsub'],
      summary: 'Subscribe to topic filters over Server-Sent Events',
      description: 'One event per message: data is JSON {topic, payload, encoding?, qos, retain}. Retained messages come first unless retained=false. Heartbeat comments keep the stream open.',
      querystring: filterQuery,
      produces: ['text/event-stream']
    }
  }, async (request, reply) => {
    const filters = request.query.filter.map(f => pubsub.validateFilter(f))
    const sse = new SseStream(request, reply, ctx.options.sseHeartbeatMs)
    ctx.metrics.sseClients.inc({ feed: 'pubsub' })
    sse.onClose(() => { ctx.metrics.sseClients.dec({ feed: 'pubsub' }) })
    // live messages that arrive while retained ones are being read wait here, to keep retained first
    let backlog: BusMessage[] | null = []
    const send = (m: BusMessage): void => {
      if (sse.closed || !sse.permits(m.topic)) return
      if (reply.raw.writableLength > SSE_MAX_BUFFERED_BYTES) return
      sse.send({ data: JSON.stringify(messageJson(m)) })
      ctx.metrics.sseEvents.pubsub++
    }
    const unsubscribe = await pubsub.subscribe(filters, m => {
      if (backlog !== null) backlog.push(m)
      else send(m)
    })
    sse.onClose(unsubscribe)
    if (request.query.retained !== false) {
      for (const m of await pubsub.retained(filters)) send(m)
    }
    const waiting = backlog
    backlog = null
    for (const m of waiting) send(m)
  })

  app.get<{ Querystring: { filter: string[] } }>('/v1/pubsub/retained', {
    config: { acl: { resource: 'topic', action: 'subscribe', name: { filters: 'query', field: 'filter' }, results: { array: 'messages', field: 'topic' } } },
    schema: {
      tags: ['pubsub'],
      summary: 'Retained messages whose topics match the filters',
      querystring: { ...filterQuery, properties: { filter: filterQuery.properties.filter } },
      response: { 200: { type: 'object', properties: { messages: { type: 'array', items: messageSchema } } } }
    }
  }, async (request) => {
    const filters = request.query.filter.map(f => pubsub.validateFilter(f))
    const messages = await pubsub.retained(filters)
    return { messages: messages.map(messageJson) }
  })
}
