import { Conflict, InvalidArgument, NotFound, TooLarge } from '../errors.js'
import type { WriteOp } from '../storage/storage.js'
import { prefixEnd } from '../storage/keys.js'
import { chunkCount, decodeEntry, encodeChunk, encodeDedup, entryTimestamp, forEachInChunk, keys, offsetOfKey, prepareEntry, TAG, timeKeyParts, type PreparedEntry, type StreamEntry } from './codec.js'
import type { AppendMessage, StreamContext, StreamRecord } from './types.js'
import type { ConsumerGroup } from './group.js'

/** Entries of an append batch go into chunks of about this many bytes. */
const CHUNK_BYTES = 32 * 1024

interface DedupEntry { offset: number, timestamp: number, written: Promise<void> | null }

export interface ReadResult {
  messages: StreamEntry[]
  /** The offset to read from next. */
  next: number
  /** True when the requested offset was below the retained range and reading began at firstOffset. */
  truncated: boolean
  firstOffset: number
}

/**
 * One stream: its record (settings and counters), its dedup window and the readers waiting for new
 * entries. Entries themselves live only in LevelDB; nothing here grows with the stream's length.
 */
export class StreamLog {
  /** Every offset below this is written (visible to readers); appends in flight are at or above it. */
  durableNext: number
  deleted = false
  readonly groups = new Map<string, ConsumerGroup>()
  private readonly dedup = new Map<string, DedupEntry>()
  private readonly waiters = new Set<() => void>()
  /** The chunk the last read stopped in (one per stream, at most about 32 KiB): the next page starts there. */
  private lastChunk: { key: Buffer, first: number, count: number, chunk: Buffer } | null = null
  /** Unsubscribes the capture filters from the bus. */
  captureOff: (() => Promise<void>) | null = null
  /** Resolves once the capture filters are subscribed on the bus. */
  captureReady: Promise<void> | null = null
  /** Captured messages buffered or being written (for the capture drop threshold). */
  capturePending = 0

  constructor (readonly name: string, readonly record: StreamRecord, private readonly ctx: StreamContext) {
    this.durableNext = record.next
  }

  get id (): number { return this.record.id }
  get first (): number { return this.record.first }
  get count (): number { return this.record.next - this.record.first }

  metaOp (): WriteOp {
    return this.ctx.partition.put(keys.meta(this.name), Buffer.from(JSON.stringify(this.record)))
  }

  /** Restores a dedup id read from storage at startup (oldest first). */
  restoreDedup (dedupId: string, offset: number, timestamp: number): void {
    this.dedup.set(dedupId, { offset, timestamp, written: null })
  }

