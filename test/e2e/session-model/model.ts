import fc from 'fast-check'
import mqtt, { type MqttClient } from 'mqtt'
import type { QoS } from 'mqtt-packet'
import type { BrokerUnderTest } from './broker.js'
import { ClientSession, Subscriber, type Version } from './subscriber.js'

/**
 * A model of one MQTT session (the subscriber's) as the broker must keep it, and the commands that drive the
 * real broker and the model side by side: connects (clean or resumed, a session that outlives the connection
 * or not, 3.1.1 or 5), disconnects (normal or dropped), crashes (kill -9 and restart), subscribes,
 * unsubscribes, publishes at every QoS from another client, and acknowledgements held back and given.
 *
 * What the model owes: a message published at QoS q, acknowledged to its publisher, that matched a
 * subscription of QoS s of the session then, is owed to the application at QoS min(q, s) >= 1 until the
 * session ends (a clean start, or the end of a session that does not outlive its connection) or the
 * subscription is removed (MQTT-3.10.4-2 lets the server drop what it had not started to send).
 */

/** The session's topics: `a` subscribed as it is, `w/x` through the filter `w/+` (two: most publishes hit a subscription). */
export const TOPICS = 2
export const topicOf = (prefix: string, i: number): string => i === 1 ? `${prefix}/w/x` : `${prefix}/a`
export const filterOf = (prefix: string, i: number): string => i === 1 ? `${prefix}/w/+` : topicOf(prefix, i)
const NAMES = ['a', 'w']

/** Each crash costs a broker start (2-4 s through tsx): at most this many per run, and `crashBudget` per property. */
export const MAX_CRASHES_PER_RUN = 1
/** The session expiry of a v5 session that outlives its connection (seconds). */
const V5_PERSISTENT_EXPIRY = 3600

interface SessionModel {
  /** topic index -> granted QoS */
  subs: Map<number, QoS>
  /** message id -> what it is owed as */
  owed: Map<number, { topic: number, qos: QoS }>
  persistent: boolean
}

export interface Model {
  versions: Version[]
  /**
   * Two checks aedes fails, made only on the own MQTT core:
   * - session present for a session with nothing in it (no subscription, nothing owed or awaiting release):
   *   MQTT 3.1.1 §3.1.2.4 counts "the existence of a Session, even if the rest of the Session state is
   *   empty"; aedes answers 0 (resumed or started afresh, an empty session holds the same state);
   * - DUP 1 on a resent PUBLISH (MQTT-3.3.1-1); aedes resends with DUP 0.
   */
  strict: boolean
  session: SessionModel | null
  connected: boolean
  holding: boolean
  crashes: number
  /**
   * Crashes left to the whole property, shared by its runs (the file stays well under a minute). Shrinking
   * can run out of it: a counterexample that needs its crash then stops shrinking where it still fails.
   */
  crashBudget: { left: number }
  lastVersion: Version
  nextMessage: number
}

export interface Real {
  broker: BrokerUnderTest
  prefix: string
  clientId: string
  publisherVersion: Version
  publisher: MqttClient
  session: ClientSession
  sub: Subscriber | null
  /** message id -> topic index and QoS as published */
  published: Map<number, { topic: number, qos: QoS }>
}

export function newModel (versions: Version[], strict: boolean, crashBudget: { left: number }): Model {
  return { versions, strict, crashBudget, session: null, connected: false, holding: false, crashes: 0, lastVersion: versions[0], nextMessage: 1 }
}

export async function connectPublisher (broker: BrokerUnderTest, version: Version): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.mqttUrl, { protocolVersion: version, reconnectPeriod: 0, clean: true })
  client.on('error', () => { /* the broker is killed under it */ })
  return client
}

/** A session ends with its connection unless it is persistent; the client's half ends with it. */
function connectionGone (m: Model, r: Real): void {
  m.connected = false
  m.holding = false
  if (m.session !== null && !m.session.persistent) {
    m.session = null
    r.session.discard()
  }
}

type Cmd = fc.AsyncCommand<Model, Real>

