import { Conflict, InvalidArgument, NotFound, Unavailable } from '../errors.js'
import type { TimerHandle } from '../clock.js'
import type { WriteOp } from '../storage/storage.js'
import { prefixEnd } from '../storage/keys.js'
import { encodePending, keys, offsetOfKey, TAG, type PendingRecord, type StreamEntry } from './codec.js'
import { MinHeap } from './heap.js'
import type { StreamLog } from './log.js'
import type { GroupSettings, StreamContext } from './types.js'

/** What is persisted under the group's key. */
export interface GroupRecord {
  gid: number
  createdAt: number
  settings: GroupSettings
  /** Low-water mark: every offset below it is acknowledged (or set aside as dead). Never decreases. */
  committed: number
  /** Offsets from here on were never delivered. */
  cursor: number
  deadCount: number
}

interface PendingState { deliveries: number, leaseUntil: number, consumer: string, token: number }
interface Lease { at: number, offset: number, token: number }

export interface Delivery { entry: StreamEntry, deliveries: number }

export interface DeadLetter { offset: number, deliveries: number, consumer: string, deadAt: number, entry?: StreamEntry }

export interface GroupInfo {
  name: string
  committed: number
  cursor: number
  /** Delivered and not yet acknowledged (leased or waiting for redelivery). */
  pending: number
  /** Messages not yet acknowledged: stream end minus committed offset. */
  lag: number
  dead: number
  settings: GroupSettings
  createdAt: number
  readers: Array<{ consumer: string, lastSeen: number }>
}

const MAX_READERS_REMEMBERED = 50

/**
 * A consumer group of one stream: every message goes to one reader at a time, in offset order, under a
 * lease; unacknowledged messages come back after ackWait, and after maxDeliveries they are set aside as
 * dead letters. Memory holds only the messages in flight (at most maxPending), never the stream.
 */
export class ConsumerGroup {
  /** In-flight offsets at or above committed, in ascending order (they are added in cursor order). */
  private readonly pending = new Map<number, PendingState>()
  /** Redriven dead letters (below committed, or added out of order): delivered again, outside the low-water mark. */
  private readonly redriven = new Map<number, PendingState>()
  private readonly leases = new MinHeap<Lease>((a, b) => a.at < b.at || (a.at === b.at && a.offset < b.offset))
  /** Offsets whose lease ran out, waiting for the next receive (lowest first). */
  private readonly ready = new MinHeap<number>((a, b) => a < b)
  private timer: TimerHandle | null = null
  private timerAt = Infinity
  private readonly waiters = new Set<() => void>()
  private tokens = 0
  private readonly readers = new Map<string, number>()
  deleted = false
  /** Stopped because the engine closes (not deleted): long-polls end empty, writes are refused as unavailable. */
  private shutdown = false
  /** The last background write (dead letters from expiries): readers of dead letters wait for it. */
  private housekept: Promise<void> = Promise.resolve()

  constructor (readonly name: string, readonly record: GroupRecord, private readonly log: StreamLog, private readonly ctx: StreamContext) {}

  get gid (): number { return this.record.gid }

  recordOp (): WriteOp {
    return this.ctx.partition.put(keys.group(this.log.id, this.name), Buffer.from(JSON.stringify(this.record)))
  }

  private pendingOp (offset: number, s: PendingState): WriteOp {
    return this.ctx.partition.put(keys.pending(this.gid, offset), encodePending({ deliveries: s.deliveries, leaseUntil: s.leaseUntil, consumer: s.consumer }))
  }

  /** Restores a pending delivery read from storage at startup (called in ascending offset order). */
  restorePending (offset: number, p: PendingRecord): void {
    const state: PendingState = { deliveries: p.deliveries, leaseUntil: p.leaseUntil, consumer: p.consumer, token: ++this.tokens }
    if (offset >= this.record.committed && offset < this.record.cursor) this.pending.set(offset, state)
    else this.redriven.set(offset, state)
    if (p.leaseUntil === 0) this.ready.push(offset)
    else {
      this.leases.push({ at: p.leaseUntil, offset, token: state.token })
      this.schedule(p.leaseUntil)
    }
  }

  private stateOf (offset: number): PendingState | undefined {
    return this.pending.get(offset) ?? this.redriven.get(offset)
  }

  private forget (offset: number): boolean {
    return this.pending.delete(offset) || this.redriven.delete(offset)
  }

