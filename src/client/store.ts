import type { CallOptions, Transport, WireResponse } from './http.js'
import { keyPath } from './http.js'
import { decodePayload, encodePayload, type Encoding } from './payload.js'
import { sseFeed } from './sse.js'

/** A key as scans list it. */
export interface KeyInfo {
  key: string
  size: number
  contentType: string
  etag: string
  /** Seconds left, null without TTL. */
  ttl: number | null
}

/** A value read with its metadata. */
export interface Entry<T = unknown> {
  key: string
  value: T
  contentType: string
  etag: string
  ttl: number | null
}

export interface SetOptions extends CallOptions {
  /** Seconds to live (fractions allowed). */
  ttl?: number
  /** Keep the key's TTL (default: a set without ttl clears it). */
  keepTtl?: boolean
  /** Only if the key does not exist (If-None-Match: *). */
  ifAbsent?: boolean
  /** Only if the key exists. */
  ifExists?: boolean
  /** Only if the key still has this ETag (compare-and-set). */
  ifMatch?: string
  /** The content type stored with the value (default: by the value's kind). */
  contentType?: string
}

/** A change under a watched prefix. */
export interface StoreEvent {
  type: 'set' | 'delete' | 'expire' | 'evict' | 'ttl' | 'reset'
  key: string
  revision: number
  contentType?: string
  ttl?: number | null
  /** With watch({values: true}): the new value, decoded as get() decodes it. */
  value?: unknown
  encoding?: Encoding
  /** A replayed set whose value has since changed again. */
  superseded?: boolean
  /** reset: why the missed events could not be replayed (re-read the keys). */
  reason?: string
}

