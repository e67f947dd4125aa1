import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { HttpContext } from '../app.js'
import { PEEK_MAX, type Delivery, type DeadLetter, type PushMessage, type QueueInfo, type ReceiptResult } from '../../../engines/queue/engine.js'
import type { QueueSettings, SettingsPatch } from '../../../engines/queue/settings.js'
import { LIMITS } from '../../../engines/queue/settings.js'
import { InvalidArgument } from '../../../engines/errors.js'
import { decodePayloadData, encodePayload, encodingSchema, type PayloadEncoding } from '../payload.js'
import { bodyTextOf, isPlainString, registerBodyTextParser, type BodyText } from '../body-text.js'
import { problem, sendProblem } from '../problem.js'
import { QUEUE_ANY } from '../auth/declare.js'

/**
 * /v1/queues: durable job queues. Durations in bodies and answers are seconds (fractions allowed, like
 * SQS); timestamps are ms since the epoch.
 */

const seconds = (ms: number): number => ms / 1000
const ms = (s: number): number => Math.round(s * 1000)

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,200}$' } }
} as const

const backoffSchema = {
  type: ['object', 'null'],
  required: ['type', 'base'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['fixed', 'exponential'] },
    base: { type: 'number', minimum: 0, description: 'seconds; exponential: the first delay, doubled after each further failed delivery' },
    max: { type: 'number', minimum: 0, description: 'seconds; the longest delay (default 7 days)' }
  }
} as const

const settingsProperties = {
  visibilityTimeout: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.maxVisibilityTimeoutMs / 1000, description: 'seconds a received message stays leased (default 30)' },
  maxDeliveries: { type: 'integer', minimum: 1, maximum: LIMITS.maxDeliveries, description: 'deliveries before the message is dead-lettered (default 5)' },
  backoff: backoffSchema,
  retention: { type: ['number', 'null'], minimum: 1, maximum: LIMITS.maxRetentionMs / 1000, description: 'seconds an unconsumed message is kept (default: no limit)' },
  maxMessageBytes: { type: 'integer', minimum: 1, maximum: LIMITS.maxMessageBytes, description: 'largest payload in bytes (default 1 MiB)' },
  dedupWindow: { type: 'number', minimum: 0, maximum: LIMITS.maxDedupWindowMs / 1000, description: 'seconds a dedupId is remembered (default 300; 0 = off)' },
  capture: { type: 'array', maxItems: LIMITS.maxCaptureFilters, items: { type: 'string', minLength: 1 }, description: 'MQTT topic filters whose publishes are pushed as messages' },
  deadLetter: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._-]{1,200}$', description: 'another queue that receives the dead letters (default: kept in this queue\'s own dead letters)' }
} as const

const settingsOut = {
  type: 'object',
  properties: {
    visibilityTimeout: { type: 'number' },
    maxDeliveries: { type: 'integer' },
    backoff: { type: ['object', 'null'], properties: { type: { type: 'string' }, base: { type: 'number' }, max: { type: 'number' } } },
    retention: { type: ['number', 'null'] },
    maxMessageBytes: { type: 'integer' },
    dedupWindow: { type: 'number' },
    capture: { type: 'array', items: { type: 'string' } },
    deadLetter: { type: ['string', 'null'] }
  }
} as const

const statsOut = {
  type: 'object',
  properties: Object.fromEntries(['ready', 'leased', 'delayed', 'dead', 'pushed', 'acked', 'deadLettered', 'expired', 'waiting'].map(k => [k, { type: 'integer' }]))
} as const

const queueOut = {
  type: 'object',
  properties: { name: { type: 'string' }, createdAt: { type: 'integer' }, settings: settingsOut, stats: statsOut }
} as const

const messageIn = {
  payload: { description: 'any JSON value, or a string with encoding utf8/base64' },
  encoding: encodingSchema,
  delay: { type: 'number', minimum: 0, maximum: LIMITS.maxDelayMs / 1000, description: 'seconds before the message is ready (no 15-minute cap)' },
  priority: { type: 'integer', minimum: 0, maximum: 255, description: '0-255, higher first (default 0)' },
  dedupId: { type: 'string', minLength: 1, maxLength: LIMITS.maxDedupIdBytes, description: 'same id within the dedup window: the original id, no second copy' },
  headers: { type: 'object', maxProperties: LIMITS.maxHeaders, additionalProperties: { type: 'string' } }
} as const

