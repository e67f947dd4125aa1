import type { CallOptions, Transport } from './http.js'
import { decodePayload, encodePayload, type Encoding } from './payload.js'
import { sseFeed } from './sse.js'
import { AsyncQueue } from './async-queue.js'

/** MQTT 5 publish properties (README "MQTT 5 publish properties"). */
export interface PublishProperties {
  userProperties?: Record<string, string | string[]>
  contentType?: string
  responseTopic?: string
  /** UTF-8 text, or bytes (sent as base64). */
  correlationData?: string | Uint8Array
  payloadFormat?: 0 | 1
  /** Seconds. */
  messageExpiry?: number
}

export interface PublishOptions extends CallOptions, PublishProperties {
  qos?: 0 | 1 | 2
  retain?: boolean
}

/** A message received by a subscriber (payload decoded: JSON value, text, or bytes). */
export interface Message<T = unknown> extends Omit<PublishProperties, 'correlationData'> {
  topic: string
  payload: T
  qos: number
  retain: boolean
  encoding?: Encoding
  correlationData?: string | Uint8Array
  correlationEncoding?: Encoding
  /** When a user property name recurs between others: all of them in the order sent. */
  userPropertyList?: Array<[string, string]>
}

/** Subscribing over MQTT (MQTT.js, loaded when first used) instead of SSE. */
export interface MqttSubscribeOptions {
  /** mqtt://host:1883, mqtts://..., ws://host:8080/mqtt or wss://... */
  url: string
  username?: string
  password?: string
  clientId?: string
  /** 4 (3.1.1) or 5 (default 5: properties arrive). */
  protocolVersion?: 4 | 5
  qos?: 0 | 1 | 2
}

export interface SubscribeOptions {
  signal?: AbortSignal
  /** Retained messages first (default true). */
  retained?: boolean
  /** Over MQTT with MQTT.js; default: over HTTP Server-Sent Events. */
  mqtt?: MqttSubscribeOptions
}

/**
 * Bytes as the broker shows them over HTTP (protocols/http/payload.ts encodePayload): exact compact JSON
 * as its value, readable UTF-8 text (no control characters but tab, LF, CR) as a string, else the bytes.
 */
export function decodeBytes (bytes: Uint8Array): unknown {
  if (bytes.length === 0) return ''
  for (const b of bytes) if ((b < 0x20 && b !== 9 && b !== 10 && b !== 13) || b === 0x7f) return bytes
  let text: string
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes) } catch { return bytes }
  try {
    const value: unknown = JSON.parse(text)
    if (JSON.stringify(value) === text) return value
  } catch {}
  return text
}

function wireMessage<T> (m: Message<T>): Message<T> {
  m.payload = decodePayload(m.payload, m.encoding) as T
  if (m.correlationEncoding === 'base64' && typeof m.correlationData === 'string') m.correlationData = decodePayload(m.correlationData, 'base64') as Uint8Array
  return m
}

/** Publish and subscribe: `client.pubsub`. */
export class PubSubClient {
  constructor (private readonly http: Transport) {}

  /** Publishes over HTTP; resolves once the broker has done every durable write it causes. */
  async publish (topic: string, payload: unknown, options: PublishOptions = {}): Promise<{ topic: string, bytes: number }> {
    const { qos, retain, userProperties, contentType, responseTopic, correlationData, payloadFormat, messageExpiry } = options
    const body: Record<string, unknown> = { topic, ...(typeof payload === 'string' ? { payload, encoding: 'utf8' } : encodePayload(payload)) }
    if (qos !== undefined) body.qos = qos
    if (retain !== undefined) body.retain = retain
    if (userProperties !== undefined) body.userProperties = userProperties
    if (contentType !== undefined) body.contentType = contentType
    if (responseTopic !== undefined) body.responseTopic = responseTopic
    if (payloadFormat !== undefined) body.payloadFormat = payloadFormat
    if (messageExpiry !== undefined) body.messageExpiry = messageExpiry
    if (correlationData !== undefined) {
      if (typeof correlationData === 'string') body.correlationData = correlationData
      else Object.assign(body, { correlationData: encodePayload(correlationData).payload, correlationEncoding: 'base64' })
    }
    return await this.http.json({ ...options, method: 'POST', path: '/v1/pubsub/publish', json: body })
  }

