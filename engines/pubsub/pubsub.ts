import { systemClock, type Clock } from '../clock.js'
import { InvalidArgument, TetraError, Unavailable } from '../errors.js'
import type { Storage, WriteOp } from '../storage/storage.js'
import { BusRecords } from './persistence.js'
import { RetainedMessages } from './retained.js'
import { LocalSubscriber, Router, type BusHandler, type Target } from './router.js'
import type { BusLimit, SessionContext, SessionInfo } from './session.js'
import { Sessions } from './sessions.js'
import { SysTopics } from './sys-topics.js'
import { checkTopicLimits, DEFAULT_TOPIC_LIMITS, validateFilter, validatePublishTopic, type TopicLimits } from './topics.js'
import type { BusMessage, Delivery, MessageProperties, Origin, Outlet, QoS, SessionHandle, SessionRequest } from './types.js'

export type { BusMessage, MessageProperties, Origin, QoS } from './types.js'
export type { BusHandler } from './router.js'
export type { BusLimit, SessionInfo } from './session.js'

export interface SubscribeOptions {
  /**
   * The subscriber stores what it gets, and the publisher's acknowledgement waits for that: an MQTT
   * QoS 1 PUBACK, a QoS 2 PUBREC and the answer to an HTTP publish with QoS 1 or 2 come only once every
   * durable subscriber matching the topic has the message durable.
   */
  durable?: boolean
}

export interface PubSubStats {
  /** Messages published, by the protocol they came in on ($SYS/ statistics not counted). */
  published: Record<Origin, number>
  /** Messages handed to MQTT clients (one per receiving session). */
  readonly deliveredMqtt: number
  /** Messages handed to in-process subscribers (SSE, stream/queue capture). */
  deliveredInternal: number
}

export interface PubSubOptions {
  /** Interval in ms of the $SYS/broker/ statistics (sys-topics.ts); 0 or absent: none. */
  sysIntervalMs?: number
  /** The version $SYS/broker/version gives. */
  version?: string
  /** Caps on topic names and filters, for MQTT, HTTP and captures alike (default: topics.ts's). */
  topicLimits?: TopicLimits
  /** Most QoS 1/2 messages queued for a session whose client is offline; 0 or absent: none. */
  maxQueued?: number
  /** Session expiry, will delays and message expiry are measured on it (default: the system clock). */
  clock?: Clock
  /** A bus limit dropped something (the front-end counts it; also settable later with onLimit()). */
  onLimit?: (name: BusLimit) => void
  /** Background work nobody waits for failed (a delete after an acknowledgement, a will). */
  onError?: (err: unknown, what: string) => void
  /** Most topics in the match cache (default 10,000). */
  matchCacheSize?: number
  /**
   * false: the wills and session expiries a previous run left wait for start() (createEngines calls it
   * once the queue and stream engines, whose captures may keep a will, are open). Default true.
   */
  start?: boolean
}

/** What publish() takes: a message as HTTP and the other engines give it. */
export interface PublishInput {
  topic: string
  payload: Buffer
  qos?: QoS
  retain?: boolean
  properties?: MessageProperties
  /** Seconds until the message expires (MQTT 5 message expiry interval); absent: never. */
  messageExpiry?: number
}

const noop = (): void => {}

/**
 * The bus: every front-end publishes and subscribes through this class. MQTT connections get a session
 * (connect(), with an Outlet the bus sends through) and publish with route(); HTTP, SSE and the other
 * engines use publish() and subscribe(). See types.ts for the contract, router.ts for matching,
 * sessions.ts and session.ts for sessions, persistence.ts for what is durable.
 */
export class PubSub {
  readonly stats: PubSubStats
  private readonly counters = { deliveredMqtt: 0, queued: 0 }
  private readonly router: Router
  private readonly retainedMessages: RetainedMessages
  private readonly sessions: Sessions
  private readonly clock: Clock
  private sysTopics: SysTopics | null = null
  private localCount = 0
  private started = false
  private closing = false
  private limitListener: (name: BusLimit) => void
  private readonly errorListener: (err: unknown, what: string) => void

