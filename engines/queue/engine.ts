import type { Clock } from '../clock.js'
import type { Partition, Storage, WriteOp } from '../storage/storage.js'
import type { BusMessage, PubSub } from '../pubsub/pubsub.js'
import { prefixEnd } from '../storage/keys.js'
import { InvalidArgument, NotFound, TooLarge, Unavailable } from '../errors.js'
import {
  CATALOG, DATA, catalogName, KIND_BODY, KIND_COUNTERS, KIND_DEAD, KIND_DEDUP, KIND_GONE, KIND_SEGMENT, KIND_STATE, MAX_SEQ, Status,
  bodySize, bodyTimes, catalogKey, dataPrefix, decodeBody, decodeCounters, decodeDedup, decodeState, dedupKey, encodeBody,
  encodeCounters, encodeDedup, encodeLeases, encodeState, idOfKey, decodeLeases, KIND_LEASE, leaseIdOfKey, leaseKey, kindPrefix, messageId, messageKey, parseMessageId,
  parseReceipt, rankOfKey, receiptOfId, segmentBody, segmentCount, segmentHeaderSize, segmentKey, segmentPriority, segmentStartOfKey, stateToken, writeSegmentHeader,
  type BodyInput, type LeaseEntry, type MessageState, type ParsedReceipt, type QueueCounters
} from './codec.js'
import { DEFAULT_SETTINGS, LIMITS, applySettings, backoffDelay, validateQueueName, type QueueSettings, type SettingsPatch } from './settings.js'
import { BODY_CACHE_BYTES, QueueState, type DeliveryHistory, type Lease, type LeaseRecord, type Waiter } from './state.js'
import { OpenSegment, Segment } from './segments.js'

export interface QueueEngineOptions {
  storage: Storage
  pubsub: PubSub
  clock: Clock
  /** Whether pushing to a queue that does not exist creates it with default settings. */
  autocreate: boolean
  /** Called when a background write (lease expiry, capture) fails; the broker logs it. */
  onError?: (err: unknown, what: string) => void
}

export interface PushMessage {
  /** The bytes; text stands for its UTF-8 bytes (written into the stored record without a Buffer of its own). */
  payload: Buffer | string
  /** 0..255, higher first; default 0. */
  priority?: number
  /** Not ready before this many ms. */
  delayMs?: number
  /** A second push with the same dedupId inside the queue's dedup window gets the first one's id. */
  dedupId?: string
  headers?: Record<string, string>
  /** The MQTT topic of a captured publish. */
  topic?: string
  /** The payload is the compact JSON serialisation of a value: a receiver gets it as JSON without re-parsing it. */
  json?: boolean
}

export interface ReceiveOptions {
  /** Most messages to return (1..1000, default 1). */
  max?: number
  /** Long-poll: wait up to this many ms (<= 20 s) for a first message when none is ready. */
  waitMs?: number
  /** Lease length for these deliveries; default the queue's visibility timeout. */
  visibilityMs?: number
  /** Aborting (client gone) removes a waiting receiver and puts back messages not yet handed out. */
  signal?: AbortSignal
}

export interface Delivery {
  id: string
  receipt: string
  payload: Buffer
  headers: Record<string, string>
  topic?: string
  /** The payload is the compact JSON serialisation of a value (see PushMessage.json). */
  json: boolean
  priority: number
  deliveries: number
  enqueuedAt: number
  firstDeliveredAt: number
  leaseExpiresAt: number
}

export type ReceiptStatus = 'acked' | 'ready' | 'delayed' | 'dead' | 'extended' | 'stale' | 'not_found'

export interface ReceiptResult {
  receipt: string
  id: string
  status: ReceiptStatus
  /** extended: the new lease end; delayed: when the message is ready again. */
  at?: number
}

export interface QueueStats {
  ready: number
  leased: number
  delayed: number
  dead: number
  pushed: number
  acked: number
  deadLettered: number
  expired: number
  /** Long-polling receivers waiting right now. */
  waiting: number
}

export interface QueueInfo {
  name: string
  createdAt: number
  settings: QueueSettings
  stats: QueueStats
}

export interface DeadLetter {
  id: string
  payload: Buffer
  headers: Record<string, string>
  topic?: string
  priority: number
  deliveries: number
  enqueuedAt: number
  firstDeliveredAt: number
  deadAt: number
  reason: string
  lastError?: string
}

/**
 * A ready message as peek() shows it: a delivery without what a lease gives (receipt, lease end, first
 * delivery); `deliveries` counts those so far (a message back after a nack or an expired lease has some).
 */
export type PeekedMessage = Omit<Delivery, 'receipt' | 'firstDeliveredAt' | 'leaseExpiresAt'>

/** Most messages one peek shows. */
export const PEEK_MAX = 100

interface StoredQueue { qid: number, createdAt: number, settings: QueueSettings }

/** A lease's record before deliver() writes one. */
const NO_RECORD: LeaseRecord = { id: -1, open: 0, entries: [], sealed: true, written: Promise.resolve() }

const EMPTY = Buffer.alloc(0)
/**
 * A push stores runs of at least this many messages as segments (one LevelDB value per run); smaller
 * pushes give each message its own body record. Bounds the segments held in memory to one per this many
 * messages, while the pushes where the per-message write cost matters (batches) use segments.
 */
const SEGMENT_MIN_MESSAGES = 4
/** Largest segment value: a read of one message's body from LevelDB reads its whole segment. */
const SEGMENT_MAX_BYTES = 1024 * 1024
/** Larger bodies of small pushes get a record of their own rather than being copied into an open segment. */
const OPEN_SEGMENT_MAX_BODY = 64 * 1024
const PAGE = 1000
const DELETE_CHUNK = 10_000
/** Timers further out than this are re-armed when they fire (setTimeout's limit is 2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 30

/**
 * Durable job queues on LevelDB. The in-memory index (ready heaps per priority, delayed heap, leases,
 * dedup ids) is rebuilt from LevelDB at open; every state change a client is told about is written with
 * storage.write() before the call resolves. Time comes only from the Clock, so leases, delays, back-off,
 * dedup windows and retention can be driven by a ManualClock.
 */
export class QueueEngine {
  private readonly queues = new Map<string, QueueState>()
  private readonly creating = new Map<string, Promise<QueueState>>()
  private readonly partition: Partition
  private readonly storage: Storage
  private readonly pubsub: PubSub
  private readonly clock: Clock
  private nextQid = 1
  /** Lease tokens: unique per delivery in this process; a random start keeps them apart across restarts. */
  private nextToken = Math.floor(Math.random() * 2 ** 40)
  private closed = false
  private readonly scratch: number[] = [0, 0, 0, 0]
  /** Captured publishes that could not be pushed (too large, queue gone, storage error). */
  captureDropped = 0
  autocreate: boolean

  private constructor (private readonly options: QueueEngineOptions) {
    this.storage = options.storage
    this.pubsub = options.pubsub
    this.clock = options.clock
    this.autocreate = options.autocreate
    this.partition = options.storage.partition('queue')
  }

  static async open (options: QueueEngineOptions): Promise<QueueEngine> {
    const engine = new QueueEngine(options)
    await engine.load()
    return engine
  }

  // ---- queues -------------------------------------------------------------------------------------

  list (): QueueInfo[] {
    return [...this.queues.values()].sort((a, b) => a.name < b.name ? -1 : 1).map(q => this.describe(q))
  }

  info (name: string): QueueInfo {
    return this.describe(this.mustGet(name))
  }

  has (name: string): boolean { return this.queues.has(name) }

  /** Creates the queue or changes the settings the patch names. */
  async put (name: string, patch: SettingsPatch = {}): Promise<{ created: boolean, info: QueueInfo }> {
    validateQueueName(name)
    this.checkOpen()
    const pending = this.creating.get(name)
    if (pending !== undefined) await pending
    const q = this.queues.get(name)
    if (q === undefined) {
      const created = await this.create(name, patch)
      return { created: true, info: this.describe(created) }
    }
    const next = applySettings(q.settings, patch)
    if (next.deadLetter === name) throw new InvalidArgument('deadLetter must name another queue')
    const before = q.settings
    await this.storage.write([this.partition.put(catalogKey(name), this.catalogRecord(q, next))])
    if (q.deleted) throw new NotFound(`queue "${name}" was deleted`)
    q.settings = next
    if (before.capture.join('\n') !== next.capture.join('\n')) await this.subscribeCapture(q)
    if (next.deadLetter !== null && next.deadLetter !== before.deadLetter) this.forwardExisting(q)
    this.schedule(q)
    return { created: false, info: this.describe(q) }
  }

  /** Removes the queue and everything in it. */
  async delete (name: string): Promise<void> {
    const q = this.mustGet(name)
    q.deleted = true
    this.queues.delete(name)
    this.stopQueue(q)
    await this.storage.write([this.partition.del(catalogKey(name))])
    if (q.unsubscribeCapture !== undefined) await q.unsubscribeCapture()
    await this.deleteData(q.qid)
  }

  // ---- push ---------------------------------------------------------------------------------------

