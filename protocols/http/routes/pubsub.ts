import type { FastifyInstance } from 'fastify'
import type { HttpContext } from '../app.js'
import type { BusMessage, QoS } from '../../../engines/pubsub/pubsub.js'
import type { MessageProperties } from '../../../engines/pubsub/types.js'
import { decodePayload, encodePayload, encodingSchema, type PayloadEncoding } from '../payload.js'
import { SseStream } from '../sse.js'
import { expiryOutSchema, propertiesBodySchema, propertiesFromBody, propertiesJson, propertiesOutSchema, type PropertiesBody } from './pubsub-properties.js'

/** A reader that falls this far behind loses messages (QoS 0 semantics) instead of growing the heap. */
const SSE_MAX_BUFFERED_BYTES = 8 * 1024 * 1024

const messageSchema = {
  type: 'object',
  properties: {
    topic: { type: 'string' },
    payload: {},
    encoding: { type: 'string', enum: ['base64', 'utf8'] },
    qos: { type: 'integer' },
    retain: { type: 'boolean' },
    ...propertiesOutSchema,
    ...expiryOutSchema
  }
} as const

/** A bus message as the bus hands it out, once the MQTT 5 bus carries properties and expiry (types.ts). */
type MessageOut = BusMessage & { properties?: MessageProperties, expiresAt?: number }

/** {topic, payload, encoding?, qos, retain} and, only when the message has them, its MQTT 5 properties. */
function messageJson (m: MessageOut, now: number): Record<string, unknown> {
  const out: Record<string, unknown> = { topic: m.topic, ...encodePayload(m.payload), qos: m.qos, retain: m.retain }
  const properties = propertiesJson(m.properties, m.expiresAt, now)
  return properties === undefined ? out : Object.assign(out, properties)
}

interface PublishBody extends PropertiesBody { topic: string, payload: unknown, encoding?: PayloadEncoding, qos?: QoS, retain?: boolean }

/** What the bus's publish() takes from HTTP: the message and, for MQTT 5 subscribers, its properties and expiry. */
interface PublishInput { topic: string, payload: Buffer, qos: QoS, retain: boolean, properties?: MessageProperties, messageExpiry?: number }

const PUBLISH_EXAMPLES = [
  { topic: 'sensors/kitchen/temp', payload: { celsius: 21.5 }, qos: 1, retain: true },
  {
    topic: 'devices/42/cmd',
    payload: { action: 'reboot' },
    qos: 1,
    contentType: 'application/json',
    payloadFormat: 1,
    responseTopic: 'devices/42/reply',
    correlationData: 'req-7f3a',
    userProperties: { origin: 'ops-console', trace: ['a1', 'b2'] },
    messageExpiry: 60
  },
  { topic: 'devices/42/blob', payload: 'AAEC/w==', encoding: 'base64', correlationData: '3q2+7w==', correlationEncoding: 'base64' }
]
interface FilterQuery { filter: string[], retained?: boolean }

export function registerPubSubRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { pubsub, clock } = ctx.engines

  app.post<{ Body: PublishBody }>('/v1/pubsub/publish', {
    config: { acl: { resource: 'topic', action: 'publish', name: { one: 'body', field: 'topic' } } },
    schema: {
      tags: ['pubsub'],
      summary: 'Publish a message to an MQTT topic',
      description: 'Reaches MQTT (TCP and WebSocket) and SSE subscribers with MQTT semantics. A retained publish with an empty payload (payload "" with encoding "utf8") clears the retained message. The MQTT 5 publish properties (payloadFormat, contentType, responseTopic, correlationData, userProperties, messageExpiry) travel with the message to MQTT 5 subscribers, SSE readers, retained reads and stream captures; MQTT 3.1.1 subscribers get the message without them.',
      body: {
        type: 'object',
        required: ['topic', 'payload'],
        additionalProperties: false,
        properties: {
          topic: { type: 'string', minLength: 1 },
          payload: {},
          encoding: encodingSchema,
          qos: { type: 'integer', enum: [0, 1, 2] },
          retain: { type: 'boolean' },
          ...propertiesBodySchema
        },
        examples: PUBLISH_EXAMPLES
      },
      response: { 200: { type: 'object', properties: { topic: { type: 'string' }, bytes: { type: 'integer' } } } }
    }
  }, async (request) => {
    const { topic, encoding, qos, retain } = request.body
    const payload = decodePayload(request.body.payload, encoding)
    const input: PublishInput = { topic, payload, qos: qos ?? 0, retain: retain ?? false, ...propertiesFromBody(request.body, payload) }
    await pubsub.publish(input, 'http')
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
      description: 'One event per message: data is JSON {topic, payload, encoding?, qos, retain} plus, only when the message has them, its MQTT 5 properties (payloadFormat, contentType, responseTopic, correlationData, correlationEncoding, userProperties, messageExpiry: seconds left). Retained messages come first unless retained=false. Heartbeat comments keep the stream open.',
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
      sse.send({ data: JSON.stringify(messageJson(m, clock.now())) })
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
    const now = clock.now()
    return { messages: messages.map(m => messageJson(m, now)) }
  })
}
