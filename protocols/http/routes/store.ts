import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { HttpContext } from '../app.js'
import { InvalidArgument, NotFound, PreconditionFailed } from '../../../engines/errors.js'
import type { KeyInfo, MsetEntry, Page, Store, StoreEvent } from '../../../engines/store/store.js'
import { decodePayload, encodePayload, encodingSchema, type PayloadEncoding } from '../payload.js'
import { lastEventId, SseStream } from '../sse.js'

/** A watcher whose socket holds more than this stops taking live events and catches up from the backlog. */
const WATCH_MAX_BUFFERED_BYTES = 4 * 1024 * 1024
const MAX_BATCH = 1000

const ttlSchema = { type: 'number', exclusiveMinimum: 0, description: 'Time to live in seconds (fractions allowed)' } as const
const keyInfoSchema = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    size: { type: 'integer' },
    contentType: { type: 'string' },
    etag: { type: 'string' },
    ttl: { type: ['number', 'null'], description: 'Seconds left, null without TTL' }
  }
} as const
const pageSchema = {
  type: 'object',
  properties: {
    keys: { type: 'array', items: keyInfoSchema },
    cursor: { type: ['string', 'null'], description: 'Pass as cursor for the next page; null at the end' }
  }
} as const

/**
 * The decimal text of a revision. Revisions are integers above 2^31 (they start from the clock in µs),
 * which V8 formats through its slow double-to-text path (~120 ns, no cache: every revision is new);
 * as a high and a low part below 2^31 each it is twice as fast, and the high part rarely changes.
 */
let lastHigh = -1
let lastHighText = ''
export function revisionText (revision: number): string {
  if (revision < REVISION_SPLIT) return String(revision)
  const high = Math.floor(revision / REVISION_SPLIT)
  if (high !== lastHigh) {
    lastHigh = high
    lastHighText = String(high)
  }
  // the low part zero-padded to 8 digits: 1e8 + low has 9 digits, drop the leading 1
  return lastHighText + String(REVISION_SPLIT + (revision - high * REVISION_SPLIT)).slice(1)
}
const REVISION_SPLIT = 1e8

export const etagOf = (revision: number): string => '"' + revisionText(revision) + '"'

/** Parses If-Match / If-None-Match: '*' or the revisions of the listed entity tags (weak or strong). */
export function parseEtags (header: string | string[] | undefined): '*' | number[] | undefined {
  if (header === undefined) return undefined
  const text = Array.isArray(header) ? header.join(',') : header
  if (text.trim() === '*') return '*'
  const revisions: number[] = []
  for (const part of text.split(',')) {
    const m = /^\s*(?:W\/)?"(\d{1,16})"\s*$/.exec(part)
    if (m !== null) revisions.push(Number(m[1]))
  }
  return revisions
}

function secondsLeft (expiresAt: number | null, now: number): number | null {
  return expiresAt === null ? null : Math.max(0, expiresAt - now) / 1000
}

function keyInfoJson (info: KeyInfo, now: number): Record<string, unknown> {
  return { key: info.key, size: info.size, contentType: info.contentType, etag: etagOf(info.revision), ttl: secondsLeft(info.expiresAt, now) }
}

function pageJson (page: Page<KeyInfo>, now: number): { keys: Array<Record<string, unknown>>, cursor: string | null } {
  return { keys: page.items.map(i => keyInfoJson(i, now)), cursor: page.cursor }
}

/** A value in a JSON body: {value, encoding?} as payload.ts encodes bytes (JSON stays JSON). */
function valueJson (bytes: Buffer): { value: unknown, encoding?: 'base64' | 'utf8' } {
  const { payload, encoding } = encodePayload(bytes)
  return encoding === undefined ? { value: payload } : { value: payload, encoding }
}

const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * The JSON text of one mget item, {key, value, encoding?, contentType, etag, ttl}, read through a
 * Store.lookup handle: the value bytes are encoded from the store's memory without a copy, so this must
 * run before anything else writes to the store.
 */
