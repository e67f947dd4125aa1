import { Aedes, type AedesOptions, type AedesPublishPacket, type Client, type PublishPacket } from 'aedes'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { topicMatches, validateFilter, validatePublishTopic } from './topics.js'
import { InvalidArgument, Unavailable } from '../errors.js'
import type { Storage } from '../storage/storage.js'
import { DurableMqttPersistence } from './persistence.js'
import { SysTopics } from './sys-topics.js'
import { parseShare, SharedSubscriptions } from './shared.js'

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
export interface PubSubOptions {
  /** Interval in ms of the $SYS/broker/ statistics (sys-topics.ts); 0 or absent: none. */
  sysIntervalMs?: number
  /** The version $SYS/broker/version gives. */
  version?: string
}

/** The parts of an aedes client this module reads that aedes' typings leave out. */
interface ClientState { subscriptions?: Record<string, unknown> }

type PublishFn = (packet: PublishPacket, client: Client | null, done: (err?: Error) => void) => void
type AuthorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) => void

/**
 * The bus. One aedes instance does routing, retained messages, sessions, QoS and wills for every
 * front-end; other engines and front-ends publish and subscribe through this class only.
 */
export class PubSub {
  readonly stats: PubSubStats = { published: { mqtt: 0, http: 0, internal: 0 }, deliveredMqtt: 0, deliveredInternal: 0 }
  private subscriptions = 0
  /**
   * QoS 1 MQTT publishes already routed before their PUBACK (see routeBeforePuback): aedes' own call to
   * publish them after the PUBACK is skipped.
   */
  private readonly routedEarly = new WeakSet<object>()
  private readonly publishNow: PublishFn
  /** The topic filters of durable in-process subscribers (captures), one entry per subscription. */
  private readonly durableFilters = new Set<string[]>()
  private sysTopics: SysTopics | null = null
  private readonly shared: SharedSubscriptions

  private constructor (readonly broker: Aedes, private readonly persistence: DurableMqttPersistence | undefined) {
    this.shared = new SharedSubscriptions(broker)
    broker.on('unsubscribe', (topics: string[], client: Client) => { this.shared.leave(client, topics) })
    broker.on('clientDisconnect', (client: Client) => { this.shared.leaveAll(client) })
    // aedes' publish, and in its place one that skips what routeBeforePuback routed already
    // (aedes takes an optional client before the callback; its typings leave it out)
    const aedesPublish = broker.publish.bind(broker) as unknown as PublishFn
    this.publishNow = aedesPublish
    const routedEarly = this.routedEarly
    broker.publish = function publish (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void): void {
      if (routedEarly.has(packet)) {
        routedEarly.delete(packet)
        const callback = typeof client === 'function' ? client : done
        callback?.()
        return
      }
      if (typeof client === 'function') aedesPublish(packet, null, client)
      else aedesPublish(packet, client, done ?? (() => {}))
    } as unknown as Aedes['publish']
  }

