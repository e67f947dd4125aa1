import type { TimerHandle } from '../clock.js'
import { Unavailable } from '../errors.js'
import type { WriteOp } from '../storage/storage.js'
import type { Loaded, StoredWill } from './persistence.js'
import type { RetainedMessages } from './retained.js'
import type { Router } from './router.js'
import { Session, type SessionContext } from './session.js'
import { parseShare, SharedGroup } from './shared.js'
import { setTimerAt } from './timers.js'
import type { BusMessage, Delivery, Outlet, SessionHandle, SessionRequest, SubscriptionOptions, SubscriptionRequest } from './types.js'

/** MQTT's "never expires" (3.1.1 clean session 0). */
export const NEVER_EXPIRES = 0xFFFFFFFF

/**
 * The sessions by client id: connect (takeover, clean start, resume), detach, session expiry (also across
 * restarts), wills and their delays, subscriptions in the index (shared groups included).
 */
export class Sessions {
  readonly byId = new Map<string, Session>()
  /** Shared groups by `$share/{group}/{filter}`. */
  readonly groups = new Map<string, SharedGroup>()
  connected = 0
  /** Client ids with a will record. */
  private readonly willRecords = new Set<string>()
  /** Wills of connections a previous process had, whose session did not outlive them: due at start. */
  private readonly orphanWills = new Map<string, { will: StoredWill, timer: TimerHandle | null }>()
  /** Connects of one client id run one after the other. */
  private readonly connecting = new Map<string, Promise<unknown>>()
  private closed = false

  constructor (
    private readonly ctx: SessionContext,
    private readonly router: Router,
    private readonly retained: RetainedMessages,
    private readonly publishWill: (message: BusMessage) => void
  ) {}

  /** Sessions and wills a previous run left; their timers start with start(). */
  restore (loaded: Loaded): void {
    const now = this.ctx.clock.now()
    for (const [clientId, stored] of loaded.sessions) {
      const session = new Session(clientId, stored.meta?.expiryInterval ?? NEVER_EXPIRES, this.ctx)
      // connected when the previous process stopped: offline since this start
      session.offlineAt = stored.meta?.offlineAt ?? now
      for (const [filter, options] of stored.subscriptions) session.subscriptions.set(filter, options)
      for (const entry of stored.queue) session.restore(entry)
      for (const id of stored.inbound) session.inbound.add(id)
      this.byId.set(clientId, session)
      for (const [filter, options] of session.subscriptions) this.index(session, filter, options)
    }
    for (const [clientId, will] of loaded.wills) {
      this.willRecords.add(clientId)
      const session = this.byId.get(clientId)
      if (session === undefined) {
        // the session ended with the connection, so when the previous process stopped: the will is due
        this.orphanWills.set(clientId, { will, timer: null })
      } else session.will = will
    }
  }

  /**
   * The restored wills and session expiries start: a will whose session ended with the previous process
   * is due now, a delayed one of a lasting session after its delay from now, a session that expired
   * meanwhile ends now (its will goes). Called once the engines whose captures may keep a will listen.
   */
  start (): void {
    const now = this.ctx.clock.now()
    for (const [clientId, orphan] of this.orphanWills) {
      orphan.timer ??= this.ctx.clock.setTimer(() => { this.publishOrphanWill(clientId) }, 0)
    }
    for (const session of this.byId.values()) {
      if (session.outlet !== null) continue
      if (session.will !== undefined && session.willTimer === null) this.scheduleWill(session, now)
      if (session.expiryTimer === null) this.scheduleExpiry(session)
    }
  }

  async connect (request: SessionRequest, outlet: Outlet): Promise<SessionHandle> {
    const { clientId } = request
    const before = this.connecting.get(clientId)
    const run = (before ?? Promise.resolve()).catch(() => {}).then(async () => await this.connectNow(request, outlet))
    this.connecting.set(clientId, run)
    try {
      return await run
    } finally {
      if (this.connecting.get(clientId) === run) this.connecting.delete(clientId)
    }
  }

