import type { Clock, TimerHandle } from '../clock.js'
import type { WriteOp } from '../storage/storage.js'
import type { BusRecords, StoredEntry, StoredWill } from './persistence.js'
import type { BusMessage, Outlet, QoS, SubscriptionOptions } from './types.js'

/** A limit of the bus that dropped something; the front-end counts it. */
export type BusLimit = 'topic_length' | 'topic_levels' | 'queued'

/** What every session shares: the bus's clock, records, counters and limits. */
export interface SessionContext {
  clock: Clock
  /** Absent: the bus keeps everything in memory. */
  records: BusRecords | undefined
  /** Most QoS 1/2 messages queued for a session whose client is offline; 0: none. */
  maxQueued: number
  /** Counts (deliveredMqtt) and queue length over all sessions. */
  counters: { deliveredMqtt: number, queued: number }
  nextSeq: () => number
  onLimit: (name: BusLimit) => void
  /** A write nobody waits for failed (an acknowledgement's delete, a packet id). */
  onError: (err: unknown, what: string) => void
}

const QUEUED = 0
const INFLIGHT = 1
const RELEASED = 2
type EntryState = typeof QUEUED | typeof INFLIGHT | typeof RELEASED

/** A QoS 1/2 message owed to the session's client, in the queue's linked list. */
class Entry implements StoredEntry {
  state: EntryState = QUEUED
  /** Sent on an earlier connection (DUP = 1 when sent again). */
  dup = false
  /** Counted in `inflight` on the current connection. */
  live = false
  /** Its record is written (a durable session's). */
  stored = false
  prev: Entry | null = null
  next: Entry | null = null
  constructor (
    readonly seq: number,
    readonly message: BusMessage,
    readonly qos: QoS,
    readonly retain: boolean,
    readonly subscriptionIds: number[] | undefined,
    public packetId: number
  ) {}

  get released (): boolean { return this.state === RELEASED }
}

/** One session's figures for operators (PubSub.clients()). */
export interface SessionInfo {
  clientId: string
  connected: boolean
  subscriptions: number
  /** QoS 1/2 messages sent and not yet acknowledged (PUBREL awaiting PUBCOMP included). */
  inflight: number
  /** QoS 1/2 messages waiting to be sent. */
  queued: number
  /** Seconds the session outlives its connection (0xFFFFFFFF: for ever). */
  expiryInterval: number
}

/**
 * A session: subscriptions (by filter as the client sent it), the QoS 1/2 messages owed to the client in
 * order (queued, in flight with their packet id, released awaiting PUBCOMP), the QoS 2 ids received
 * awaiting PUBREL, the will, the expiry. At most `receiveMaximum` messages are in flight to the outlet;
 * the rest wait and go as acknowledgements come. A session with an expiry interval (and a data directory)
 * writes every change through BusRecords; the caller awaits the ops it hands back (routing) or they are
 * written in the background (acknowledgements: a lost delete only sends a message again).
 *
 * Invariants: `cursor` is the first QUEUED entry (or null); entries with a packet id are in `byPacketId`.
 */
export class Session {
  readonly subscriptions = new Map<string, SubscriptionOptions>()
  /** QoS 2 packet ids received from the client, awaiting PUBREL. */
  readonly inbound = new Set<number>()
  will: StoredWill | undefined
  /** A will waiting for its delay after the connection ended. */
  willTimer: TimerHandle | null = null
  expiryTimer: TimerHandle | null = null
  outlet: Outlet | null = null
  /** The connection's handle (sessions.ts): calls from an older one are ignored. */
  handle: object | null = null
  /** Connected, but the resend of what was in flight has not run yet (the CONNACK goes first). */
  resuming = false
  receiveMaximum = 65535
  /** When the client went offline (ms), null while connected. */
  offlineAt: number | null = null
  /** The session has ended (discarded, expired): late calls do nothing. */
  ended = false
  private head: Entry | null = null
  private tail: Entry | null = null
  private cursor: Entry | null = null
  /** Entries in the queue (any state). */
  length = 0
  /** Entries sent on this connection and not yet completed. */
  inflight = 0
  private readonly byPacketId = new Map<number, Entry>()
  private nextPacketId = 1
  private later: WriteOp[] | null = null

  private interval: number
  /**
   * It outlived its connection at some time of its life, so records of it may exist. A session that never
   * did (clean, expiry 0) wrote none: its end costs no LevelDB batch of deletes (6% of the broker's CPU
   * on QoS 0 fan-out to 1,000 clean sessions that connect and leave).
   */
  private mayHaveRecords: boolean

