import type { CallOptions, Transport } from './http.js'
import { namePath } from './http.js'
import { decodePayload, encodePayload, type Encoding } from './payload.js'
import { Worker, type WorkerOptions } from './worker.js'

export interface QueueSettings {
  visibilityTimeout?: number
  maxDeliveries?: number
  backoff?: { type: 'fixed' | 'exponential', base: number, max?: number } | null
  deadLetter?: string | null
  retention?: number | null
  capture?: string[]
  [setting: string]: unknown
}

export interface QueueInfo {
  name: string
  createdAt: number
  settings: Record<string, unknown>
  stats: { ready: number, leased: number, delayed: number, dead: number, pushed: number, acked: number, deadLettered: number, expired: number, waiting: number }
}

export interface PushOptions extends CallOptions {
  /** Seconds before the message is ready. */
  delay?: number
  /** 0-255, higher first. */
  priority?: number
  /** A second push with the same id within the dedup window gives the first id and no copy. */
  dedupId?: string
  headers?: Record<string, string>
}

/** A message to push with its own options (push many). */
export interface PushMessage {
  payload: unknown
  delay?: number
  priority?: number
  dedupId?: string
  headers?: Record<string, string>
}

/** A received (leased) message. */
export interface QueueMessage<T = unknown> {
  id: string
  receipt: string
  /** The payload decoded: JSON as the value, utf8 text as a string, bytes as a Uint8Array. */
  payload: T
  encoding?: Encoding
  headers: Record<string, string>
  topic?: string
  priority: number
  deliveries: number
  enqueuedAt: number
  firstDeliveredAt?: number
  leaseExpiresAt: number
}

export interface DeadLetter<T = unknown> {
  id: string
  payload: T
  encoding?: Encoding
  headers: Record<string, string>
  topic?: string
  priority: number
  deliveries: number
  enqueuedAt: number
  firstDeliveredAt?: number
  deadAt: number
  reason: string
  lastError?: string
}

/** One result per receipt of ack, nack and extend. */
export interface ReceiptResult { receipt: string, id: string, status: 'acked' | 'ready' | 'delayed' | 'dead' | 'extended' | 'stale' | 'not_found', at?: number }

function wireMessage (m: PushMessage): Record<string, unknown> {
  return { ...encodePayload(m.payload), ...(m.delay !== undefined ? { delay: m.delay } : {}), ...(m.priority !== undefined ? { priority: m.priority } : {}), ...(m.dedupId !== undefined ? { dedupId: m.dedupId } : {}), ...(m.headers !== undefined ? { headers: m.headers } : {}) }
}

/** One queue: `client.queue(name)`. */
export class QueueClient {
  private readonly base: string
  constructor (private readonly http: Transport, readonly name: string) {
    this.base = `/v1/queues/${namePath(name)}`
  }

  /** Creates the queue, or changes its settings (fields left out keep their value). */
  async create (settings: QueueSettings = {}, options: CallOptions = {}): Promise<QueueInfo> {
    return await this.http.json<QueueInfo>({ ...options, method: 'PUT', path: this.base, json: settings })
  }

  /** Settings and counts. */
  async info (options: CallOptions = {}): Promise<QueueInfo> {
    return await this.http.json<QueueInfo>({ ...options, method: 'GET', path: this.base })
  }

  /** Deletes the queue and its messages. */
  async delete (options: CallOptions = {}): Promise<void> {
    await this.http.request({ ...options, method: 'DELETE', path: this.base }).then(async a => { await a.response.arrayBuffer() })
  }

  /** Pushes one message; returns its id. */
  async push (payload: unknown, options: PushOptions = {}): Promise<string> {
    const { delay, priority, dedupId, headers } = options
    const answer = await this.http.json<{ ids: string[] }>({ ...options, method: 'POST', path: `${this.base}/messages`, json: wireMessage({ payload, delay, priority, dedupId, headers }) })
    return answer.ids[0]
  }

  /** Pushes many messages in one durable batch (up to 1000); returns their ids in order. */
  async pushMany (messages: PushMessage[], options: CallOptions = {}): Promise<string[]> {
    const wire = messages.map(wireMessage)
    const answer = await this.http.json<{ ids: string[] }>({ ...options, method: 'POST', path: `${this.base}/messages`, json: { messages: wire } })
    return answer.ids
  }

  /** Leases up to `max` messages, waiting up to `wait` seconds (max 20) for the first. */
  async receive<T = unknown> (options: CallOptions & { max?: number, wait?: number, visibilityTimeout?: number } = {}): Promise<Array<QueueMessage<T>>> {
    const { max, wait, visibilityTimeout } = options
    const answer = await this.http.json<{ messages: Array<QueueMessage<T>> }>({
      ...options,
      method: 'POST',
      path: `${this.base}/receive`,
      json: { ...(max !== undefined ? { max } : {}), ...(wait !== undefined ? { wait } : {}), ...(visibilityTimeout !== undefined ? { visibilityTimeout } : {}) },
      extraTime: (wait ?? 0) * 1000
    })
    for (const m of answer.messages) m.payload = decodePayload(m.payload, m.encoding) as T
    return answer.messages
  }