  private constructor (private readonly records: BusRecords | undefined, readonly topicLimits: TopicLimits, options: PubSubOptions) {
    const counters = this.counters
    this.stats = {
      published: { mqtt: 0, http: 0, internal: 0 },
      get deliveredMqtt () { return counters.deliveredMqtt },
      deliveredInternal: 0
    }
    this.clock = options.clock ?? systemClock
    this.limitListener = options.onLimit ?? noop
    this.errorListener = options.onError ?? noop
    let seq = 1
    const ctx: SessionContext = {
      clock: this.clock,
      records,
      maxQueued: options.maxQueued ?? 0,
      counters,
      nextSeq: () => seq++,
      onLimit: name => { this.limitListener(name) },
      onError: (err, what) => { this.errorListener(err, what) }
    }
    this.router = new Router(options.matchCacheSize)
    this.retainedMessages = new RetainedMessages(this.clock, records)
    this.sessions = new Sessions(ctx, this.router, this.retainedMessages, message => { this.publishWill(message) })
    this.setSeq = next => { seq = next }
  }

  private readonly setSeq: (next: number) => void

  /**
   * Starts the bus. With `storage`, retained messages, the sessions that outlive their connection (their
   * subscriptions, queues, QoS 2 ids, expiry) and every connection's will are durable there and come back
   * at the next start (persistence.ts); without it, everything is in memory.
   */
  static async create (storage?: Storage, options: PubSubOptions = {}): Promise<PubSub> {
    const records = storage !== undefined ? new BusRecords(storage) : undefined
    const bus = new PubSub(records, options.topicLimits ?? DEFAULT_TOPIC_LIMITS, options)
    if (records !== undefined) {
      const loaded = await records.load()
      bus.setSeq(loaded.nextSeq)
      const now = bus.clock.now()
      const expired: WriteOp[] = []
      for (const message of loaded.retained) {
        if (message.expiresAt !== undefined && message.expiresAt <= now) expired.push(records.retainedDel(message.topic))
        else bus.retainedMessages.restore(message)
      }
      if (expired.length > 0) await records.write(expired)
      bus.sessions.restore(loaded)
    }
    if (options.start !== false) bus.start()
    if ((options.sysIntervalMs ?? 0) > 0) bus.startSysTopics(options.sysIntervalMs ?? 0, options.version ?? 'unknown')
    return bus
  }

  /** Starts the timers of what a previous run left (wills due, session expiries); idempotent. */
  start (): void {
    if (this.started || this.closing) return
    this.started = true
    this.sessions.start()
  }

  /** Where the bus reports a limit that dropped something (replaces the one given to create()). */
  onLimit (listener: (name: BusLimit) => void): void {
    this.limitListener = listener
  }

  // ---- MQTT sessions ---------------------------------------------------------------------------

  /**
   * A client connects: its session, resumed or new (see types.ts SessionRequest). A connection holding the
   * same client id is kicked ('takeover') first. Resolves once the session's records are written; the
   * resend of what the session owes starts right after (the front-end writes the CONNACK as this resolves).
   */
  async connect (request: SessionRequest, outlet: Outlet): Promise<SessionHandle> {
    if (this.closing) throw new Unavailable('the broker is shutting down')
    return await this.sessions.connect(request, outlet)
  }