  /** Pushes messages; resolves with their ids once they are durable (a duplicate gets the original id). */
  async push (name: string, messages: PushMessage[]): Promise<string[]> {
    validateQueueName(name)
    this.checkOpen()
    if (messages.length === 0 || messages.length > LIMITS.maxBatch) throw new InvalidArgument(`push 1 to ${LIMITS.maxBatch} messages at a time`)
    let q = this.queues.get(name)
    if (q === undefined) {
      const pending = this.creating.get(name)
      if (pending !== undefined) q = await pending
      else if (this.autocreate) q = await this.create(name, {})
      else throw new NotFound(`queue "${name}" does not exist (and creating queues on push is off)`)
    }
    return await this.pushTo(q, messages)
  }

  /** Pushes to a queue; `extraOps` are written in the same atomic batch (dead-letter forwarding). */
  private async pushTo (q: QueueState, messages: PushMessage[], extraOps: WriteOp[] = []): Promise<string[]> {
    const payloadBytes = messages.map((m, i) => this.validateMessage(q, m, messages.length > 1 ? `messages[${i}]` : 'message'))
    const now = this.clock.now()
    const ops: WriteOp[] = []
    this.pruneDedup(q, now, ops)
    const ids: string[] = []
    const waitFor: Array<Promise<void>> = []
    const added: Array<{ priority: number, seq: number, due: number, body: BodyInput, encoded: Buffer }> = []
    const newDedup: string[] = []
    // a later duplicate's reply waits for this push to be durable: made only when a dedup id is remembered
    let durable: { promise: Promise<void>, resolve: () => void, reject: () => void } | undefined
    const durableSignal = (): Promise<void> => {
      if (durable === undefined) {
        let resolve: () => void = () => {}
        let reject: () => void = () => {}
        const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
        promise.catch(() => { /* the pusher gets the error; duplicates waiting on it see it too */ })
        durable = { promise, resolve, reject }
      }
      return durable.promise
    }
    for (let k = 0; k < messages.length; k++) {
      const m = messages[k]
      if (m.dedupId !== undefined && q.settings.dedupWindowMs > 0) {
        const seen = q.dedup.get(m.dedupId)
        if (seen !== undefined && seen.expiresAt > now) {
          ids.push(seen.id)
          waitFor.push(seen.durable)
          continue
        }
      }
      if (q.counters.nextSeq > MAX_SEQ) throw new Unavailable(`queue "${q.name}" has used up its message sequence numbers`)
      const seq = q.counters.nextSeq++
      const priority = m.priority ?? 0
      const delay = m.delayMs ?? 0
      const due = delay > 0 ? now + delay : 0
      const id = messageId(priority, seq)
      ids.push(id)
      added.push({ priority, seq, due, body: { enqueuedAt: now, due, json: m.json === true, topic: m.topic, headers: m.headers, dedupId: m.dedupId, payload: m.payload, payloadBytes: payloadBytes[k] }, encoded: EMPTY })
      if (m.dedupId !== undefined && q.settings.dedupWindowMs > 0) {
        const expiresAt = now + q.settings.dedupWindowMs
        // delete + set keeps the map in expiry order (an expired entry of the same id may still be in it)
        q.dedup.delete(m.dedupId)
        q.dedup.set(m.dedupId, { id, expiresAt, durable: durableSignal() })
        newDedup.push(m.dedupId)
        ops.push(this.partition.put(dedupKey(q.qid, m.dedupId), encodeDedup(id, expiresAt)))
      }
    }
    // No state record: the body alone says ready (or delayed until due) until the first delivery.
    // Runs of consecutive messages (their sequence numbers are consecutive) go into segments, one value
    // each; the messages of smaller pushes join the queue's open segment (shared by the small pushes of
    // one group commit), and large ones get a body record each. The encoded bodies are kept in memory
    // (QueueState.bodies, Segment.cached, Segment.open) in buffers allocated at their exact size (or the
    // open segment's own): slices of Node's shared 8 KB buffer pool would each hold a whole pool block alive.
    const segments: Segment[] = []
    const segmentValues: Buffer[] = []
    const alone: Array<{ seq: number, encoded: Buffer }> = []
    let shared: Segment[] | undefined
    const sizes = added.map(a => bodySize(a.body))
    for (let i = 0; i < added.length;) {
      let j = i + 1
      let bytes = sizes[i]
      while (j < added.length && segmentHeaderSize(j - i + 1) + bytes + sizes[j] <= SEGMENT_MAX_BYTES) bytes += sizes[j++]
      if (j - i < SEGMENT_MIN_MESSAGES) {
        for (; i < j; i++) {
          const a = added[i]
          if (sizes[i] <= OPEN_SEGMENT_MAX_BODY) {
            const segment = this.openSegmentFor(q, a.seq, sizes[i])
            a.encoded = segment.appendOpen(a.body, sizes[i], a.priority)
            q.bodyBytes += sizes[i]
            if (shared === undefined) shared = [segment]
            else if (shared[shared.length - 1] !== segment) shared.push(segment)
            continue
          }
          a.encoded = encodeBody(a.body, Buffer.allocUnsafeSlow(sizes[i]))
          alone.push(a)
          ops.push(this.partition.put(messageKey(q.qid, KIND_BODY, a.priority, a.seq), a.encoded))
        }
        continue
      }
      const value = Buffer.allocUnsafeSlow(segmentHeaderSize(j - i) + bytes)
      const priorities: number[] = []
      const ends: number[] = []
      let at = segmentHeaderSize(j - i)
      for (let k = i; k < j; k++) {
        const a = added[k]
        a.encoded = encodeBody(a.body, value, at)
        at += a.encoded.length
        priorities.push(a.priority)
        ends.push(at)
      }
      writeSegmentHeader(value, priorities, ends)
      const segment = new Segment(added[i].seq, j - i)
      q.segments.add(segment)
      segments.push(segment)
      segmentValues.push(value)
      ops.push(this.partition.put(segmentKey(q.qid, KIND_SEGMENT, segment.start), value))
      i = j
    }
    q.counters.pushed += added.length
    for (const op of extraOps) ops.push(op)
    const own = this.commit(q, ops, added.length > 0)
    // the open segments' writes are in the same group commit as this one (see openSegmentFor)
    const written = shared === undefined ? own : Promise.all([own, ...shared.map(segment => segment.written)])
    // visible at once (see QueueState.bodies): a waiting receiver's lease joins this write's batch
    for (const a of alone) q.keepBody(a.seq, a.encoded)
    segments.forEach((segment, k) => { q.cacheSegment(segment, segmentValues[k]) })
    for (const a of added) {
      if (a.due > 0) q.addDelayed(a.due, a.priority, a.seq, now)
      else q.addReady(a.priority, a.seq, now)
    }
    this.dispatch(q)
    this.schedule(q)
    try {
      await written
      durable?.resolve()
    } catch (err) {
      durable?.reject()
      for (const d of newDedup) q.dedup.delete(d)
      for (const segment of segments) {
        q.uncacheSegment(segment)
        q.segments.remove(segment)
      }
      for (const segment of shared ?? []) this.dropOpenSegment(q, segment)
      for (const a of added) q.lost.add(a.seq)
      for (const a of alone) q.takeBody(a.seq)
      q.counters.pushed -= added.length
      throw err
    }
    // durable now: the bodies stay in memory only within the cache budget
    if (q.bodyBytes > BODY_CACHE_BYTES) {
      for (const a of alone) q.takeBody(a.seq)
      for (const segment of segments) q.uncacheSegment(segment)
      for (const segment of shared ?? []) q.uncacheSegment(segment)
    }
    if (waitFor.length > 0) await Promise.all(waitFor)
    if (q.deleted) throw new NotFound(`queue "${q.name}" was deleted`)
    return ids
  }

  /**
   * The open segment that a small push's message with sequence number `seq` joins: the queue's current
   * one if the message continues it and fits, else a new one. A new segment's write is requested at
   * once, with a value made only when the storage assembles the batch (sealOpenSegment): every push that
   * joins it before then requests its own write before that moment too, so all of them land in the same
   * atomic batch, and each push waits for the segment's write as well as its own.
   */
  private openSegmentFor (q: QueueState, seq: number, size: number): Segment {
    const current = q.openSegment
    if (current?.open !== undefined && current.start + current.count === seq && current.open.sizeWith(size) <= SEGMENT_MAX_BYTES) return current
    const segment = new Segment(seq, 0)
    segment.open = new OpenSegment(size)
    q.segments.add(segment)
    q.openSegment = segment
    const written = this.storage.write([this.partition.put(segmentKey(q.qid, KIND_SEGMENT, seq), () => this.sealOpenSegment(q, segment))])
    written.catch(() => { /* each push that joined the segment gets the error */ })
    segment.written = written
    return segment
  }

  /** Closes an open segment as its batch is assembled: its value, kept in memory while messages wait. */
  private sealOpenSegment (q: QueueState, segment: Segment): Buffer {
    const open = segment.open as OpenSegment
    segment.open = undefined
    if (q.openSegment === segment) q.openSegment = undefined
    q.bodyBytes -= open.used
    const value = open.value()
    if (segment.pending > 0 && !segment.removed) q.cacheSegment(segment, value)
    return value
  }

  /** A shared segment whose write failed: its messages are lost (QueueState.lost), the segment forgotten. */
  private dropOpenSegment (q: QueueState, segment: Segment): void {
    if (q.openSegment === segment) q.openSegment = undefined
    if (segment.open !== undefined) {
      q.bodyBytes -= segment.open.used
      segment.open = undefined
    }
    q.uncacheSegment(segment)
    q.segments.remove(segment)
  }

