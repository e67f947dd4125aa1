import type { FastifyInstance } from 'fastify'
import type { HttpContext } from '../app.js'
import { InvalidArgument } from '../../../engines/errors.js'
import type { AppendMessage, StartPosition, StreamEntry, StreamInfo } from '../../../engines/stream/index.js'
import type { GroupInfo } from '../../../engines/stream/group.js'
import { encodePayload, encodingSchema } from '../payload.js'
import { appendMessages, type AppendItem } from './stream-append.js'
import { registerBodyTextParser } from '../body-text.js'
import { lastEventId, SseStream } from '../sse.js'
import { JsonWriter, pageJson, writeSseEvent } from './stream-json.js'
import { propertiesJson, propertiesOutSchema } from './pubsub-properties.js'
import { STREAM_ANY } from '../auth/declare.js'

const NAME = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,200}$' } as const
const streamParams = { type: 'object', required: ['name'], properties: { name: NAME } } as const
const groupParams = { type: 'object', required: ['name', 'group'], properties: { name: NAME, group: NAME } } as const
const MAX_PAGE = 1000
/**
 * Pages of messages are serialised with JSON.stringify: the payload is any JSON value, which the schema
 * serialiser would hand to JSON.stringify one message at a time anyway (measured 2.5x slower per page).
 * The response schema stays for the OpenAPI document.
 */
const plainJson = (): ((data: unknown) => string) => (data: unknown) => JSON.stringify(data)
const MAX_BATCH = 1000
/** SSE events of a tail are written to the socket in buffers of about this size. */
const SSE_WRITE_BYTES = 64 * 1024

/** `from` as a query value: an offset, "start" or "end". */
function parseFrom (from: string | undefined): number | 'start' | 'end' | undefined {
  if (from === undefined || from === '') return undefined
  if (from === 'start' || from === 'end') return from
  if (/^\d{1,16}$/.test(from) && Number.isSafeInteger(Number(from))) return Number(from)
  throw new InvalidArgument(`from must be an offset (a non-negative integer), "start" or "end", not "${from}"`)
}

/** A time as epoch milliseconds or an ISO 8601 date-time. */
function parseTime (time: string | number | undefined): number | undefined {
  if (time === undefined || time === '') return undefined
  if (typeof time === 'number' || /^\d{1,16}$/.test(time)) {
    const n = Number(time)
    if (Number.isSafeInteger(n) && n >= 0) return n
  } else if (/^\d{4}-\d{2}-\d{2}/.test(time)) {
    const ms = Date.parse(time)
    if (Number.isFinite(ms) && ms >= 0) return ms
  }
  throw new InvalidArgument(`time must be epoch milliseconds or an ISO 8601 date-time, not "${String(time)}"`)
}

const seconds = (s: number | undefined): number | undefined => s === undefined ? undefined : Math.round(s * 1000)

export function entryJson (e: StreamEntry): Record<string, unknown> {
  const out: Record<string, unknown> = { offset: e.offset, timestamp: e.timestamp }
  if (e.topic !== undefined) {
    out.topic = e.topic
    out.qos = e.qos
    out.retain = e.retain
  }
  // a captured MQTT 5 publish's properties, in the fields an HTTP publish takes
  if (e.properties !== undefined) Object.assign(out, propertiesJson(e.properties))
  if (e.key !== undefined) out.key = e.key
  if (e.headers !== undefined) out.headers = e.headers
  const p = encodePayload(e.payload)
  out.payload = p.payload
  if (p.encoding !== undefined) out.encoding = p.encoding
  return out
}

function infoJson (i: StreamInfo): Record<string, unknown> {
  const s = i.settings
  return {
    name: i.name,
    settings: {
      ...(s.maxAgeMs !== undefined ? { maxAge: s.maxAgeMs / 1000 } : {}),
      ...(s.maxBytes !== undefined ? { maxBytes: s.maxBytes } : {}),
      ...(s.maxCount !== undefined ? { maxCount: s.maxCount } : {}),
      capture: s.capture,
      dedupWindow: s.dedupWindowMs / 1000
    },
    createdAt: i.createdAt,
    firstOffset: i.firstOffset,
    lastOffset: i.lastOffset,
    nextOffset: i.nextOffset,
    count: i.count,
    bytes: i.bytes,
    groups: i.groups
  }
}

