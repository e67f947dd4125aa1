import type { TimerHandle } from '../clock.js'
import { IndexedHeap, TupleHeap, type HeapItem } from './heap.js'
import type { QueueCounters } from './codec.js'
import type { QueueSettings } from './settings.js'

/**
 * Most bytes of durable message bodies kept in memory per queue (see QueueState.bodies): enough for a
 * consumer that is tens of thousands of small messages behind, small next to the RSS budget.
 */
export const BODY_CACHE_BYTES = 16 * 1024 * 1024
/** A map entry and a Buffer object cost about this much besides the bytes. */
const BODY_ENTRY_OVERHEAD = 160

/** One delivery of a message: held in memory from the moment it is handed out until ack, nack or expiry. */
export interface Lease extends HeapItem {
  seq: number
  priority: number
  /** Unique per delivery; a receipt carries it, so an earlier delivery's receipt cannot touch this one. */
  token: number
  /** When the lease runs out (clock ms). */
  until: number
  deliveries: number
  firstDeliveredAt: number
  enqueuedAt: number
  lastError?: string
  /**
   * What the message looked like before this delivery, to put it back untouched if the receiver left.
   * Defined exactly when the message has a state record (see QueueState.history).
   */
  previous: DeliveryHistory | undefined
  /** The lease record this delivery was written in. */
  record: LeaseRecord
}

/** One written lease record (codec.ts encodeLeases) and how many of its leases have not ended yet. */
export interface LeaseRecord {
  id: number
  open: number
}

/** Kept for ready and delayed messages that were delivered before (the rest start from zero). */
export interface DeliveryHistory {
  deliveries: number
  firstDeliveredAt: number
  lastError?: string
}

/** A long-polling receiver waiting for messages. */
export interface Waiter {
  max: number
  visibilityMs: number
  serve: (leases: Lease[]) => void
}

export interface DedupEntry {
  id: string
  expiresAt: number
  /** Resolves when the original push is durable (a duplicate's reply waits for it). */
  durable: Promise<void>
}

/**
 * The in-memory index of one queue. Payloads stay in LevelDB; per ready message only (seq, enqueuedAt)
 * is kept, in one typed-array heap per priority, so 1M ready messages take ~16 MB and taking the next
 * one costs O(log n).
 */
export class QueueState {
  /** ready[priority]: rows (seq, enqueuedAt), smallest seq first. */
  readonly ready: Array<TupleHeap | undefined> = new Array(256)
  /** Highest priority that may have ready messages (scanned down lazily). */
  topPriority = -1
  readyCount = 0
  /** Rows (due, seq, priority, enqueuedAt). */
  readonly delayed = new TupleHeap(4)
  readonly leases = new Map<number, Lease>()
  readonly leaseHeap = new IndexedHeap<Lease>((a, b) => a.until < b.until || (a.until === b.until && a.seq < b.seq))
  /**
   * Waiting messages that have a state record, with the delivery history it holds; one that is not here
   * was never delivered (its body alone describes it), so acking it deletes no state record.
   */
  readonly history = new Map<number, DeliveryHistory>()
  /** Id of the next lease record. */
  nextLeaseRecord = 0
  deadCount = 0
  readonly dedup = new Map<string, DedupEntry>()
  waiters: Waiter[] = []
  timer: TimerHandle | undefined
  timerAt = Infinity
  unsubscribeCapture: (() => Promise<void>) | undefined
  deleted = false
  /** Serialises dead-letter maintenance (redrive, purge of dead letters). */
  deadLock: Promise<unknown> = Promise.resolve()
  /**
   * Encoded bodies of waiting messages kept in memory, by seq, so a consumer that keeps up never reads
   * LevelDB (a read costs far more than a map lookup). Two kinds share the map:
   *  - bodies of pushes whose write is not yet durable, always kept: such messages can already be leased
   *    (the lease is written after the push, in the same or a later batch, so no consumer hears of a
   *    message before it is durable, and a waiting receiver is served in the same group commit as the push);
   *  - once durable, kept while the map holds at most BODY_CACHE_BYTES, else dropped (read from LevelDB then).
   * A body leaves the map when its message is delivered, acked, expired, dead-lettered or purged.
   */
  readonly bodies = new Map<number, Buffer>()
  /** Bytes the bodies map holds (payloads plus a per-entry overhead estimate). */
  bodyBytes = 0
  /** Messages whose push write failed: skipped when they come up. */
  readonly lost = new Set<number>()
  /** Dead letters were made that the deadLetter setting sends to another queue. */
  forwardNeeded = false

  constructor (
    readonly name: string,
    readonly qid: number,
    public settings: QueueSettings,
    readonly createdAt: number,
    readonly counters: QueueCounters
  ) {}

  keepBody (seq: number, body: Buffer): void {
    this.bodies.set(seq, body)
    this.bodyBytes += body.length + BODY_ENTRY_OVERHEAD
  }

  /** Takes a body out of the map (undefined when it is not there). */
  takeBody (seq: number): Buffer | undefined {
    const body = this.bodies.get(seq)
    if (body !== undefined) {
      this.bodies.delete(seq)
      this.bodyBytes -= body.length + BODY_ENTRY_OVERHEAD
    }
    return body
  }

  addReady (priority: number, seq: number, enqueuedAt: number): void {
    let heap = this.ready[priority]
    if (heap === undefined) {
      heap = new TupleHeap(2)
      this.ready[priority] = heap
    }
    heap.push(seq, enqueuedAt)
    this.readyCount++
    if (priority > this.topPriority) this.topPriority = priority
  }

  /** Takes the next ready message (highest priority, then lowest seq) into `out` = [seq, enqueuedAt]; returns its priority or -1. */
  takeReady (out: number[]): number {
    while (this.topPriority >= 0) {
      const heap = this.ready[this.topPriority]
      if (heap !== undefined && heap.pop(out)) {
        this.readyCount--
        return this.topPriority
      }
      this.topPriority--
    }
    return -1
  }

  /** Enqueue time of the oldest ready message of a priority (undefined when none). */
  oldestReady (priority: number): number | undefined {
    return this.ready[priority]?.peek(1)
  }

  addDelayed (due: number, priority: number, seq: number, enqueuedAt: number): void {
    this.delayed.push(due, seq, priority, enqueuedAt)
  }

  addLease (lease: Lease): void {
    this.leases.set(lease.seq, lease)
    this.leaseHeap.push(lease)
  }

  removeLease (lease: Lease): void {
    this.leases.delete(lease.seq)
    this.leaseHeap.remove(lease)
  }

  /** Drops every ready and delayed message from the index; returns their (priority, seq). */
  clearWaiting (): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let p = 0; p < 256; p++) {
      const heap = this.ready[p]
      if (heap === undefined) continue
      for (const row of heap.rows()) out.push([p, row[0]])
      this.ready[p] = undefined
    }
    for (const row of this.delayed.rows()) out.push([row[2], row[1]])
    this.delayed.clear()
    this.readyCount = 0
    this.topPriority = -1
    this.history.clear()
    // leased messages' bodies were taken out when they were delivered: what is left belongs to these
    this.bodies.clear()
    this.bodyBytes = 0
    return out
  }

  get delayedCount (): number { return this.delayed.size }
  get leasedCount (): number { return this.leases.size }
}