function storedJsonText (store: Store, key: string, handle: number, now: number): string {
  const expiresAt = store.expiresAtOf(handle)
  return '{"key":' + JSON.stringify(key) +
    ',"value":' + valueJsonText(store, handle) +
    ',"contentType":' + contentTypeJson(store.contentTypeOf(handle)) +
    ',"etag":"\\"' + revisionText(store.revisionOf(handle)) + '\\""' +
    ',"ttl":' + (expiresAt === null ? 'null' : JSON.stringify(secondsLeft(expiresAt, now))) + '}'
}

/**
 * `value` and `encoding` of a stored value as JSON text, exactly as valueJson would give them. Printable
 * ASCII without quote or backslash that cannot start a JSON value (most text values: tokens, ids, words)
 * is its own JSON string and is read straight from the store's memory; anything else goes through
 * encodePayload.
 */
function valueJsonText (store: Store, handle: number): string {
  const buffer = store.valueBufferOf(handle)
  const start = store.valueOffsetOf(handle)
  const end = start + store.valueLengthOf(handle)
  if (end - start <= MAX_PLAIN_CHECK) {
    // one byte per character: a native slice plus a regular expression beat a byte loop in JavaScript
    const text = buffer.toString('latin1', start, end)
    if (PLAIN_TEXT.test(text) && !JSON_START[text.charCodeAt(0)]) return '"' + text + '","encoding":"utf8"'
  }
  const { payload, encoding } = encodePayload(buffer.subarray(start, end))
  return encoding === undefined ? JSON.stringify(payload) : JSON.stringify(payload) + ',"encoding":"' + encoding + '"'
}

/** Printable ASCII without quote and backslash: text that is its own JSON string body. */
const PLAIN_TEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/
/** Longer values go straight to encodePayload: the plain check would rarely pay for its slice. */
const MAX_PLAIN_CHECK = 4096
/** Bytes with which encodePayload tries JSON.parse: { [ " digit - t f n. */
const JSON_START: readonly boolean[] = Array.from({ length: 256 }, (_, b) => '{["0123456789-tfn'.includes(String.fromCharCode(b)))

/** Content types repeat from key to key: the JSON text of the last one is kept. */
let lastContentType = ''
let lastContentTypeJson = '""'
function contentTypeJson (type: string): string {
  if (type !== lastContentType) {
    lastContentType = type
    lastContentTypeJson = JSON.stringify(type)
  }
  return lastContentTypeJson
}

/** Content type of a value given in a JSON body, from how it was encoded. */
function contentTypeFor (encoding: PayloadEncoding | undefined): string {
  if (encoding === 'utf8') return 'text/plain; charset=utf-8'
  if (encoding === 'base64') return 'application/octet-stream'
  return 'application/json'
}

/** POST /v1/store/keys/{key}/{action}: the key and the action (incr, ttl) of the wildcard path. */
function splitKeyAction (path: string): { key: string, action: string } {
  const slash = path.lastIndexOf('/')
  return { key: path.slice(0, slash), action: slash > 0 ? path.slice(slash + 1) : '' }
}

const wildcardOf = (request: FastifyRequest): string => (request.params as Record<string, string | undefined>)['*'] ?? ''

/** The ACL declarations of the key routes: the key is the wildcard of the path. */
const READ_KEY = { resource: 'store', action: 'read', name: { one: 'params', field: '*' } } as const
const WRITE_KEY = { resource: 'store', action: 'write', name: { one: 'params', field: '*' } } as const

function keyParam (request: FastifyRequest): string {
  const key = (request.params as Record<string, string | undefined>)['*'] ?? ''
  if (key.length === 0) throw new InvalidArgument('the key is missing from the path: /v1/store/keys/{key}')
  return key
}

