import { Aedes, type AedesOptions, type AedesPublishPacket, type Client, type PublishPacket, type Subscription, type UnsubscribePacket } from 'aedes'
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { checkTopicLimits, DEFAULT_TOPIC_LIMITS, overTopicLimit, TopicLimitError, topicMatches, validateFilter, validatePublishTopic, type TopicLimits } from './topics.js'
import { InvalidArgument, Unavailable } from '../errors.js'
import type { Storage } from '../storage/storage.js'
import { DurableMqttPersistence } from './persistence.js'
import { SysTopics } from './sys-topics.js'
import { parseShare, SharedSubscriptions } from './shared.js'
import { repairEmitter } from './emitter.js'
import { repairClientRegistry } from './client-registry.js'
import type { ConnectRefusal, MqttGate } from './mqtt-gate.js'

export type { MqttGate } from './mqtt-gate.js'

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

/** The part of aedes' persistence that its typings leave out (DurableMqttPersistence and aedes' memory one have it). */
interface AedesPersistence {
  createRetainedStreamCombi (patterns: string[]): AsyncIterable<AedesPublishPacket>
  removeSubscriptions (client: { id: string }, filters: string[]): Promise<void>
}
interface AedesWithPersistence { persistence: AedesPersistence }

/**
 * aedes' notices of every connect, disconnect, subscribe and unsubscribe, published under
 * `$SYS/<broker id>/`: nobody in one process needs them (aedes' own listener for them serves clusters),
 * they tell any `$SYS/#` reader every client's id and filters, and a SUBSCRIBE storm turned them into a
 * backlog that killed the process (issue 11, found-bug 1). They are not published. The broker's
 * heartbeat and birth (which aedes needs for wills) and Tetra's `$SYS/broker/` statistics still are.
 */
function isClientNotice (topic: string, prefix: string): boolean {
  if (!topic.startsWith(prefix)) return false
  const rest = topic.slice(prefix.length)
  return rest === 'new/subscribes' || rest === 'new/unsubscribes' || rest === 'new/clients' || rest === 'disconnect/clients'
}

type DeliverFn = (packet: AedesPublishPacket, cb: () => void) => void
export interface PubSubOptions {
  /** Interval in ms of the $SYS/broker/ statistics (sys-topics.ts); 0 or absent: none. */
  sysIntervalMs?: number
  /** The version $SYS/broker/version gives. */
  version?: string
  /** Caps on topic names and filters, for MQTT, HTTP and captures alike (default: topics.ts's). */
  topicLimits?: TopicLimits
  /** Most QoS 1/2 messages queued for a persistent session whose client is offline; 0 or absent: none. */
  maxQueued?: number
  /** Most inbound QoS 2 publishes of one client awaiting PUBREL; one more closes the connection (default 1000). */
  maxInboundInflight?: number
}

/**
 * Deeper than any topic can be (65,535 bytes hold at most 32,768 levels): aedes' own level check (which
 * would refuse a whole SUBSCRIBE where the limit asks for 0x80 on one filter) never fires; the bus's
 * limit (topicLimits) is checked first on every way in.
 */
const AEDES_NO_LEVEL_LIMIT = 65536