  private async connectNow (request: SessionRequest, outlet: Outlet): Promise<SessionHandle> {
    if (this.closed) throw new Unavailable('the broker is shutting down')
    const { clientId } = request
    const records = this.ctx.records
    const ops: WriteOp[] = []
    const previous = this.byId.get(clientId)
    if (previous !== undefined) {
      if (previous.outlet !== null) {
        // MQTT-3.1.4-2: the connection holding the session is closed first. Its handle is dead before the
        // kick, so the detach its front-end calls as it closes changes nothing: the will is decided here.
        const old = previous.outlet
        previous.handle = null
        old.kick('takeover')
        this.detachOutlet(previous)
        // its will goes, unless this connection resumes the session before the will's delay (MQTT 5 §3.1.3.2.2)
        const will = previous.will
        if (will !== undefined) {
          if (!request.cleanStart && will.delay > 0 && previous.expiryInterval > 0) previous.will = undefined
          else this.publishSessionWill(previous)
        }
        if (previous.expiryInterval === 0) this.end(previous, ops)
      } else if (previous.willTimer !== null) {
        // reconnect before the will's delay cancels it (MQTT-3.1.3-9); a clean start ends the session, the will goes now
        if (request.cleanStart) this.publishSessionWill(previous)
        else {
          previous.willTimer.cancel()
          previous.willTimer = null
          previous.will = undefined
        }
      }
      if (!previous.ended && request.cleanStart) this.end(previous, ops)
    }
    const orphan = this.orphanWills.get(clientId)
    if (orphan !== undefined) {
      orphan.timer?.cancel()
      this.orphanWills.delete(clientId)
    }
    let session = previous !== undefined && !previous.ended ? previous : undefined
    const present = session !== undefined
    if (session === undefined) {
      session = new Session(clientId, request.expiryInterval, this.ctx)
      this.byId.set(clientId, session)
    } else {
      session.expiryTimer?.cancel()
      session.expiryTimer = null
      const wasDurable = session.durable
      session.expiryInterval = request.expiryInterval
      // it no longer outlives its connection: its records go, it lives on in memory
      if (wasDurable && !session.durable) ops.push(...session.deleteOps())
    }
    session.receiveMaximum = Math.max(1, request.receiveMaximum)
    if (request.will !== undefined) {
      session.will = { message: { ...request.will.message, from: clientId }, delay: request.will.delay }
      if (request.will.expiryInterval !== undefined) session.will.expiryInterval = request.will.expiryInterval
      // every will is durable: after a crash, the next start publishes it
      if (records !== undefined) {
        ops.push(records.willPut(clientId, session.will))
        this.willRecords.add(clientId)
      }
    } else {
      session.will = undefined
      this.deleteWillRecord(clientId, ops)
    }
    if (session.durable) ops.push(records!.sessionPut(clientId, session.expiryInterval, null))
    if (ops.length > 0) {
      try {
        await records!.write(ops)
      } catch (err) {
        // storage failed: the connection is refused; the session waits offline as it did (a new one is dropped)
        if (!present && this.byId.get(clientId) === session) this.byId.delete(clientId)
        else if (!session.ended && session.outlet === null) {
          session.offlineAt ??= this.ctx.clock.now()
          this.scheduleExpiry(session)
        }
        throw err
      }
    }
    if (session.ended || this.closed) throw new Unavailable('the session ended while connecting')
    const handle = new Handle(session, present, this)
    session.handle = handle
    session.outlet = outlet
    session.offlineAt = null
    session.resuming = true
    this.connected++
    // what was in flight goes again once the front-end has written the CONNACK (it does so as connect() resolves)
    setImmediate(() => { if (session.handle === handle) session.resume() })
    return handle
  }

  detach (session: Session, options: { publishWill: boolean, expiryInterval?: number }): void {
    const ops: WriteOp[] = []
    this.detachOutlet(session)
    if (options.expiryInterval !== undefined && options.expiryInterval !== session.expiryInterval) {
      const wasDurable = session.durable
      session.expiryInterval = options.expiryInterval
      if (wasDurable && !session.durable) ops.push(...session.deleteOps())
    }
    const now = this.ctx.clock.now()
    if (!options.publishWill) {
      session.will = undefined
      this.deleteWillRecord(session.clientId, ops)
    } else if (session.will !== undefined) {
      if (session.will.delay > 0 && session.expiryInterval > 0) this.scheduleWill(session, now)
      else this.publishSessionWill(session)
    }
    if (session.expiryInterval === 0) this.end(session, ops)
    else {
      session.offlineAt = now
      if (session.durable) ops.push(this.ctx.records!.sessionPut(session.clientId, session.expiryInterval, now))
      this.scheduleExpiry(session)
    }
    this.write(ops)
  }