/** The fields every message view shares (peek, receive and the dead-letter list), in output order. */
const queuedFields = {
  payload: {},
  encoding: { type: 'string' },
  headers: { type: 'object', additionalProperties: { type: 'string' } },
  topic: { type: 'string' },
  priority: { type: 'integer' },
  deliveries: { type: 'integer' },
  enqueuedAt: { type: 'integer' }
} as const

/** A message that has been delivered (received, or dead): the shared fields and its first delivery. */
const messageFields = { ...queuedFields, firstDeliveredAt: { type: 'integer' } } as const

const deliveryOut = {
  type: 'object',
  properties: { id: { type: 'string' }, receipt: { type: 'string' }, ...messageFields, leaseExpiresAt: { type: 'integer' } }
} as const

const deadOut = {
  type: 'object',
  properties: { id: { type: 'string' }, ...messageFields, deadAt: { type: 'integer' }, reason: { type: 'string' }, lastError: { type: 'string' } }
} as const

const receiptsIn = { type: 'array', minItems: 1, maxItems: LIMITS.maxBatch, items: { type: 'string', minLength: 1 } } as const

const resultsOut = {
  200: {
    type: 'object',
    properties: {
      results: {
        type: 'array',
        items: { type: 'object', properties: { receipt: { type: 'string' }, id: { type: 'string' }, status: { type: 'string' }, at: { type: 'integer' } } }
      }
    }
  }
} as const

interface SettingsBody {
  visibilityTimeout?: number
  maxDeliveries?: number
  backoff?: { type: 'fixed' | 'exponential', base: number, max?: number } | null
  retention?: number | null
  maxMessageBytes?: number
  dedupWindow?: number
  capture?: string[]
  deadLetter?: string | null
}

interface MessageBody {
  payload?: unknown
  encoding?: PayloadEncoding
  delay?: number
  priority?: number
  dedupId?: string
  headers?: Record<string, string>
}

interface PushBody extends MessageBody { messages?: MessageBody[] }

type NameParams = { name: string }

function settingsJson (s: QueueSettings): Record<string, unknown> {
  return {
    visibilityTimeout: seconds(s.visibilityTimeoutMs),
    maxDeliveries: s.maxDeliveries,
    backoff: s.backoff === null ? null : { type: s.backoff.type, base: seconds(s.backoff.baseMs), max: seconds(s.backoff.maxMs) },
    retention: s.retentionMs === null ? null : seconds(s.retentionMs),
    maxMessageBytes: s.maxMessageBytes,
    dedupWindow: seconds(s.dedupWindowMs),
    capture: s.capture,
    deadLetter: s.deadLetter
  }
}

function queueJson (info: QueueInfo): Record<string, unknown> {
  return { name: info.name, createdAt: info.createdAt, settings: settingsJson(info.settings), stats: info.stats }
}

function settingsPatch (body: SettingsBody): SettingsPatch {
  const patch: SettingsPatch = {}
  if (body.visibilityTimeout !== undefined) patch.visibilityTimeoutMs = ms(body.visibilityTimeout)
  if (body.maxDeliveries !== undefined) patch.maxDeliveries = body.maxDeliveries
  if (body.backoff !== undefined) {
    patch.backoff = body.backoff === null
      ? null
      : { type: body.backoff.type, baseMs: ms(body.backoff.base), maxMs: body.backoff.max === undefined ? LIMITS.maxBackoffMs : ms(body.backoff.max) }
  }
  if (body.retention !== undefined) patch.retentionMs = body.retention === null ? null : ms(body.retention)
  if (body.maxMessageBytes !== undefined) patch.maxMessageBytes = body.maxMessageBytes
  if (body.dedupWindow !== undefined) patch.dedupWindowMs = ms(body.dedupWindow)
  if (body.capture !== undefined) patch.capture = body.capture
  if (body.deadLetter !== undefined) patch.deadLetter = body.deadLetter
  return patch
}

