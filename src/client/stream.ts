import type { CallOptions, Transport } from './http.js'
import { namePath } from './http.js'
import { decodePayload, encodePayload, type Encoding } from './payload.js'
import { sseFeed } from './sse.js'
import { Worker, type WorkerOptions } from './worker.js'

export interface StreamSettings {
  maxAge?: number
  maxBytes?: number
  maxCount?: number
  capture?: string[]
  dedupWindow?: number
}

export interface StreamInfo {
  name: string
  settings: { maxAge?: number, maxBytes?: number, maxCount?: number, capture: string[], dedupWindow: number }
  createdAt: number
  firstOffset: number
  /** -1 when empty. */
  lastOffset: number
  nextOffset: number
  count: number
  bytes: number
  /** The names of its consumer groups. */
  groups: string[]
}

/** A message to append. */
export interface AppendMessage {
  payload: unknown
  key?: string
  headers?: Record<string, string>
  dedupId?: string
}

/** A message read from a stream (payload decoded: JSON value, utf8 string, or bytes). */
export interface StreamMessage<T = unknown> {
  offset: number
  timestamp: number
  payload: T
  encoding?: Encoding
  key?: string
  headers?: Record<string, string>
  topic?: string
  qos?: number
  retain?: boolean
  /** In a consumer group: how many times it was handed out. */
  deliveries?: number
  /** MQTT 5 properties of a captured publish. */
  payloadFormat?: 0 | 1
  contentType?: string
  responseTopic?: string
  correlationData?: string
  correlationEncoding?: Encoding
  userProperties?: Record<string, string | string[]>
  /** When a user property name recurs between others: all of them in the order sent. */
  userPropertyList?: Array<[string, string]>
}

/** Where to read from: an offset, 'start' or 'end'; or a time (Date, epoch ms or ISO 8601). */
export interface Position {
  from?: number | 'start' | 'end'
  time?: Date | number | string
}

export interface GroupInfo {
  name: string
  /** The low-water mark: every offset below it is acknowledged (or dead). */
  committed: number
  pending: number
  lag: number
  dead: number
  delivered: number
  ackWait: number
  maxDeliveries: number
  maxPending: number
  createdAt: number
  readers: Array<Record<string, unknown>>
}

export interface GroupSettings {
  from?: 'start' | 'end' | number
  time?: string | number
  ackWait?: number
  maxDeliveries?: number
  maxPending?: number
}

const timeQuery = (time: Position['time']): string | undefined => time === undefined ? undefined : time instanceof Date ? String(time.getTime()) : String(time)

function decoded<T> (m: StreamMessage<T>): StreamMessage<T> {
  m.payload = decodePayload(m.payload, m.encoding) as T
  return m
}

function wireAppend (m: AppendMessage): Record<string, unknown> {
  return { ...encodePayload(m.payload), ...(m.key !== undefined ? { key: m.key } : {}), ...(m.headers !== undefined ? { headers: m.headers } : {}), ...(m.dedupId !== undefined ? { dedupId: m.dedupId } : {}) }
}

/** One stream: `client.stream(name)`. */
export class StreamClient {
  private readonly base: string
  constructor (private readonly http: Transport, readonly name: string) {
    this.base = `/v1/streams/${namePath(name)}`
  }

  /** Creates the stream or replaces its settings. */
  async create (settings: StreamSettings = {}, options: CallOptions = {}): Promise<StreamInfo> {
    return await this.http.json<StreamInfo>({ ...options, method: 'PUT', path: this.base, json: settings })
  }

  async info (options: CallOptions = {}): Promise<StreamInfo> {
    return await this.http.json<StreamInfo>({ ...options, method: 'GET', path: this.base })
  }

  async delete (options: CallOptions = {}): Promise<void> {
    const { response } = await this.http.request({ ...options, method: 'DELETE', path: this.base })
    await response.arrayBuffer()
  }

  /** Appends one message; returns its offset (its first offset when deduplicated). */
  async append (payload: unknown, options: CallOptions & Omit<AppendMessage, 'payload'> & { expectedLastOffset?: number } = {}): Promise<number> {
    const { key, headers, dedupId, expectedLastOffset } = options
    const answer = await this.http.json<{ offsets: number[] }>({
      ...options, method: 'POST', path: `${this.base}/messages`, json: { ...wireAppend({ payload, key, headers, dedupId }), ...(expectedLastOffset !== undefined ? { expectedLastOffset } : {}) }
    })
    return answer.offsets[0]
  }

  /**
   * Appends a batch atomically at consecutive offsets (up to 1000); with expectedLastOffset, only if the
   * stream's last offset is that one (ConflictError otherwise; -1: empty).
   */
  async appendMany (messages: AppendMessage[], options: CallOptions & { expectedLastOffset?: number } = {}): Promise<number[]> {
    const answer = await this.http.json<{ offsets: number[] }>({
      ...options, method: 'POST', path: `${this.base}/messages`, json: { messages: messages.map(wireAppend), ...(options.expectedLastOffset !== undefined ? { expectedLastOffset: options.expectedLastOffset } : {}) }
    })
    return answer.offsets
  }

  /** One page of messages and where to read next. */
  async readPage<T = unknown> (position: Position & CallOptions & { limit?: number } = {}): Promise<{ messages: Array<StreamMessage<T>>, next: number, firstOffset: number, truncated: boolean }> {
    const page = await this.http.json<{ messages: Array<StreamMessage<T>>, next: number, firstOffset: number, truncated: boolean }>({
      ...position, method: 'GET', path: `${this.base}/messages`, query: { from: position.from, time: timeQuery(position.time), limit: position.limit }
    })
    page.messages.forEach(decoded)
    return page
  }