  /** A subscription into the index (a session's own, or its membership of a shared group). */
  index (session: Session, filter: string, options: SubscriptionOptions): void {
    const share = parseShare(filter)
    if (share === undefined || share === null) {
      this.router.add(filter, session, options)
      return
    }
    let group = this.groups.get(filter)
    if (group === undefined) {
      group = new SharedGroup(filter, share.filter)
      this.groups.set(filter, group)
      this.router.add(share.filter, group, null)
    }
    group.join(session, options)
  }

  unindex (session: Session, filter: string): void {
    const share = parseShare(filter)
    if (share === undefined || share === null) {
      this.router.remove(filter, session)
      return
    }
    const group = this.groups.get(filter)
    if (group !== undefined && group.leave(session)) {
      this.groups.delete(filter)
      this.router.remove(share.filter, group)
    }
  }

  async subscribe (session: Session, subscriptions: SubscriptionRequest[]): Promise<boolean[]> {
    const existed: boolean[] = []
    const ops: WriteOp[] = []
    for (const { filter, options } of subscriptions) {
      existed.push(session.subscriptions.has(filter))
      const copy = { ...options }
      session.subscriptions.set(filter, copy)
      this.index(session, filter, copy)
      if (session.durable) ops.push(this.ctx.records!.subscriptionPut(session.clientId, filter, copy))
    }
    if (ops.length > 0) await this.ctx.records!.write(ops)
    return existed
  }

  async unsubscribe (session: Session, filters: string[]): Promise<boolean[]> {
    const existed: boolean[] = []
    const ops: WriteOp[] = []
    for (const filter of filters) {
      const had = session.subscriptions.delete(filter)
      existed.push(had)
      if (!had) continue
      this.unindex(session, filter)
      if (session.durable) ops.push(this.ctx.records!.subscriptionDel(session.clientId, filter))
    }
    if (ops.length > 0) await this.ctx.records!.write(ops)
    return existed
  }

  /** Retained messages after a SUBACK, per retain handling; never for shared subscriptions (MQTT 5 §4.8.2). */
  deliverRetained (session: Session, subscriptions: SubscriptionRequest[], existed: boolean[]): void {
    let ops: WriteOp[] | null = null
    for (let i = 0; i < subscriptions.length; i++) {
      const { filter, options } = subscriptions[i]
      const handling = options.retainHandling ?? 0
      if (handling === 2 || (handling === 1 && existed[i]) || parseShare(filter) !== undefined) continue
      const subscriptionIds = options.subscriptionId !== undefined ? [options.subscriptionId] : undefined
      for (const message of this.retained.matching([filter])) {
        const qos = message.qos < options.qos ? message.qos : options.qos
        if (qos === 0) {
          const outlet = session.outlet
          const delivery: Delivery = { message, qos: 0, retain: true, subscriptionIds, packetId: undefined, dup: false }
          if (outlet !== null && outlet.deliver(delivery)) this.ctx.counters.deliveredMqtt++
        } else ops = session.enqueue(message, qos, true, subscriptionIds, ops)
      }
    }
    if (ops !== null) this.write(ops)
  }

  async receiveQos2 (session: Session, packetId: number): Promise<boolean> {
    if (session.inbound.has(packetId)) return false
    session.inbound.add(packetId)
    if (session.durable) await this.ctx.records!.write([this.ctx.records!.incomingPut(session.clientId, packetId)])
    return true
  }

  releaseQos2 (session: Session, packetId: number): boolean {
    if (!session.inbound.delete(packetId)) return false
    if (session.durable) this.write([this.ctx.records!.incomingDel(session.clientId, packetId)])
    return true
  }

  /** Shutdown: timers stop, every connection is told (the front-end sends DISCONNECT 0x8B / 0x9C). */
  close (): void {
    this.closed = true
    for (const orphan of this.orphanWills.values()) orphan.timer?.cancel()
    this.orphanWills.clear()
    for (const session of this.byId.values()) {
      session.expiryTimer?.cancel()
      session.willTimer?.cancel()
      session.expiryTimer = session.willTimer = null
      const outlet = session.outlet
      if (outlet !== null) {
        session.handle = null
        outlet.kick('shutdown')
      }
    }
  }

  private detachOutlet (session: Session): void {
    if (session.outlet !== null) this.connected--
    session.detach()
  }

  /** The session ends: a pending will goes, its subscriptions leave the index, its records are deleted. */
  private end (session: Session, ops: WriteOp[]): void {
    if (session.ended) return
    session.ended = true
    if (session.willTimer !== null) this.publishSessionWill(session)
    session.expiryTimer?.cancel()
    session.expiryTimer = null
    for (const filter of session.subscriptions.keys()) this.unindex(session, filter)
    ops.push(...session.deleteOps())
    session.clear()
    if (this.byId.get(session.clientId) === session) this.byId.delete(session.clientId)
  }

