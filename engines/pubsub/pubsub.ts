import { Aedes, type AedesPublishPacket, type Client, type PublishPacket } from 'aedes'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { topicMatches, validateFilter, validatePublishTopic } from './topics.js'
import { InvalidArgument, Unavailable } from '../errors.js'

export type QoS = 0 | 1 | 2

export interface BusMessage {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
}

/**
 * An in-process subscriber. A durable one (a stream's or a queue's capture) returns, for a message it
 * keeps, a promise that resolves once the message is durable in its engine (it never rejects: the
 * engine counts and logs its own failures).
 */
export type BusHandler = (message: BusMessage) => void | Promise<void>

export interface SubscribeOptions {
  /**
   * The subscriber stores what it gets, and the publisher's acknowledgement waits for that: an MQTT
   * QoS 1 PUBACK, a QoS 2 PUBREC and the answer to an HTTP publish with QoS 1 or 2 come only once every
   * durable subscriber matching the topic has the message durable.
   */
  durable?: boolean
}

interface DurableSubscription { filters: string[], handler: BusHandler }

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
type AuthorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) => void

/**
 * The bus. One aedes instance does routing, retained messages, sessions, QoS and wills for every
 * front-end; other engines and front-ends publish and subscribe through this class only.
 */
export class PubSub {
  readonly stats: PubSubStats = { published: { mqtt: 0, http: 0, internal: 0 }, deliveredMqtt: 0, deliveredInternal: 0 }
  private subscriptions = 0
  private readonly durable = new Set<DurableSubscription>()
  /**
   * QoS 1 MQTT publishes that durable subscribers already have (see storeBeforePuback), with those
   * subscribers: aedes' routing of the publish skips them. Keyed by the payload Buffer, the one object
   * aedes carries over from the received packet to the packet it routes.
   */
  private readonly storedEarly = new WeakMap<Buffer, Set<DurableSubscription>>()

  private constructor (readonly broker: Aedes) {}

  static async create (): Promise<PubSub> {
    let self: PubSub | undefined
    const authorizePublish: AuthorizePublish = (client, packet, callback) => {
      if (self === undefined || client === null || packet.qos !== 1) callback(null)
      else self.storeBeforePuback(packet, callback)
    }
    const broker = await Aedes.createBroker({
      // counted here because aedes calls it once per MQTT client a message goes to
      authorizeForward: (_client: Client, packet: AedesPublishPacket) => {
        if (self !== undefined) self.stats.deliveredMqtt++
        return packet
      },
      authorizePublish
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
   * aedes writes a QoS 1 PUBACK before it routes the publish, so durable subscribers get a QoS 1 MQTT
   * publish here, from the authorizePublish hook that runs before the PUBACK, and the hook lets aedes
   * go on once they have it durable. (QoS 2 needs no such step: its PUBREC follows the routing, which
   * waits for durable subscribers, see subscribe.)
   */
  private storeBeforePuback (packet: PublishPacket, callback: (error?: Error | null) => void): void {
    let waits: Array<Promise<void>> | undefined
    let handled: Set<DurableSubscription> | undefined
    for (const sub of this.durable) {
      if (!sub.filters.some(f => topicMatches(f, packet.topic))) continue
      if (handled === undefined) {
        // a fresh object for an empty payload: the parser's empty Buffer may be shared between packets
        if (packet.payload.length === 0) packet.payload = Buffer.alloc(0)
        handled = new Set()
        this.storedEarly.set(packet.payload as Buffer, handled)
      }
      handled.add(sub)
      this.stats.deliveredInternal++
      const stored = sub.handler({ topic: packet.topic, payload: packet.payload as Buffer, qos: 1, retain: packet.retain })
      if (stored !== undefined) (waits ??= []).push(stored)
    }
    if (waits === undefined) callback(null)
    else void Promise.all(waits).then(() => { callback(null) })
  }

  /**
   * Subscribes an in-process handler to topic filters. Resolves to the function that removes the
   * subscription again; a front-end must call it when its client goes away.
   */
  async subscribe (filters: string[], handler: BusHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    for (const f of filters) validateFilter(f)
    const unique = [...new Set(filters)]
    const durable = options.durable === true
    const subscription: DurableSubscription = { filters: unique, handler }
    // one delivery per message even when several filters match it (as an MQTT client gets)
    const seen = new WeakSet<AedesPublishPacket>()
    const deliver = (blockDollar: boolean): DeliverFn => (packet, cb) => {
      if ((blockDollar && packet.topic.charCodeAt(0) === 36) || seen.has(packet)) { cb(); return }
      seen.add(packet)
      if (durable && packet.qos === 1 && this.storedEarly.get(packet.payload as Buffer)?.has(subscription) === true) { cb(); return }
      this.stats.deliveredInternal++
      let stored: void | Promise<void>
      try {
        stored = handler({ topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos as QoS, retain: packet.retain })
      } catch (err) {
        cb()
        throw err
      }
      // QoS 1 and 2: the routing (and so a QoS 2 PUBREC, an HTTP publish's answer) waits for durability
      if (durable && packet.qos > 0 && stored !== undefined) void stored.then(cb)
      else cb()
    }
    const registered: Array<[string, DeliverFn]> = unique.map(f => [f, deliver(f.startsWith('+') || f.startsWith('#'))])
    for (const [filter, fn] of registered) {
      await new Promise<void>(resolve => { this.broker.subscribe(filter, fn, resolve) })
      this.subscriptions++
    }
    if (durable) this.durable.add(subscription)
    let removed = false
    return async () => {
      if (removed) return
      removed = true
      this.durable.delete(subscription)
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