  /** Checks a message to push; gives its payload's size in bytes. */
  private validateMessage (q: QueueState, m: PushMessage, where: string): number {
    const bytes = typeof m.payload === 'string' ? Buffer.byteLength(m.payload, 'utf8') : Buffer.isBuffer(m.payload) ? m.payload.length : -1
    if (bytes < 0) throw new InvalidArgument(`${where}: payload is required`)
    if (bytes > q.settings.maxMessageBytes) {
      throw new TooLarge(`${where}: payload is ${bytes} bytes; queue "${q.name}" takes at most ${q.settings.maxMessageBytes} (maxMessageBytes)`, { maxMessageBytes: q.settings.maxMessageBytes })
    }
    if (m.priority !== undefined && (!Number.isInteger(m.priority) || m.priority < 0 || m.priority > 255)) {
      throw new InvalidArgument(`${where}: priority must be an integer from 0 to 255`)
    }
    if (m.delayMs !== undefined && (typeof m.delayMs !== 'number' || !Number.isFinite(m.delayMs) || m.delayMs < 0 || m.delayMs > LIMITS.maxDelayMs)) {
      throw new InvalidArgument(`${where}: delay must be a number of seconds from 0 to ${LIMITS.maxDelayMs / 1000}`)
    }
    if (m.dedupId !== undefined && (typeof m.dedupId !== 'string' || m.dedupId.length === 0 || Buffer.byteLength(m.dedupId) > LIMITS.maxDedupIdBytes)) {
      throw new InvalidArgument(`${where}: dedupId must be a string of 1 to ${LIMITS.maxDedupIdBytes} bytes`)
    }
    if (m.headers !== undefined) {
      if (m.headers === null || typeof m.headers !== 'object' || Array.isArray(m.headers)) throw new InvalidArgument(`${where}: headers must be an object of strings`)
      const entries = Object.entries(m.headers)
      if (entries.length > LIMITS.maxHeaders) throw new InvalidArgument(`${where}: at most ${LIMITS.maxHeaders} headers`)
      let headerBytes = 0
      for (const [k, v] of entries) {
        if (typeof v !== 'string') throw new InvalidArgument(`${where}: header "${k}" must be a string`)
        headerBytes += Buffer.byteLength(k) + Buffer.byteLength(v)
      }
      if (headerBytes > LIMITS.maxHeaderBytes) throw new InvalidArgument(`${where}: headers take more than ${LIMITS.maxHeaderBytes} bytes`)
    }
    return bytes
  }

  /** Forgets dedup ids whose window has passed (the map is in expiry order). */
  private pruneDedup (q: QueueState, now: number, ops: WriteOp[]): void {
    for (const [dedupId, entry] of q.dedup) {
      if (entry.expiresAt > now) break
      q.dedup.delete(dedupId)
      ops.push(this.partition.del(dedupKey(q.qid, dedupId)))
    }
  }

  // ---- receive ------------------------------------------------------------------------------------

  /** Leases up to max messages; with waitMs, waits (long-poll) until one is ready or the time is up. */
  async receive (name: string, options: ReceiveOptions = {}): Promise<Delivery[]> {
    const q = this.mustGet(name)
    const max = options.max ?? 1
    if (!Number.isInteger(max) || max < 1 || max > LIMITS.maxBatch) throw new InvalidArgument(`max must be an integer from 1 to ${LIMITS.maxBatch}`)
    const waitMs = options.waitMs ?? 0
    if (typeof waitMs !== 'number' || !(waitMs >= 0 && waitMs <= LIMITS.maxWaitMs)) throw new InvalidArgument(`wait must be from 0 to ${LIMITS.maxWaitMs / 1000} seconds`)
    const visibilityMs = options.visibilityMs ?? q.settings.visibilityTimeoutMs
    if (typeof visibilityMs !== 'number' || !(visibilityMs >= 1 && visibilityMs <= LIMITS.maxVisibilityTimeoutMs)) {
      throw new InvalidArgument(`visibilityTimeout must be from 0.001 to ${LIMITS.maxVisibilityTimeoutMs / 1000} seconds`)
    }
    const signal = options.signal
    const now = this.clock.now()
    this.processDue(q, now)
    if (q.readyCount > 0 || waitMs === 0 || signal?.aborted === true) {
      const leases = this.take(q, max, visibilityMs, now)
      this.schedule(q)
      return await this.deliver(q, leases, signal)
    }
    return await new Promise<Delivery[]>((resolve, reject) => {
      const finish = (): void => {
        timer.cancel()
        signal?.removeEventListener('abort', leave)
      }
      const waiter: Waiter = {
        max,
        visibilityMs,
        serve: leases => {
          finish()
          this.deliver(q, leases, signal).then(resolve, reject)
        }
      }
      function leave (): void {
        const i = q.waiters.indexOf(waiter)
        if (i >= 0) q.waiters.splice(i, 1)
        finish()
        resolve([])
      }
      const timer = this.clock.setTimer(leave, waitMs)
      signal?.addEventListener('abort', leave, { once: true })
      q.waiters.push(waiter)
    })
  }

  /** Moves up to max ready messages into leases (in memory; deliver() makes them durable). */
  private take (q: QueueState, max: number, visibilityMs: number, now: number): Lease[] {
    const out: Lease[] = []
    const ops: WriteOp[] = []
    const row = this.scratch
    const cutoff = q.settings.retentionMs === null ? -Infinity : now - q.settings.retentionMs
    while (out.length < max) {
      const priority = q.takeReady(row)
      if (priority < 0) break
      const seq = row[0]
      const enqueuedAt = row[1]
      if (q.lost.size > 0 && q.lost.delete(seq)) continue
      if (enqueuedAt <= cutoff) {
        this.expire(q, priority, seq, ops)
        continue
      }
      const history = q.history.get(seq)
      if (history !== undefined) q.history.delete(seq)
      // a message that came back without a consumer's verdict (restart) or whose queue lowered maxDeliveries
      if (history !== undefined && history.deliveries >= q.settings.maxDeliveries) {
        this.deadLetter(q, priority, seq, enqueuedAt, history, `maxDeliveries (${q.settings.maxDeliveries}) reached`, now, this.nextToken++, ops)
        continue
      }
      const lease: Lease = {
        seq,
        priority,
        token: this.nextToken++,
        until: now + visibilityMs,
        deliveries: (history?.deliveries ?? 0) + 1,
        firstDeliveredAt: history !== undefined && history.firstDeliveredAt > 0 ? history.firstDeliveredAt : now,
        enqueuedAt,
        lastError: history?.lastError,
        previous: history,
        record: NO_RECORD,
        heapIndex: -1
      }
      q.addLease(lease)
      out.push(lease)
    }
    this.background(q, ops)
    return out
  }

  /**
   * Hands out fresh leases. The lease (delivery count included) is written while the bodies are read;
   * the receiver hears of it only once both are done. Bodies of pushes still being written come from
   * memory, and then the lease joins the push's batch.
   */
  private async deliver (q: QueueState, leases: Lease[], signal: AbortSignal | undefined): Promise<Delivery[]> {
    if (leases.length === 0) return []
    const written = this.joinLeaseRecord(q, leases)
    const bodies: Array<Buffer | undefined> = leases.map(l => q.takeCachedBody(l.seq, l.previous === undefined))
    const missing: number[] = []
    for (let i = 0; i < bodies.length; i++) if (bodies[i] === undefined) missing.push(i)
    const read = missing.length === 0 ? undefined : this.readBodies(q, missing.map(i => leases[i]))
    // a failed write leaves the leases in memory; they run out and the messages come back
    // (bodies all in memory, the common case: one await, no Promise.all and its arrays)
    if (read === undefined) await written
    else {
      const [, got] = await Promise.all([written, read])
      missing.forEach((i, k) => { bodies[i] = got[k] })
    }
    if (signal?.aborted === true || q.deleted || this.closed) {
      this.release(q, leases, true)
      if (q.deleted) throw new NotFound(`queue "${q.name}" was deleted`)
      return []
    }
    const out: Delivery[] = []
    const orphans: WriteOp[] = []
    for (let i = 0; i < leases.length; i++) {
      const l = leases[i]
      const raw = bodies[i]
      // the lease ended meanwhile (a very short visibility timeout): not handed out
      if (q.leases.get(l.seq) !== l) continue
      if (raw === undefined) {
        this.endLease(q, l, orphans)
        orphans.push(this.partition.del(messageKey(q.qid, KIND_STATE, l.priority, l.seq)))
        continue
      }
      const body = decodeBody(raw)
      const id = messageId(l.priority, l.seq)
      out.push({
        id,
        receipt: receiptOfId(id, l.token),
        payload: body.payload,
        headers: body.headers ?? {},
        topic: body.topic,
        json: body.json,
        priority: l.priority,
        deliveries: l.deliveries,
        enqueuedAt: l.enqueuedAt,
        firstDeliveredAt: l.firstDeliveredAt,
        leaseExpiresAt: l.until
      })
    }
    this.background(q, orphans)
    return out
  }