interface PutQuery { ttl?: number, keepTtl?: boolean, ifExists?: boolean }
interface ScanQuery { prefix?: string, cursor?: string, limit?: number, index?: string, value?: string }
interface MsetBody { entries: Array<{ key: string, value: unknown, encoding?: PayloadEncoding, contentType?: string, ttl?: number }>, ifAbsent?: boolean }
interface WatchQuery { prefix?: string, values?: boolean, lastEventId?: string }
interface KeyActionBody { by?: number, ttl?: number | null }

export function registerStoreRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { store, clock } = ctx.engines

  // PUT takes the raw body of any content type, so it lives in a scope with a catch-all buffer parser
  void app.register(async scope => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: store.maxValueBytes }, (_request, body, done) => { done(null, body) })

    scope.put<{ Querystring: PutQuery }>('/v1/store/keys/*', {
      bodyLimit: store.maxValueBytes,
      config: { acl: WRITE_KEY },
      schema: {
        tags: ['store'],
        summary: 'Set a key: the request body is the value, stored byte for byte with its content type',
        description: 'If-None-Match: * sets only if absent; If-Match: <etag> only if unchanged (compare-and-set); ifExists=true only if present; a failed condition is 412. Without ttl an old TTL is cleared unless keepTtl=true. Returns the new ETag.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ttl: ttlSchema, keepTtl: { type: 'boolean' }, ifExists: { type: 'boolean' } }
        },
        response: { 200: { type: 'object', properties: { key: { type: 'string' }, etag: { type: 'string' }, size: { type: 'integer' } } } }
      }
    }, async (request, reply) => {
      const key = keyParam(request)
      const body = request.body
      const value = Buffer.isBuffer(body) ? body : Buffer.alloc(0)
      const { ttl, keepTtl, ifExists } = request.query
      if (ttl !== undefined && keepTtl === true) throw new InvalidArgument('ttl and keepTtl=true exclude each other')
      const ifMatch = parseEtags(request.headers['if-match'])
      const ifNoneMatch = parseEtags(request.headers['if-none-match'])
      const current = ifMatch !== undefined || ifNoneMatch !== undefined ? store.info(key) : undefined
      if (ifNoneMatch !== undefined && ifNoneMatch !== '*' && current !== undefined && ifNoneMatch.includes(current.revision)) {
        throw new PreconditionFailed(`key "${key}" matches If-None-Match`, { etag: etagOf(current.revision) })
      }
      let ifRevision: number | undefined
      if (ifMatch !== undefined && ifMatch !== '*') {
        if (current === undefined) throw new PreconditionFailed(`key "${key}" does not exist`)
        if (!ifMatch.includes(current.revision)) throw new PreconditionFailed(`key "${key}" has changed (etag ${etagOf(current.revision)})`, { etag: etagOf(current.revision) })
        ifRevision = current.revision
      }
      const contentType = request.headers['content-type'] ?? 'application/octet-stream'
      const { revision } = store.set(key, value, {
        contentType,
        ...(ttl !== undefined ? { ttlMs: ttl * 1000 } : {}),
        keepTtl: keepTtl === true,
        ifAbsent: ifNoneMatch === '*',
        ifPresent: ifExists === true || ifMatch === '*',
        ...(ifRevision !== undefined ? { ifRevision } : {})
      })
      const etag = etagOf(revision)
      void reply.header('etag', etag)
      return { key, etag, size: value.length }
    })
  })

  app.get('/v1/store/keys/*', {
    config: { acl: READ_KEY },
    schema: {
      tags: ['store'],
      summary: 'Get a key: the value with its content type, ETag, and the seconds left in Tetra-TTL',
      description: 'If-None-Match: <etag> gives 304 when unchanged. 404 when missing or expired.'
    }
  }, async (request, reply) => {
    const key = keyParam(request)
    const found = store.get(key)
    if (found === undefined) throw new NotFound(`key "${key}" not found`)
    const etag = etagOf(found.revision)
    void reply.header('etag', etag)
    if (found.expiresAt !== null) void reply.header('tetra-ttl', String(secondsLeft(found.expiresAt, clock.now())))
    const ifNoneMatch = parseEtags(request.headers['if-none-match'])
    if (ifNoneMatch !== undefined && (ifNoneMatch === '*' || ifNoneMatch.includes(found.revision))) {
      return reply.code(304).send()
    }
    return reply.type(found.contentType).send(found.value)
  })

  app.delete('/v1/store/keys/*', {
    config: { acl: WRITE_KEY },
    schema: {
      tags: ['store'],
      summary: 'Delete a key',
      description: 'If-Match: <etag> deletes only if unchanged (412 otherwise). 204, or 404 when missing.'
    }
  }, async (request, reply) => {
    const key = keyParam(request)
    const ifMatch = parseEtags(request.headers['if-match'])
    if (ifMatch !== undefined && ifMatch !== '*') {
      const current = store.info(key)
      if (current === undefined) throw new NotFound(`key "${key}" not found`)
      if (!ifMatch.includes(current.revision)) throw new PreconditionFailed(`key "${key}" has changed (etag ${etagOf(current.revision)})`, { etag: etagOf(current.revision) })
      store.delete(key, { ifRevision: current.revision })
    } else {
      store.delete(key)
    }
    return reply.code(204).send()
  })

  app.post<{ Body: KeyActionBody | undefined }>('/v1/store/keys/*', {
    // incr needs no body at all: an absent body counts as {}
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {} },
    config: { acl: { resource: 'store', action: 'write', name: { resolve: request => ({ name: splitKeyAction(wildcardOf(request)).key }), doc: 'the key of the path before /incr or /ttl' } } },
    schema: {
      tags: ['store'],
      summary: 'POST /v1/store/keys/{key}/incr {by?} -> {value}; POST /v1/store/keys/{key}/ttl {ttl: seconds | null}',
      description: 'incr adds an integer atomically (a missing key counts as 0, the TTL is kept; a value that is not an integer is a 409). ttl sets the TTL or, with null, removes it (404 when the key is missing).',
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          by: { type: 'integer', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
          ttl: { anyOf: [ttlSchema, { type: 'null' }] }
        }
      }
    }
  }, async (request) => {
    const body = request.body ?? {}
    const { key, action } = splitKeyAction(keyParam(request))
    if (action === 'incr') {
      if (body.ttl !== undefined) throw new InvalidArgument('incr takes {by?}; set a TTL with POST /v1/store/keys/{key}/ttl')
      const { value, revision } = store.incr(key, body.by ?? 1)
      return { key, value, etag: etagOf(revision) }
    }
    if (action === 'ttl') {
      if (body.by !== undefined || body.ttl === undefined) throw new InvalidArgument('ttl takes {ttl: seconds} or {ttl: null} to remove the TTL')
      const info = store.setTtl(key, body.ttl === null ? null : body.ttl * 1000)
      return keyInfoJson(info, clock.now())
    }
    throw new NotFound(`no route POST ${request.url.split('?')[0]}; use /v1/store/keys/{key}/incr or /v1/store/keys/{key}/ttl`)
  })

  app.get<{ Querystring: ScanQuery }>('/v1/store/keys', {
    config: {
      acl: {
        resource: 'store',
        action: 'read',
        name: { resolve: request => scanPrefix(store, request.query as ScanQuery), doc: 'every key starting with query.prefix, or under the prefix of query.index' },
        results: { array: 'keys', field: 'key' }
      }
    },
    schema: {
      tags: ['store'],
      summary: 'List keys by prefix (stable cursor), or by an index value',
      description: 'prefix + cursor + limit: keys in key order; a key that exists for the whole scan is returned exactly once, also while others write. index + value: the keys whose indexed JSON field has that value (numbers, booleans and null by their text form).',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          prefix: { type: 'string' },
          cursor: { type: 'string', minLength: 1 },
          limit: { type: 'integer', minimum: 1, maximum: MAX_BATCH },
          index: { type: 'string', minLength: 1 },
          value: { type: 'string' }
        }
      },
      response: { 200: pageSchema }
    }
  }, async (request) => {
    const { prefix, cursor, limit, index, value } = request.query
    const now = clock.now()
    if (index !== undefined) {
      if (value === undefined) throw new InvalidArgument('index needs value')
      if (prefix !== undefined) throw new InvalidArgument('prefix and index exclude each other')
      return pageJson(store.findByIndex(index, value, { cursor, limit }), now)
    }
    if (value !== undefined) throw new InvalidArgument('value needs index')
    return pageJson(store.scan({ prefix, cursor, limit }), now)
  })

  app.post<{ Body: { keys: string[] } }>('/v1/store/mget', {
    config: { acl: { resource: 'store', action: 'read', name: { each: 'body', field: 'keys' } } },
    schema: {
      tags: ['store'],
      summary: 'Get many keys: values in the order asked, null for missing ones',
      body: {
        type: 'object',
        required: ['keys'],
        additionalProperties: false,
        properties: { keys: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: MAX_BATCH } }
      },
      response: {
        200: {
          type: 'object',
          properties: {
            values: {
              type: 'array',
              // a nullable object rather than anyOf: the serializer then needs no validation per item
              items: {
                type: ['object', 'null'],
                properties: {
                  key: { type: 'string' },
                  value: {},
                  encoding: { type: 'string' },
                  contentType: { type: 'string' },
                  etag: { type: 'string' },
                  ttl: { type: ['number', 'null'] }
                }
              }
            }
          }
        }
      }
    }
  }, async (request, reply) => {
    // written as JSON text straight from the store's records: no value copies, no objects per key
    const keys = request.body.keys
    const now = clock.now()
    const handles = store.lookupMany(keys)
    let json = '{"values":['
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) json += ','
      const handle = handles[i]
      json += handle < 0 ? 'null' : storedJsonText(store, keys[i], handle, now)
    }
    return reply.type(JSON_TYPE).send(json + ']}')
  })

  app.post<{ Body: MsetBody }>('/v1/store/mset', {
    config: { acl: { resource: 'store', action: 'write', name: { each: 'body', field: 'entries', key: 'key' } } },
    schema: {
      tags: ['store'],
      summary: 'Set many keys at once: all or nothing',
      description: 'value is JSON, or a string with encoding utf8 or base64. contentType defaults to application/json, text/plain or application/octet-stream by encoding. With ifAbsent=true, nothing is written if any key exists (412).',
      body: {
        type: 'object',
        required: ['entries'],
        additionalProperties: false,
        properties: {
          entries: {
            type: 'array',
            minItems: 1,
            maxItems: MAX_BATCH,
            items: {
              type: 'object',
              required: ['key', 'value'],
              additionalProperties: false,
              properties: {
                key: { type: 'string', minLength: 1 },
                value: {},
                encoding: encodingSchema,
                // it becomes a response header: printable ASCII only
                contentType: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7e]+$' },
                ttl: ttlSchema
              }
            }
          },
          ifAbsent: { type: 'boolean' }
        }
      },
      response: { 200: { type: 'object', properties: { etags: { type: 'array', items: { type: 'string' } } } } }
    }
  }, async (request, reply) => {
    const entries = request.body.entries.map((e, i): MsetEntry => {
      const entry: MsetEntry = { key: e.key, value: decodePayload(e.value, e.encoding, `entries[${i}].value`), contentType: e.contentType ?? contentTypeFor(e.encoding) }
      if (e.ttl !== undefined) entry.ttlMs = e.ttl * 1000
      return entry
    })
    const revisions = store.mset(entries, { ifAbsent: request.body.ifAbsent === true })
    // etags hold quotes, which a generic serialiser escapes character by character: written directly
    let json = '{"etags":['
    for (let i = 0; i < revisions.length; i++) json += (i > 0 ? ',"\\"' : '"\\"') + revisionText(revisions[i]) + '\\""'
    return reply.type(JSON_TYPE).send(json + ']}')
  })

  registerWatchRoute(app, ctx)
  registerIndexRoutes(app, ctx)
}