/**
 * A message of a push body, its payload handed to the engine as decodePayload's bytes: text where that
 * is text (the JSON of a value, a utf8 payload), written into the stored record without a Buffer of its
 * own; a string payload of a body without escapes as its text in quotes, not serialised again (see
 * body-text.ts). `text`: what was noted of the body's text.
 */
function pushMessage (m: MessageBody, where: string, text: BodyText | undefined): PushMessage {
  if (m.payload === undefined) throw new InvalidArgument(`${where}: payload is required`)
  const out: PushMessage = { payload: isPlainString(m.payload, m.encoding, text) ? `"${m.payload}"` : decodePayloadData(m.payload, m.encoding, where === 'message' ? 'payload' : `${where}.payload`) }
  // a JSON value's compact serialisation: a receiver can get these bytes back as is
  if (m.encoding === undefined || m.encoding === 'json') out.json = true
  if (m.delay !== undefined) out.delayMs = ms(m.delay)
  if (m.priority !== undefined) out.priority = m.priority
  if (m.dedupId !== undefined) out.dedupId = m.dedupId
  if (m.headers !== undefined) out.headers = m.headers
  return out
}

/** The "payload" (and "encoding") members of a delivery, as encodePayload would give them. */
function payloadMembers (d: Delivery): string {
  // A payload pushed as JSON is its value's compact serialisation, so encodePayload would parse it and
  // give back the same text: it goes out as it is, without a parse and a stringify per message. (A DEL
  // byte makes encodePayload choose base64, so such payloads take the general path.)
  if (d.json && d.payload.indexOf(0x7f) < 0) return '"payload":' + d.payload.toString('utf8')
  const e = encodePayload(d.payload)
  return '"payload":' + JSON.stringify(e.payload) + (e.encoding !== undefined ? ',"encoding":"' + e.encoding + '"' : '')
}

/**
 * The receive answer {messages:[...]} as JSON text, members in the order of deliveryOut. Written by hand
 * because the payload can be spliced in as it is stored (see payloadMembers); ids and receipts are hex and
 * base-36 and need no escaping. (Text, not bytes written into one buffer: measured, the write calls per
 * message cost more than the string's encoding on the way out.)
 */
function receiveAnswer (deliveries: Delivery[]): string {
  let out = '{"messages":['
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i]
    if (i > 0) out += ','
    out += '{"id":"' + d.id + '","receipt":"' + d.receipt + '",' + payloadMembers(d) +
      ',"headers":' + headersJson(d.headers) +
      (d.topic !== undefined ? ',"topic":' + JSON.stringify(d.topic) : '') +
      ',"priority":' + String(d.priority) + ',"deliveries":' + String(d.deliveries) +
      ',"enqueuedAt":' + String(Math.trunc(d.enqueuedAt)) + ',"firstDeliveredAt":' + String(Math.trunc(d.firstDeliveredAt)) +
      ',"leaseExpiresAt":' + String(Math.trunc(d.leaseExpiresAt)) + '}'
  }
  return out + ']}'
}

/** Most messages carry no headers: their "{}" is not serialised per message. */
function headersJson (headers: Record<string, string>): string {
  for (const _ in headers) return JSON.stringify(headers)
  return '{}'
}

function deadJson (d: DeadLetter): Record<string, unknown> {
  return {
    id: d.id,
    ...encodePayload(d.payload),
    headers: d.headers,
    ...(d.topic !== undefined ? { topic: d.topic } : {}),
    priority: d.priority,
    deliveries: d.deliveries,
    enqueuedAt: d.enqueuedAt,
    firstDeliveredAt: d.firstDeliveredAt,
    deadAt: d.deadAt,
    reason: d.reason,
    ...(d.lastError !== undefined ? { lastError: d.lastError } : {})
  }
}

const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * {results:[...]} as JSON text (the shape of resultsOut), written by hand: receipts passed parseReceipt
 * (hex, '.', base 36), ids are hex and statuses fixed words, so nothing needs escaping, and answers of up
 * to 1000 results per request skip the generic serialiser's checks.
 */
function resultsAnswer (results: ReceiptResult[]): string {
  let out = '{"results":['
  for (let i = 0; i < results.length; i++) {
    const r = results[i]
    out += (i > 0 ? ',{"receipt":"' : '{"receipt":"') + r.receipt + '","id":"' + r.id + '","status":"' + r.status +
      (r.at !== undefined ? '","at":' + String(Math.trunc(r.at)) + '}' : '"}')
  }
  return out + ']}'
}