export class Connect implements Cmd {
  constructor (readonly version: Version, readonly cleanStart: boolean, readonly persistent: boolean, readonly receiveMaximum?: number) {}
  check (m: Readonly<Model>): boolean { return !m.connected && m.versions.includes(this.version) }
  async run (m: Model, r: Real): Promise<void> {
    const expectPresent = !this.cleanStart && m.session !== null
    const { client, connack } = await Subscriber.connect({
      port: r.broker.port,
      version: this.version,
      clientId: r.clientId,
      cleanStart: this.cleanStart,
      sessionExpiry: this.persistent ? V5_PERSISTENT_EXPIRY : 0,
      receiveMaximum: this.receiveMaximum
    }, r.session)
    r.sub = client
    const code = this.version === 5 ? connack.reasonCode : connack.returnCode
    if (code !== 0) throw new Error(`CONNACK refused the connection with ${code}`)
    // MQTT-3.2.2-1/-2 (3.1.1), MQTT-3.2.2-2/-3 (5.0): session present says whether the session was resumed
    const empty = m.session !== null && m.session.subs.size === 0 && m.session.owed.size === 0 && r.session.awaitingRelease.size === 0
    const lenient = !m.strict && empty && !connack.sessionPresent
    if (connack.sessionPresent !== expectPresent && !lenient) throw new Error(`[MQTT-3.2.2-2] CONNACK session present ${connack.sessionPresent}, the model says ${expectPresent}`)
    if (!connack.sessionPresent) m.session = { subs: new Map(), owed: new Map(), persistent: this.persistent }
    else m.session!.persistent = this.persistent
    m.connected = true
    m.holding = false
    m.lastVersion = this.version
  }

  toString (): string {
    const rm = this.receiveMaximum === undefined ? '' : `, receive maximum ${this.receiveMaximum}`
    return `connect(v${this.version}, ${this.cleanStart ? 'clean start' : 'resume'}, ${this.persistent ? 'persistent' : 'ends with connection'}${rm})`
  }
}

/**
 * A second connection resumes the persistent session while the first is still open: the broker closes the
 * first (MQTT-3.1.4-2; v5 with DISCONNECT 0x8E) and the session goes on, what was in flight resent to the new one.
 */
class Takeover implements Cmd {
  constructor (readonly connect: Connect) {}
  check (m: Readonly<Model>): boolean { return m.connected && m.session!.persistent && m.versions.includes(this.connect.version) }
  async run (m: Model, r: Real): Promise<void> {
    const old = r.sub!
    await this.connect.run(m, r)
    let timer: NodeJS.Timeout | undefined
    const closedInTime = await Promise.race([
      old.closedPromise.then(() => true),
      new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, 5000) })
    ])
    clearTimeout(timer)
    if (!closedInTime) throw new Error('[MQTT-3.1.4-2] the connection taken over was not closed within 5 s')
    await r.broker.settle(2)
  }

  toString (): string { return `takeover by ${String(this.connect)}` }
}

export class Disconnect implements Cmd {
  constructor (readonly normal: boolean) {}
  check (m: Readonly<Model>): boolean { return m.connected }
  async run (m: Model, r: Real): Promise<void> {
    if (this.normal) await r.sub!.disconnect()
    else await r.sub!.drop()
    r.sub = null
    connectionGone(m, r)
    // the broker has seen the close (and detached the session) before the next command
    await r.broker.settle(1)
  }

  toString (): string { return this.normal ? 'disconnect' : 'drop connection' }
}

/** v5: DISCONNECT with session expiry 0 ends a session that would have outlived the connection. */
class DisconnectEndingSession implements Cmd {
  check (m: Readonly<Model>): boolean { return m.connected && m.lastVersion === 5 && m.session!.persistent }
  async run (m: Model, r: Real): Promise<void> {
    await r.sub!.disconnect(0)
    r.sub = null
    m.session!.persistent = false
    connectionGone(m, r)
    await r.broker.settle(1)
  }

  toString (): string { return 'disconnect(session expiry 0)' }
}

class Crash implements Cmd {
  // only where it tells something: a session that must survive it (each crash costs a broker start)
  check (m: Readonly<Model>): boolean { return m.crashes < MAX_CRASHES_PER_RUN && m.crashBudget.left > 0 && m.session !== null && m.session.persistent }
  async run (m: Model, r: Real): Promise<void> {
    m.crashBudget.left--
    await r.broker.crash()
    r.sub = null
    r.publisher.end(true)
    r.publisher = await connectPublisher(r.broker, r.publisherVersion)
    m.crashes++
    connectionGone(m, r)
  }

  toString (): string { return 'kill -9 and restart' }
}

export class Subscribe implements Cmd {
  constructor (readonly topic: number, readonly qos: QoS) {}
  check (m: Readonly<Model>): boolean { return m.connected }
  async run (m: Model, r: Real): Promise<void> {
    const granted = await r.sub!.subscribe(filterOf(r.prefix, this.topic), this.qos)
    if (granted !== this.qos) throw new Error(`SUBACK granted ${granted} for QoS ${this.qos}`)
    m.session!.subs.set(this.topic, this.qos)
  }

  toString (): string { return `subscribe(${NAMES[this.topic]}, qos ${this.qos})` }
}