function groupJson (g: GroupInfo): Record<string, unknown> {
  return {
    name: g.name,
    committed: g.committed,
    pending: g.pending,
    lag: g.lag,
    dead: g.dead,
    delivered: g.cursor,
    ackWait: g.settings.ackWaitMs / 1000,
    maxDeliveries: g.settings.maxDeliveries,
    maxPending: g.settings.maxPending,
    createdAt: g.createdAt,
    readers: g.readers
  }
}

const messageSchema = {
  type: 'object',
  properties: {
    offset: { type: 'integer' },
    timestamp: { type: 'integer' },
    topic: { type: 'string' },
    qos: { type: 'integer' },
    retain: { type: 'boolean' },
    ...propertiesOutSchema,
    key: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    payload: {},
    encoding: { type: 'string' },
    deliveries: { type: 'integer' }
  }
} as const

const settingsBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxAge: { type: 'number', exclusiveMinimum: 0, description: 'seconds' },
    maxBytes: { type: 'integer', minimum: 1 },
    maxCount: { type: 'integer', minimum: 1 },
    capture: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 100 },
    dedupWindow: { type: 'number', minimum: 0, description: 'seconds; 0 turns deduplication off' }
  }
} as const

const headersSchema = { type: 'object', additionalProperties: { type: 'string' }, maxProperties: 100 } as const
const appendMessageSchema = {
  type: 'object',
  required: ['payload'],
  additionalProperties: false,
  properties: { payload: {}, encoding: encodingSchema, key: { type: 'string', maxLength: 1024 }, headers: headersSchema, dedupId: { type: 'string', minLength: 1, maxLength: 256 } }
} as const

const groupSettingsBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { anyOf: [{ type: 'string', enum: ['start', 'end'] }, { type: 'integer', minimum: 0 }] },
    time: { anyOf: [{ type: 'string' }, { type: 'integer', minimum: 0 }] },
    ackWait: { type: 'number', exclusiveMinimum: 0, maximum: 43200, description: 'seconds (default 30)' },
    maxDeliveries: { type: 'integer', minimum: 1, maximum: 1000 },
    maxPending: { type: 'integer', minimum: 1, maximum: 1_000_000 }
  }
} as const

interface SettingsBody { maxAge?: number, maxBytes?: number, maxCount?: number, capture?: string[], dedupWindow?: number }
interface AppendBody extends Partial<AppendItem> { messages?: AppendItem[], expectedLastOffset?: number }
interface ReadQuery { from?: string, time?: string, limit?: number, lastEventId?: string }
interface GroupBody { from?: 'start' | 'end' | number, time?: string | number, ackWait?: number, maxDeliveries?: number, maxPending?: number }