  /**
   * Routes a message to every subscriber: the hot path. Returns undefined when nothing durable had to be
   * written, else a promise that resolves once every durable write the message causes is done (retained
   * stored, queued for sessions that outlive their connection, durable in-process subscribers): the
   * front-end acknowledges after it; it rejects when storage fails (no acknowledgement then).
   *
   * A QoS 0 message to a topic seen before costs one Map lookup and a loop calling outlet.deliver; the
   * sessions that get the same packet (QoS 0, no retain flag, no subscription id) get the same Delivery
   * object, which the front-end may encode once. Deliveries are read-only for the front-end.
   * Measured with an outlet that only counts (the bus alone, node 20, this 2-core machine, noisy):
   * 27-96M deliveries/s on fan-out 100 and 1000, 2-25M routes/s to one subscriber, 140-300k routes/s when
   * every message has a new topic (a cache miss each); aedes routed 66-94k msg/s end to end.
   */
  route (message: BusMessage, origin: Origin): Promise<void> | undefined {
    const topic = message.topic
    if (topic.charCodeAt(0) === 36 && (topic === '$SYS' || topic.startsWith('$SYS/'))) {
      if (origin !== 'internal') throw new InvalidArgument('$SYS topics are reserved for the broker')
    } else this.stats.published[origin]++
    if (this.closing) throw new Unavailable('the broker is shutting down')
    const match = this.router.match(topic)
    let ops: WriteOp[] | null = null
    if (message.retain) {
      const op = this.retainedMessages.apply(message)
      if (op !== undefined) ops = [op]
    }
    if (match.targets.length > 0) ops = this.deliverToSessions(message, match.targets, ops)
    for (let i = 0; i < match.groups.length; i++) {
      const target = match.groups[i].pick(message.qos)
      if (target !== undefined) ops = this.deliverTo(message, target, ops)
    }
    let waits: Array<Promise<void>> | null = null
    const locals = match.locals
    for (let i = 0; i < locals.length; i++) {
      const local = locals[i]
      this.stats.deliveredInternal++
      let kept: void | Promise<void>
      try {
        kept = local.handler(message)
      } catch (err) {
        this.errorListener(err, 'an in-process subscriber')
        continue
      }
      // QoS 1 and 2: the acknowledgement waits for a durable subscriber's write
      if (local.durable && message.qos > 0 && kept !== undefined) (waits ??= []).push(kept)
    }
    if (ops === null) {
      if (waits === null) return undefined
      return waits.length === 1 ? waits[0] : Promise.all(waits).then(noop)
    }
    const written = this.records!.write(ops)
    if (waits === null) return written
    waits.push(written)
    return Promise.all(waits).then(noop)
  }

  private deliverToSessions (message: BusMessage, targets: Target[], ops: WriteOp[] | null): WriteOp[] | null {
    const from = message.from
    // one Delivery for every session that gets exactly this packet (made at the first one)
    let plain: Delivery | null = null
    for (let i = 0; i < targets.length; i++) {
      let target: Target | null = targets[i]
      if (from !== undefined && from === target.session.clientId) {
        target = target.own
        if (target === null) continue
      }
      const session = target.session
      const qos = message.qos < target.qos ? message.qos : target.qos
      const retain = message.retain && target.retainAsPublished
      if (qos === 0) {
        const outlet = session.outlet
        if (outlet === null) continue
        let delivery: Delivery
        if (!retain && target.subscriptionIds === undefined) {
          delivery = plain ??= { message, qos: 0, retain: false, subscriptionIds: undefined, packetId: undefined, dup: false }
        } else delivery = { message, qos: 0, retain, subscriptionIds: target.subscriptionIds, packetId: undefined, dup: false }
        if (outlet.deliver(delivery)) this.counters.deliveredMqtt++
      } else if (session.outlet !== null || session.expiryInterval > 0) {
        ops = session.enqueue(message, qos, retain, target.subscriptionIds, ops)
      }
    }
    return ops
  }

  /** One session's delivery (a shared group's member). */
  private deliverTo (message: BusMessage, target: Target, ops: WriteOp[] | null): WriteOp[] | null {
    const session = target.session
    const qos = message.qos < target.qos ? message.qos : target.qos
    const retain = message.retain && target.retainAsPublished
    if (qos !== 0) {
      if (session.outlet !== null || session.expiryInterval > 0) ops = session.enqueue(message, qos, retain, target.subscriptionIds, ops)
      return ops
    }
    const outlet = session.outlet
    if (outlet !== null && outlet.deliver({ message, qos: 0, retain, subscriptionIds: target.subscriptionIds, packetId: undefined, dup: false })) this.counters.deliveredMqtt++
    return ops
  }

  private publishWill (message: BusMessage): void {
    if (this.closing) return
    try {
      this.route(message, 'mqtt')?.catch((err: unknown) => { this.errorListener(err, 'a will') })
    } catch (err) {
      this.errorListener(err, 'a will')
    }
  }