class Unsubscribe implements Cmd {
  constructor (readonly topic: number) {}
  check (m: Readonly<Model>): boolean { return m.connected && m.session!.subs.has(this.topic) }
  async run (m: Model, r: Real): Promise<void> {
    await r.sub!.unsubscribe(filterOf(r.prefix, this.topic))
    const s = m.session!
    s.subs.delete(this.topic)
    for (const [id, o] of s.owed) if (o.topic === this.topic) s.owed.delete(id)
  }

  toString (): string { return `unsubscribe(${NAMES[this.topic]})` }
}

/** `count` messages one after the other (each acknowledged before the next) on one topic at one QoS. */
export class Publish implements Cmd {
  constructor (readonly topic: number, readonly qos: QoS, readonly count: number) {}
  check (): boolean { return true }
  async run (m: Model, r: Real): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const id = m.nextMessage++
      r.published.set(id, { topic: this.topic, qos: this.qos })
      // resolves at PUBACK (QoS 1) / PUBCOMP (QoS 2): acknowledged, so routed and kept
      await r.publisher.publishAsync(topicOf(r.prefix, this.topic), String(id), { qos: this.qos })
      const s = m.session
      const granted = s?.subs.get(this.topic)
      if (s != null && granted !== undefined) {
        const qos = Math.min(granted, this.qos) as QoS
        if (qos > 0) s.owed.set(id, { topic: this.topic, qos })
      }
    }
  }

  toString (): string { return `publish(${NAMES[this.topic]}, qos ${this.qos}${this.count > 1 ? ` x${this.count}` : ''})` }
}

export class HoldAcks implements Cmd {
  check (m: Readonly<Model>): boolean { return m.connected && !m.holding }
  async run (m: Model, r: Real): Promise<void> {
    r.sub!.holding = true
    m.holding = true
  }

  toString (): string { return 'hold acks' }
}

class GiveAcks implements Cmd {
  check (m: Readonly<Model>): boolean { return m.connected && m.holding }
  async run (m: Model, r: Real): Promise<void> {
    r.sub!.giveAcks()
    m.holding = false
  }

  toString (): string { return 'give acks' }
}

/** QoS 1 and 2 weigh more: they are what a session owes (2 most: its resends are the subtle ones). */
const qos = fc.constantFrom<QoS>(0, 1, 2, 2)
const topic = fc.integer({ min: 0, max: TOPICS - 1 })

export function connectArbitrary (versions: Version[]): fc.Arbitrary<Connect> {
  // sessions that outlive their connection are the interesting ones: two in three
  const mostly = fc.constantFrom(true, true, false)
  // v5: a small receive maximum in half the connects (flow control with acknowledgements held)
  const receiveMaximum = fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined, freq: 2 })
  return fc.tuple(fc.constantFrom(...versions), mostly.map(b => !b), mostly, receiveMaximum).map(([v, cleanStart, persistent, rm]) =>
    // 3.1.1 has one flag: clean session 1 starts afresh and ends with the connection, 0 resumes and outlives it
    v === 4 ? new Connect(4, cleanStart, !cleanStart) : new Connect(5, cleanStart, persistent, rm))
}

export const subscribeArbitrary: fc.Arbitrary<Subscribe> = fc.tuple(topic, qos).map(([t, q]) => new Subscribe(t, q))

/**
 * A run: a connect, one to three subscribes (so that most runs have something owed) and, in half the runs,
 * acknowledgements held from the start (so that resends are common), then random commands. Publishes are
 * the most frequent, a crash the rarest (each costs a broker start).
 */
export function runArbitrary (versions: Version[]): fc.Arbitrary<Cmd[]> {
  return fc.tuple(
    connectArbitrary(versions),
    fc.array(subscribeArbitrary, { minLength: 1, maxLength: 3 }),
    fc.boolean(),
    fc.commands(commandArbitraries(versions), { maxCommands: 10, size: 'max' })
  ).map(([connect, subscribes, hold, rest]) => [connect, ...subscribes, ...(hold ? [new HoldAcks()] : []), ...rest])
}

export function commandArbitraries (versions: Version[]): Array<fc.Arbitrary<Cmd>> {
  const connect = connectArbitrary(versions)
  const publish = fc.tuple(topic, qos, fc.integer({ min: 1, max: 3 })).map(([t, q, n]) => new Publish(t, q, n))
  return [
    connect,
    connect,
    fc.boolean().map(normal => new Disconnect(normal)),
    fc.boolean().map(normal => new Disconnect(normal)),
    ...(versions.includes(5) ? [fc.constant(new DisconnectEndingSession())] : []),
    fc.tuple(fc.constantFrom(...versions), fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined, freq: 2 }))
      .map(([v, rm]) => new Takeover(new Connect(v, false, true, v === 5 ? rm : undefined))),
    fc.constant(new Crash()),
    subscribeArbitrary,
    topic.map(t => new Unsubscribe(t)),
    publish,
    publish,
    publish,
    publish,
    publish,
    fc.constant(new HoldAcks()),
    fc.constant(new HoldAcks()),
    fc.constant(new GiveAcks())
  ]
}