export function registerStreamRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { streams } = ctx.engines
  const tags = ['streams']

  app.put<{ Params: { name: string }, Body: SettingsBody }>('/v1/streams/:name', {
    config: { acl: { resource: 'stream', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Create a stream or replace its settings',
      description: 'Limits omitted are removed. capture: MQTT topic filters whose publishes (MQTT or HTTP) are appended with their topic, qos and retain flag. Times in seconds. 201 when created.',
      params: streamParams,
      body: settingsBody
    }
  }, async (request, reply) => {
    const b = request.body ?? {}
    const { created, info } = await streams.put(request.params.name, {
      maxAgeMs: seconds(b.maxAge), maxBytes: b.maxBytes, maxCount: b.maxCount, capture: b.capture, dedupWindowMs: seconds(b.dedupWindow)
    })
    return await reply.code(created ? 201 : 200).send(infoJson(info))
  })

  app.get('/v1/streams', {
    config: { acl: { resource: 'stream', action: STREAM_ANY, results: { array: 'streams', field: 'name' } } },
    schema: { tags, summary: 'List streams with their settings, offsets, counts and sizes' }
  }, async () => ({ streams: streams.list().map(infoJson) }))

  app.get<{ Params: { name: string } }>('/v1/streams/:name', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'A stream: settings, first/last offset, count, bytes, groups', params: streamParams }
  }, async (request) => infoJson(streams.info(request.params.name)))

  app.delete<{ Params: { name: string } }>('/v1/streams/:name', {
    config: { acl: { resource: 'stream', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'Delete a stream, its groups and its data', params: streamParams }
  }, async (request, reply) => {
    await streams.delete(request.params.name)
    return await reply.code(204).send()
  })

  // appends parse JSON with a parser that notes what the text says about its strings (see appendMessages)
  void app.register(async scope => {
    registerBodyTextParser(scope)

    scope.post<{ Params: { name: string }, Body: AppendBody }>('/v1/streams/:name/messages', {
      config: { acl: { resource: 'stream', action: 'append', name: { one: 'params', field: 'name' } } },
      schema: {
        tags,
        summary: 'Append one message or a batch (up to 1000)',
        description: 'Either {payload, encoding?, key?, headers?, dedupId?} or {messages: [...]}; with expectedLastOffset the append fails with 409 if the stream\'s last offset differs (-1: empty). Replies once the batch is durable. A dedupId seen within the stream\'s dedup window returns the original offset.',
        params: streamParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...appendMessageSchema.properties,
            messages: { type: 'array', items: appendMessageSchema, minItems: 1, maxItems: MAX_BATCH },
            expectedLastOffset: { type: 'integer', minimum: -1 }
          }
        },
        response: { 200: { type: 'object', properties: { offsets: { type: 'array', items: { type: 'integer' } } } } }
      }
    }, async (request) => {
      const b = request.body
      let batch: AppendMessage[]
      if (b.messages !== undefined) {
        if (b.payload !== undefined || b.key !== undefined || b.headers !== undefined || b.dedupId !== undefined || b.encoding !== undefined) {
          throw new InvalidArgument('give either messages or a single payload, not both')
        }
        batch = appendMessages(b, b.messages)
      } else {
        if (b.payload === undefined) throw new InvalidArgument('payload (or messages) is required')
        batch = appendMessages(b, [b as AppendItem])
      }
      return { offsets: await streams.append(request.params.name, batch, b.expectedLastOffset) }
    })
  })

  const readQuery = {
    type: 'object',
    additionalProperties: false,
    properties: {
      from: { type: 'string', description: 'offset, start or end' },
      time: { type: 'string', description: 'epoch ms or ISO 8601: the first message at or after it' },
      limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: 100 }
    }
  } as const

  app.get<{ Params: { name: string }, Querystring: ReadQuery }>('/v1/streams/:name/messages', {
    serializerCompiler: plainJson,
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Read messages from an offset, the start, the end or a time',
      description: 'next is the offset to read from next; it is also in the Tetra-Next header and in a Link header (rel="next") with the next page\'s URL, so a reader can request the next page before parsing this one. When from is below the retained range, reading starts at firstOffset and truncated is true.',
      params: streamParams,
      querystring: readQuery,
      response: {
        200: {
          type: 'object',
          properties: {
            messages: { type: 'array', items: messageSchema },
            next: { type: 'integer' },
            firstOffset: { type: 'integer' },
            truncated: { type: 'boolean' }
          }
        }
      }
    }
  }, async (request, reply) => {
    const q = request.query
    const limit = q.limit ?? 100
    const r = await streams.read(request.params.name, { from: parseFrom(q.from), time: parseTime(q.time), limit })
    // the next position in the headers too: a reader can ask for the next page before parsing this one
    return await reply
      .header('tetra-next', String(r.next))
      .header('link', `</v1/streams/${request.params.name}/messages?from=${r.next}&limit=${limit}>; rel="next"`)
      .type('application/json; charset=utf-8')
      .send(pageJson(r.messages, r.next, r.firstOffset, r.truncated))
  })

  app.get<{ Params: { name: string }, Querystring: ReadQuery }>('/v1/streams/:name/tail', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' }, ticket: true } },
    schema: {
      tags,
      summary: 'Follow a stream over Server-Sent Events',
      description: 'History from `from` (offset|start|end, default end) or `time`, then live messages. id: is the offset; reconnecting with Last-Event-ID (or ?lastEventId=) resumes right after it. A `truncated` event says when the requested offset was no longer retained.',
      params: streamParams,
      querystring: { ...readQuery, properties: { from: readQuery.properties.from, time: readQuery.properties.time, lastEventId: { type: 'string' } } },
      produces: ['text/event-stream']
    }
  }, async (request, reply) => {
    const log = streams.get(request.params.name)
    const resumeAfter = lastEventId(request)
    let start: number
    if (resumeAfter !== undefined) {
      if (!/^\d{1,16}$/.test(resumeAfter)) throw new InvalidArgument(`Last-Event-ID must be an offset, not "${resumeAfter}"`)
      start = Number(resumeAfter) + 1
      if (start > log.durableNext) throw new InvalidArgument(`Last-Event-ID ${resumeAfter} is beyond the end of stream ${log.name} (last offset ${log.durableNext - 1})`)
    } else {
      const time = parseTime(request.query.time)
      const from = parseFrom(request.query.from)
      if (time !== undefined && from !== undefined) throw new InvalidArgument('give either from or time, not both')
      const position: StartPosition = time !== undefined
        ? { from: 'time', time }
        : from === undefined || from === 'end' ? { from: 'end' } : from === 'start' ? { from: 'start' } : { from: 'offset', offset: from }
      start = await streams.resolve(log, position)
    }
    const sse = new SseStream(request, reply, ctx.options.sseHeartbeatMs)
    ctx.metrics.sseClients.inc({ feed: 'stream' })
    const stop = new AbortController()
    sse.onClose(() => {
      stop.abort()
      ctx.metrics.sseClients.dec({ feed: 'stream' })
    })
    let cursor = start
    // bounded by the stream's life: every round either sends a page or waits for the next append
    while (!sse.closed && !log.deleted && !ctx.isShuttingDown()) {
      const page = await log.read(cursor, MAX_PAGE)
      if (page.messages.length > 0 && page.messages[0].offset > cursor) {
        sse.send({ event: 'truncated', data: JSON.stringify({ requested: cursor, firstOffset: page.messages[0].offset }) })
      }
      // events are framed into buffers of about SSE_WRITE_BYTES, one socket write each (a buffer handed
      // to the socket is not written again: a new one is started)
      let out: JsonWriter | null = null
      let framed = 0
      for (let i = 0; i < page.messages.length && !sse.closed; i++) {
        out ??= new JsonWriter(SSE_WRITE_BYTES + 4096)
        writeSseEvent(out, page.messages[i])
        framed++
        if (out.length >= SSE_WRITE_BYTES || i === page.messages.length - 1) {
          const room = sse.sendFramed(out.view(), framed)
          out = null
          framed = 0
          // a full socket buffer pauses the reader here; it catches up from storage, nothing piles up in memory
          if (!room) await sse.drained()
        }
      }
      ctx.metrics.sseEvents.stream += page.messages.length
      cursor = page.next
      if (page.messages.length === 0 && log.durableNext <= cursor) await log.changed(stop.signal)
    }
    sse.end()
  })

  // ---- consumer groups ------------------------------------------------------------------------

  app.put<{ Params: { name: string, group: string }, Body: GroupBody }>('/v1/streams/:name/groups/:group', {
    config: { acl: { resource: 'stream', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Create a consumer group or update its settings',
      description: 'from: start (default), end or an offset; or time (epoch ms or ISO 8601). ackWait in seconds (default 30), maxDeliveries (default 5) before a message is set aside as a dead letter, maxPending (default 10000) messages in flight. On an existing group a start position may only move it forward. 201 when created.',
      params: groupParams,
      body: groupSettingsBody
    }
  }, async (request, reply) => {
    const b = request.body ?? {}
    if (b.from !== undefined && b.time !== undefined) throw new InvalidArgument('give either from or time, not both')
    const time = parseTime(b.time)
    const start: StartPosition | undefined = time !== undefined
      ? { from: 'time', time }
      : b.from === undefined ? undefined : typeof b.from === 'number' ? { from: 'offset', offset: b.from } : { from: b.from }
    const { created, info } = await streams.putGroup(request.params.name, request.params.group, {
      start, ackWaitMs: seconds(b.ackWait), maxDeliveries: b.maxDeliveries, maxPending: b.maxPending
    })
    return await reply.code(created ? 201 : 200).send(groupJson(info))
  })

  app.get<{ Params: { name: string } }>('/v1/streams/:name/groups', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'Consumer groups with committed offset, pending, lag, dead letters and recent readers', params: streamParams }
  }, async (request) => ({ groups: streams.listGroups(request.params.name).map(groupJson) }))

  app.get<{ Params: { name: string, group: string } }>('/v1/streams/:name/groups/:group', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'One consumer group', params: groupParams }
  }, async (request) => groupJson(streams.getGroup(request.params.name, request.params.group).info()))

  app.delete<{ Params: { name: string, group: string } }>('/v1/streams/:name/groups/:group', {
    config: { acl: { resource: 'stream', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: { tags, summary: 'Delete a consumer group', params: groupParams }
  }, async (request, reply) => {
    await streams.deleteGroup(request.params.name, request.params.group)
    return await reply.code(204).send()
  })

  app.post<{ Params: { name: string, group: string }, Body: { max?: number, wait?: number, consumer?: string } }>('/v1/streams/:name/groups/:group/receive', {
    serializerCompiler: plainJson,
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Receive messages for one reader of the group, under a lease',
      description: 'Each message goes to one reader at a time, in offset order; redeliveries (lease ran out) come first with their delivery count. wait: long-poll seconds (max 20). The group is created from the start of the stream on first use.',
      params: groupParams,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          max: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: 1 },
          wait: { type: 'number', minimum: 0, maximum: 20, default: 0 },
          consumer: { type: 'string', minLength: 1, maxLength: 200 }
        }
      },
      response: { 200: { type: 'object', properties: { messages: { type: 'array', items: messageSchema } } } }
    }
  }, async (request) => {
    const b = request.body ?? {}
    const consumer = b.consumer ?? `${request.ip}`
    const got = await streams.receive(request.params.name, request.params.group, { max: b.max ?? 1, waitMs: Math.round((b.wait ?? 0) * 1000), consumer })
    return { messages: got.map(d => ({ ...entryJson(d.entry), deliveries: d.deliveries })) }
  })

  app.post<{ Params: { name: string, group: string }, Body: { offsets: number[] } }>('/v1/streams/:name/groups/:group/ack', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Acknowledge single offsets',
      params: groupParams,
      body: { type: 'object', required: ['offsets'], additionalProperties: false, properties: { offsets: { type: 'array', items: { type: 'integer', minimum: 0 }, maxItems: 10_000 } } },
      response: { 200: { type: 'object', properties: { acked: { type: 'integer' }, committed: { type: 'integer' } } } }
    }
  }, async (request) => await streams.ack(request.params.name, request.params.group, request.body.offsets))

  app.post<{ Params: { name: string, group: string }, Body: { offset: number } }>('/v1/streams/:name/groups/:group/commit', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Acknowledge everything up to and including an offset',
      description: 'The committed offset (every offset below it is acknowledged) never moves backwards: committing an older offset changes nothing.',
      params: groupParams,
      body: { type: 'object', required: ['offset'], additionalProperties: false, properties: { offset: { type: 'integer', minimum: 0 } } },
      response: { 200: { type: 'object', properties: { committed: { type: 'integer' } } } }
    }
  }, async (request) => await streams.commit(request.params.name, request.params.group, request.body.offset))

  app.get<{ Params: { name: string, group: string }, Querystring: { from?: number, limit?: number } }>('/v1/streams/:name/groups/:group/dead', {
    config: { acl: { resource: 'stream', action: 'read', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Dead letters of the group (messages delivered maxDeliveries times without an ack)',
      params: groupParams,
      querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'integer', minimum: 0, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: 100 } } }
    }
  }, async (request) => {
    const r = await streams.dead(request.params.name, request.params.group, request.query.from ?? 0, request.query.limit ?? 100)
    return {
      messages: r.messages.map(d => ({
        ...(d.entry !== undefined ? entryJson(d.entry) : { offset: d.offset, removed: true }),
        deliveries: d.deliveries,
        consumer: d.consumer,
        deadAt: d.deadAt
      })),
      next: r.next
    }
  })

  app.post<{ Params: { name: string, group: string }, Body: { offsets?: number[] } }>('/v1/streams/:name/groups/:group/dead/redrive', {
    config: { acl: { resource: 'stream', action: 'admin', name: { one: 'params', field: 'name' } } },
    schema: {
      tags,
      summary: 'Deliver dead letters again (all, or the given offsets) with a fresh delivery count',
      params: groupParams,
      body: { type: 'object', additionalProperties: false, properties: { offsets: { type: 'array', items: { type: 'integer', minimum: 0 }, maxItems: 10_000 } } },
      response: { 200: { type: 'object', properties: { redriven: { type: 'integer' } } } }
    }
  }, async (request) => await streams.redrive(request.params.name, request.params.group, request.body?.offsets))
}