  // ---- HTTP, SSE and the other engines -----------------------------------------------------------

  /** Publishes a message (validated); resolves once routed and every durable write it causes is done. */
  async publish (input: PublishInput, origin: Origin = 'internal'): Promise<void> {
    validatePublishTopic(input.topic, this.topicLimits)
    const qos = input.qos ?? 0
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new InvalidArgument('qos must be 0, 1 or 2')
    if (this.closing) throw new Unavailable('the broker is shutting down')
    const message: BusMessage = { topic: input.topic, payload: input.payload, qos, retain: input.retain ?? false }
    if (input.properties !== undefined) message.properties = input.properties
    if (input.messageExpiry !== undefined) {
      const seconds = input.messageExpiry
      if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xFFFFFFFF) throw new InvalidArgument('messageExpiry must be a whole number of seconds from 0 to 4294967295')
      message.expiresAt = this.clock.now() + seconds * 1000
    }
    try {
      await this.route(message, origin)
    } catch (err) {
      // a storage failure (retained, session queues) is the broker's, not the message's
      throw err instanceof TetraError ? err : new Unavailable(`the message could not be stored: ${(err as Error).message}`)
    }
  }

  /**
   * Subscribes an in-process handler to topic filters (one call per message, however many filters match).
   * Resolves to the function that removes the subscription again; a front-end must call it when its
   * client goes away.
   */
  async subscribe (filters: string[], handler: BusHandler, options: SubscribeOptions = {}): Promise<() => Promise<void>> {
    for (const f of filters) this.validateFilter(f)
    const unique = [...new Set(filters)]
    const subscriber = new LocalSubscriber(handler, options.durable === true)
    for (const filter of unique) this.router.add(filter, subscriber, null)
    this.localCount += unique.length
    let removed = false
    return async () => {
      if (removed) return
      removed = true
      for (const filter of unique) this.router.remove(filter, subscriber)
      this.localCount -= unique.length
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

  /** Retained messages whose topic matches any of the filters (each once; expired ones not). */
  async retained (filters: string[]): Promise<BusMessage[]> {
    for (const f of filters) this.validateFilter(f)
    return this.retainedMessages.matching(filters)
  }

  // ---- figures -------------------------------------------------------------------------------------

  get connectedClients (): number { return this.sessions.connected }

  /** Number of in-process subscriptions (SSE readers, captures; one per filter) currently on the bus. */
  get activeSubscriptions (): number { return this.localCount }

  /** Every session, connected or waiting offline, for operators. */
  clients (): SessionInfo[] {
    return [...this.sessions.byId.values()].map(s => s.info())
  }

  private startSysTopics (intervalMs: number, version: string): void {
    this.sysTopics = new SysTopics({
      version,
      connectedClients: () => this.connectedClients,
      sessions: () => {
        let disconnected = 0
        let subscriptions = 0
        for (const session of this.sessions.byId.values()) {
          if (session.outlet === null) disconnected++
          subscriptions += session.subscriptions.size
        }
        return { disconnected, subscriptions }
      },
      retainedMessages: () => this.retainedMessages.size,
      queuedMessages: () => this.counters.queued,
      publishesReceived: () => this.stats.published.mqtt + this.stats.published.http,
      publishesSent: () => this.counters.deliveredMqtt
    }, (topic, payload) => {
      try {
        this.route({ topic, payload: Buffer.from(payload), qos: 0, retain: true }, 'internal')?.catch((err: unknown) => { this.errorListener(err, '$SYS statistics') })
      } catch (err) {
        this.errorListener(err, '$SYS statistics')
      }
    })
    this.sysTopics.start(intervalMs)
  }

  /**
   * Stops timers and tells every connection to go ('shutdown'). Everything acknowledged is written already
   * (route() resolved after it); what is written in the background (deletes after acknowledgements) is
   * in the storage's queue, which its own close flushes.
   */
  async close (): Promise<void> {
    if (this.closing) return
    this.closing = true
    this.sysTopics?.stop()
    this.sessions.close()
  }
}