  /** Moves the low-water mark up to the first in-flight offset (or the cursor when nothing is in flight). */
  private advanceCommitted (): void {
    const first = this.pending.keys().next()
    const mark = first.done === true ? this.record.cursor : first.value
    if (mark > this.record.committed) this.record.committed = mark
  }

  /** Retention removed entries below the group's position: they can no longer be delivered. */
  private catchUpRetention (ops: WriteOp[]): void {
    const first = this.log.first
    if (this.record.cursor < first) this.record.cursor = first
    if (this.record.committed >= first) return
    for (const [offset] of this.pending) {
      if (offset >= first) break
      this.pending.delete(offset)
      ops.push(this.ctx.partition.del(keys.pending(this.gid, offset)))
    }
    this.record.committed = first
    this.advanceCommitted()
  }

  /** Lease expiries due now: back to the ready set, or to the dead letters after maxDeliveries. */
  private expire (ops: WriteOp[]): void {
    const now = this.ctx.clock.now()
    for (let top = this.leases.peek(); top !== undefined && top.at <= now; top = this.leases.peek()) {
      this.leases.pop()
      const s = this.stateOf(top.offset)
      if (s === undefined || s.token !== top.token || s.leaseUntil === 0) continue
      if (s.deliveries >= this.record.settings.maxDeliveries) {
        this.forget(top.offset)
        this.record.deadCount++
        this.ctx.stats.deadLettered++
        ops.push(this.ctx.partition.del(keys.pending(this.gid, top.offset)))
        ops.push(this.ctx.partition.put(keys.dead(this.gid, top.offset), Buffer.from(JSON.stringify({ deliveries: s.deliveries, consumer: s.consumer, deadAt: now }))))
      } else {
        s.leaseUntil = 0
        this.ready.push(top.offset)
      }
    }
  }

  /** Runs due expiries and writes what they changed (dead letters, the moved low-water mark). */
  private housekeeping (): void {
    if (this.deleted || this.log.deleted) return
    const ops: WriteOp[] = []
    const before = this.record.committed
    const dead = this.record.deadCount
    this.catchUpRetention(ops)
    this.expire(ops)
    this.advanceCommitted()
    if (ops.length > 0 || before !== this.record.committed || dead !== this.record.deadCount) {
      ops.push(this.recordOp())
      this.housekept = this.ctx.storage.write(ops).catch(() => { /* storage failure: the state is rebuilt from disk at restart */ })
    }
  }

  private schedule (at: number): void {
    if (this.deleted || at >= this.timerAt) return
    this.timer?.cancel()
    this.timerAt = at
    this.timer = this.ctx.clock.setTimer(() => {
      this.timer = null
      this.timerAt = Infinity
      if (this.deleted) return
      this.housekeeping()
      const next = this.leases.peek()
      if (next !== undefined) this.schedule(next.at)
      if (this.ready.size > 0) this.wakeWaiters()
    }, at - this.ctx.clock.now())
  }

  private wakeWaiters (): void {
    if (this.waiters.size === 0) return
    const waiting = [...this.waiters]
    this.waiters.clear()
    for (const w of waiting) w()
  }

  /** Called by the stream when an append was written. */
  onAppend (): void { this.wakeWaiters() }

  private lease (offset: number, s: PendingState, consumer: string, now: number): void {
    s.deliveries++
    s.consumer = consumer
    s.leaseUntil = now + this.record.settings.ackWaitMs
    s.token = ++this.tokens
    this.leases.push({ at: s.leaseUntil, offset, token: s.token })
    this.schedule(s.leaseUntil)
  }

  /** Picks up to max offsets for one reader: redeliveries first, then never-delivered ones, in offset order. */
  private take (max: number, consumer: string): Array<{ offset: number, token: number }> {
    this.housekeeping()
    const now = this.ctx.clock.now()
    const out: Array<{ offset: number, token: number }> = []
    while (out.length < max && this.ready.size > 0) {
      const offset = this.ready.pop() as number
      const s = this.stateOf(offset)
      if (s === undefined || s.leaseUntil !== 0) continue
      this.lease(offset, s, consumer, now)
      out.push({ offset, token: s.token })
    }
    const end = this.log.durableNext
    while (out.length < max && this.record.cursor < end && this.pending.size < this.record.settings.maxPending) {
      const offset = this.record.cursor++
      const s: PendingState = { deliveries: 0, leaseUntil: 0, consumer, token: 0 }
      this.pending.set(offset, s)
      this.lease(offset, s, consumer, now)
      out.push({ offset, token: s.token })
    }
    // a redelivery may sort below a new one: hand them out in offset order
    out.sort((a, b) => a.offset - b.offset)
    return out
  }