  constructor (readonly clientId: string, expiryInterval: number, private readonly ctx: SessionContext) {
    this.interval = expiryInterval
    this.mayHaveRecords = expiryInterval > 0
  }

  get expiryInterval (): number { return this.interval }
  set expiryInterval (seconds: number) {
    this.interval = seconds
    if (seconds > 0) this.mayHaveRecords = true
  }

  /** Its changes are written (it outlives its connection, and there is a data directory). */
  get durable (): boolean { return this.expiryInterval > 0 && this.ctx.records !== undefined }

  get connected (): boolean { return this.outlet !== null }

  info (): SessionInfo {
    return {
      clientId: this.clientId,
      connected: this.outlet !== null,
      subscriptions: this.subscriptions.size,
      inflight: this.inflight,
      queued: this.length - this.inflight,
      expiryInterval: this.expiryInterval
    }
  }

  /**
   * A QoS 1/2 message for the client: sent at once when connected with room in flight, else queued
   * (offline: the oldest queued publish goes first at --mqtt-max-queued). Returns `ops` with the entry's
   * record added (a durable session), for the router to write in the route's one batch.
   */
  enqueue (message: BusMessage, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, ops: WriteOp[] | null): WriteOp[] | null {
    const ctx = this.ctx
    if (this.outlet === null && ctx.maxQueued > 0 && this.length >= ctx.maxQueued) this.dropOldest()
    const e = new Entry(ctx.nextSeq(), message, qos, retain, subscriptionIds, 0)
    this.append(e)
    if (this.outlet !== null && !this.resuming && this.cursor === e && this.inflight < this.receiveMaximum) {
      this.cursor = null
      this.send(e, this.outlet)
    }
    if (e.prev !== null || this.head === e) {
      if (this.durable) {
        e.stored = true
        ops ??= []
        ops.push(ctx.records!.outgoingPut(this.clientId, e))
      }
    }
    this.flush()
    return ops
  }

  /** Restores a stored entry at load (in order). */
  restore (stored: StoredEntry): void {
    const e = new Entry(stored.seq, stored.message, stored.qos, stored.retain, stored.subscriptionIds, stored.packetId)
    e.stored = true
    if (stored.released) e.state = RELEASED
    // it may have been sent before the restart: a QoS 2 one with its id surely was
    if (stored.packetId !== 0) {
      e.dup = true
      this.byPacketId.set(stored.packetId, e)
    }
    this.append(e)
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2 released). */
  acknowledged (packetId: number): boolean {
    const e = this.byPacketId.get(packetId)
    if (e === undefined) return false
    if (e.state === RELEASED || (e.state === INFLIGHT && e.qos === 1)) {
      this.remove(e)
      this.pump()
      this.flush()
      return true
    }
    return false
  }

  /** PUBREC: the QoS 2 message is released (PUBREL to send, and again at reconnect). */
  received (packetId: number): boolean {
    const e = this.byPacketId.get(packetId)
    if (e === undefined || e.qos !== 2) return false
    if (e.state === RELEASED) return true
    if (e.state === QUEUED) {
      // sent on an earlier connection and not yet again: it is in flight now
      if (!e.dup) return false
      if (this.cursor === e) this.cursor = this.nextQueued(e.next)
      e.live = true
      this.inflight++
    }
    e.state = RELEASED
    if (e.stored) this.write(this.ctx.records!.outgoingPut(this.clientId, e))
    this.flush()
    return true
  }

  /** The connection is ready (CONNACK written): in order, PUBRELs and publishes owed (DUP), then the queue. */
  resume (): void {
    const outlet = this.outlet
    this.resuming = false
    if (outlet === null) return
    for (let e = this.head; e !== null;) {
      const next = e.next
      if (e.state === RELEASED) {
        if (!e.live) {
          e.live = true
          this.inflight++
          outlet.release(e.packetId)
        }
      } else if (e.state === QUEUED && this.inflight < this.receiveMaximum) {
        if (this.cursor === e) this.cursor = this.nextQueued(e.next)
        this.send(e, outlet)
      }
      e = next
    }
    this.cursor = this.nextQueued(this.head)
    this.flush()
  }

  /** The connection is gone: what was in flight waits to be sent again (DUP) with its packet id. */
  detach (): void {
    this.outlet = null
    this.handle = null
    this.resuming = false
    this.inflight = 0
    for (let e = this.head; e !== null; e = e.next) {
      e.live = false
      if (e.state === INFLIGHT) {
        e.state = QUEUED
        e.dup = true
      }
    }
    this.cursor = this.nextQueued(this.head)
  }