  /**
   * Adds fresh leases to the queue's open lease record and gives the write that makes them durable. The
   * receives of one group commit share one record, so many one-message receives cost one LevelDB op,
   * not one each: the record's value is encoded when the storage assembles the batch, from every lease
   * that joined by then (see codec.ts encodeLeases). A record none of whose leases is open any more
   * (they ran out before the write) is not joined again: its delete may already be on its way.
   */
  private joinLeaseRecord (q: QueueState, leases: Lease[]): Promise<void> {
    let record = q.openLeaseRecord
    if (record === undefined || record.sealed || record.open === 0) {
      const r: LeaseRecord = { id: q.nextLeaseRecord++, open: 0, entries: [], sealed: false, written: NO_RECORD.written }
      r.written = this.storage.write([this.partition.put(leaseKey(q.qid, r.id), () => this.sealLeaseRecord(q, r))])
      // a write refused before its batch was assembled (storage closing) takes no more leases either
      r.written.catch(() => { if (!r.sealed) this.sealLeaseRecord(q, r) })
      q.openLeaseRecord = record = r
    }
    record.open += leases.length
    for (const l of leases) {
      l.record = record
      record.entries.push(l)
    }
    return record.written
  }

  /** The lease record's value, once: from now on deliveries start a new record. */
  private sealLeaseRecord (q: QueueState, record: LeaseRecord): Buffer {
    record.sealed = true
    if (q.openLeaseRecord === record) q.openLeaseRecord = undefined
    const value = encodeLeases(record.entries)
    record.entries = []
    return value
  }

  /** Ends a lease in memory; the last lease of a lease record to end deletes the record (in `ops`). */
  private endLease (q: QueueState, l: Lease, ops: WriteOp[]): void {
    q.removeLease(l)
    if (--l.record.open === 0) ops.push(this.partition.del(leaseKey(q.qid, l.record.id)))
  }

  /**
   * Puts leases that were never handed out back to ready, as they were; `written`: their lease is
   * already on disk and is written back too.
   */
  private release (q: QueueState, leases: Lease[], written = false): void {
    if (q.deleted) return
    const ops: WriteOp[] = []
    for (const l of leases) {
      if (q.leases.get(l.seq) !== l) continue
      this.endLease(q, l, ops)
      q.addReady(l.priority, l.seq, l.enqueuedAt)
      if (written) {
        // a fresh token outranks the lease record's entry
        const previous = l.previous ?? { deliveries: 0, firstDeliveredAt: 0 }
        q.history.set(l.seq, previous)
        ops.push(this.stateOp(q, l.priority, l.seq, {
          status: Status.Ready, deliveries: previous.deliveries, enqueuedAt: l.enqueuedAt, firstDeliveredAt: previous.firstDeliveredAt, at: 0, token: this.nextToken++, lastError: previous.lastError
        }))
      } else if (l.previous !== undefined) q.history.set(l.seq, l.previous)
    }
    this.background(q, ops)
    this.dispatch(q)
    this.schedule(q)
  }

  /** Hands ready messages to waiting receivers, oldest waiter first, sharing a burst among them. */
  private dispatch (q: QueueState): void {
    if (q.waiters.length === 0 || q.readyCount === 0) return
    const now = this.clock.now()
    while (q.waiters.length > 0 && q.readyCount > 0) {
      const share = Math.ceil(q.readyCount / q.waiters.length)
      const waiter = q.waiters.shift() as Waiter
      const leases = this.take(q, Math.min(waiter.max, share), waiter.visibilityMs, now)
      if (leases.length === 0) {
        q.waiters.unshift(waiter)
        break
      }
      waiter.serve(leases)
    }
    this.schedule(q)
  }

  // ---- ack, nack, extend --------------------------------------------------------------------------

  async ack (name: string, receipts: string[]): Promise<ReceiptResult[]> {
    const q = this.mustGet(name)
    const parsed = this.parseReceipts(receipts)
    this.processDue(q, this.clock.now())
    const ops: WriteOp[] = []
    let acked = 0
    const { results, failed } = this.onCurrentLeases(q, receipts, parsed, (lease, p) => {
      this.endLease(q, lease, ops)
      this.dropBody(q, p.priority, p.seq, ops)
      // a message delivered for the first time has no state record (its lease is in the lease record)
      if (lease.previous !== undefined) ops.push(this.partition.del(messageKey(q.qid, KIND_STATE, p.priority, p.seq)))
      acked++
      return { status: 'acked' }
    })
    if (acked > 0) {
      q.counters.acked += acked
      await this.commit(q, ops, true)
    }
    await this.explainFailures(q, receipts, parsed, failed, results)
    return results
  }

  async nack (name: string, receipts: string[], options: { delayMs?: number, dead?: boolean, reason?: string } = {}): Promise<ReceiptResult[]> {
    const q = this.mustGet(name)
    const parsed = this.parseReceipts(receipts)
    const { delayMs, dead, reason } = options
    if (delayMs !== undefined && (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > LIMITS.maxDelayMs)) {
      throw new InvalidArgument(`delay must be a number of seconds from 0 to ${LIMITS.maxDelayMs / 1000}`)
    }
    const now = this.clock.now()
    this.processDue(q, now)
    const ops: WriteOp[] = []
    const { results, failed } = this.onCurrentLeases(q, receipts, parsed, lease => {
      this.endLease(q, lease, ops)
      return this.afterDelivery(q, lease, now, ops, { delayMs, dead: dead === true, reason, cause: 'nacked' })
    })
    if (ops.length > 0) {
      const durable = this.commit(q, ops, true)
      this.forwardAfter(q, durable)
      this.dispatch(q)
      this.schedule(q)
      await durable
    }
    await this.explainFailures(q, receipts, parsed, failed, results)
    return results
  }

  async extend (name: string, receipts: string[], visibilityMs: number): Promise<ReceiptResult[]> {
    const q = this.mustGet(name)
    const parsed = this.parseReceipts(receipts)
    if (typeof visibilityMs !== 'number' || !(visibilityMs >= 1 && visibilityMs <= LIMITS.maxVisibilityTimeoutMs)) {
      throw new InvalidArgument(`visibilityTimeout must be from 0.001 to ${LIMITS.maxVisibilityTimeoutMs / 1000} seconds`)
    }
    const now = this.clock.now()
    this.processDue(q, now)
    const { results, failed } = this.onCurrentLeases(q, receipts, parsed, lease => {
      // nothing to write: a lease's end time does not survive a restart (the message is ready again then)
      lease.until = now + visibilityMs
      q.leaseHeap.update(lease)
      return { status: 'extended', at: lease.until }
    })
    this.schedule(q)
    await this.explainFailures(q, receipts, parsed, failed, results)
    return results
  }

  private parseReceipts (receipts: string[]): ParsedReceipt[] {
    if (!Array.isArray(receipts) || receipts.length === 0 || receipts.length > LIMITS.maxBatch) {
      throw new InvalidArgument(`receipts must be a list of 1 to ${LIMITS.maxBatch} receipts`)
    }
    return receipts.map(r => parseReceipt(r))
  }

  /**
   * The frame of ack, nack and extend: each receipt whose lease is current goes to handle, in order; the
   * indexes of the others come back as failed, for explainFailures.
   */
  private onCurrentLeases (q: QueueState, receipts: string[], parsed: ParsedReceipt[],
    handle: (lease: Lease, p: ParsedReceipt) => Omit<ReceiptResult, 'receipt' | 'id'>): { results: ReceiptResult[], failed: number[] } {
    const results: ReceiptResult[] = new Array(parsed.length)
    const failed: number[] = []
    for (let i = 0; i < parsed.length; i++) {
      const p = parsed[i]
      const lease = this.currentLease(q, p)
      if (lease === undefined) failed.push(i)
      // a receipt starts with its message's id (receiptOfId; parseReceipt checked the form)
      else results[i] = { receipt: receipts[i], id: receipts[i].slice(0, 16), ...handle(lease, p) }
    }
    return { results, failed }
  }

  private currentLease (q: QueueState, p: ParsedReceipt): Lease | undefined {
    const lease = q.leases.get(p.seq)
    return lease !== undefined && lease.token === p.token && lease.priority === p.priority ? lease : undefined
  }

  /**
   * A receipt that matches no current lease is stale when its message still exists (or was handled by
   * another receipt of the same request), else not_found.
   */
  private async explainFailures (q: QueueState, receipts: string[], parsed: ParsedReceipt[], failed: number[], results: ReceiptResult[]): Promise<void> {
    if (failed.length === 0) return
    const handled = new Set<number>()
    for (const r of results) if (r !== undefined) handled.add(parseMessageId(r.id)?.seq ?? -1)
    const present = await this.messagesExist(q, failed.map(i => parsed[i]))
    failed.forEach((i, k) => {
      const exists = present[k] || handled.has(parsed[i].seq)
      results[i] = { receipt: receipts[i], id: messageId(parsed[i].priority, parsed[i].seq), status: exists ? 'stale' : 'not_found' }
    })
  }