/** {ids:[...]} as JSON text: ids are hex (messageId), nothing to escape. */
function idsAnswer (ids: string[]): string {
  return ids.length === 0 ? '{"ids":[]}' : '{"ids":["' + ids.join('","') + '"]}'
}

/**
 * A batch answer: 200 with one result per receipt when at least one receipt was current; when none was,
 * the whole request failed: 404 if no message exists any more, else 409 (a stale receipt), with the
 * per-receipt results in the problem.
 */
async function sendResults (reply: FastifyReply, results: ReceiptResult[]): Promise<unknown> {
  const ok = results.some(r => r.status !== 'stale' && r.status !== 'not_found')
  if (ok) return await reply.type(JSON_TYPE).send(resultsAnswer(results))
  const allGone = results.every(r => r.status === 'not_found')
  const detail = allGone
    ? 'no message of these receipts exists any more (acked, dead-lettered and purged, or expired)'
    : 'the receipt is stale: the lease it names ran out or the message was delivered again since; receive it again'
  return await sendProblem(reply, problem(allGone ? 404 : 409, detail, { results }))
}

/** An AbortSignal that fires when the client goes away before the answer is sent (long-poll receivers). */
function clientGone (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort()
  })
  return controller.signal
}

/**
 * Lets routes whose body fields are all optional be called without a body (`curl -X POST .../receive`).
 * A callback hook, not an async one: it runs on every receive, and a promise per request costs more
 * than the check.
 */
function emptyBodyIsEmptyObject (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (request.body === undefined || request.body === null) request.body = {}
  done()
}