  /**
   * Appends a batch: offsets are assigned at once (so concurrent appends order as they arrive) and the
   * promise resolves once the batch, the time index point, the dedup ids and the updated record are
   * written in one atomic storage write.
   */
  async append (messages: AppendMessage[], expectedLastOffset?: number): Promise<number[]> {
    const { limits, clock, partition } = this.ctx
    if (this.deleted) throw new NotFound(`stream ${this.name} does not exist`)
    if (messages.length === 0) throw new InvalidArgument('no messages to append')
    if (messages.length > limits.maxBatch) throw new InvalidArgument(`at most ${limits.maxBatch} messages per append`)
    const encoded: PreparedEntry[] = []
    const now = Math.max(clock.now(), this.record.lastTimestamp)
    for (const m of messages) {
      const entry = prepareEntry({ timestamp: now, payload: m.payload, key: m.key, headers: m.headers, topic: m.topic, qos: m.qos, retain: m.retain })
      if (entry.size - 9 > limits.maxMessageBytes) {
        throw new TooLarge(`a message of ${entry.size - 9} bytes exceeds the limit of ${limits.maxMessageBytes} bytes`, { limit: limits.maxMessageBytes })
      }
      encoded.push(entry)
    }
    this.expireDedup(now)
    const window = this.record.settings.dedupWindowMs
    // a retried batch whose every message was already appended gets its offsets back, whatever moved since
    const allSeen = window > 0 && messages.every(m => m.dedupId !== undefined && this.dedup.has(m.dedupId))
    if (!allSeen && expectedLastOffset !== undefined && expectedLastOffset !== this.record.next - 1) {
      throw new Conflict(`the stream's last offset is ${this.record.next - 1}, not ${expectedLastOffset}`, { lastOffset: this.record.next - 1 })
    }
    const offsets: number[] = []
    const waitFor: Array<Promise<void>> = []
    const ops: WriteOp[] = []
    const newDedup: DedupEntry[] = []
    const firstNew = this.record.next
    const fresh: PreparedEntry[] = []
    for (let i = 0; i < messages.length; i++) {
      const dedupId = messages[i].dedupId
      if (dedupId !== undefined && window > 0) {
        const seen = this.dedup.get(dedupId)
        if (seen !== undefined) {
          offsets.push(seen.offset)
          if (seen.written !== null) waitFor.push(seen.written)
          this.ctx.stats.deduplicated++
          continue
        }
      }
      const offset = this.record.next++
      offsets.push(offset)
      fresh.push(encoded[i])
      this.record.bytes += encoded[i].size
      if (dedupId !== undefined && window > 0) {
        const entry: DedupEntry = { offset, timestamp: now, written: null }
        this.dedup.set(dedupId, entry)
        newDedup.push(entry)
        ops.push(partition.put(keys.dedup(this.id, dedupId), encodeDedup(offset, now)))
      }
    }
    if (fresh.length === 0) {
      await Promise.all(waitFor)
      return offsets
    }
    // one chunk per CHUNK_BYTES of entries: a seek reads one small value, an append writes few keys
    for (let i = 0, chunkStart = firstNew; i < fresh.length;) {
      let j = i
      let size = 0
      while (j < fresh.length && (j === i || size + fresh[j].size <= CHUNK_BYTES)) size += fresh[j++].size
      ops.push(partition.put(keys.entry(this.id, chunkStart), encodeChunk(fresh.slice(i, j))))
      chunkStart += j - i
      i = j
    }
    if (now > this.record.lastIndexedTimestamp) {
      ops.push(partition.put(keys.time(this.id, now, firstNew), Buffer.alloc(0)))
      this.record.lastIndexedTimestamp = now
    }
    this.record.lastTimestamp = now
    if (this.dedup.size > limits.maxDedupIds) this.trimDedup(ops, this.dedup.size - limits.maxDedupIds)
    ops.push(this.metaOp())
    const upTo = this.record.next
    this.ctx.stats.appended += upTo - firstNew
    this.ctx.stats.appendBatches++
    const written = this.ctx.storage.write(ops).then(() => {
      if (upTo > this.durableNext) this.durableNext = upTo
      this.wake()
    })
    for (const e of newDedup) e.written = written
    void written.then(() => { for (const e of newDedup) e.written = null }, () => {})
    await written
    if (waitFor.length > 0) await Promise.all(waitFor)
    return offsets
  }

  /** Forgets dedup ids older than the window (their keys are deleted in a write of their own). */
  private expireDedup (now: number): void {
    const window = this.record.settings.dedupWindowMs
    const ops: WriteOp[] = []
    for (const [id, e] of this.dedup) {
      if (window > 0 && e.timestamp > now - window) break
      if (e.written !== null) break
      this.dedup.delete(id)
      ops.push(this.ctx.partition.del(keys.dedup(this.id, id)))
      if (ops.length >= 1000) break
    }
    if (ops.length > 0) void this.ctx.storage.write(ops).catch(() => {})
  }

  private trimDedup (ops: WriteOp[], n: number): void {
    for (const [id] of this.dedup) {
      if (n-- <= 0) break
      this.dedup.delete(id)
      ops.push(this.ctx.partition.del(keys.dedup(this.id, id)))
    }
  }

  /** Runs the dedup expiry from the background (retention) pass. */
  sweepDedup (): void { this.expireDedup(Math.max(this.ctx.clock.now(), this.record.lastTimestamp)) }

  get dedupSize (): number { return this.dedup.size }