function eventJson (e: StoreEvent, withValues: boolean, now: number): string {
  const out: Record<string, unknown> = { type: e.type, key: e.key, revision: e.revision }
  if (e.type === 'set') {
    if (e.superseded === true) out.superseded = true
    else {
      out.contentType = e.contentType
      out.ttl = secondsLeft(e.expiresAt ?? null, now)
      if (withValues && e.value !== undefined) {
        const bytes = Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength)
        Object.assign(out, valueJson(bytes))
      }
    }
  } else if (e.type === 'ttl') out.ttl = secondsLeft(e.expiresAt ?? null, now)
  return JSON.stringify(out)
}

function registerWatchRoute (app: FastifyInstance, ctx: HttpContext): void {
  const { store, clock } = ctx.engines

  app.get<{ Querystring: WatchQuery }>('/v1/store/watch', {
    config: { acl: { resource: 'store', action: 'read', name: { prefix: 'query', field: 'prefix' }, deliver: true, ticket: true } },
    schema: {
      tags: ['store'],
      summary: 'Watch changes under a prefix over Server-Sent Events, resumable with Last-Event-ID',
      description: 'Events set, delete, expire, evict and ttl (a TTL set or removed) with data {type, key, revision, contentType?, ttl?, value?, encoding?}; the value of a set only with values=true. id: is the revision. Reconnecting with Last-Event-ID (or ?lastEventId=) replays what was missed from the backlog; a replayed set whose value has since changed says superseded: true. When the missed events are no longer held, a reset event says to re-read the keys; the feed goes on from there.',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { prefix: { type: 'string' }, values: { type: 'boolean' }, lastEventId: { type: 'string' } }
      },
      produces: ['text/event-stream']
    }
  }, async (request: FastifyRequest<{ Querystring: WatchQuery }>, reply: FastifyReply) => {
    const prefix = request.query.prefix ?? ''
    const withValues = request.query.values === true
    const resume = lastEventId(request)
    if (resume !== undefined && !/^\d{1,16}$/.test(resume)) throw new InvalidArgument('Last-Event-ID must be a revision from this feed')
    const sse = new SseStream(request, reply, ctx.options.sseHeartbeatMs)
    ctx.metrics.sseClients.inc({ feed: 'store' })
    sse.onClose(() => { ctx.metrics.sseClients.dec({ feed: 'store' }) })

    // every event up to `seen` has been sent or filtered out; a lagging watcher resumes after it
    let seen = store.latestRevision
    let lagging = false
    const deliver = (e: StoreEvent): void => {
      seen = e.revision
      if (!e.key.startsWith(prefix) || !sse.permits(e.key)) return
      sse.send({ id: String(e.revision), event: e.type, data: eventJson(e, withValues, clock.now()) })
      ctx.metrics.sseEvents.store++
    }
    const resetAndGoOn = (reason: string): void => {
      seen = store.latestRevision
      sse.send({ id: String(seen), event: 'reset', data: JSON.stringify({ type: 'reset', reason, revision: seen }) })
    }
    const catchUp = async (): Promise<void> => {
      for (;;) {
        await sse.drained()
        if (sse.closed) return
        if (!store.replay(seen, deliver, withValues)) resetAndGoOn('this watcher fell behind the backlog; re-read the keys it follows')
        if (reply.raw.writableLength <= WATCH_MAX_BUFFERED_BYTES) {
          lagging = false
          return
        }
      }
    }

    if (resume !== undefined) {
      const after = Number(resume)
      if (!store.replay(after, deliver, withValues)) resetAndGoOn(after > store.latestRevision ? 'unknown event id (the store restarted?); re-read the keys' : 'the events after this id are no longer in the backlog; re-read the keys')
    }
    // replay and subscription happen in the same tick: no event can fall between them
    const unsubscribe = store.watch(e => {
      if (lagging || sse.closed) return
      if (reply.raw.writableLength > WATCH_MAX_BUFFERED_BYTES) {
        lagging = true
        void catchUp()
        return
      }
      deliver(e)
    })
    sse.onClose(unsubscribe)
  })
}