  /** Acknowledges (deletes) received messages. ConflictError when no receipt was current. */
  async ack (receipts: string | string[], options: CallOptions = {}): Promise<ReceiptResult[]> {
    return (await this.http.json<{ results: ReceiptResult[] }>({ ...options, method: 'POST', path: `${this.base}/ack`, json: { receipts: toArray(receipts) } })).results
  }

  /** Gives messages back: ready after `delay` seconds or the queue's back-off, or dead at once with dead. */
  async nack (receipts: string | string[], options: CallOptions & { delay?: number, dead?: boolean, reason?: string } = {}): Promise<ReceiptResult[]> {
    const { delay, dead, reason } = options
    return (await this.http.json<{ results: ReceiptResult[] }>({
      ...options, method: 'POST', path: `${this.base}/nack`, json: { receipts: toArray(receipts), ...(delay !== undefined ? { delay } : {}), ...(dead !== undefined ? { dead } : {}), ...(reason !== undefined ? { reason } : {}) }
    })).results
  }

  /** The leases now end `visibilityTimeout` seconds from now. */
  async extend (receipts: string | string[], visibilityTimeout: number, options: CallOptions = {}): Promise<ReceiptResult[]> {
    return (await this.http.json<{ results: ReceiptResult[] }>({ ...options, method: 'POST', path: `${this.base}/extend`, json: { receipts: toArray(receipts), visibilityTimeout } })).results
  }

  /** Purges ready and delayed messages; returns how many. */
  async purge (options: CallOptions = {}): Promise<number> {
    return (await this.http.json<{ purged: number }>({ ...options, method: 'DELETE', path: `${this.base}/messages` })).purged
  }

  /** Every dead letter, page by page. */
  async * deadLetters<T = unknown> (options: CallOptions & { pageSize?: number } = {}): AsyncGenerator<DeadLetter<T>> {
    let cursor: string | null = null
    do {
      const page: { messages: Array<DeadLetter<T>>, cursor: string | null } = await this.http.json({ ...options, method: 'GET', path: `${this.base}/dead`, query: { limit: options.pageSize, cursor: cursor ?? undefined } })
      for (const m of page.messages) m.payload = decodePayload(m.payload, m.encoding) as T
      yield * page.messages
      cursor = page.cursor
    } while (cursor !== null)
  }

  /** Dead letters back to ready with their deliveries reset: the given ids, or all. */
  async redrive (ids?: string[], options: CallOptions = {}): Promise<{ redriven: number, notFound: string[] }> {
    return await this.http.json({ ...options, method: 'POST', path: `${this.base}/dead/redrive`, json: ids === undefined ? {} : { ids } })
  }

  /** Purges the dead letters. */
  async purgeDead (options: CallOptions = {}): Promise<number> {
    return (await this.http.json<{ purged: number }>({ ...options, method: 'DELETE', path: `${this.base}/dead` })).purged
  }

  /**
   * A worker (BullMQ's Worker): runs `handler` for each message, `concurrency` at once; acks on success,
   * nacks on a throw (the queue's back-off, the error as the reason), extends the lease of a long job at
   * half its lease. `await worker.close()` drains.
   */
  process<T = unknown> (handler: (payload: T, message: QueueMessage<T>) => unknown, options: WorkerOptions & { wait?: number, visibilityTimeout?: number } = {}): Worker<QueueMessage<T>> {
    const wait = options.wait ?? 20
    // a full batch says more are waiting: the next receive need not long-poll (a long-poll costs the
    // broker a wait-list entry and a disconnect watcher per request)
    let busy = false
    const leases = new WeakMap<QueueMessage<T>, number>()
    return new Worker<QueueMessage<T>>({
      receive: async (max, signal) => {
        const got = await this.receive<T>({ max, wait: busy ? 0 : wait, signal, ...(options.visibilityTimeout !== undefined ? { visibilityTimeout: options.visibilityTimeout } : {}) })
        busy = got.length === max
        return got
      },
      ack: async jobs => { await this.ack(jobs.map(m => m.receipt)) },
      fail: async (job, error) => {
        await this.nack(job.receipt, { reason: String((error as Error)?.message ?? error).slice(0, 1000) })
      },
      // asked when a handler turns out to be asynchronous, right after the receive: the lease given then
      leaseMs: job => {
        let length = leases.get(job)
        if (length === undefined) {
          length = Math.max(1000, job.leaseExpiresAt - Date.now())
          leases.set(job, length)
        }
        return length
      },
      extend: async jobs => {
        const bySeconds = new Map<number, QueueMessage<T>[]>()
        for (const m of jobs) {
          const seconds = Math.max(1, Math.round((leases.get(m) ?? 30_000) / 1000))
          bySeconds.set(seconds, [...(bySeconds.get(seconds) ?? []), m])
        }
        for (const [seconds, messages] of bySeconds) {
          await this.extend(messages.map(m => m.receipt), seconds)
          for (const m of messages) m.leaseExpiresAt = Date.now() + seconds * 1000
        }
      }
    }, job => handler(job.payload, job), options)
  }
}

const toArray = (x: string | string[]): string[] => Array.isArray(x) ? x : [x]