  /**
   * Visits the entries of [start, end) in order, at most limit of them, until fn returns false. One
   * reverse seek finds the chunk holding start; the following chunks are read a few at a time.
   */
  async scan (start: number, end: number, limit: number, fn: (offset: number, entry: Buffer) => boolean): Promise<void> {
    const { partition } = this.ctx
    const prefix = keys.idPrefix(TAG.entry, this.id)
    const upper = keys.entry(this.id, end)
    let visited = 0
    let stopped = false
    const visit = (offset: number, entry: Buffer): boolean => {
      if (offset >= end || visited >= limit) { stopped = true; return false }
      visited++
      if (!fn(offset, entry)) { stopped = true; return false }
      return true
    }
    let range: { gte?: Buffer, gt?: Buffer } = { gte: keys.entry(this.id, start) }
    let perChunk = 1
    // a reader paging forward starts in the chunk where the previous read stopped: no seek for it
    let head = this.lastChunk !== null && this.lastChunk.first <= start && start < this.lastChunk.first + this.lastChunk.count ? this.lastChunk : null
    if (head === null) {
      const rows = await partition.range({ gte: prefix, lte: keys.entry(this.id, start), reverse: true, limit: 1 })
      if (rows.length > 0) head = { key: rows[0][0], first: offsetOfKey(rows[0][0]), count: chunkCount(rows[0][1]), chunk: rows[0][1] }
    }
    if (head !== null) {
      forEachInChunk(head.first, head.chunk, start, visit)
      this.lastChunk = head
      range = { gt: head.key }
      perChunk = Math.max(1, head.count)
      // the first chunk held everything asked for (or the end of the stream): no second seek
      if (stopped || visited >= limit || head.first + head.count >= end) return
    }
    // bounded: every round reads at least one chunk, or stops
    for (let batch = Math.min(64, Math.ceil((limit - visited) / perChunk) + 1), round = 0; !stopped && round < 1_000_000; round++, batch = Math.min(batch * 4, 64)) {
      const rows = await partition.range({ ...range, lt: upper, limit: batch })
      for (const [key, chunk] of rows) {
        const first = offsetOfKey(key)
        forEachInChunk(first, chunk, start, visit)
        if (stopped || visited >= limit) {
          this.lastChunk = { key, first, count: chunkCount(chunk), chunk }
          break
        }
      }
      if (stopped || rows.length < batch) break
      range = { gt: rows[rows.length - 1][0] }
    }
  }

  /** Reads up to limit entries from offset (clamped into the retained, written range). */
  async read (from: number, limit: number): Promise<ReadResult> {
    const start = Math.max(from, this.record.first)
    const end = this.durableNext
    const firstOffset = this.record.first
    if (start >= end || limit <= 0) return { messages: [], next: Math.max(start, Math.min(from, end)), truncated: from < firstOffset, firstOffset }
    const messages: StreamEntry[] = []
    await this.scan(start, end, limit, (offset, entry) => { messages.push(decodeEntry(offset, entry)); return true })
    const next = messages.length > 0 ? messages[messages.length - 1].offset + 1 : start
    return { messages, next, truncated: messages.length > 0 ? messages[0].offset > from : from < firstOffset, firstOffset: this.record.first }
  }

  /** Reads specific offsets (those that no longer exist are left out). */
  async readOffsets (offsets: number[]): Promise<Map<number, StreamEntry>> {
    const out = new Map<number, StreamEntry>()
    const sorted = [...new Set(offsets)].sort((a, b) => a - b)
    const first = this.record.first
    // consecutive runs are read with one scan each
    for (let i = 0; i < sorted.length;) {
      let j = i
      while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++
      const from = Math.max(sorted[i], first)
      const to = Math.min(sorted[j] + 1, this.durableNext)
      if (from < to) await this.scan(from, to, to - from, (offset, entry) => { out.set(offset, decodeEntry(offset, entry)); return true })
      i = j + 1
    }
    return out
  }

  /**
   * The first offset whose timestamp is at or after time (durableNext when there is none). One head read
   * and one index seek: entries of one batch share a timestamp and the index holds a point at the first
   * offset of every new timestamp, so the first index point at or after time is the answer.
   */
  async seekTime (time: number): Promise<number> {
    const first = this.record.first
    const end = this.durableNext
    if (first >= end) return end
    const prefix = keys.idPrefix(TAG.time, this.id)
    let headTime = -1
    const [, rows] = await Promise.all([
      this.scan(first, first + 1, 1, (_, entry) => { headTime = entryTimestamp(entry); return false }),
      this.ctx.partition.range({ gte: keys.time(this.id, time, 0), lt: prefixEnd(prefix), limit: 1 })
    ])
    // the head of the retained range may sit in a batch whose index point retention already removed
    if (headTime >= time) return first
    if (rows.length === 0) return end
    return Math.min(Math.max(timeKeyParts(rows[0][0]).offset, first), end)
  }

  /** Resolves when an append was written (or the stream is deleted, or the signal aborts). */
  async changed (signal?: AbortSignal): Promise<void> {
    if (this.deleted || signal?.aborted === true) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      this.waiters.add(done)
      signal?.addEventListener('abort', done)
    })
  }

  wake (): void {
    if (this.waiters.size > 0) {
      const waiting = [...this.waiters]
      this.waiters.clear()
      for (const w of waiting) w()
    }
    for (const g of this.groups.values()) g.onAppend()
  }
}
