/**
 * The finishing pass over the generated OpenAPI document (@fastify/swagger's transformObject): what the
 * route schemas cannot say, or say for fastify rather than for readers of the document.
 * - every operation gets its operationId, its error answers as problem+json, the answers whose route has
 *   no response schema (DELETEs that answer 204, SSE feeds, the raw value of a key, text metrics), and
 *   examples of its request body;
 * - the store's wildcard routes are named as they are used: `{key}` instead of fastify's `*`, and the
 *   one POST wildcard route is documented as the two operations it serves, `{key}/incr` and `{key}/ttl`.
 * These answer schemas are for the document only (they are not response schemas of the routes, which
 * would make fastify's serializer drop fields); test/protocols/openapi-contract.test.ts holds them to
 * what the routes really answer.
 */

type Schema = Record<string, unknown>
interface Operation {
  operationId?: string
  summary?: string
  description?: string
  parameters?: Array<{ name: string, in: string, description?: string, schema?: Schema, required?: boolean }>
  requestBody?: { content?: Record<string, { schema?: Schema, example?: unknown }> }
  responses?: Record<string, Schema>
  [field: string]: unknown
}
type Paths = Record<string, Record<string, Operation>>

export const PROBLEM_SCHEMA = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' } },
  example: { type: 'https://tetra.dev/problems/not-found', title: 'Not Found', status: 404, detail: 'queue "thumbnails" not found' }
} as const

const ERROR_TEXT: Record<number, string> = {
  400: 'Bad input: detail names the offending field or value',
  404: 'The named resource does not exist',
  409: 'Conflict with the current state (detail says which)',
  412: 'A precondition (If-Match, If-None-Match, ifAbsent) does not hold',
  413: 'The body or a message is larger than the limit',
  503: 'The broker is shutting down (retry against another instance or later)',
  507: 'Storage is full'
}

const problemAnswer = (status: number): Schema => ({ description: ERROR_TEXT[status], content: { 'application/problem+json': { schema: PROBLEM_SCHEMA } } })
const json = (schema: Schema, description = 'OK'): Schema => ({ description, content: { 'application/json': { schema } } })
const EMPTY_204 = { description: 'Done; no body' }
const SSE = { description: 'A Server-Sent Events stream (text/event-stream); see the description for its events', content: { 'text/event-stream': { schema: { type: 'string' } } } }

const keyInfo = { type: 'object', properties: { key: { type: 'string' }, size: { type: 'integer' }, contentType: { type: 'string' }, etag: { type: 'string' }, ttl: { type: ['number', 'null'] } } }
const streamInfo = {
  type: 'object',
  required: ['name', 'firstOffset', 'lastOffset', 'nextOffset', 'count', 'bytes'],
  properties: {
    name: { type: 'string' },
    settings: { type: 'object', properties: { maxAge: { type: 'number' }, maxBytes: { type: 'integer' }, maxCount: { type: 'integer' }, capture: { type: 'array', items: { type: 'string' } }, dedupWindow: { type: 'number' } } },
    createdAt: { type: 'integer' },
    firstOffset: { type: 'integer' },
    lastOffset: { type: 'integer', description: '-1 when empty' },
    nextOffset: { type: 'integer' },
    count: { type: 'integer' },
    bytes: { type: 'integer' },
    groups: { type: 'array', items: { type: 'string' }, description: 'the names of its consumer groups' }
  }
}
const groupInfo = {
  type: 'object',
  required: ['name', 'committed', 'pending', 'lag'],
  properties: {
    name: { type: 'string' },
    committed: { type: 'integer' },
    pending: { type: 'integer' },
    lag: { type: 'integer' },
    dead: { type: 'integer' },
    delivered: { type: 'integer' },
    ackWait: { type: 'number' },
    maxDeliveries: { type: 'integer' },
    maxPending: { type: 'integer' },
    createdAt: { type: 'integer' },
    readers: { type: 'array', items: { type: 'object' } }
  }
}

interface Spec {
  id: string
  /** Error statuses besides 401/403/429 (which come from the access declaration). */
  errors: number[]
  /** Answers the route schema does not give (replacing the generated default 200). */
  answers?: Record<string, Schema>
  /** An example request body. */
  example?: unknown
}