  private scheduleExpiry (session: Session): void {
    session.expiryTimer?.cancel()
    session.expiryTimer = null
    if (session.expiryInterval === NEVER_EXPIRES || session.offlineAt === null) return
    session.expiryTimer = setTimerAt(this.ctx.clock, session.offlineAt + session.expiryInterval * 1000, () => {
      session.expiryTimer = null
      if (session.outlet !== null || session.ended) return
      const ops: WriteOp[] = []
      this.end(session, ops)
      this.write(ops)
    })
  }

  /** A will after its delay, or at the session's end if that is earlier (MQTT-3.1.3-9). */
  private scheduleWill (session: Session, from: number): void {
    const will = session.will
    if (will === undefined) return
    session.willTimer?.cancel()
    session.willTimer = setTimerAt(this.ctx.clock, from + will.delay * 1000, () => {
      session.willTimer = null
      this.publishSessionWill(session)
    })
  }

  private publishSessionWill (session: Session): void {
    session.willTimer?.cancel()
    session.willTimer = null
    const will = session.will
    session.will = undefined
    if (will === undefined) return
    const ops: WriteOp[] = []
    // unless a newer connection of the client stored its own will meanwhile
    if (session.outlet === null) this.deleteWillRecord(session.clientId, ops)
    this.write(ops)
    this.publishWill(this.willMessage(will))
  }

  private publishOrphanWill (clientId: string): void {
    const orphan = this.orphanWills.get(clientId)
    if (orphan === undefined) return
    this.orphanWills.delete(clientId)
    const ops: WriteOp[] = []
    if (!this.byId.has(clientId)) this.deleteWillRecord(clientId, ops)
    this.write(ops)
    this.publishWill(this.willMessage(orphan.will))
  }

  /** The will's message as published now: its expiry counts from this moment. */
  private willMessage (will: StoredWill): BusMessage {
    if (will.expiryInterval === undefined) return will.message
    return { ...will.message, expiresAt: this.ctx.clock.now() + will.expiryInterval * 1000 }
  }

  private deleteWillRecord (clientId: string, ops: WriteOp[]): void {
    if (this.ctx.records === undefined || !this.willRecords.delete(clientId)) return
    ops.push(this.ctx.records.willDel(clientId))
  }

  private write (ops: WriteOp[]): void {
    if (ops.length === 0 || this.ctx.records === undefined) return
    this.ctx.records.write(ops).catch((err: unknown) => { this.ctx.onError(err, 'sessions') })
  }
}

/** A connection's view of its session: calls after the session was taken over or ended do nothing. */
class Handle implements SessionHandle {
  constructor (private readonly session: Session, readonly present: boolean, private readonly sessions: Sessions) {}

  get clientId (): string { return this.session.clientId }

  private get live (): boolean { return this.session.handle === this && !this.session.ended }

  async subscribe (subscriptions: SubscriptionRequest[]): Promise<boolean[]> {
    if (!this.live) return subscriptions.map(() => false)
    return await this.sessions.subscribe(this.session, subscriptions)
  }

  deliverRetained (subscriptions: SubscriptionRequest[], existed: boolean[]): void {
    if (this.live) this.sessions.deliverRetained(this.session, subscriptions, existed)
  }

  async unsubscribe (filters: string[]): Promise<boolean[]> {
    if (!this.live) return filters.map(() => false)
    return await this.sessions.unsubscribe(this.session, filters)
  }

  subscriptions (): SubscriptionRequest[] {
    return [...this.session.subscriptions].map(([filter, options]) => ({ filter, options: { ...options } }))
  }

  receiveQos2 (packetId: number): Promise<boolean> | boolean {
    if (!this.live) return false
    if (!this.session.durable) {
      if (this.session.inbound.has(packetId)) return false
      this.session.inbound.add(packetId)
      return true
    }
    return this.sessions.receiveQos2(this.session, packetId)
  }

  releaseQos2 (packetId: number): boolean {
    return this.live && this.sessions.releaseQos2(this.session, packetId)
  }

  acknowledged (packetId: number): boolean {
    return this.live && this.session.acknowledged(packetId)
  }

  received (packetId: number): boolean {
    return this.live && this.session.received(packetId)
  }

  detach (options: { publishWill: boolean, expiryInterval?: number }): void {
    if (this.live) this.sessions.detach(this.session, options)
  }
}