/** A body as a value: JSON parsed, text as a string, anything else as bytes. */
export async function valueOf (response: WireResponse): Promise<unknown> {
  const type = response.headers.get('content-type') ?? ''
  if (/^application\/(.+\+)?json/i.test(type)) {
    const text = await response.text()
    try { return JSON.parse(text) } catch { return text }
  }
  if (/^text\//i.test(type)) return await response.text()
  return new Uint8Array(await response.arrayBuffer())
}

function bodyOf (value: unknown, contentType?: string): { body: BodyInit, type: string } {
  if (value instanceof Uint8Array) return { body: value as unknown as BodyInit, type: contentType ?? 'application/octet-stream' }
  if (typeof value === 'string') return { body: value, type: contentType ?? 'text/plain; charset=utf-8' }
  if (value === undefined) throw new TypeError('set() needs a value (null is a JSON value)')
  return { body: JSON.stringify(value), type: contentType ?? 'application/json' }
}

const ttlHeader = (headers: WireResponse['headers']): number | null => {
  const t = headers.get('tetra-ttl')
  return t === null ? null : Number(t)
}

/** The key-value store: `client.store`. */
export class StoreClient {
  constructor (private readonly http: Transport) {}

  /** The value of a key (JSON parsed, text as a string, bytes as Uint8Array), undefined when missing. */
  async get<T = unknown> (key: string, options: CallOptions = {}): Promise<T | undefined> {
    return (await this.getEntry<T>(key, options))?.value
  }

  /** The value with its ETag, content type and TTL, undefined when missing. */
  async getEntry<T = unknown> (key: string, options: CallOptions = {}): Promise<Entry<T> | undefined> {
    const { status, headers, response } = await this.http.request({ ...options, method: 'GET', path: `/v1/store/keys/${keyPath(key)}`, accept: [404] })
    if (status === 404) { await response.body?.cancel(); return undefined }
    return { key, value: await valueOf(response) as T, contentType: headers.get('content-type') ?? '', etag: headers.get('etag') ?? '', ttl: ttlHeader(headers) }
  }

  /**
   * Sets a key; returns its new ETag, or null when a condition (ifAbsent, ifExists, ifMatch) did not hold
   * (as Redis's SET NX answers nil). A Uint8Array is stored as bytes, a string as text, anything else as JSON.
   */
  async set (key: string, value: unknown, options: SetOptions = {}): Promise<string | null> {
    const { body, type } = bodyOf(value, options.contentType)
    const headers: Record<string, string> = { 'content-type': type }
    if (options.ifAbsent === true) headers['if-none-match'] = '*'
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch
    const { status, headers: answer, response } = await this.http.request({
      ...options,
      method: 'PUT',
      path: `/v1/store/keys/${keyPath(key)}`,
      query: { ttl: options.ttl, keepTtl: options.keepTtl === true ? true : undefined, ifExists: options.ifExists === true ? true : undefined },
      body,
      headers,
      accept: [412]
    })
    await response.arrayBuffer()
    return status === 412 ? null : answer.get('etag') ?? ''
  }

  /** Deletes a key; false when it did not exist (or, with ifMatch, had changed). */
  async delete (key: string, options: CallOptions & { ifMatch?: string } = {}): Promise<boolean> {
    const { status, response } = await this.http.request({
      ...options,
      method: 'DELETE',
      path: `/v1/store/keys/${keyPath(key)}`,
      ...(options.ifMatch !== undefined ? { headers: { 'if-match': options.ifMatch } } : {}),
      accept: [404, 412]
    })
    await response.arrayBuffer()
    return status === 204
  }

  /** Adds `by` (default 1) atomically; a missing key counts as 0. Returns the new value. */
  async incr (key: string, by = 1, options: CallOptions = {}): Promise<number> {
    const answer = await this.http.json<{ value: number }>({ ...options, method: 'POST', path: `/v1/store/keys/${keyPath(key)}/incr`, json: { by } })
    return answer.value
  }

  /** Seconds the key has left, null without TTL, undefined when missing. */
  async ttl (key: string, options: CallOptions = {}): Promise<number | null | undefined> {
    const entry = await this.getEntry(key, options)
    return entry === undefined ? undefined : entry.ttl
  }

  /** Sets the TTL in seconds, or removes it with null. NotFoundError when the key is missing. */
  async expire (key: string, ttl: number | null, options: CallOptions = {}): Promise<KeyInfo> {
    return await this.http.json<KeyInfo>({ ...options, method: 'POST', path: `/v1/store/keys/${keyPath(key)}/ttl`, json: { ttl } })
  }

  /** The values of many keys in the order asked, undefined for missing ones. */
  async mget<T = unknown> (keys: string[], options: CallOptions = {}): Promise<Array<T | undefined>> {
    const answer = await this.http.json<{ values: Array<{ value: unknown, encoding?: Encoding } | null> }>({ ...options, method: 'POST', path: '/v1/store/mget', json: { keys } })
    return answer.values.map(v => v === null ? undefined : decodePayload(v.value, v.encoding) as T)
  }

  /** Sets many keys atomically (all or none); returns their ETags, or null when ifAbsent failed. */
  async mset (entries: Record<string, unknown> | Array<{ key: string, value: unknown, ttl?: number, contentType?: string }>, options: CallOptions & { ifAbsent?: boolean } = {}): Promise<string[] | null> {
    const list = Array.isArray(entries) ? entries : Object.entries(entries).map(([key, value]) => ({ key, value }))
    const wire = list.map(e => {
      const { payload, encoding } = typeof e.value === 'string' ? { payload: e.value, encoding: 'utf8' as const } : encodePayload(e.value)
      return { key: e.key, value: payload, ...(encoding !== undefined ? { encoding } : {}), ...('ttl' in e && e.ttl !== undefined ? { ttl: e.ttl } : {}), ...('contentType' in e && e.contentType !== undefined ? { contentType: e.contentType } : {}) }
    })
    const { status, response } = await this.http.request({ ...options, method: 'POST', path: '/v1/store/mset', json: { entries: wire, ...(options.ifAbsent === true ? { ifAbsent: true } : {}) }, accept: [412] })
    const text = await response.text()
    return status === 412 ? null : (JSON.parse(text) as { etags: string[] }).etags
  }

  /** Every key under a prefix, page by page over the cursor (a key present the whole scan comes once). */
  async * scan (options: CallOptions & { prefix?: string, pageSize?: number } = {}): AsyncGenerator<KeyInfo> {
    let cursor: string | null | undefined
    do {
      const page = await this.http.json<{ keys: KeyInfo[], cursor: string | null }>({
        ...options, method: 'GET', path: '/v1/store/keys', query: { prefix: options.prefix, cursor: cursor ?? undefined, limit: options.pageSize }
      })
      yield * page.keys
      cursor = page.cursor
    } while (cursor !== null)
  }

  /** The keys under a prefix as an array (a scan to the end). */
  async keys (prefix = '', options: CallOptions = {}): Promise<string[]> {
    const out: string[] = []
    for await (const info of this.scan({ ...options, prefix })) out.push(info.key)
    return out
  }

  /**
   * The changes under a prefix, live. Resumes by itself after a lost connection or a broker restart
   * (Last-Event-ID = the last revision seen); a `reset` event says missed events were no longer held.
   */
  async * watch (options: { prefix?: string, values?: boolean, lastEventId?: string, signal?: AbortSignal } = {}): AsyncGenerator<StoreEvent> {
    const feed = sseFeed(this.http, { path: '/v1/store/watch', query: { prefix: options.prefix, values: options.values === true ? true : undefined } }, options)
    for await (const message of feed) {
      const event = JSON.parse(message.data) as StoreEvent
      if (event.value !== undefined) event.value = decodePayload(event.value, event.encoding)
      yield event
    }
  }
}