  /**
   * What happens to a message whose delivery failed (nack or expired lease): dead-lettered when asked or
   * when it used up maxDeliveries, else ready again after the explicit delay or the queue's back-off.
   */
  private afterDelivery (q: QueueState, lease: Lease, now: number, ops: WriteOp[], how: { delayMs?: number, dead: boolean, reason?: string, cause: string }): { status: 'ready' | 'delayed' | 'dead', at?: number } {
    const history: DeliveryHistory = { deliveries: lease.deliveries, firstDeliveredAt: lease.firstDeliveredAt, lastError: how.reason ?? lease.lastError }
    const { priority, seq, enqueuedAt } = lease
    if (how.dead) {
      this.deadLetter(q, priority, seq, enqueuedAt, history, how.reason !== undefined ? `nacked to dead letter: ${how.reason}` : 'nacked to dead letter', now, lease.token, ops)
      return { status: 'dead' }
    }
    if (lease.deliveries >= q.settings.maxDeliveries) {
      this.deadLetter(q, priority, seq, enqueuedAt, history, `maxDeliveries (${q.settings.maxDeliveries}) reached; last delivery ${how.cause}`, now, lease.token, ops)
      return { status: 'dead' }
    }
    const delay = how.delayMs ?? backoffDelay(q.settings.backoff, lease.deliveries)
    q.history.set(seq, history)
    if (delay > 0) {
      const due = now + delay
      q.addDelayed(due, priority, seq, enqueuedAt)
      ops.push(this.stateOp(q, priority, seq, { status: Status.Delayed, deliveries: history.deliveries, enqueuedAt, firstDeliveredAt: history.firstDeliveredAt, at: due, token: lease.token, lastError: history.lastError }))
      return { status: 'delayed', at: due }
    }
    q.addReady(priority, seq, enqueuedAt)
    ops.push(this.stateOp(q, priority, seq, { status: Status.Ready, deliveries: history.deliveries, enqueuedAt, firstDeliveredAt: history.firstDeliveredAt, at: 0, token: lease.token, lastError: history.lastError }))
    return { status: 'ready' }
  }

  /** `token`: of the delivery that ends here, or a fresh one (see codec.ts on which record counts). */
  private deadLetter (q: QueueState, priority: number, seq: number, enqueuedAt: number, history: DeliveryHistory, reason: string, now: number, token: number, ops: WriteOp[]): void {
    q.forgetBody(seq, false)
    ops.push(this.stateOp(q, priority, seq, { status: Status.Dead, deliveries: history.deliveries, enqueuedAt, firstDeliveredAt: history.firstDeliveredAt, at: now, token, reason, lastError: history.lastError }))
    ops.push(this.partition.put(messageKey(q.qid, KIND_DEAD, priority, seq), Buffer.alloc(0)))
    q.deadCount++
    q.counters.deadLettered++
    if (q.settings.deadLetter !== null) q.forwardNeeded = true
  }

  private expire (q: QueueState, priority: number, seq: number, ops: WriteOp[]): void {
    q.forgetBody(seq, !q.history.has(seq))
    q.history.delete(seq)
    this.dropBody(q, priority, seq, ops)
    ops.push(this.partition.del(messageKey(q.qid, KIND_STATE, priority, seq)))
    q.counters.expired++
  }

  // ---- time -----------------------------------------------------------------------------------------

  /** Applies everything that fell due: delayed -> ready, expired leases, retention. */
  private processDue (q: QueueState, now: number): void {
    const ops: WriteOp[] = []
    const row = this.scratch
    const cutoff = q.settings.retentionMs === null ? -Infinity : now - q.settings.retentionMs
    while (q.delayed.size > 0 && (q.delayed.peek(0) as number) <= now) {
      q.delayed.pop(row)
      const seq = row[1]
      const priority = row[2]
      const enqueuedAt = row[3]
      // the state on disk still says delayed with a due time in the past: ready after a restart too
      if (enqueuedAt <= cutoff) this.expire(q, priority, seq, ops)
      else q.addReady(priority, seq, enqueuedAt)
    }
    for (let lease = q.leaseHeap.peek(); lease !== undefined && lease.until <= now; lease = q.leaseHeap.peek()) {
      this.endLease(q, lease, ops)
      this.afterDelivery(q, lease, now, ops, { dead: false, cause: 'lease expired' })
    }
    if (q.settings.retentionMs !== null && q.readyCount > 0) {
      for (let p = q.topPriority; p >= 0; p--) {
        const heap = q.ready[p]
        if (heap === undefined) continue
        while (heap.size > 0 && (heap.peek(1) as number) <= cutoff) {
          heap.pop(row)
          q.readyCount--
          this.expire(q, p, row[0], ops)
        }
      }
    }
    this.background(q, ops)
  }

  /** Arms the queue's one timer for its next due time (delayed message, lease end, retention). */
  private schedule (q: QueueState): void {
    if (q.deleted || this.closed) return
    let next = Infinity
    const delayedDue = q.delayed.peek(0)
    if (delayedDue !== undefined) next = delayedDue
    const lease = q.leaseHeap.peek()
    if (lease !== undefined && lease.until < next) next = lease.until
    if (q.settings.retentionMs !== null && q.readyCount > 0) {
      for (let p = q.topPriority; p >= 0; p--) {
        const oldest = q.oldestReady(p)
        if (oldest !== undefined && oldest + q.settings.retentionMs < next) next = oldest + q.settings.retentionMs
      }
    }
    if (next === Infinity) {
      q.timer?.cancel()
      q.timer = undefined
      q.timerAt = Infinity
      return
    }
    if (q.timer !== undefined && q.timerAt <= next) return
    q.timer?.cancel()
    const now = this.clock.now()
    const wait = Math.min(Math.max(0, next - now), MAX_TIMER_MS)
    q.timerAt = now + wait
    q.timer = this.clock.setTimer(() => {
      q.timer = undefined
      q.timerAt = Infinity
      if (q.deleted || this.closed) return
      this.processDue(q, this.clock.now())
      this.dispatch(q)
      this.schedule(q)
    }, wait)
  }

  // ---- dead letters and purge ---------------------------------------------------------------------