  /** The retained messages matching the filters. */
  async retained<T = unknown> (filters: string | string[], options: CallOptions = {}): Promise<Array<Message<T>>> {
    const answer = await this.http.json<{ messages: Array<Message<T>> }>({ ...options, method: 'GET', path: '/v1/pubsub/retained', query: { filter: Array.isArray(filters) ? filters : [filters] } })
    return answer.messages.map(wireMessage)
  }

  /**
   * Every message whose topic matches one of the filters, as an async iterator; stop it with `break`,
   * its return() or the signal. Over SSE it reconnects by itself after a lost connection (messages
   * published meanwhile are not replayed: QoS 0 semantics); over MQTT, MQTT.js reconnects.
   */
  subscribe<T = unknown> (filters: string | string[], options: SubscribeOptions = {}): AsyncIterableIterator<Message<T>> {
    const list = Array.isArray(filters) ? filters : [filters]
    if (options.mqtt !== undefined) return this.subscribeMqtt<T>(list, options.mqtt, options.signal)
    return this.subscribeSse<T>(list, options)
  }

  private async * subscribeSse<T> (filters: string[], options: SubscribeOptions): AsyncGenerator<Message<T>> {
    const feed = sseFeed(this.http, { path: '/v1/pubsub/subscribe', query: { filter: filters, retained: options.retained === false ? false : undefined } }, { signal: options.signal })
    for await (const event of feed) {
      if (event.event !== 'message') continue
      yield wireMessage(JSON.parse(event.data) as Message<T>)
    }
  }

  private subscribeMqtt<T> (filters: string[], options: MqttSubscribeOptions, signal?: AbortSignal): AsyncIterableIterator<Message<T>> {
    let close: () => Promise<void> = async () => {}
    const queue = new AsyncQueue<Message<T>>(async () => { await close() })
    signal?.addEventListener('abort', () => { queue.end(signal.reason); void close() }, { once: true })
    void (async () => {
      // loaded only here: the rest of the client needs no MQTT.js
      const mqtt = await import('mqtt')
      // bundlers that wrap MQTT.js's CommonJS build put its exports under default
      const connectAsync = typeof mqtt.connectAsync === 'function' ? mqtt.connectAsync : (mqtt as unknown as { default: typeof mqtt }).default.connectAsync
      const client = await connectAsync(options.url, {
        protocolVersion: options.protocolVersion ?? 5,
        ...(options.username !== undefined ? { username: options.username } : {}),
        ...(options.password !== undefined ? { password: options.password } : {}),
        ...(options.clientId !== undefined ? { clientId: options.clientId } : {}),
        reconnectPeriod: 1000
      })
      close = async () => { await client.endAsync() }
      if (signal?.aborted === true) { await close(); return }
      client.on('message', (topic, payload, packet) => {
        const p = packet.properties
        const m: Message<T> = { topic, payload: decodeBytes(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)) as T, qos: packet.qos, retain: packet.retain }
        if (p !== undefined) {
          if (p.contentType !== undefined) m.contentType = p.contentType
          if (p.responseTopic !== undefined) m.responseTopic = p.responseTopic
          if (p.payloadFormatIndicator !== undefined) m.payloadFormat = p.payloadFormatIndicator ? 1 : 0
          if (p.messageExpiryInterval !== undefined) m.messageExpiry = p.messageExpiryInterval
          if (p.userProperties !== undefined) m.userProperties = p.userProperties as Record<string, string | string[]>
          if (p.correlationData !== undefined) {
            const text = decodeBytes(new Uint8Array(p.correlationData))
            m.correlationData = typeof text === 'string' ? text : new Uint8Array(p.correlationData)
          }
        }
        queue.push(m)
      })
      client.on('error', err => { queue.end(err) })
      await client.subscribeAsync(filters, { qos: options.qos ?? 0 })
    })().catch(err => { queue.end(err) })
    return queue
  }
}