  /**
   * Hands up to max messages to one reader under a lease of ackWait. With waitMs > 0 and nothing to hand
   * out, waits (long-poll) until an append, a lease expiry or the deadline.
   */
  async receive (max: number, waitMs: number, consumer: string): Promise<Delivery[]> {
    if (!Number.isInteger(max) || max < 1) throw new InvalidArgument('max must be a positive integer')
    const clock = this.ctx.clock
    const deadline = clock.now() + waitMs
    this.touchReader(consumer)
    for (;;) {
      if (this.shutdown) return []
      this.checkLive()
      const chosen = this.take(max, consumer)
      if (chosen.length > 0) return await this.deliver(chosen)
      const left = deadline - clock.now()
      if (left <= 0) return []
      await this.waitForWork(left)
    }
  }

  private async waitForWork (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      let timer: TimerHandle | null = null
      const done = (): void => {
        timer?.cancel()
        this.waiters.delete(done)
        resolve()
      }
      this.waiters.add(done)
      timer = this.ctx.clock.setTimer(done, ms)
    })
  }

  private async deliver (chosen: Array<{ offset: number, token: number }>): Promise<Delivery[]> {
    const entries = await this.log.readOffsets(chosen.map(c => c.offset))
    const ops: WriteOp[] = []
    const out: Delivery[] = []
    for (const { offset, token } of chosen) {
      const s = this.stateOf(offset)
      // acknowledged (or committed past) while the entry was being read: nothing to hand out
      if (s === undefined || s.token !== token) continue
      const entry = entries.get(offset)
      if (entry === undefined) {
        // removed by retention before it could be delivered
        this.forget(offset)
        ops.push(this.ctx.partition.del(keys.pending(this.gid, offset)))
        continue
      }
      ops.push(this.pendingOp(offset, s))
      out.push({ entry, deliveries: s.deliveries })
    }
    this.advanceCommitted()
    this.checkLive()
    ops.push(this.recordOp())
    await this.ctx.storage.write(ops)
    this.ctx.stats.groupDelivered += out.length
    return out
  }

  /**
   * Acknowledged messages leave their lease in the heap until it would have run out; when such stale
   * leases outnumber the live ones the heap is rebuilt, so memory follows what is in flight.
   */
  private compactLeases (): void {
    const live = this.pending.size + this.redriven.size
    if (this.leases.size <= 4 * live + 1024) return
    this.leases.clear()
    for (const map of [this.pending, this.redriven]) {
      for (const [offset, s] of map) if (s.leaseUntil !== 0) this.leases.push({ at: s.leaseUntil, offset, token: s.token })
    }
  }

  /** Acknowledges single offsets; unknown or already acknowledged ones are ignored. */
  /** A deleted group writes nothing more (its keys are being removed). */
  private checkLive (): void {
    if (this.shutdown) throw new Unavailable('the broker is shutting down')
    if (this.deleted || this.log.deleted) throw new NotFound(`consumer group ${this.name} no longer exists`)
  }

  async ack (offsets: number[]): Promise<{ acked: number, committed: number }> {
    this.checkLive()
    this.housekeeping()
    const ops: WriteOp[] = []
    let acked = 0
    for (const offset of offsets) {
      if (this.forget(offset)) {
        acked++
        ops.push(this.ctx.partition.del(keys.pending(this.gid, offset)))
      }
    }
    this.advanceCommitted()
    ops.push(this.recordOp())
    await this.ctx.storage.write(ops)
    this.ctx.stats.groupAcked += acked
    this.compactLeases()
    if (acked > 0) this.wakeWaiters()
    return { acked, committed: this.record.committed }
  }

  /** Acknowledges everything up to and including offset (also what was not delivered yet). */
  async commit (offset: number): Promise<{ committed: number }> {
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgument('offset must be a non-negative integer')
    const end = this.log.durableNext
    if (offset >= end) throw new InvalidArgument(`cannot commit offset ${offset}: the stream ends at ${end - 1}`, { lastOffset: end - 1 })
    this.checkLive()
    this.housekeeping()
    if (offset < this.record.committed) return { committed: this.record.committed }
    const ops: WriteOp[] = []
    for (const [o] of this.pending) {
      if (o > offset) break
      this.pending.delete(o)
      ops.push(this.ctx.partition.del(keys.pending(this.gid, o)))
      this.ctx.stats.groupAcked++
    }
    if (offset + 1 > this.record.cursor) this.record.cursor = offset + 1
    if (offset + 1 > this.record.committed) this.record.committed = offset + 1
    this.advanceCommitted()
    ops.push(this.recordOp())
    await this.ctx.storage.write(ops)
    this.compactLeases()
    this.wakeWaiters()
    return { committed: this.record.committed }
  }

  /** Changes settings; a start position may only move the group forward (like a commit). */
  async update (settings: GroupSettings, position: number | undefined): Promise<void> {
    this.checkLive()
    if (position !== undefined && position < this.record.committed) {
      throw new Conflict(`the group's committed offset is ${this.record.committed} and never moves backwards; delete and re-create the group to read again from ${position}`, { committed: this.record.committed })
    }
    this.record.settings = settings
    if (position !== undefined && position > this.record.committed) await this.commit(position - 1)
    else await this.ctx.storage.write([this.recordOp()])
    this.wakeWaiters()
  }

  async listDead (from: number, limit: number): Promise<{ messages: DeadLetter[], next: number | null }> {
    this.housekeeping()
    await this.housekept
    const rows = await this.ctx.partition.range({ gte: keys.dead(this.gid, from), lt: prefixEnd(keys.idPrefix(TAG.dead, this.gid)), limit: limit + 1 })
    const page = rows.slice(0, limit)
    const entries = await this.log.readOffsets(page.map(([k]) => offsetOfKey(k)))
    const messages = page.map(([k, v]) => {
      const offset = offsetOfKey(k)
      const d = JSON.parse(v.toString()) as { deliveries: number, consumer: string, deadAt: number }
      return { offset, ...d, entry: entries.get(offset) }
    })
    return { messages, next: rows.length > limit ? offsetOfKey(rows[limit][0]) : null }
  }

  /** Puts dead letters back for delivery (all of them, or the given offsets), with a fresh delivery count. */
  async redrive (offsets?: number[]): Promise<{ redriven: number }> {
    this.housekeeping()
    await this.housekept
    let redriven = 0
    const prefixEndKey = prefixEnd(keys.idPrefix(TAG.dead, this.gid))
    for (let from = 0, rounds = 0; rounds < 1_000_000; rounds++) {
      let found: number[]
      if (offsets !== undefined) {
        const values = await this.ctx.partition.getMany(offsets.map(o => keys.dead(this.gid, o)))
        found = offsets.filter((_, i) => values[i] !== undefined)
      } else {
        const rows = await this.ctx.partition.range({ gte: keys.dead(this.gid, from), lt: prefixEndKey, limit: 1000 })
        found = rows.map(([k]) => offsetOfKey(k))
      }
      this.checkLive()
      const ops: WriteOp[] = []
      for (const offset of found) {
        if (this.stateOf(offset) !== undefined) continue
        const s: PendingState = { deliveries: 0, leaseUntil: 0, consumer: '', token: ++this.tokens }
        this.redriven.set(offset, s)
        this.ready.push(offset)
        this.record.deadCount = Math.max(0, this.record.deadCount - 1)
        ops.push(this.ctx.partition.del(keys.dead(this.gid, offset)))
        ops.push(this.pendingOp(offset, s))
        redriven++
      }
      if (ops.length > 0) {
        ops.push(this.recordOp())
        await this.ctx.storage.write(ops)
      }
      if (offsets !== undefined || found.length < 1000) break
      from = found[found.length - 1] + 1
    }
    if (redriven > 0) this.wakeWaiters()
    return { redriven }
  }

  private touchReader (consumer: string): void {
    this.readers.delete(consumer)
    this.readers.set(consumer, this.ctx.clock.now())
    if (this.readers.size > MAX_READERS_REMEMBERED) this.readers.delete(this.readers.keys().next().value as string)
  }

  info (): GroupInfo {
    this.housekeeping()
    return {
      name: this.name,
      committed: this.record.committed,
      cursor: this.record.cursor,
      pending: this.pending.size + this.redriven.size,
      lag: Math.max(0, this.log.durableNext - this.record.committed),
      dead: this.record.deadCount,
      settings: this.record.settings,
      createdAt: this.record.createdAt,
      readers: [...this.readers].reverse().map(([consumer, lastSeen]) => ({ consumer, lastSeen }))
    }
  }

  /** Stops timers and releases long-polls (on delete or engine close). */
  stop (shutdown = false): void {
    this.shutdown = shutdown
    this.deleted = true
    this.timer?.cancel()
    this.timer = null
    this.leases.clear()
    this.ready.clear()
    this.wakeWaiters()
  }
}