/** The prefix of the keys an index covers, for the ACL; '' (the whole store) when there is no such index. */
function prefixOfIndex (store: Store, name: unknown): string {
  if (typeof name !== 'string') return ''
  try {
    return store.getIndex(name).prefix
  } catch {
    return ''
  }
}

/** A scan: the keys under `prefix`, or those under the prefix of the index queried. */
function scanPrefix (store: Store, query: ScanQuery): { prefix: string } {
  return { prefix: query.index !== undefined ? prefixOfIndex(store, query.index) : query.prefix ?? '' }
}

function registerIndexRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { store } = ctx.engines
  const indexPrefix = {
    resolve: (request: FastifyRequest) => ({ prefix: prefixOfIndex(store, (request.params as { name?: unknown }).name) }),
    doc: 'every key under the prefix of the index params.name'
  }
  const nameParams = {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,200}$' } }
  } as const
  const indexSchema = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      prefix: { type: 'string' },
      field: { type: 'string' },
      ready: { type: 'boolean' },
      indexedKeys: { type: 'integer' },
      distinctValues: { type: 'integer' }
    }
  } as const

  app.put<{ Params: { name: string }, Body: { prefix?: string, field: string } }>('/v1/store/indexes/:name', {
    config: { acl: { resource: 'store', action: 'write', name: { prefix: 'body', field: 'prefix' } } },
    schema: {
      tags: ['store'],
      summary: 'Create or replace a JSON-field index over the keys under a prefix',
      description: 'Indexes the scalar field (dotted path) of every JSON object value under the prefix, existing keys included, and follows every set, delete, expiry and eviction. Answers once the existing keys are indexed: 201 when created or replaced, 200 when an identical index existed.',
      params: nameParams,
      body: {
        type: 'object',
        required: ['field'],
        additionalProperties: false,
        properties: { prefix: { type: 'string' }, field: { type: 'string', minLength: 1, maxLength: 200 } }
      },
      response: { 200: indexSchema, 201: indexSchema }
    }
  }, async (request, reply) => {
    const { index, created } = await store.createIndex(request.params.name, { prefix: request.body.prefix ?? '', field: request.body.field })
    return reply.code(created ? 201 : 200).send(index)
  })

  app.get('/v1/store/indexes', {
    config: { acl: { resource: 'store', action: 'read', results: { array: 'indexes', field: 'prefix', prefix: true } } },
    schema: {
      tags: ['store'],
      summary: 'List the JSON-field indexes',
      response: { 200: { type: 'object', properties: { indexes: { type: 'array', items: indexSchema } } } }
    }
  }, async () => ({ indexes: store.listIndexes() }))

  app.get<{ Params: { name: string } }>('/v1/store/indexes/:name', {
    config: { acl: { resource: 'store', action: 'read', name: indexPrefix } },
    schema: { tags: ['store'], summary: 'One JSON-field index', params: nameParams, response: { 200: indexSchema } }
  }, async (request) => store.getIndex(request.params.name))

  app.delete<{ Params: { name: string } }>('/v1/store/indexes/:name', {
    config: { acl: { resource: 'store', action: 'write', name: indexPrefix } },
    schema: { tags: ['store'], summary: 'Delete a JSON-field index', params: nameParams }
  }, async (request, reply) => {
    store.deleteIndex(request.params.name)
    return reply.code(204).send()
  })
}