  /**
   * The messages from a position (default: the start) up to the end as it is when the reading gets there,
   * page by page. For a live feed use tail().
   */
  async * read<T = unknown> (position: Position & CallOptions & { pageSize?: number } = {}): AsyncGenerator<StreamMessage<T>> {
    let page = await this.readPage<T>({ ...position, from: position.time === undefined ? position.from ?? 'start' : undefined, limit: position.pageSize ?? 1000 })
    for (;;) {
      yield * page.messages
      if (page.messages.length === 0) return
      page = await this.readPage<T>({ ...position, time: undefined, from: page.next, limit: position.pageSize ?? 1000 })
    }
  }

  /**
   * Every message from a position (default: new ones only), then live, over SSE. Resumes by itself after
   * a lost connection or a broker restart, right after the last offset seen (no gap, no duplicate).
   */
  async * tail<T = unknown> (position: Position & { signal?: AbortSignal, lastEventId?: string } = {}): AsyncGenerator<StreamMessage<T>> {
    const feed = sseFeed(this.http, { path: `${this.base}/tail`, query: { from: position.from, time: timeQuery(position.time) } }, position)
    for await (const event of feed) {
      if (event.event !== 'message') continue
      yield decoded(JSON.parse(event.data) as StreamMessage<T>)
    }
  }

  /** A consumer group of this stream. */
  group (name: string): GroupClient {
    return new GroupClient(this.http, `${this.base}/groups/${namePath(name)}`, name)
  }

  /** Every group with its committed offset, pending count and lag. */
  async groups (options: CallOptions = {}): Promise<GroupInfo[]> {
    return (await this.http.json<{ groups: GroupInfo[] }>({ ...options, method: 'GET', path: `${this.base}/groups` })).groups
  }
}

/** A consumer group: each message to one reader at a time, under a lease of ackWait. */
export class GroupClient {
  constructor (private readonly http: Transport, private readonly base: string, readonly name: string) {}

  async create (settings: GroupSettings = {}, options: CallOptions = {}): Promise<GroupInfo> {
    return await this.http.json({ ...options, method: 'PUT', path: this.base, json: settings })
  }

  async info (options: CallOptions = {}): Promise<GroupInfo> {
    return await this.http.json({ ...options, method: 'GET', path: this.base })
  }

  async delete (options: CallOptions = {}): Promise<void> {
    const { response } = await this.http.request({ ...options, method: 'DELETE', path: this.base })
    await response.arrayBuffer()
  }

  /**
   * Up to `max` messages for this reader: those whose lease ran out first (claimed from readers that went
   * away, with their delivery count), then new ones; long-polls up to `wait` seconds.
   */
  async receive<T = unknown> (options: CallOptions & { max?: number, wait?: number, consumer?: string } = {}): Promise<Array<StreamMessage<T>>> {
    const { max, wait, consumer } = options
    const answer = await this.http.json<{ messages: Array<StreamMessage<T>> }>({
      ...options, method: 'POST', path: `${this.base}/receive`, json: { ...(max !== undefined ? { max } : {}), ...(wait !== undefined ? { wait } : {}), ...(consumer !== undefined ? { consumer } : {}) }, extraTime: (wait ?? 0) * 1000
    })
    return answer.messages.map(decoded)
  }

  /** Messages whose lease ran out, taken over by this reader (receive hands them out first). */
  async claim<T = unknown> (options: CallOptions & { max?: number, consumer?: string } = {}): Promise<Array<StreamMessage<T>>> {
    return (await this.receive<T>({ ...options, wait: 0 })).filter(m => (m.deliveries ?? 1) > 1)
  }

  async ack (offsets: number | number[], options: CallOptions = {}): Promise<{ acked: number, committed: number }> {
    return await this.http.json({ ...options, method: 'POST', path: `${this.base}/ack`, json: { offsets: Array.isArray(offsets) ? offsets : [offsets] } })
  }

  /** Acknowledges everything up to and including `offset`. */
  async commit (offset: number, options: CallOptions = {}): Promise<{ committed: number }> {
    return await this.http.json({ ...options, method: 'POST', path: `${this.base}/commit`, json: { offset } })
  }

  async dead<T = unknown> (options: CallOptions & { from?: number, limit?: number } = {}): Promise<Array<StreamMessage<T>>> {
    const answer = await this.http.json<{ messages: Array<StreamMessage<T>> }>({ ...options, method: 'GET', path: `${this.base}/dead`, query: { from: options.from, limit: options.limit } })
    return answer.messages.map(decoded)
  }

  async redrive (offsets?: number[], options: CallOptions = {}): Promise<{ redriven: number }> {
    return await this.http.json({ ...options, method: 'POST', path: `${this.base}/dead/redrive`, json: offsets === undefined ? {} : { offsets } })
  }

  /**
   * A worker over the group, like queue.process: acks on success; a message whose handler threw is left
   * unacknowledged and comes back after the group's ackWait (up to maxDeliveries, then dead).
   */
  process<T = unknown> (handler: (payload: T, message: StreamMessage<T>) => unknown, options: WorkerOptions & { wait?: number, consumer?: string } = {}): Worker<StreamMessage<T>> {
    const consumer = options.consumer ?? `client-${Math.random().toString(36).slice(2, 10)}`
    let busy = false
    return new Worker<StreamMessage<T>>({
      receive: async (max, signal) => {
        // after a full batch the next receive does not long-poll (see QueueClient.process)
        const got = await this.receive<T>({ max, wait: busy ? 0 : options.wait ?? 20, consumer, signal })
        busy = got.length === max
        return got
      },
      ack: async jobs => { await this.ack(jobs.map(m => m.offset)) }
    }, job => handler(job.payload, job), options)
  }
}
