import type { TimerHandle } from '../clock.js'
import { IndexedHeap, ReadyQueue, TupleHeap, type HeapItem } from './heap.js'
import type { QueueCounters } from './codec.js'
import type { QueueSettings } from './settings.js'
import { SegmentIndex, type Segment } from './segments.js'
import { segmentBody } from './codec.js'

/**
 * Most bytes of durable message bodies kept in memory per queue (see QueueState.bodies): enough for a
 * consumer that is tens of thousands of small messages behind, small next to the RSS budget.
 */
export const BODY_CACHE_BYTES = 16 * 1024 * 1024
/** Most bytes of segments read back from LevelDB kept per queue (see QueueState.segmentReads). */
export const SEGMENT_READ_CACHE_BYTES = 4 * 1024 * 1024
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

/**
 * One lease record (codec.ts encodeLeases) and how many of its leases have not ended yet. The receives
 * of one group commit share it: its value is encoded when the storage assembles the group's batch
 * (`sealed` from then on), so until then `entries` takes the leases of every receive in that group.
 */
export interface LeaseRecord {
  id: number
  open: number
  entries: Lease[]
  sealed: boolean
  /** The group commit that writes the record. */
  written: Promise<void>
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
 * is kept, in one typed-array queue per priority (heap.ts ReadyQueue), so 1M ready messages take ~16 MB
 * and taking the next one costs O(1), at most O(log n).
 */
export class QueueState {
  /** ready[priority]: rows (seq, enqueuedAt), smallest seq first. */
  readonly ready: Array<ReadyQueue | undefined> = new Array(256)
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
  /** A write of the group commit being gathered carries the counters record (see QueueEngine.commit). */
  countersPending = false
  /** The lease record that deliveries join until its group commit is assembled (see LeaseRecord). */
  openLeaseRecord: LeaseRecord | undefined
  /** The segment that small pushes join until its group commit is assembled (see OpenSegment). */
  openSegment: Segment | undefined
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
   * Encoded bodies of waiting messages kept in memory, so a consumer that keeps up never reads LevelDB
   * (a read costs far more than a map lookup): bodies stored in records of their own in this map, by
   * seq; segments as a whole, in Segment.cached. Two kinds share the memory:
   *  - bodies of pushes whose write is not yet durable, always kept: such messages can already be leased
   *    (the lease is written after the push, in the same or a later batch, so no consumer hears of a
   *    message before it is durable, and a waiting receiver is served in the same group commit as the push);
   *  - once durable, kept while the cache holds at most BODY_CACHE_BYTES, else dropped (read from LevelDB then).
   * A body in the map leaves it when its message is delivered, acked, expired, dead-lettered or purged;
   * a cached segment is dropped once each of its messages was delivered or went (Segment.pending).
   */
  readonly bodies = new Map<number, Buffer>()
  /** Bytes the body cache holds (payloads plus a per-entry overhead estimate), segments included. */
  bodyBytes = 0
  /** The live segments (segments.ts): where the bodies of batch-pushed messages are stored. */
  readonly segments = new SegmentIndex()
  /**
   * Segments in which messages went since the queue's last write: the next write of the queue records
   * their gone bitmaps or deletes them (QueueEngine.commit), in the same atomic batch as the change.
   */
  readonly changedSegments = new Set<Segment>()
  /**
   * Segments read back from LevelDB lately, by start: a consumer that is behind the body cache reads each
   * segment once, not once per receive. Bounded by SEGMENT_READ_CACHE_BYTES; segments are immutable.
   */
  readonly segmentReads = new Map<number, Buffer>()
  segmentReadBytes = 0
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

  cacheSegment (segment: Segment, value: Buffer): void {
    if (segment.cached !== undefined) return
    segment.cached = value
    this.bodyBytes += value.length + BODY_ENTRY_OVERHEAD
  }

  uncacheSegment (segment: Segment): void {
    if (segment.cached === undefined) return
    this.bodyBytes -= segment.cached.length + BODY_ENTRY_OVERHEAD
    segment.cached = undefined
  }

  /**
   * The body of a message being handed out, from memory (undefined: read it from LevelDB). `first`: its
   * first delivery, which counts towards dropping its segment from memory.
   */
  takeCachedBody (seq: number, first: boolean): Buffer | undefined {
    const segment = this.segments.find(seq)
    if (segment === undefined) return this.takeBody(seq)
    if (segment.open !== undefined) {
      if (first) this.settle(segment)
      return segment.open.body(seq - segment.start)
    }
    const value = segment.cached
    if (value === undefined) return undefined
    if (first) this.settle(segment)
    return segmentBody(value, seq - segment.start)
  }

  /** Drops a message's body from memory: it is gone or dead (`first`: it was never handed out). */
  forgetBody (seq: number, first: boolean): void {
    const segment = this.segments.find(seq)
    if (segment === undefined) this.takeBody(seq)
    else if (first) this.settle(segment)
  }

  /** One more message of the segment was handed out or went: the last one drops it from memory. */
  private settle (segment: Segment): void {
    if (--segment.pending <= 0) this.uncacheSegment(segment)
  }

  /** Remembers a segment read back from LevelDB (see segmentReads), oldest out first. */
  keepSegmentRead (start: number, segment: Buffer): void {
    if (segment.length > SEGMENT_READ_CACHE_BYTES || this.segmentReads.has(start)) return
    this.segmentReads.set(start, segment)
    this.segmentReadBytes += segment.length
    for (const [oldest, b] of this.segmentReads) {
      if (this.segmentReadBytes <= SEGMENT_READ_CACHE_BYTES) break
      this.segmentReads.delete(oldest)
      this.segmentReadBytes -= b.length
    }
  }

  forgetSegmentRead (start: number): void {
    const b = this.segmentReads.get(start)
    if (b === undefined) return
    this.segmentReads.delete(start)
    this.segmentReadBytes -= b.length
  }

  addReady (priority: number, seq: number, enqueuedAt: number): void {
    let heap = this.ready[priority]
    if (heap === undefined) {
      heap = new ReadyQueue()
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
    for (const body of this.bodies.values()) this.bodyBytes -= body.length + BODY_ENTRY_OVERHEAD
    this.bodies.clear()
    return out
  }

  get delayedCount (): number { return this.delayed.size }
  get leasedCount (): number { return this.leases.size }
}