export function registerQueueRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { queues } = ctx.engines
  const tags = ['queues']

  app.put<{ Params: NameParams, Body: SettingsBody | undefined }>('/v1/queues/:name', {
    preValidation: emptyBodyIsEmptyObject,
    config: { acl: { resource: 'queue', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Create a queue or change its settings',
      description: 'Fields left out keep their value (defaults for a new queue); null removes backoff or retention. 201 when created, 200 when updated.',
      params: nameParams,
      body: { type: 'object', additionalProperties: false, properties: settingsProperties },
      response: { 200: queueOut, 201: queueOut }
    }
  }, async (request, reply) => {
    const { created, info } = await queues.put(request.params.name, settingsPatch(request.body ?? {}))
    return await reply.code(created ? 201 : 200).send(queueJson(info))
  })

  app.get('/v1/queues', {
    config: { acl: { resource: 'queue', action: QUEUE_ANY, results: { array: 'queues', field: 'name' } } },
    schema: {
      tags,
      summary: 'All queues with their settings and counts',
      response: { 200: { type: 'object', properties: { queues: { type: 'array', items: queueOut } } } }
    }
  }, async () => ({ queues: queues.list().map(queueJson) }))

  app.get<{ Params: NameParams }>('/v1/queues/:name', {
    config: { acl: { resource: 'queue', action: QUEUE_ANY, name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'A queue\'s settings and counts', params: nameParams, response: { 200: queueOut } }
  }, async (request) => queueJson(queues.info(request.params.name)))

  app.delete<{ Params: NameParams }>('/v1/queues/:name', {
    config: { acl: { resource: 'queue', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'Delete a queue and all its messages', params: nameParams }
  }, async (request, reply) => {
    await queues.delete(request.params.name)
    return await reply.code(204).send()
  })

  // pushes parse JSON with a parser that notes what the text says about its strings (see pushMessage)
  void app.register(async scope => {
    registerBodyTextParser(scope)

    scope.post<{ Params: NameParams, Body: PushBody }>('/v1/queues/:name/messages', {
      config: { acl: { resource: 'queue', action: 'push', name: { one: 'params', field: 'name' } } },
      schema: {
        tags,
        summary: 'Push one message, or up to 1000 with {messages:[...]}',
        description: 'Answers once the messages are durable under the fsync policy. A queue that does not exist is created with defaults (unless --queue-autocreate false). Same dedupId within the dedup window: the original id, no second copy.',
        params: nameParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...messageIn,
            messages: {
              type: 'array',
              minItems: 1,
              maxItems: LIMITS.maxBatch,
              items: { type: 'object', required: ['payload'], additionalProperties: false, properties: messageIn }
            }
          }
        },
        response: { 200: { type: 'object', properties: { ids: { type: 'array', items: { type: 'string' } } } } }
      }
    }, async (request, reply) => {
      const body = request.body
      let messages: PushMessage[]
      if (body.messages !== undefined) {
        const single = Object.keys(body).filter(k => k !== 'messages')
        if (single.length > 0) throw new InvalidArgument(`give either one message or messages, not both (found ${single.join(', ')} next to messages)`)
        const text = bodyTextOf(body)
        messages = body.messages.map((m, i) => pushMessage(m, `messages[${i}]`, text))
      } else {
        if (body.payload === undefined) throw new InvalidArgument('payload (or messages) is required')
        messages = [pushMessage(body, 'message', bodyTextOf(body))]
      }
      // a string with a JSON content type is sent as it is (the schema still documents the answer)
      return await reply.type(JSON_TYPE).send(idsAnswer(await queues.push(request.params.name, messages)))
    })
  })

  app.delete<{ Params: NameParams }>('/v1/queues/:name/messages', {
    config: { acl: { resource: 'queue', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Purge ready and delayed messages (leased ones stay with their consumers)',
      params: nameParams,
      response: { 200: { type: 'object', properties: { purged: { type: 'integer' } } } }
    }
  }, async (request) => ({ purged: await queues.purge(request.params.name) }))

  app.get<{ Params: NameParams, Querystring: { limit?: number } }>('/v1/queues/:name/peek', {
    config: { acl: { resource: 'queue', action: ['receive', 'admin'], name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'The next ready messages in delivery order, without leasing them (no delivery is counted)',
      params: nameParams,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: PEEK_MAX } } },
      response: {
        200: {
          type: 'object',
          properties: { messages: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, ...queuedFields } } } }
        }
      }
    }
  }, async request => {
    const messages = await queues.peek(request.params.name, request.query.limit ?? 10)
    return {
      messages: messages.map(m => ({
        id: m.id,
        ...encodePayload(m.payload),
        headers: m.headers,
        ...(m.topic !== undefined ? { topic: m.topic } : {}),
        priority: m.priority,
        deliveries: m.deliveries,
        enqueuedAt: m.enqueuedAt
      }))
    }
  })

  app.post<{ Params: NameParams, Body: { max?: number, wait?: number, visibilityTimeout?: number } | undefined }>('/v1/queues/:name/receive', {
    preValidation: emptyBodyIsEmptyObject,
    config: { acl: { resource: 'queue', action: 'receive', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Receive (lease) messages; long-poll with wait',
      description: 'Each message is leased for visibilityTimeout seconds under its own receipt; ack it, nack it or extend it before then, or it is delivered again. FIFO within a priority, higher priorities first. With wait, the request waits up to that many seconds for a first message.',
      params: nameParams,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          max: { type: 'integer', minimum: 1, maximum: LIMITS.maxBatch, description: 'most messages to return (default 1)' },
          wait: { type: 'number', minimum: 0, maximum: LIMITS.maxWaitMs / 1000, description: 'seconds to wait for a message (default 0)' },
          visibilityTimeout: settingsProperties.visibilityTimeout
        }
      },
      response: { 200: { type: 'object', properties: { messages: { type: 'array', items: deliveryOut } } } }
    }
  }, async (request, reply) => {
    const body = request.body ?? {}
    const deliveries = await queues.receive(request.params.name, {
      max: body.max,
      waitMs: body.wait === undefined ? 0 : ms(body.wait),
      visibilityMs: body.visibilityTimeout === undefined ? undefined : Math.max(1, ms(body.visibilityTimeout)),
      signal: body.wait !== undefined && body.wait > 0 ? clientGone(reply) : undefined
    })
    // a string with a JSON content type is sent as it is (the schema still documents the answer)
    return await reply.type(JSON_TYPE).send(receiveAnswer(deliveries))
  })

  app.post<{ Params: NameParams, Body: { receipts: string[] } }>('/v1/queues/:name/ack', {
    config: { acl: { resource: 'queue', action: 'receive', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Acknowledge (delete) received messages',
      description: 'One result per receipt: acked, stale (an earlier delivery\'s receipt or a lease that ran out) or not_found. When no receipt was current the answer is 409 (404 if none of the messages exists).',
      params: nameParams,
      body: { type: 'object', required: ['receipts'], additionalProperties: false, properties: { receipts: receiptsIn } },
      response: resultsOut
    }
  }, async (request, reply) => await sendResults(reply, await queues.ack(request.params.name, request.body.receipts)))

  app.post<{ Params: NameParams, Body: { receipts: string[], delay?: number, dead?: boolean, reason?: string } }>('/v1/queues/:name/nack', {
    config: { acl: { resource: 'queue', action: 'receive', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Give messages back: ready again (after delay or the back-off), or dead-lettered',
      description: 'Without delay the queue\'s back-off applies. dead: true dead-letters at once. reason is kept as the last error. A message that used up maxDeliveries is dead-lettered.',
      params: nameParams,
      body: {
        type: 'object',
        required: ['receipts'],
        additionalProperties: false,
        properties: {
          receipts: receiptsIn,
          delay: messageIn.delay,
          dead: { type: 'boolean' },
          reason: { type: 'string', maxLength: 4096 }
        }
      },
      response: resultsOut
    }
  }, async (request, reply) => {
    const { receipts, delay, dead, reason } = request.body
    return await sendResults(reply, await queues.nack(request.params.name, receipts, { delayMs: delay === undefined ? undefined : ms(delay), dead, reason }))
  })

  app.post<{ Params: NameParams, Body: { receipts: string[], visibilityTimeout: number } }>('/v1/queues/:name/extend', {
    config: { acl: { resource: 'queue', action: 'receive', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Extend leases (heartbeat for long jobs): visible again visibilityTimeout seconds from now',
      params: nameParams,
      body: {
        type: 'object',
        required: ['receipts', 'visibilityTimeout'],
        additionalProperties: false,
        properties: { receipts: receiptsIn, visibilityTimeout: settingsProperties.visibilityTimeout }
      },
      response: resultsOut
    }
  }, async (request, reply) => {
    const { receipts, visibilityTimeout } = request.body
    return await sendResults(reply, await queues.extend(request.params.name, receipts, Math.max(1, ms(visibilityTimeout))))
  })

  app.get<{ Params: NameParams, Querystring: { limit?: number, cursor?: string } }>('/v1/queues/:name/dead', {
    config: { acl: { resource: 'queue', action: ['receive', 'admin'], name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Dead letters, with the reason, deliveries and last error; page with cursor',
      params: nameParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { limit: { type: 'integer', minimum: 1, maximum: LIMITS.maxBatch }, cursor: { type: 'string' } }
      },
      response: { 200: { type: 'object', properties: { messages: { type: 'array', items: deadOut }, cursor: { type: ['string', 'null'] } } } }
    }
  }, async (request) => {
    const page = await queues.listDead(request.params.name, { limit: request.query.limit, cursor: request.query.cursor })
    return { messages: page.messages.map(deadJson), cursor: page.cursor }
  })

  app.post<{ Params: NameParams, Body: { ids?: string[] } | undefined }>('/v1/queues/:name/dead/redrive', {
    preValidation: emptyBodyIsEmptyObject,
    config: { acl: { resource: 'queue', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Move dead letters back to ready (the ids given, or all), deliveries reset',
      params: nameParams,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { ids: { type: 'array', maxItems: LIMITS.maxBatch, items: { type: 'string' } } }
      },
      response: { 200: { type: 'object', properties: { redriven: { type: 'integer' }, notFound: { type: 'array', items: { type: 'string' } } } } }
    }
  }, async (request) => await queues.redrive(request.params.name, request.body?.ids))

  app.delete<{ Params: NameParams }>('/v1/queues/:name/dead', {
    config: { acl: { resource: 'queue', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Purge the dead letters',
      params: nameParams,
      response: { 200: { type: 'object', properties: { purged: { type: 'integer' } } } }
    }
  }, async (request) => ({ purged: await queues.purgeDead(request.params.name) }))
}
