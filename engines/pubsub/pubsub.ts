import { Aedes, type AedesPublishPacket, type Client } from 'aedes'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { validateFilter, validatePublishTopic } from './topics.js'
import { InvalidArgument, Unavailable } from '../errors.js'

export type QoS = 0 | 1 | 2

export interface BusMessage {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
}

export type BusHandler = (message: BusMessage) => void

/** Which front-end a publish came through; used for per-protocol counters. */
export type Origin = 'mqtt' | 'http' | 'internal'

export interface PubSubStats {
  /** Messages published, by the protocol they came in on. */
  published: Record<Origin, number>
  /** Messages handed to MQTT clients (one per receiving client). */
  deliveredMqtt: number
  /** Messages handed to in-process subscribers (SSE, stream/queue capture). */
  deliveredInternal: number
}

/** The part of aedes' persistence that its typings leave out. */
interface AedesWithPersistence { persistence: { createRetainedStreamCombi (patterns: string[]): AsyncIterable<AedesPublishPacket> } }

type DeliverFn = (packet: AedesPublishPacket, cb: () => void) => void

/**
 * The bus. One aedes instance does routing, retained messages, sessions, QoS and wills for every
 * front-end; other engines and front-ends publish and subscribe through this class only.
 */
export class PubSub {
  readonly stats: PubSubStats = { published: { mqtt: 0, http: 0, internal: 0 }, deliveredMqtt: 0, deliveredInternal: 0 }
  private subscriptions = 0

  private constructor (readonly broker: Aedes) {}

  static async create (): Promise<PubSub> {
    let self: PubSub | undefined
    const broker = await Aedes.createBroker({
      // counted here because aedes calls it once per MQTT client a message goes to
      authorizeForward: (_client: Client, packet: AedesPublishPacket) => {
        if (self !== undefined) self.stats.deliveredMqtt++
        return packet
      }
    })
    self = new PubSub(broker)
    broker.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
      if (client !== null && client !== undefined) self?.countPublished('mqtt', packet.topic)
    })
    return self
  }

  private countPublished (origin: Origin, topic: string): void {
    if (!topic.startsWith('$SYS/')) this.stats.published[origin]++
  }

  /** Accepts an MQTT connection (TCP socket or WebSocket stream) from a front-end. */
  handle (stream: Duplex, request?: IncomingMessage): void {
    this.broker.handle(stream, request)
  }

  get connectedClients (): number { return this.broker.connectedClients ?? 0 }

  /** Number of in-process subscriptions (SSE readers, captures) currently on the bus. */
  get activeSubscriptions (): number { return this.subscriptions }

  /** Publishes with MQTT semantics; resolves when aedes has routed it (and stored it, if retained). */
  async publish (message: { topic: string, payload: Buffer, qos?: QoS, retain?: boolean }, origin: Origin = 'internal'): Promise<void> {
    validatePublishTopic(message.topic)
    const qos = message.qos ?? 0
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new InvalidArgument('qos must be 0, 1 or 2')
    if (this.broker.closed) throw new Unavailable('the broker is shutting down')
    await new Promise<void>((resolve, reject) => {
      this.broker.publish({
        cmd: 'publish',
        topic: message.topic,
        payload: message.payload,
        qos,
        retain: message.retain ?? false,
        dup: false
      }, (err?: Error) => { err != null ? reject(new InvalidArgument(err.message)) : resolve() })
    })
    this.countPublished(origin, message.topic)
  }

  /**
   * Subscribes an in-process handler to topic filters. Resolves to the function that removes the
   * subscription again; a front-end must call it when its client goes away.
   */
  async subscribe (filters: string[], handler: BusHandler): Promise<() => Promise<void>> {
    for (const f of filters) validateFilter(f)
    const unique = [...new Set(filters)]
    // one delivery per message even when several filters match it (as an MQTT client gets)
    const seen = new WeakSet<AedesPublishPacket>()
    const deliver = (blockDollar: boolean): DeliverFn => (packet, cb) => {
      if ((blockDollar && packet.topic.charCodeAt(0) === 36) || seen.has(packet)) { cb(); return }
      seen.add(packet)
      this.stats.deliveredInternal++
      try {
        handler({ topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos as QoS, retain: packet.retain })
      } finally {
        cb()
      }
    }
    const registered: Array<[string, DeliverFn]> = unique.map(f => [f, deliver(f.startsWith('+') || f.startsWith('#'))])
    for (const [filter, fn] of registered) {
      await new Promise<void>(resolve => { this.broker.subscribe(filter, fn, resolve) })
      this.subscriptions++
    }
    let removed = false
    return async () => {
      if (removed) return
      removed = true
      for (const [filter, fn] of registered) {
        await new Promise<void>(resolve => { this.broker.unsubscribe(filter, fn, resolve) })
        this.subscriptions--
      }
    }
  }

  /** Retained messages whose topic matches any of the filters. */
  async retained (filters: string[]): Promise<BusMessage[]> {
    for (const f of filters) validateFilter(f)
    const out: BusMessage[] = []
    const seen = new Set<string>()
    const stream = (this.broker as unknown as AedesWithPersistence).persistence.createRetainedStreamCombi(filters)
    for await (const packet of stream) {
      if (seen.has(packet.topic)) continue
      seen.add(packet.topic)
      out.push({ topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos as QoS, retain: true })
    }
    return out
  }

  async close (): Promise<void> {
    await new Promise<void>(resolve => { this.broker.close(() => { resolve() }) })
  }
}