const NAMED = [400, 404, 503]
/** Per operation ("METHOD path" as the document has it after the key renaming). */
const OPERATIONS: Record<string, Spec> = {
  'GET /healthz': { id: 'getHealth', errors: [] },
  'GET /readyz': { id: 'getReady', errors: [503] },
  'GET /metrics': { id: 'getMetrics', errors: [503], answers: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } },
  'POST /v1/pubsub/publish': { id: 'publish', errors: [400, 413, 503, 507], example: { topic: 'sensors/kitchen/temp', payload: { celsius: 21.5 }, qos: 1, retain: true } },
  'GET /v1/pubsub/subscribe': { id: 'subscribe', errors: [400, 503], answers: { 200: SSE } },
  'GET /v1/pubsub/retained': { id: 'getRetained', errors: [400, 503] },
  'GET /v1/pubsub/clients': { id: 'listClients', errors: [503] },
  'DELETE /v1/pubsub/clients/{id}': { id: 'disconnectClient', errors: [400, 404, 503], answers: { 204: EMPTY_204 } },

  'PUT /v1/queues/{name}': { id: 'putQueue', errors: [400, 404, 409, 503, 507], example: { visibilityTimeout: 60, maxDeliveries: 3, backoff: { type: 'exponential', base: 5, max: 300 } } },
  'GET /v1/queues': { id: 'listQueues', errors: [503] },
  'GET /v1/queues/{name}': { id: 'getQueue', errors: NAMED },
  'DELETE /v1/queues/{name}': { id: 'deleteQueue', errors: NAMED, answers: { 204: EMPTY_204 } },
  'POST /v1/queues/{name}/messages': { id: 'pushMessages', errors: [400, 404, 413, 503, 507], example: { payload: { image: 'cat.jpg' }, priority: 5, dedupId: 'cat.jpg-v1' } },
  'DELETE /v1/queues/{name}/messages': { id: 'purgeQueue', errors: NAMED },
  'POST /v1/queues/{name}/receive': { id: 'receiveMessages', errors: NAMED, example: { max: 10, wait: 20 } },
  'POST /v1/queues/{name}/ack': { id: 'ackMessages', errors: [400, 404, 409, 503], example: { receipts: ['<receipt>'] } },
  'POST /v1/queues/{name}/nack': { id: 'nackMessages', errors: [400, 404, 409, 503], example: { receipts: ['<receipt>'], reason: 'decoder crashed' } },
  'POST /v1/queues/{name}/extend': { id: 'extendLeases', errors: [400, 404, 409, 503], example: { receipts: ['<receipt>'], visibilityTimeout: 120 } },
  'GET /v1/queues/{name}/dead': { id: 'listDeadLetters', errors: NAMED },
  'DELETE /v1/queues/{name}/dead': { id: 'purgeDeadLetters', errors: NAMED },
  'POST /v1/queues/{name}/dead/redrive': { id: 'redriveDeadLetters', errors: NAMED, example: { ids: ['<id>'] } },
  'GET /v1/queues/{name}/peek': { id: 'peekQueue', errors: NAMED },

  'GET /v1/store/keys/{key}': {
    id: 'getKey',
    errors: [400, 404, 503],
    answers: {
      200: {
        description: 'The value, byte for byte, with the content type it was set with',
        headers: { ETag: { schema: { type: 'string' } }, 'Tetra-TTL': { schema: { type: 'number' }, description: 'Seconds left; absent without TTL' } },
        content: { '*/*': { schema: {} } }
      },
      304: { description: 'Not modified: If-None-Match matched the ETag' }
    }
  },
  'PUT /v1/store/keys/{key}': { id: 'setKey', errors: [400, 412, 413, 503, 507] },
  'DELETE /v1/store/keys/{key}': { id: 'deleteKey', errors: [400, 404, 412, 503], answers: { 204: EMPTY_204 } },
  'POST /v1/store/keys/{key}/incr': {
    id: 'incrKey',
    errors: [400, 409, 503, 507],
    answers: { 200: json({ type: 'object', required: ['key', 'value', 'etag'], properties: { key: { type: 'string' }, value: { type: 'integer' }, etag: { type: 'string' } } }) },
    example: { by: 5 }
  },
  'POST /v1/store/keys/{key}/ttl': { id: 'setKeyTtl', errors: [400, 404, 503], answers: { 200: json(keyInfo) }, example: { ttl: 3600 } },
  'GET /v1/store/keys': { id: 'scanKeys', errors: [400, 404, 503] },
  'POST /v1/store/mget': { id: 'getKeys', errors: [400, 503], example: { keys: ['user/1', 'user/2'] } },
  'POST /v1/store/mset': { id: 'setKeys', errors: [400, 412, 413, 503, 507], example: { entries: [{ key: 'user/1', value: { name: 'Ada' } }, { key: 'user/2', value: 'plain', encoding: 'utf8', ttl: 60 }] } },
  'GET /v1/store/watch': { id: 'watchKeys', errors: [400, 503], answers: { 200: SSE } },
  'PUT /v1/store/indexes/{name}': { id: 'putIndex', errors: [400, 409, 503], example: { prefix: 'user/', field: 'country' } },
  'GET /v1/store/indexes': { id: 'listIndexes', errors: [503] },
  'GET /v1/store/indexes/{name}': { id: 'getIndex', errors: NAMED },
  'DELETE /v1/store/indexes/{name}': { id: 'deleteIndex', errors: NAMED, answers: { 204: EMPTY_204 } },

  'PUT /v1/streams/{name}': { id: 'putStream', errors: [400, 409, 503, 507], answers: { 200: json(streamInfo, 'Updated'), 201: json(streamInfo, 'Created') }, example: { maxAge: 604800, capture: ['sensors/#'] } },
  'GET /v1/streams': { id: 'listStreams', errors: [503], answers: { 200: json({ type: 'object', required: ['streams'], properties: { streams: { type: 'array', items: streamInfo } } }) } },
  'GET /v1/streams/{name}': { id: 'getStream', errors: NAMED, answers: { 200: json(streamInfo) } },
  'DELETE /v1/streams/{name}': { id: 'deleteStream', errors: NAMED, answers: { 204: EMPTY_204 } },
  'POST /v1/streams/{name}/messages': { id: 'appendMessages', errors: [400, 404, 409, 413, 503, 507], example: { messages: [{ payload: { id: 42, total: 9.5 }, key: 'customer-7', dedupId: 'order-42' }], expectedLastOffset: 41 } },
  'GET /v1/streams/{name}/messages': { id: 'readMessages', errors: NAMED },
  'GET /v1/streams/{name}/tail': { id: 'tailStream', errors: NAMED, answers: { 200: SSE } },
  'GET /v1/streams/{name}/groups': { id: 'listGroups', errors: NAMED, answers: { 200: json({ type: 'object', required: ['groups'], properties: { groups: { type: 'array', items: groupInfo } } }) } },
  'PUT /v1/streams/{name}/groups/{group}': { id: 'putGroup', errors: [400, 404, 409, 503], answers: { 200: json(groupInfo, 'Updated'), 201: json(groupInfo, 'Created') }, example: { from: 'start', ackWait: 30, maxDeliveries: 5 } },
  'GET /v1/streams/{name}/groups/{group}': { id: 'getGroup', errors: NAMED, answers: { 200: json(groupInfo) } },
  'DELETE /v1/streams/{name}/groups/{group}': { id: 'deleteGroup', errors: NAMED, answers: { 204: EMPTY_204 } },
  'POST /v1/streams/{name}/groups/{group}/receive': { id: 'receiveGroupMessages', errors: [400, 404, 409, 503], example: { max: 10, wait: 20, consumer: 'worker-1' } },
  'POST /v1/streams/{name}/groups/{group}/ack': { id: 'ackGroupMessages', errors: NAMED, example: { offsets: [0, 2] } },
  'POST /v1/streams/{name}/groups/{group}/commit': { id: 'commitGroup', errors: NAMED, example: { offset: 9 } },
  'GET /v1/streams/{name}/groups/{group}/dead': {
    id: 'listGroupDeadLetters',
    errors: NAMED,
    answers: {
      200: json({
        type: 'object',
        required: ['messages', 'next'],
        properties: {
          messages: { type: 'array', items: { type: 'object', required: ['offset', 'deliveries'], properties: { offset: { type: 'integer' }, removed: { type: 'boolean' }, payload: {}, deliveries: { type: 'integer' }, consumer: { type: ['string', 'null'] }, deadAt: { type: 'integer' } } } },
          next: { type: ['integer', 'null'] }
        }
      })
    }
  },
  'POST /v1/streams/{name}/groups/{group}/dead/redrive': { id: 'redriveGroupDeadLetters', errors: NAMED, example: { offsets: [3] } },

  'GET /v1/dashboard': { id: 'getDashboard', errors: [503] },
  'GET /v1/stats': { id: 'getStats', errors: [503], answers: { 200: json({ type: 'object', required: ['now', 'history', 'warnings'], properties: { now: { type: 'object' }, history: { type: 'array', items: { type: 'object' } }, warnings: { type: 'array' } } }) } },
  'GET /v1/stats/stream': { id: 'streamStats', errors: [503], answers: { 200: SSE } },
  'POST /v1/auth/ticket': { id: 'createTicket', errors: [400, 503] },
  'GET /v1/auth/whoami': { id: 'whoami', errors: [503] }
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']