  /** Every record of the session (to delete them when it ends or stops outliving its connection). */
  deleteOps (): WriteOp[] {
    const records = this.ctx.records
    if (records === undefined || !this.mayHaveRecords) return []
    const ops: WriteOp[] = [records.sessionDel(this.clientId)]
    for (const filter of this.subscriptions.keys()) ops.push(records.subscriptionDel(this.clientId, filter))
    for (let e = this.head; e !== null; e = e.next) {
      if (e.stored) ops.push(records.outgoingDel(this.clientId, e.seq))
      e.stored = false
    }
    for (const id of this.inbound) ops.push(records.incomingDel(this.clientId, id))
    return ops
  }

  /** Forgets everything (the session ended; its records go with deleteOps()). */
  clear (): void {
    this.ctx.counters.queued -= this.length
    this.head = this.tail = this.cursor = null
    this.length = 0
    this.inflight = 0
    this.byPacketId.clear()
    this.inbound.clear()
    this.subscriptions.clear()
  }

  private send (e: Entry, outlet: Outlet): void {
    if (!e.dup && e.message.expiresAt !== undefined && e.message.expiresAt <= this.ctx.clock.now()) {
      this.remove(e)
      return
    }
    const fresh = e.packetId === 0
    if (fresh) {
      const id = this.allocatePacketId()
      if (id === 0) return // every id in use: it waits (not reachable under a receive maximum of 65535)
      e.packetId = id
      this.byPacketId.set(id, e)
    }
    e.state = INFLIGHT
    e.live = true
    this.inflight++
    const sent = outlet.deliver({ message: e.message, qos: e.qos, retain: e.retain, subscriptionIds: e.subscriptionIds, packetId: e.packetId, dup: e.dup })
    if (!sent) {
      this.remove(e)
      return
    }
    this.ctx.counters.deliveredMqtt++
    // its id is written: after a restart it goes again under the same id (MQTT-4.4.0-1), and a QoS 2 client
    // may hold that id awaiting PUBREL (a new id would deliver it twice). Sent as it is routed, the id is in
    // the route's own put (enqueue), so this write is only for messages that waited for the window.
    if (fresh && e.stored) this.write(this.ctx.records!.outgoingPut(this.clientId, e))
  }

  private pump (): void {
    const outlet = this.outlet
    if (outlet === null || this.resuming) return
    while (this.cursor !== null && this.inflight < this.receiveMaximum) {
      const e = this.cursor
      this.cursor = this.nextQueued(e.next)
      this.send(e, outlet)
    }
  }

  private allocatePacketId (): number {
    for (let tried = 0; tried < 65535; tried++) {
      const id = this.nextPacketId
      this.nextPacketId = id === 65535 ? 1 : id + 1
      if (!this.byPacketId.has(id)) return id
    }
    return 0
  }

  /** --mqtt-max-queued: the oldest publish not yet in flight goes (a released QoS 2 message must complete). */
  private dropOldest (): void {
    for (let e = this.head; e !== null; e = e.next) {
      if (e.state === RELEASED) continue
      this.remove(e)
      this.ctx.onLimit('queued')
      return
    }
  }

  private nextQueued (from: Entry | null): Entry | null {
    let e = from
    while (e !== null && e.state !== QUEUED) e = e.next
    return e
  }

  private append (e: Entry): void {
    e.prev = this.tail
    if (this.tail === null) this.head = e
    else this.tail.next = e
    this.tail = e
    this.length++
    this.ctx.counters.queued++
    if (this.cursor === null && e.state === QUEUED) this.cursor = e
  }

  private remove (e: Entry): void {
    if (this.cursor === e) this.cursor = this.nextQueued(e.next)
    if (e.prev === null) this.head = e.next
    else e.prev.next = e.next
    if (e.next === null) this.tail = e.prev
    else e.next.prev = e.prev
    e.prev = e.next = null
    this.length--
    this.ctx.counters.queued--
    if (e.live) this.inflight--
    e.live = false
    if (e.packetId !== 0 && this.byPacketId.get(e.packetId) === e) this.byPacketId.delete(e.packetId)
    if (e.stored) {
      e.stored = false
      this.write(this.ctx.records!.outgoingDel(this.clientId, e.seq))
    }
  }

  /** A write in the background, sent in one batch with the others of the same call (flush). */
  private write (op: WriteOp): void {
    (this.later ??= []).push(op)
  }

  private flush (): void {
    const ops = this.later
    if (ops === null) return
    this.later = null
    this.ctx.records?.write(ops).catch((err: unknown) => { this.ctx.onError(err, `the session of ${this.clientId}`) })
  }

  /** Writes now what the last calls left (for callers outside this class that changed the queue). */
  flushWrites (): void { this.flush() }
}