  /**
   * Starts the bus. With `storage`, what aedes keeps (retained messages, persistent sessions and the messages
   * queued for them, QoS 2 in flight, wills) is durable there (see persistence.ts); without it, in memory
   * (engine tests that need no restart).
   */
  static async create (storage?: Storage, options: PubSubOptions = {}): Promise<PubSub> {
    let self: PubSub | undefined
    const authorizePublish: AuthorizePublish = (client, packet, callback) => {
      // as aedes' default hook, which this one replaces: clients do not publish broker statistics
      if (client !== null && packet.topic.startsWith('$SYS/')) callback(new Error('$SYS/ topics are reserved to the broker'))
      else if (self === undefined || client === null || packet.qos !== 1 || !self.keptSomewhere(packet)) callback(null)
      else self.routeBeforePuback(client, packet, callback)
    }
    // $share/{group}/{filter}: aedes keeps the literal subscription, the group's routing is ours (shared.ts)
    const authorizeSubscribe: NonNullable<AedesOptions['authorizeSubscribe']> = (client, sub, callback) => {
      const share = parseShare(sub.topic)
      if (share === undefined || self === undefined) callback(null, sub)
      else if (share === null) callback(null, null) // SUBACK failure (0x80)
      else void self.shared.join(client, sub.topic, share.filter, sub.qos).then(() => { callback(null, sub) })
    }
    const persistence = storage !== undefined ? await DurableMqttPersistence.open(storage) : undefined
    const broker = await Aedes.createBroker({
      ...(persistence !== undefined ? { persistence } : {}),
      // counted here because aedes calls it once per MQTT client a message goes to
      authorizeForward: (_client: Client, packet: AedesPublishPacket) => {
        if (self !== undefined) self.stats.deliveredMqtt++
        return packet
      },
      authorizePublish,
      authorizeSubscribe
    })
    self = new PubSub(broker, persistence)
    broker.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
      if (client !== null && client !== undefined) self?.countPublished('mqtt', packet.topic)
    })
    if ((options.sysIntervalMs ?? 0) > 0) self.startSysTopics(options.sysIntervalMs ?? 0, options.version ?? 'unknown')
    return self
  }

  private startSysTopics (intervalMs: number, version: string): void {
    const clients = (): Record<string, ClientState> => (this.broker as unknown as { clients: Record<string, ClientState> }).clients
    this.sysTopics = new SysTopics({
      version,
      connectedClients: () => this.connectedClients,
      sessions: () => {
        const connected = clients()
        let disconnected = 0
        let subscriptions = 0
        for (const client of Object.values(connected)) subscriptions += Object.keys(client.subscriptions ?? {}).length
        for (const [clientId, count] of this.persistence?.sessions() ?? []) {
          if (connected[clientId] !== undefined) continue
          disconnected++
          subscriptions += count
        }
        return { disconnected, subscriptions }
      },
      retainedMessages: () => this.persistence?.retainedCount ?? 0,
      queuedMessages: () => this.persistence?.queuedCount ?? 0,
      publishesReceived: () => this.stats.published.mqtt + this.stats.published.http,
      publishesSent: () => this.stats.deliveredMqtt
    }, (topic, payload) => {
      this.publishNow({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: true, dup: false }, null, () => {})
    })
    this.sysTopics.start(intervalMs)
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
      }, (err?: Error) => {
        // a storage failure (retained, offline queues) is the broker's; anything else, the message's
        if (err == null) resolve()
        else reject(err instanceof Unavailable ? err : new InvalidArgument(err.message))
      })
    })
    this.countPublished(origin, message.topic)
  }

  /**
   * aedes writes a QoS 1 PUBACK before it routes the publish (a QoS 2 PUBREC after). So that the
   * PUBACK, too, means the message is kept (stored as retained, queued for persistent sessions, also
   * through a shared subscription, in the queues and streams that capture it), a QoS 1 MQTT publish that
   * is kept somewhere is routed here, from the authorizePublish hook that runs before the PUBACK, and the
   * hook lets aedes go on once the routing is done. A routing that fails (storage unavailable) fails the hook: no PUBACK, aedes closes
   * the connection and the client sends the message again when it reconnects. Publishes kept nowhere
   * keep aedes' order (PUBACK first): routing first costs a fifth of the QoS 1 throughput.
   */
  private keptSomewhere (packet: PublishPacket): boolean {
    if (this.persistence !== undefined && (packet.retain || this.persistence.hasQueuingSubscribers(packet.topic))) return true
    for (const filters of this.durableFilters) if (filters.some(f => topicMatches(f, packet.topic))) return true
    return this.shared.keepsFor(packet.topic)
  }

  private routeBeforePuback (client: Client, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    this.publishNow(packet, client, err => {
      if (err != null) {
        callback(err)
        return
      }
      this.routedEarly.add(packet)
      callback(null)
    })
  }

  /**
   * Subscribes an in-process handler to topic filters. Resolves to the function that removes the
   * subscription again; a front-end must call it when its client goes away.
   */
  async subscribe (filters: string[], handler: BusHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    for (const f of filters) validateFilter(f)
    const unique = [...new Set(filters)]
    const durable = options.durable === true
    // one delivery per message even when several filters match it (as an MQTT client gets)
    const seen = new WeakSet<AedesPublishPacket>()
    const deliver = (blockDollar: boolean): DeliverFn => (packet, cb) => {
      if ((blockDollar && packet.topic.charCodeAt(0) === 36) || seen.has(packet)) { cb(); return }
      seen.add(packet)
      this.stats.deliveredInternal++
      let stored: void | Promise<void>
      try {
        stored = handler({ topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos as QoS, retain: packet.retain })
      } catch (err) {
        cb()
        throw err
      }
      // QoS 1 and 2: the routing (and so the PUBACK or PUBREC, an HTTP publish's answer) waits for durability
      if (durable && packet.qos > 0 && stored !== undefined) void stored.then(cb)
      else cb()
    }
    const registered: Array<[string, DeliverFn]> = unique.map(f => [f, deliver(f.startsWith('+') || f.startsWith('#'))])
    for (const [filter, fn] of registered) {
      await new Promise<void>(resolve => { this.broker.subscribe(filter, fn, resolve) })
      this.subscriptions++
    }
    // `unique` is this subscription's own array: the set holds it once per subscription
    if (durable) this.durableFilters.add(unique)
    let removed = false
    return async () => {
      if (removed) return
      removed = true
      this.durableFilters.delete(unique)
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
    this.sysTopics?.stop()
    await new Promise<void>(resolve => { this.broker.close(() => { resolve() }) })
  }
}