  async listDead (name: string, options: { limit?: number, cursor?: string } = {}): Promise<{ messages: DeadLetter[], cursor: string | null }> {
    const q = this.mustGet(name)
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.maxBatch) throw new InvalidArgument(`limit must be an integer from 1 to ${LIMITS.maxBatch}`)
    const prefix = kindPrefix(q.qid, KIND_DEAD)
    let after: Buffer | undefined
    if (options.cursor !== undefined && options.cursor !== '') {
      const at = parseMessageId(options.cursor)
      if (at === undefined) throw new InvalidArgument(`cursor "${options.cursor.slice(0, 100)}" is not valid; pass the cursor of the previous page`)
      after = messageKey(q.qid, KIND_DEAD, at.priority, at.seq)
    }
    const rows = await this.partition.range(after === undefined ? { gte: prefix, lt: prefixEnd(prefix), limit } : { gt: after, lt: prefixEnd(prefix), limit })
    const ranks = rows.map(([k]) => rankOfKey(k))
    const [bodies, states] = await Promise.all([
      this.readBodies(q, ranks),
      this.partition.getMany(ranks.map(r => messageKey(q.qid, KIND_STATE, r.priority, r.seq)))
    ])
    const messages: DeadLetter[] = []
    ranks.forEach((r, i) => {
      const rawBody = bodies[i]
      const rawState = states[i]
      if (rawBody === undefined || rawState === undefined) return
      const body = decodeBody(rawBody)
      const state = decodeState(rawState)
      if (state.status !== Status.Dead) return
      messages.push({
        id: messageId(r.priority, r.seq),
        payload: body.payload,
        headers: body.headers ?? {},
        topic: body.topic,
        priority: r.priority,
        deliveries: state.deliveries,
        enqueuedAt: state.enqueuedAt,
        firstDeliveredAt: state.firstDeliveredAt,
        deadAt: state.at,
        reason: state.reason ?? 'dead-lettered',
        lastError: state.lastError
      })
    })
    return { messages, cursor: rows.length === limit ? idOfKey(rows[rows.length - 1][0]) : null }
  }

  /**
   * The next ready messages in the order receive would hand them out, without leasing them: nothing is
   * written and no delivery is counted (for operators looking into a queue). Delayed and leased messages
   * are not among them.
   */
  async peek (name: string, limit = 10): Promise<PeekedMessage[]> {
    const q = this.mustGet(name)
    if (!Number.isInteger(limit) || limit < 1 || limit > PEEK_MAX) throw new InvalidArgument(`limit must be an integer from 1 to ${PEEK_MAX}`)
    const refs: Array<{ priority: number, seq: number, enqueuedAt: number }> = []
    for (let priority = q.topPriority; priority >= 0 && refs.length < limit; priority--) {
      const ready = q.ready[priority]
      if (ready === undefined) continue
      for (const [seq, enqueuedAt] of ready.smallest(limit - refs.length)) {
        if (!q.lost.has(seq)) refs.push({ priority, seq, enqueuedAt })
      }
    }
    // bodies of pushes not yet durable are only in memory (looked at, not taken); the rest as a delivery reads them
    const cached = refs.map(r => q.bodies.get(r.seq))
    const missing = refs.filter((_r, i) => cached[i] === undefined)
    const read = missing.length === 0 ? [] : await this.readBodies(q, missing)
    const out: PeekedMessage[] = []
    let k = 0
    refs.forEach((r, i) => {
      const raw = cached[i] ?? read[k++]
      if (raw === undefined) return
      const body = decodeBody(raw)
      out.push({
        id: messageId(r.priority, r.seq),
        payload: body.payload,
        headers: body.headers ?? {},
        topic: body.topic,
        json: body.json,
        priority: r.priority,
        deliveries: q.history.get(r.seq)?.deliveries ?? 0,
        enqueuedAt: r.enqueuedAt
      })
    })
    return out
  }

  /** Moves dead letters back to ready with their delivery count reset: the ids given, or all of them. */
  async redrive (name: string, ids?: string[]): Promise<{ redriven: number, notFound: string[] }> {
    const q = this.mustGet(name)
    if (ids !== undefined) {
      if (!Array.isArray(ids) || ids.length > LIMITS.maxBatch) throw new InvalidArgument(`ids must be a list of at most ${LIMITS.maxBatch} message ids`)
      for (const id of ids) {
        if (typeof id !== 'string' || parseMessageId(id) === undefined) throw new InvalidArgument(`"${String(id).slice(0, 100)}" is not a message id`)
      }
    }
    return await this.withDeadLock(q, async () => {
      if (ids !== undefined) {
        const unique = [...new Set(ids)]
        const ranks = unique.map(id => parseMessageId(id) as { priority: number, seq: number })
        const states = await this.deadStates(q, ranks)
        const moving: Array<{ priority: number, seq: number, state: MessageState }> = []
        const notFound: string[] = []
        ranks.forEach((r, i) => {
          const state = states[i]
          if (state !== undefined) moving.push({ ...r, state })
          else notFound.push(unique[i])
        })
        await this.moveBack(q, moving)
        return { redriven: moving.length, notFound }
      }
      let redriven = 0
      await this.eachDeadPage(q, async (ranks, states) => {
        const moving: Array<{ priority: number, seq: number, state: MessageState }> = []
        const stray: WriteOp[] = []
        ranks.forEach((r, i) => {
          const state = states[i]
          if (state !== undefined) moving.push({ ...r, state })
          else stray.push(this.partition.del(messageKey(q.qid, KIND_DEAD, r.priority, r.seq)))
        })
        if (stray.length > 0) await this.commit(q, stray)
        await this.moveBack(q, moving)
        redriven += moving.length
      })
      return { redriven, notFound: [] }
    })
  }

  /**
   * Walks the dead-letter index from its start a page at a time, with each page's dead states (see
   * deadStates). visit must delete the index entries of its page: the next page is read from the start
   * again, so that is what makes the walk end.
   */
  private async eachDeadPage (q: QueueState, visit: (ranks: Array<{ priority: number, seq: number }>, states: Array<MessageState | undefined>) => Promise<void>): Promise<void> {
    const prefix = kindPrefix(q.qid, KIND_DEAD)
    for (;;) {
      if (q.deleted) throw new NotFound(`queue "${q.name}" was deleted`)
      const rows = await this.partition.range({ gte: prefix, lt: prefixEnd(prefix), limit: PAGE })
      if (rows.length === 0) return
      const ranks = rows.map(([k]) => rankOfKey(k))
      await visit(ranks, await this.deadStates(q, ranks))
    }
  }

  /** The state records of these messages, where they say dead; undefined for any other (or none). */
  private async deadStates (q: QueueState, ranks: Array<{ priority: number, seq: number }>): Promise<Array<MessageState | undefined>> {
    const raw = await this.partition.getMany(ranks.map(r => messageKey(q.qid, KIND_STATE, r.priority, r.seq)))
    return raw.map(b => {
      const state = b === undefined ? undefined : decodeState(b)
      return state?.status === Status.Dead ? state : undefined
    })
  }

  private async moveBack (q: QueueState, moving: Array<{ priority: number, seq: number, state: MessageState }>): Promise<void> {
    if (moving.length === 0) return
    const ops: WriteOp[] = []
    for (const m of moving) {
      ops.push(this.stateOp(q, m.priority, m.seq, { status: Status.Ready, deliveries: 0, enqueuedAt: m.state.enqueuedAt, firstDeliveredAt: 0, at: 0, token: this.nextToken++ }))
      ops.push(this.partition.del(messageKey(q.qid, KIND_DEAD, m.priority, m.seq)))
    }
    await this.commit(q, ops)
    if (q.deleted) return
    for (const m of moving) {
      q.addReady(m.priority, m.seq, m.state.enqueuedAt)
      q.history.set(m.seq, { deliveries: 0, firstDeliveredAt: 0 })
    }
    q.deadCount -= moving.length
    this.dispatch(q)
    this.schedule(q)
  }

  /** Deletes every dead letter of the queue; resolves with how many. */
  async purgeDead (name: string): Promise<number> {
    const q = this.mustGet(name)
    return await this.withDeadLock(q, async () => {
      let purged = 0
      await this.eachDeadPage(q, async (ranks, states) => {
        const ops: WriteOp[] = []
        let dead = 0
        ranks.forEach((r, i) => {
          ops.push(this.partition.del(messageKey(q.qid, KIND_DEAD, r.priority, r.seq)))
          if (states[i] !== undefined) {
            dead++
            this.dropBody(q, r.priority, r.seq, ops)
            ops.push(this.partition.del(messageKey(q.qid, KIND_STATE, r.priority, r.seq)))
          }
        })
        await this.commit(q, ops)
        q.deadCount -= dead
        purged += dead
      })
      return purged
    })
  }

  /** Deletes every ready and delayed message (leased ones stay with their consumers); resolves with how many. */
  async purge (name: string): Promise<number> {
    const q = this.mustGet(name)
    const removed = q.clearWaiting()
    for (let i = 0; i < removed.length; i += DELETE_CHUNK / 2) {
      const ops: WriteOp[] = []
      for (const [priority, seq] of removed.slice(i, i + DELETE_CHUNK / 2)) {
        q.forgetBody(seq, true)
        this.dropBody(q, priority, seq, ops)
        ops.push(this.partition.del(messageKey(q.qid, KIND_STATE, priority, seq)))
      }
      await this.commit(q, ops)
    }
    this.schedule(q)
    return removed.length
  }

  private async withDeadLock<T> (q: QueueState, fn: () => Promise<T>): Promise<T> {
    const run = q.deadLock.then(fn, fn)
    q.deadLock = run.catch(() => undefined)
    return await run
  }

  // ---- capture ------------------------------------------------------------------------------------

  private async subscribeCapture (q: QueueState): Promise<void> {
    const previous = q.unsubscribeCapture
    q.unsubscribeCapture = undefined
    if (previous !== undefined) await previous()
    if (q.settings.capture.length === 0 || q.deleted) return
    // durable: an MQTT QoS 1/2 publisher's acknowledgement waits for the captured message's push
    q.unsubscribeCapture = await this.pubsub.subscribe(q.settings.capture, (m: BusMessage) => this.capture(q, m), { durable: true })
  }

  /** Pushes a captured publish; resolves once it is durable, or counted and logged as dropped. */
  private async capture (q: QueueState, m: BusMessage): Promise<void> {
    if (q.deleted || this.closed) return
    try {
      await this.pushTo(q, [{ payload: m.payload, topic: m.topic }])
    } catch (err) {
      this.captureDropped++
      this.options.onError?.(err, `capture of ${m.topic} into queue ${q.name}`)
    }
  }

  // ---- metrics ------------------------------------------------------------------------------------

  /** Per-queue figures for /metrics (no side effects). */
  snapshot (): Array<{ name: string, stats: QueueStats }> {
    return [...this.queues.values()].map(q => ({ name: q.name, stats: this.statsOf(q) }))
  }

  // ---- lifecycle ----------------------------------------------------------------------------------

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const q of this.queues.values()) {
      this.stopQueue(q)
      if (q.unsubscribeCapture !== undefined) await q.unsubscribeCapture()
    }
  }

  private stopQueue (q: QueueState): void {
    q.timer?.cancel()
    q.timer = undefined
    const waiters = q.waiters
    q.waiters = []
    for (const w of waiters) w.serve([])
  }

  private async load (): Promise<void> {
    const stored: Array<{ name: string, record: StoredQueue }> = []
    for await (const [key, value] of this.partition.entries({ gte: CATALOG, lt: prefixEnd(CATALOG) })) {
      const record = JSON.parse(value.toString('utf8')) as StoredQueue
      stored.push({ name: catalogName(key), record })
      this.nextQid = Math.max(this.nextQid, record.qid + 1)
    }
    const known = new Set(stored.map(s => s.record.qid))
    // data of queues deleted while a write was in flight (or by a crash mid-delete): removed now
    let from: Buffer = DATA
    for (;;) {
      const [first] = await this.partition.range({ gte: from, lt: prefixEnd(DATA), limit: 1 })
      if (first === undefined) break
      const qid = first[0].readUInt32BE(1)
      this.nextQid = Math.max(this.nextQid, qid + 1)
      if (!known.has(qid)) await this.deleteData(qid)
      if (qid === 0xffffffff) break
      from = dataPrefix(qid + 1)
    }
    for (const { name, record } of stored) await this.loadQueue(name, record)
    // dead letters made just before a stop that were not yet moved to their deadLetter queue
    for (const q of this.queues.values()) this.forwardExisting(q)
  }

  /** Moves the dead letters a queue already holds to its deadLetter queue (when it has one and it exists). */
  private forwardExisting (q: QueueState): void {
    if (q.settings.deadLetter === null || q.deadCount === 0) return
    q.forwardNeeded = true
    this.forwardAfter(q, Promise.resolve())
  }

  private async loadQueue (name: string, record: StoredQueue): Promise<void> {
    const rawCounters = await this.partition.get(kindPrefix(record.qid, KIND_COUNTERS))
    const counters: QueueCounters = rawCounters === undefined ? { pushed: 0, acked: 0, deadLettered: 0, expired: 0, nextSeq: 0 } : decodeCounters(rawCounters)
    const settings = applySettings(DEFAULT_SETTINGS, record.settings)
    const q = new QueueState(name, record.qid, settings, record.createdAt, counters)
    let maxSeq = -1
    // the latest delivery of each message found in lease records, and the records themselves
    const leasePrefix = kindPrefix(record.qid, KIND_LEASE)
    const leased = new Map<number, LeaseEntry>()
    const leaseRecords: Buffer[] = []
    for await (const [key, value] of this.partition.entries({ gte: leasePrefix, lt: prefixEnd(leasePrefix) })) {
      leaseRecords.push(key)
      q.nextLeaseRecord = Math.max(q.nextLeaseRecord, leaseIdOfKey(key) + 1)
      for (const e of decodeLeases(value)) {
        const seen = leased.get(e.seq)
        if (seen === undefined || seen.token < e.token) leased.set(e.seq, e)
        if (e.token >= this.nextToken) this.nextToken = e.token + 1
      }
    }
    // deliveries known only from a lease record: written as state records, then the records go
    const fromLeases: WriteOp[] = []
    // state records, by seq: only messages delivered before (or dead-lettered) have one
    const statePrefix = kindPrefix(record.qid, KIND_STATE)
    const states = new Map<number, Buffer>()
    for await (const [key, value] of this.partition.entries({ gte: statePrefix, lt: prefixEnd(statePrefix) })) {
      states.set(rankOfKey(key).seq, value)
      const token = stateToken(value)
      if (token >= this.nextToken) this.nextToken = token + 1
    }
    /** Puts a stored message back in the index, from its body and its state and lease records. */
    const restore = (priority: number, seq: number, body: Buffer): void => {
      if (seq > maxSeq) maxSeq = seq
      const rawState = states.get(seq)
      const s = rawState === undefined ? undefined : decodeState(rawState)
      const lease = leased.get(seq)
      if (lease !== undefined && (s === undefined || lease.token > s.token)) {
        // delivered last by a lease that did not end before the stop: ready again, its count kept
        const { enqueuedAt } = bodyTimes(body)
        const history: DeliveryHistory = { deliveries: lease.deliveries, firstDeliveredAt: lease.firstDeliveredAt, lastError: lease.lastError }
        fromLeases.push(this.stateOp(q, priority, seq, { status: Status.Ready, enqueuedAt, at: 0, token: lease.token, ...history }))
        q.history.set(seq, history)
        q.addReady(priority, seq, enqueuedAt)
        return
      }
      if (s === undefined) {
        // never delivered: ready, or delayed until the due time its body holds
        const { enqueuedAt, due } = bodyTimes(body)
        if (due > 0) q.addDelayed(due, priority, seq, enqueuedAt)
        else q.addReady(priority, seq, enqueuedAt)
        return
      }
      if (s.status === Status.Dead) {
        q.deadCount++
        return
      }
      q.history.set(seq, { deliveries: s.deliveries, firstDeliveredAt: s.firstDeliveredAt, lastError: s.lastError })
      // a lease does not survive a restart: the message is ready again, its delivery count kept
      if (s.status === Status.Delayed) q.addDelayed(s.at, priority, seq, s.enqueuedAt)
      else q.addReady(priority, seq, s.enqueuedAt)
    }
    // messages with a body record of their own (state records without a body, none are written that way, are passed over)
    const bodyPrefix = kindPrefix(record.qid, KIND_BODY)
    for await (const [key, value] of this.partition.entries({ gte: bodyPrefix, lt: prefixEnd(bodyPrefix) })) {
      const { priority, seq } = rankOfKey(key)
      restore(priority, seq, value)
    }
    // segments, less the messages their gone bitmaps mark
    const gonePrefix = kindPrefix(record.qid, KIND_GONE)
    const goneRecords = new Map<number, Buffer>()
    for await (const [key, value] of this.partition.entries({ gte: gonePrefix, lt: prefixEnd(gonePrefix) })) goneRecords.set(segmentStartOfKey(key), value)
    const strays: WriteOp[] = []
    const segmentPrefix = kindPrefix(record.qid, KIND_SEGMENT)
    for await (const [key, value] of this.partition.entries({ gte: segmentPrefix, lt: prefixEnd(segmentPrefix) })) {
      const start = segmentStartOfKey(key)
      const count = segmentCount(value)
      const segment = new Segment(start, count, goneRecords.get(start))
      goneRecords.delete(start)
      if (start + count - 1 > maxSeq) maxSeq = start + count - 1
      if (segment.live === 0) {
        // not written that way (the last message to go deletes its segment), but harmless to tidy
        strays.push(this.partition.del(key), this.partition.del(segmentKey(record.qid, KIND_GONE, start)))
        continue
      }
      q.segments.add(segment)
      for (let i = 0; i < count; i++) if (!segment.isGoneAt(i)) restore(segmentPriority(value, i), start + i, segmentBody(value, i))
    }
    for (const start of goneRecords.keys()) strays.push(this.partition.del(segmentKey(record.qid, KIND_GONE, start)))
    if (strays.length > 0) await this.storage.write(strays)
    // the state records first: a stop between the two steps leaves records that agree with each other
    for (let i = 0; i < fromLeases.length; i += DELETE_CHUNK) await this.storage.write(fromLeases.slice(i, i + DELETE_CHUNK))
    for (let i = 0; i < leaseRecords.length; i += DELETE_CHUNK) await this.storage.write(leaseRecords.slice(i, i + DELETE_CHUNK).map(k => this.partition.del(k)))
    counters.nextSeq = Math.max(counters.nextSeq, maxSeq + 1)
    const now = this.clock.now()
    const dedupPrefix = kindPrefix(record.qid, KIND_DEDUP)
    const dedup: Array<{ dedupId: string, id: string, expiresAt: number }> = []
    const stale: WriteOp[] = []
    for await (const [key, value] of this.partition.entries({ gte: dedupPrefix, lt: prefixEnd(dedupPrefix) })) {
      const entry = decodeDedup(key, value)
      if (entry.expiresAt > now) dedup.push(entry)
      else stale.push(this.partition.del(key))
    }
    dedup.sort((a, b) => a.expiresAt - b.expiresAt)
    const done = Promise.resolve()
    for (const d of dedup) q.dedup.set(d.dedupId, { id: d.id, expiresAt: d.expiresAt, durable: done })
    for (let i = 0; i < stale.length; i += DELETE_CHUNK) await this.storage.write(stale.slice(i, i + DELETE_CHUNK))
    this.queues.set(name, q)
    await this.subscribeCapture(q)
    this.processDue(q, now)
    this.schedule(q)
  }

  private async create (name: string, patch: SettingsPatch): Promise<QueueState> {
    const existing = this.creating.get(name)
    if (existing !== undefined) return await existing
    const settings = applySettings(DEFAULT_SETTINGS, patch)
    if (settings.deadLetter === name) throw new InvalidArgument('deadLetter must name another queue')
    const pending = (async () => {
      const q = new QueueState(name, this.nextQid++, settings, this.clock.now(), { pushed: 0, acked: 0, deadLettered: 0, expired: 0, nextSeq: 0 })
      await this.storage.write([this.partition.put(catalogKey(name), this.catalogRecord(q, settings)), this.countersOp(q)])
      this.queues.set(name, q)
      await this.subscribeCapture(q)
      // queues whose dead letters go here and could not be moved while it was missing
      for (const other of this.queues.values()) if (other.settings.deadLetter === name) this.forwardExisting(other)
      return q
    })()
    this.creating.set(name, pending)
    try {
      return await pending
    } finally {
      this.creating.delete(name)
    }
  }

  private async deleteData (qid: number): Promise<void> {
    const prefix = dataPrefix(qid)
    // every round deletes what it read, so the loop ends once the queue's keys are gone
    for (;;) {
      const rows = await this.partition.range({ gte: prefix, lt: prefixEnd(prefix), limit: DELETE_CHUNK })
      if (rows.length === 0) return
      await this.storage.write(rows.map(([k]) => this.partition.del(k)))
    }
  }

  // ---- helpers ------------------------------------------------------------------------------------

  private mustGet (name: string): QueueState {
    validateQueueName(name)
    this.checkOpen()
    const q = this.queues.get(name)
    if (q === undefined) throw new NotFound(`queue "${name}" does not exist`)
    return q
  }

  private checkOpen (): void {
    if (this.closed) throw new Unavailable('the queue engine is shutting down')
  }

  private describe (q: QueueState): QueueInfo {
    this.processDue(q, this.clock.now())
    return { name: q.name, createdAt: q.createdAt, settings: { ...q.settings, capture: [...q.settings.capture] }, stats: this.statsOf(q) }
  }

  private statsOf (q: QueueState): QueueStats {
    return {
      ready: q.readyCount,
      leased: q.leasedCount,
      delayed: q.delayedCount,
      dead: q.deadCount,
      pushed: q.counters.pushed,
      acked: q.counters.acked,
      deadLettered: q.counters.deadLettered,
      expired: q.counters.expired,
      waiting: q.waiters.length
    }
  }

  private catalogRecord (q: QueueState, settings: QueueSettings): Buffer {
    const record: StoredQueue = { qid: q.qid, createdAt: q.createdAt, settings }
    return Buffer.from(JSON.stringify(record))
  }

  private countersOp (q: QueueState): WriteOp {
    return this.partition.put(kindPrefix(q.qid, KIND_COUNTERS), encodeCounters(q.counters))
  }

  private stateOp (q: QueueState, priority: number, seq: number, state: MessageState): WriteOp {
    return this.partition.put(messageKey(q.qid, KIND_STATE, priority, seq), encodeState(state))
  }

  /**
   * Every write of a queue goes through here: the changes of its segments since its last write
   * (QueueState.changedSegments) join the ops, so they are durable with the change that made them.
   */
  private commit (q: QueueState, ops: WriteOp[], counters = false): Promise<void> {
    this.flushSegments(q, ops)
    if (!counters || q.countersPending) return this.storage.write(ops)
    // The counters record, once per group commit: the first write of the group that changes them carries
    // it, encoded when the storage assembles the batch, so it covers every change made until then. Every
    // change to the counters is written by the same synchronous step that makes it, so its ops are in that
    // same atomic batch: the record is never ahead of or behind the messages it counts.
    q.countersPending = true
    ops.push(this.partition.put(kindPrefix(q.qid, KIND_COUNTERS), () => {
      q.countersPending = false
      return encodeCounters(q.counters)
    }))
    const written = this.storage.write(ops)
    // a write refused before its batch was assembled (storage closing) leaves the next one to carry it
    written.catch(() => { q.countersPending = false })
    return written
  }

  /** Deletes a message's stored body: its own record, or its place in its segment (written by commit). */
  private dropBody (q: QueueState, priority: number, seq: number, ops: WriteOp[]): void {
    const segment = q.segments.find(seq)
    if (segment === undefined) ops.push(this.partition.del(messageKey(q.qid, KIND_BODY, priority, seq)))
    else {
      // an open segment takes no more messages once one of its own went: its gone bitmap has its size
      if (q.openSegment === segment) q.openSegment = undefined
      if (segment.markGone(seq)) q.changedSegments.add(segment)
    }
  }

  /** Ops for the segments that changed: a segment whose messages are all gone is deleted, else its gone bitmap is written. */
  private flushSegments (q: QueueState, ops: WriteOp[]): void {
    if (q.changedSegments.size === 0) return
    for (const segment of q.changedSegments) {
      if (segment.live > 0) {
        ops.push(this.partition.put(segmentKey(q.qid, KIND_GONE, segment.start), segment.goneRecord()))
        segment.goneWritten = true
        continue
      }
      ops.push(this.partition.del(segmentKey(q.qid, KIND_SEGMENT, segment.start)))
      if (segment.goneWritten) ops.push(this.partition.del(segmentKey(q.qid, KIND_GONE, segment.start)))
      q.segments.remove(segment)
      q.uncacheSegment(segment)
      q.forgetSegmentRead(segment.start)
    }
    q.changedSegments.clear()
  }

  /** The stored bodies of messages (undefined for one that is gone), from their segments or their own records. */
  private async readBodies (q: QueueState, refs: ReadonlyArray<{ priority: number, seq: number }>): Promise<Array<Buffer | undefined>> {
    const out: Array<Buffer | undefined> = new Array(refs.length).fill(undefined)
    const keys: Buffer[] = []
    // per key read: the index in refs it answers, or the segment it is
    const targets: Array<number | Segment> = []
    const waiting = new Map<Segment, number[]>()
    for (let i = 0; i < refs.length; i++) {
      const { priority, seq } = refs[i]
      const segment = q.segments.find(seq)
      if (segment === undefined) {
        keys.push(messageKey(q.qid, KIND_BODY, priority, seq))
        targets.push(i)
        continue
      }
      if (segment.isGone(seq)) continue
      if (segment.open !== undefined) {
        out[i] = segment.open.body(seq - segment.start)
        continue
      }
      const cached = q.segmentReads.get(segment.start)
      if (cached !== undefined) {
        out[i] = segmentBody(cached, seq - segment.start)
        continue
      }
      let indexes = waiting.get(segment)
      if (indexes === undefined) {
        indexes = []
        waiting.set(segment, indexes)
        keys.push(segmentKey(q.qid, KIND_SEGMENT, segment.start))
        targets.push(segment)
      }
      indexes.push(i)
    }
    if (keys.length === 0) return out
    const values = await this.partition.getMany(keys)
    for (let k = 0; k < keys.length; k++) {
      const target = targets[k]
      const value = values[k]
      if (typeof target === 'number') out[target] = value
      else if (value !== undefined) {
        q.keepSegmentRead(target.start, value)
        for (const i of waiting.get(target) as number[]) out[i] = segmentBody(value, refs[i].seq - target.start)
      }
    }
    return out
  }

  /** Whether each message is still stored (in a segment, or in a body record of its own). */
  private async messagesExist (q: QueueState, refs: ReadonlyArray<{ priority: number, seq: number }>): Promise<boolean[]> {
    const out = refs.map(r => {
      const segment = q.segments.find(r.seq)
      return segment !== undefined && !segment.isGone(r.seq)
    })
    const own = refs.flatMap((r, i) => q.segments.find(r.seq) === undefined ? [i] : [])
    if (own.length === 0) return out
    const bodies = await this.partition.getMany(own.map(i => messageKey(q.qid, KIND_BODY, refs[i].priority, refs[i].seq)))
    own.forEach((i, k) => { out[i] = bodies[k] !== undefined })
    return out
  }

  /** Writes state changes nobody waits for (expiries, promotions); they keep their order with later writes. */
  private background (q: QueueState, ops: WriteOp[]): void {
    if (ops.length === 0 && q.changedSegments.size === 0) return
    const written = this.commit(q, ops, true)
    written.catch(err => { this.options.onError?.(err, `queue ${q.name}: background write`) })
    this.forwardAfter(q, written)
  }

  /** When dead letters were made that go to another queue: moves them once their write is durable. */
  private forwardAfter (q: QueueState, written: Promise<void>): void {
    if (!q.forwardNeeded) return
    q.forwardNeeded = false
    this.withDeadLock(q, async () => {
      await written
      await this.forwardDead(q)
    }).catch(err => { this.options.onError?.(err, `queue ${q.name}: moving dead letters to ${q.settings.deadLetter ?? '?'}`) })
  }

  /**
   * Moves this queue's dead letters to its deadLetter queue as ready messages (deliveries reset, the
   * reason and history in x-dead-letter-* headers), each page in one atomic write. Dead letters the
   * target cannot take (too large, queue missing) stay here.
   */
  private async forwardDead (q: QueueState): Promise<void> {
    const prefix = kindPrefix(q.qid, KIND_DEAD)
    let after: Buffer | undefined
    for (;;) {
      const target = q.settings.deadLetter === null ? undefined : this.queues.get(q.settings.deadLetter)
      if (target === undefined || target === q || q.deleted || this.closed) return
      const rows = await this.partition.range(after === undefined ? { gte: prefix, lt: prefixEnd(prefix), limit: PAGE } : { gt: after, lt: prefixEnd(prefix), limit: PAGE })
      if (rows.length === 0) return
      after = rows[rows.length - 1][0]
      const ranks = rows.map(([k]) => rankOfKey(k))
      const [bodies, states] = await Promise.all([
        this.readBodies(q, ranks),
        this.partition.getMany(ranks.map(r => messageKey(q.qid, KIND_STATE, r.priority, r.seq)))
      ])
      const messages: PushMessage[] = []
      const removals: WriteOp[] = []
      let moved = 0
      ranks.forEach((r, i) => {
        const rawBody = bodies[i]
        const rawState = states[i]
        const state = rawState === undefined ? undefined : decodeState(rawState)
        if (rawBody === undefined || state?.status !== Status.Dead) {
          removals.push(this.partition.del(messageKey(q.qid, KIND_DEAD, r.priority, r.seq)))
          return
        }
        const body = decodeBody(rawBody)
        const headers: Record<string, string> = {
          ...body.headers,
          'x-dead-letter-queue': q.name,
          'x-dead-letter-id': messageId(r.priority, r.seq),
          'x-dead-letter-reason': state.reason ?? 'dead-lettered',
          'x-dead-letter-deliveries': String(state.deliveries),
          ...(state.lastError !== undefined ? { 'x-dead-letter-error': state.lastError } : {})
        }
        const message: PushMessage = { payload: body.payload, priority: r.priority, headers, topic: body.topic }
        try {
          this.validateMessage(target, message, 'dead letter')
        } catch {
          return
        }
        messages.push(message)
        moved++
        removals.push(
          this.partition.del(messageKey(q.qid, KIND_DEAD, r.priority, r.seq)),
          this.partition.del(messageKey(q.qid, KIND_STATE, r.priority, r.seq))
        )
        this.dropBody(q, r.priority, r.seq, removals)
      })
      // this queue's segment changes go in the target's write, atomic with the moved messages
      this.flushSegments(q, removals)
      // counted out of this queue as they are counted into the target (pushTo counts them before its
      // write), so the two queues' counts never show a message in both; a failed write puts them back
      q.deadCount -= moved
      try {
        if (messages.length > 0) await this.pushTo(target, messages, removals)
        else if (removals.length > 0) await this.commit(q, removals)
      } catch (err) {
        q.deadCount += moved
        throw err
      }
    }
  }
}
