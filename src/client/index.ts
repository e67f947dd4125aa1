/**
 * The Tetra client: `import { Tetra } from 'tetra/client'`. Node 20+ and browsers (fetch, ReadableStream);
 * MQTT.js only when a subscription asks for MQTT.
 *
 *   const tetra = new Tetra({ url: 'http://127.0.0.1:8080', token })
 *   await tetra.store.set('user/1', { name: 'Ada' }, { ttl: 60 })
 *   const worker = tetra.queue('emails').process(async job => send(job), { concurrency: 8 })
 */
import { Transport, type CallOptions, type ClientOptions } from './http.js'
import { StoreClient } from './store.js'
import { QueueClient, type QueueInfo } from './queue.js'
import { StreamClient, type StreamInfo } from './stream.js'
import { PubSubClient } from './pubsub.js'

export class Tetra {
  readonly http: Transport
  readonly store: StoreClient
  readonly pubsub: PubSubClient

  constructor (options: ClientOptions = {}) {
    this.http = new Transport(options)
    this.store = new StoreClient(this.http)
    this.pubsub = new PubSubClient(this.http)
  }

  /** The broker's HTTP address. */
  get url (): string { return this.http.url }

  queue (name: string): QueueClient { return new QueueClient(this.http, name) }
  stream (name: string): StreamClient { return new StreamClient(this.http, name) }

  async queues (options: CallOptions = {}): Promise<QueueInfo[]> {
    return (await this.http.json<{ queues: QueueInfo[] }>({ ...options, method: 'GET', path: '/v1/queues' })).queues
  }

  async streams (options: CallOptions = {}): Promise<StreamInfo[]> {
    return (await this.http.json<{ streams: StreamInfo[] }>({ ...options, method: 'GET', path: '/v1/streams' })).streams
  }

  /** The broker's figures (GET /v1/stats): connections, engines, memory. */
  async stats (options: CallOptions = {}): Promise<Record<string, unknown>> {
    return await this.http.json({ ...options, method: 'GET', path: '/v1/stats' })
  }

  /** Who the broker takes these credentials for. */
  async whoami (options: CallOptions = {}): Promise<Record<string, unknown>> {
    return await this.http.json({ ...options, method: 'GET', path: '/v1/auth/whoami' })
  }

  /** True when /readyz answers 200. */
  async ready (options: CallOptions = {}): Promise<boolean> {
    try {
      await this.http.json({ ...options, method: 'GET', path: '/readyz' })
      return true
    } catch { return false }
  }
}

export { Transport, type CallOptions, type ClientOptions } from './http.js'
export * from './errors.js'
export { StoreClient, type Entry, type KeyInfo, type SetOptions, type StoreEvent } from './store.js'
export { QueueClient, type DeadLetter, type PushMessage, type PushOptions, type QueueInfo, type QueueMessage, type QueueSettings, type ReceiptResult } from './queue.js'
export { StreamClient, GroupClient, type AppendMessage, type GroupInfo, type GroupSettings, type Position, type StreamInfo, type StreamMessage, type StreamSettings } from './stream.js'
export { PubSubClient, decodeBytes, type Message, type MqttSubscribeOptions, type PublishOptions, type PublishProperties, type SubscribeOptions } from './pubsub.js'
export { Worker, type WorkerOptions, type WorkSource } from './worker.js'
export { readSse, sseFeed, type SseMessage, type FeedOptions } from './sse.js'
export { bytesToBase64, base64ToBytes, type Encoding } from './payload.js'