/** The parts of an aedes client this module reads that aedes' typings leave out. */
interface ClientState { subscriptions?: Record<string, unknown>, _will?: PublishPacket | null }

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
   * MQTT publishes aedes must not route when it calls publish for them: QoS 1 ones already routed before
   * their PUBACK (see routeBeforePuback), and ones the gate dropped (still acknowledged, routed nowhere).
   */
  private readonly skipPublish = new WeakSet<object>()
  /** The MQTT front-end's hooks (setMqttGate); none: everything is allowed. */
  private gate: MqttGate = {}
  private readonly publishNow: PublishFn
  /** The topic filters of durable in-process subscribers (captures), one entry per subscription. */
  private readonly durableFilters = new Set<string[]>()
  private sysTopics: SysTopics | null = null
  private readonly shared: SharedSubscriptions

  private constructor (readonly broker: Aedes, private readonly persistence: DurableMqttPersistence | undefined, readonly topicLimits: TopicLimits) {
    this.shared = new SharedSubscriptions(broker)
    broker.on('unsubscribe', (topics: string[], client: Client) => { this.shared.leave(client, topics) })
    broker.on('clientDisconnect', (client: Client) => { this.shared.leaveAll(client) })
    // aedes' publish, and in its place one that skips what routeBeforePuback routed already, what the
    // gate dropped and aedes' per-client $SYS notices (aedes takes an optional client before the
    // callback; its typings leave it out)
    const aedesPublish = broker.publish.bind(broker) as unknown as PublishFn
    this.publishNow = aedesPublish
    const skipPublish = this.skipPublish
    const clientNotices = `$SYS/${broker.id}/`
    broker.publish = function publish (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void): void {
      if (skipPublish.has(packet) || isClientNotice(packet.topic, clientNotices)) {
        skipPublish.delete(packet)
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
    const requested = options.topicLimits ?? DEFAULT_TOPIC_LIMITS
    // aedes' in-memory persistence (engine tests without storage) keeps qlobber's 100-level ceiling
    const topicLimits: TopicLimits = storage !== undefined ? requested : { ...requested, maxLevels: Math.min(requested.maxLevels, 100) }
    const authorizePublish: AuthorizePublish = (client, packet, callback) => {
      const verdict = self === undefined ? null : self.publishVerdict(client, packet)
      if (verdict instanceof Error) callback(verdict)
      else if (verdict === 'drop') {
        self?.skipPublish.add(packet)
        callback(null)
      } else if (self === undefined || client === null || packet.qos !== 1 || !self.keptSomewhere(packet)) callback(null)
      else self.routeBeforePuback(client, packet, callback)
    }
    const authorizeSubscribe: NonNullable<AedesOptions['authorizeSubscribe']> = (client, sub, callback) => {
      if (self === undefined) callback(null, sub)
      else self.authorizeSubscription(client, sub, callback)
    }
    const persistence = storage !== undefined
      ? await DurableMqttPersistence.open(storage, {
        maxTopicLevels: topicLimits.maxLevels,
        maxQueued: options.maxQueued ?? 0,
        onQueueDrop: () => { self?.gate.limit?.('queued') }
      })
      : undefined
    const broker = new Aedes({
      ...(persistence !== undefined ? { persistence } : {}),
      ...(options.maxInboundInflight !== undefined ? { maxInflightInbound: options.maxInboundInflight } : {}),
      preConnect: (client, packet, callback) => {
        const hook = self?.gate.preConnect
        if (hook === undefined) callback(null, true)
        else hook(client, packet, callback)
      },
      authenticate: (client, username, password, callback) => {
        const hook = self?.gate.authenticate
        const accepted = (error: ConnectRefusal | null, ok: boolean): void => {
          if (error === null && ok) self?.screenWill(client)
          callback(error, ok)
        }
        if (hook === undefined) accepted(null, true)
        else hook(client, username, password, accepted)
      },
      // counted here because aedes calls it once per MQTT client a message goes to
      authorizeForward: (client: Client, packet: AedesPublishPacket) => {
        if (self === undefined) return packet
        const hook = self.gate.authorizeForward
        if (hook !== undefined && !hook(client, packet)) return null
        self.stats.deliveredMqtt++
        return packet
      },
      authorizePublish,
      authorizeSubscribe
    })
    repairEmitter((broker as unknown as { mq: object }).mq, Math.max(topicLimits.maxLevels, 100))
    repairClientRegistry(broker)
    ;(broker as unknown as { maxTopicLevels: number }).maxTopicLevels = AEDES_NO_LEVEL_LIMIT
    await broker.listen()
    self = new PubSub(broker, persistence, topicLimits)
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
    const client = this.broker.handle(stream, request)
    this.gate.accept?.(client)
  }

  /** Installs the MQTT front-end's hooks (protocols/mqtt/gate.ts); called once, before connections come. */
  setMqttGate (gate: MqttGate): void {
    this.gate = gate
  }

  /**
   * The bus's rules for a client's PUBLISH or will, then the gate's: $SYS/ is the broker's (as aedes'
   * default hook, which this one replaces), topic limits close the connection (as any invalid topic does),
   * a will's topic may not hold wildcards (aedes checks them for PUBLISH only).
   */
  private publishVerdict (client: Client | null, packet: PublishPacket): 'allow' | 'drop' | Error {
    if (client !== null && packet.topic.startsWith('$SYS/')) return new Error('$SYS/ topics are reserved to the broker')
    const over = overTopicLimit(packet.topic, this.topicLimits)
    if (over !== undefined) {
      this.gate.limit?.(over === 'length' ? 'topic_length' : 'topic_levels')
      return new TopicLimitError(`topic over the ${over} limit`, over)
    }
    if (packet.topic.includes('+') || packet.topic.includes('#')) return new Error('a will topic must not hold wildcards')
    return this.gate.authorizePublish?.(client, packet) ?? 'allow'
  }

  /**
   * At CONNECT: a will the client may not publish is not stored at all (the same rules are applied again
   * when it would be published: the client's rights may have shrunk meanwhile).
   */
  private screenWill (client: Client): void {
    const state = client as unknown as ClientState
    if (state._will != null && this.publishVerdict(client, state._will) !== 'allow') state._will = null
  }

  /**
   * One filter of a SUBSCRIBE, or of a persistent session being restored at CONNECT. Refused (SUBACK 0x80,
   * MQTT 3.1.1 §3.9.3): a malformed $share, a filter over the topic limits, one the gate refuses. A
   * restored subscription that is refused now is removed from the session for good.
   * $share/{group}/{filter}: aedes keeps the literal subscription, the group's routing is ours (shared.ts).
   */
  private authorizeSubscription (client: Client, sub: Subscription, callback: (error: Error | null, sub?: Subscription | null) => void): void {
    const share = parseShare(sub.topic)
    const over = overTopicLimit(sub.topic, this.topicLimits)
    if (over !== undefined) this.gate.limit?.(over === 'length' ? 'topic_length' : 'topic_levels')
    const allowed = share !== null && over === undefined &&
      (this.gate.authorizeSubscribe === undefined || this.gate.authorizeSubscribe(client, share?.filter ?? sub.topic))
    if (!allowed) {
      // aedes restores a session's subscriptions while the client is connecting; a SUBSCRIBE from the client waits for the CONNACK
      if (client.connecting && !client.connected && !client.clean) {
        void this.aedesPersistence.removeSubscriptions(client, [sub.topic]).then(() => { callback(null, null) }, () => { callback(null, null) })
      } else callback(null, null)
      return
    }
    if (share === undefined) callback(null, sub)
    else void this.shared.join(client, sub.topic, share.filter, sub.qos).then(() => { callback(null, sub) })
  }

  private get aedesPersistence (): AedesPersistence {
    return (this.broker as unknown as { persistence: AedesPersistence }).persistence
  }

  /** The topic filters a connected client is subscribed to (its $share ones included, as it sent them). */
  subscriptionsOf (client: Client): string[] {
    return Object.keys((client as unknown as ClientState).subscriptions ?? {})
  }

  /**
   * Ends subscriptions of a connected client without a word to it (no UNSUBACK: it asked for nothing),
   * from its persistent session too: the front-end's revocation when the client's rights shrink.
   */
  async cutSubscriptions (client: Client, filters: string[]): Promise<void> {
    if (filters.length === 0 || client.closed) return
    if (!client.clean) await this.aedesPersistence.removeSubscriptions(client, filters)
    await new Promise<void>(resolve => { client.unsubscribe({ unsubscriptions: filters } as unknown as UnsubscribePacket, () => { resolve() }) })
  }

  get connectedClients (): number { return this.broker.connectedClients ?? 0 }

  /** Number of in-process subscriptions (SSE readers, captures) currently on the bus. */
  get activeSubscriptions (): number { return this.subscriptions }

  /** Publishes with MQTT semantics; resolves when aedes has routed it (and stored it, if retained). */
  async publish (message: { topic: string, payload: Buffer, qos?: QoS, retain?: boolean }, origin: Origin = 'internal'): Promise<void> {
    validatePublishTopic(message.topic, this.topicLimits)
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
      this.skipPublish.add(packet)
      callback(null)
    })
  }

  /**
   * Subscribes an in-process handler to topic filters. Resolves to the function that removes the
   * subscription again; a front-end must call it when its client goes away.
   */
  async subscribe (filters: string[], handler: BusHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    for (const f of filters) this.validateFilter(f)
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

  /**
   * A topic filter as subscribe() and retained() take it: well formed and within the topic limits
   * (InvalidArgument / TopicLimitError otherwise). For a front-end that must refuse before it answers
   * (an SSE route, before its stream starts).
   */
  validateFilter (filter: unknown): string {
    const valid = validateFilter(filter)
    checkTopicLimits('filter', valid, this.topicLimits)
    return valid
  }

  /** Retained messages whose topic matches any of the filters. */
  async retained (filters: string[]): Promise<BusMessage[]> {
    for (const f of filters) this.validateFilter(f)
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