/** A wildcard path of fastify (`/v1/store/keys/{*}`) named as the API calls it. */
function renameWildcard (path: string): string {
  return path.replace('/v1/store/keys/{*}', '/v1/store/keys/{key}')
}

const KEY_PARAM = { name: 'key', in: 'path', required: true, description: 'The key; it may contain `/` (each segment URL-encoded)', schema: { type: 'string', minLength: 1 }, example: 'user/1' }

function keyParameters (op: Operation): Operation {
  return { ...op, parameters: [KEY_PARAM, ...(op.parameters ?? []).filter(p => p.name !== '*')] }
}

/** The one POST wildcard route of the store as its two operations. */
function splitKeyActions (paths: Paths): void {
  const post = paths['/v1/store/keys/{key}']?.post
  if (post === undefined) return
  delete paths['/v1/store/keys/{key}'].post
  const base = { ...post }
  delete base.requestBody
  const bodyOf = (schema: Schema): Operation['requestBody'] => ({ content: { 'application/json': { schema } } })
  paths['/v1/store/keys/{key}/incr'] = {
    post: { ...base, summary: 'Add an integer to a key atomically', description: 'A missing key counts as 0 and the TTL is kept; a value that is not an integer is a 409. No body adds 1.', requestBody: bodyOf({ type: 'object', additionalProperties: false, properties: { by: { type: 'integer', default: 1 } } }) }
  }
  paths['/v1/store/keys/{key}/ttl'] = {
    post: { ...base, summary: 'Set or remove the TTL of a key', description: 'ttl in seconds (fractions allowed), or null to remove it; 404 when the key is missing.', requestBody: { ...bodyOf({ type: 'object', required: ['ttl'], additionalProperties: false, properties: { ttl: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'null' }] } } }), required: true } as Operation['requestBody'] }
  }
}