/**
 * After the commands: the session's client comes back if it is away (resuming a persistent session), gives
 * every acknowledgement, and must get every owed message. Then the invariants over everything the
 * application was handed in the run.
 */
/** What a run exercised (TETRA_MODEL_STATS=1 prints the sums: a test that never resends checks little). */
export interface RunSummary { owed: number, delivered: number, resends: number, crashes: number }

export async function drainAndCheck (m: Model, r: Real, waitMs = 10_000): Promise<RunSummary> {
  // acknowledgements held in a session that outlives the connection: the connection drops and the session
  // resumes, so what was unacknowledged is resent (MQTT-4.4.0-1) rather than merely acknowledged late
  if (m.connected && m.holding && m.session!.persistent) await new Disconnect(false).run(m, r)
  if (m.connected) r.sub!.giveAcks()
  else if (m.session !== null) await new Connect(m.lastVersion, false, true).run(m, r)
  const owed = m.session === null ? new Map<number, { topic: number, qos: QoS }>() : m.session.owed
  const seen = (): Set<number> => new Set(r.session.delivered.filter(d => d.topic.startsWith(`${r.prefix}/`)).map(d => Number(d.payload)))
  // done when every owed message arrived and nothing is in flight: each QoS 1 id acknowledged, each QoS 2 id
  // released (a resumed session resends what was unacknowledged, PUBLISH or PUBREL: MQTT-4.4.0-1)
  const inFlight = (): boolean => r.session.unacknowledged.size > 0 || r.session.awaitingRelease.size > 0
  const deadline = Date.now() + waitMs
  while (([...owed.keys()].some(id => !seen().has(id)) || inFlight()) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  const delivered = r.session.delivered.filter(d => d.topic.startsWith(`${r.prefix}/`))
  const trace = (): string => `delivered (id/qos): ${delivered.map(d => `${d.payload}/${d.qos}${d.dup ? 'd' : ''}`).join(' ') || 'nothing'}`

  // nothing acknowledged is lost for the session (QoS 1 and 2)
  const missing = [...owed].filter(([id]) => !seen().has(id))
  if (missing.length > 0) {
    throw new Error(`acknowledged messages never delivered: ${missing.map(([id, o]) => `${id} (${NAMES[o.topic]}, qos ${o.qos})`).join(', ')}; ${trace()}`)
  }
  if (inFlight()) {
    throw new Error(`[MQTT-4.4.0-1] never completed after the session resumed: QoS 1 ids unacknowledged ${[...r.session.unacknowledged].join(',') || '-'}, QoS 2 ids not released ${[...r.session.awaitingRelease].join(',') || '-'}; ${trace()}`)
  }
  // nothing handed to the application twice at QoS 2
  const qos2 = new Map<string, number>()
  for (const d of delivered) if (d.qos === 2) qos2.set(d.payload, (qos2.get(d.payload) ?? 0) + 1)
  const twice = [...qos2].filter(([, n]) => n > 1).map(([id]) => id)
  if (twice.length > 0) throw new Error(`QoS 2 messages delivered more than once: ${twice.join(', ')}; ${trace()}`)
  // order kept per topic and QoS: first deliveries in publish order
  const last = new Map<string, number>()
  const firstSeen = new Set<string>()
  for (const d of delivered) {
    if (firstSeen.has(d.payload)) continue
    firstSeen.add(d.payload)
    const key = `${d.topic} qos ${d.qos}`
    const id = Number(d.payload)
    if ((last.get(key) ?? 0) > id) throw new Error(`out of order on ${key}: ${id} after ${last.get(key)}; ${trace()}`)
    last.set(key, id)
  }
  // and only messages of the run's topics, each one published
  for (const d of delivered) {
    if (!r.published.has(Number(d.payload))) throw new Error(`delivered a message never published: ${d.payload} on ${d.topic}`)
  }
  if (r.session.overReceiveMaximum.length > 0) throw new Error(`[MQTT-3.3.4-9] sent beyond the receive maximum: ${r.session.overReceiveMaximum.join(', ')}; ${trace()}`)
  if (m.strict && r.session.resendsWithoutDup.length > 0) throw new Error(`[MQTT-3.3.1-1] resends with DUP 0: ${r.session.resendsWithoutDup.join(', ')}; ${trace()}`)
  if (r.session.protocolErrors.length > 0) throw new Error(`protocol errors: ${r.session.protocolErrors.join('; ')}`)
  const resends = delivered.length - firstSeen.size + r.session.resendsHeld
  return { owed: owed.size, delivered: firstSeen.size, resends, crashes: m.crashes }
}