/** @fastify/swagger's transformObject: the finishing pass described at the top of this file. */
export function completeOpenApi<D extends object> (openapiObject: D): D {
  const doc = openapiObject as { paths?: Paths, components?: Record<string, unknown> }
  const paths: Paths = {}
  for (const [path, methods] of Object.entries(doc.paths ?? {})) {
    const renamed = renameWildcard(path)
    paths[renamed] = {}
    for (const [method, op] of Object.entries(methods)) paths[renamed][method] = renamed !== path ? keyParameters(op) : op
  }
  splitKeyActions(paths)
  for (const [path, methods] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = methods[method]
      if (op === undefined) continue
      const spec = OPERATIONS[`${method.toUpperCase()} ${path}`]
      if (spec === undefined) continue
      op.operationId = spec.id
      let responses = { ...(op.responses ?? {}) }
      if (spec.answers !== undefined) {
        // the generated placeholder for a route without a response schema
        if ((responses['200'] as { content?: unknown } | undefined)?.content === undefined) delete responses['200']
        responses = { ...spec.answers, ...responses }
        for (const [status, answer] of Object.entries(spec.answers)) responses[status] = answer
      }
      for (const status of spec.errors) responses[String(status)] ??= problemAnswer(status)
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))
      const content = op.requestBody?.content?.['application/json']
      if (spec.example !== undefined && content !== undefined && (content as { examples?: unknown }).examples === undefined) content.example = spec.example
    }
  }
  return { ...openapiObject, paths, components: { ...doc.components, schemas: { ...(doc.components?.schemas as Record<string, unknown> | undefined), Problem: PROBLEM_SCHEMA } } } as D
}

/** Operations of the table the document lacks, and operations of the document the table lacks (for the tests). */
export function undocumentedOperations (paths: Record<string, Record<string, object>>): { missingInTable: string[], missingInDocument: string[] } {
  const inDoc = new Set<string>()
  for (const [path, methods] of Object.entries(paths)) for (const method of Object.keys(methods)) if (METHODS.includes(method)) inDoc.add(`${method.toUpperCase()} ${path}`)
  return { missingInTable: [...inDoc].filter(k => OPERATIONS[k] === undefined), missingInDocument: Object.keys(OPERATIONS).filter(k => !inDoc.has(k)) }
}
