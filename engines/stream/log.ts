import { Conflict, InvalidArgument, NotFound, TooLarge } from '../errors.js'
import type { WriteOp } from '../storage/storage.js'
import { prefixEnd } from '../storage/keys.js'
import { chunkCount, decodeEntryAt, encodeChunk, encodeDedup, entryTimestampAt, forEachInChunk, keys, offsetOfKey, prepareEntry, TAG, timeKeyParts, type PreparedEntry, type StreamEntry } from './codec.js'
import { TimeIndex } from './time-index.js'
import { ChunkIndex } from './chunk-index.js'
import type { AppendMessage, StreamContext, StreamRecord } from './types.js'
import type { ConsumerGroup } from './group.js'

/** Entries of an append batch go into chunks of about this many bytes. */
const CHUNK_BYTES = 32 * 1024

interface DedupEntry { offset: number, timestamp: number, written: Promise<void> | null }

/** A chunk as read from storage, with its first offset and entry count. */
interface CachedChunk { key: Buffer, first: number, count: number, chunk: Buffer }

const cachedChunk = (key: Buffer, chunk: Buffer): CachedChunk => ({ key, first: offsetOfKey(key), count: chunkCount(chunk), chunk })

/**
 * What a stream keeps of the chunks around its last read: at most this many, of at most this many bytes
 * (more only when a single chunk is larger). With the read-ahead, a stream being read holds at most about
 * 512 KiB of chunks in memory.
 */
const WINDOW_CHUNKS = 8
const WINDOW_BYTES = 256 * 1024
/** Bytes of chunks read ahead for a sequential reader. */
const READ_AHEAD_BYTES = 256 * 1024

export interface ReadResult {
  messages: StreamEntry[]
  /** The offset to read from next. */
  next: number
  /** True when the requested offset was below the retained range and reading began at firstOffset. */
  truncated: boolean
  firstOffset: number
}

/**
 * One stream: its record (settings and counters), its dedup window, the readers waiting for new
 * entries and two bounded in-memory indexes (time and chunk offsets). Entries themselves live only in
 * LevelDB; nothing here grows with the stream's length beyond those bounds.
 */
export class StreamLog {
  /** Every offset below this is written (visible to readers); appends in flight are at or above it. */
  durableNext: number
  deleted = false
  readonly groups = new Map<string, ConsumerGroup>()
  private readonly dedup = new Map<string, DedupEntry>()
  private readonly waiters = new Set<() => void>()
  /** The chunk the last read stopped in and a few after it (bounded): the next page starts there. */
  private window: CachedChunk[] = []
  /** The chunks after the window, requested before a sequential reader asks for them. */
  private ahead: { after: Buffer, end: number, rows: Promise<Array<[Buffer, Buffer]>> } | null = null
  /** Offset and timestamp of the first retained entry, once read. */
  private head: { offset: number, timestamp: number } | null = null
  /** The time index in memory; null until loadTimeIndex() has read the stored one. */
  private timeIndex: TimeIndex | null = null
  /** The first offsets of the chunks written since the stream was opened (bounded). */
  private readonly chunkIndex: ChunkIndex
  /** Points of batches written while the stored time index is being loaded. */
  private loadingPoints: Array<{ timestamp: number, offset: number }> | null = []
  private loadingOverflow = false
  /** Unsubscribes the capture filters from the bus. */
  captureOff: (() => Promise<void>) | null = null
  /** Resolves once the capture filters are subscribed on the bus. */
  captureReady: Promise<void> | null = null
  /** Captured messages buffered or being written (for the capture drop threshold). */
  capturePending = 0
  /** The record's key, built once: the record is rewritten with every append batch. */
  private readonly metaKey: Buffer

  constructor (readonly name: string, readonly record: StreamRecord, private readonly ctx: StreamContext, fresh = false) {
    this.durableNext = record.next
    this.metaKey = keys.meta(name)
    this.chunkIndex = new ChunkIndex(record.next, ctx.limits.indexPoints)
    // a new stream has no stored points to load
    if (fresh) {
      this.timeIndex = new TimeIndex(ctx.limits.indexPoints)
      this.loadingPoints = null
    }
  }

  get id (): number { return this.record.id }
  get first (): number { return this.record.first }
  get count (): number { return this.record.next - this.record.first }

  metaOp (): WriteOp {
    return this.ctx.partition.put(this.metaKey, Buffer.from(JSON.stringify(this.record)))
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
      const entry = prepareEntry(m, now)
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
    const chunkStarts: number[] = []
    for (let i = 0, chunkStart = firstNew; i < fresh.length;) {
      let j = i
      let size = 0
      while (j < fresh.length && (j === i || size + fresh[j].size <= CHUNK_BYTES)) size += fresh[j++].size
      ops.push(partition.put(keys.entry(this.id, chunkStart), encodeChunk(fresh.slice(i, j))))
      chunkStarts.push(chunkStart)
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
      this.indexBatch(now, firstNew)
      for (const c of chunkStarts) this.chunkIndex.add(c)
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
   * Visits the entries of [start, end) in order, at most limit of them, until fn returns false; the
   * entry's bytes are chunk[at, at + len). A reader paging forward continues in the chunks the previous
   * read stopped in (no seek); otherwise one reverse seek finds the chunk holding start. The following
   * chunks are read a few at a time, and a sequential reader's next chunks are requested from storage
   * before this page is decoded, so storage and decoding overlap.
   */
  async scan (start: number, end: number, limit: number, fn: (offset: number, chunk: Buffer, at: number, len: number) => boolean): Promise<void> {
    let visited = 0
    let stopped = false
    const visit = (offset: number, chunk: Buffer, at: number, len: number): boolean => {
      if (offset >= end || visited >= limit) { stopped = true; return false }
      visited++
      if (!fn(offset, chunk, at, len)) { stopped = true; return false }
      return true
    }
    let chunks = this.window
    let i = chunks.findIndex(c => c.first <= start && start < c.first + c.count)
    // the previous read ended with the last chunk it kept: this one starts with the chunk after it
    if (i < 0 && chunks.length > 0 && chunks[chunks.length - 1].first + chunks[chunks.length - 1].count === start) i = chunks.length
    const sequential = i >= 0
    if (!sequential) {
      this.ahead = null
      const head = await this.chunkHolding(start)
      if (head === null) return
      chunks = [head]
      i = 0
    }
    let perChunk = Math.max(1, chunks[Math.min(i, chunks.length - 1)].count)
    // bounded: every round visits at least one chunk, or stops
    for (let round = 0; round < 1_000_000; round++) {
      for (; i < chunks.length; i++) {
        const c = chunks[i]
        forEachInChunk(c.first, c.chunk, start, visit)
        // the read stops in this chunk (or the stream ends in it): the next page starts here
        if (stopped || visited >= limit || c.first + c.count >= end) {
          this.keepWindow(chunks, i)
          return
        }
      }
      const last = chunks[chunks.length - 1]
      const want = Math.min(64, Math.ceil((limit - visited) / perChunk) + 1)
      const rows = await this.chunksAfter(last.key, end, want)
      if (rows.length === 0) {
        this.keepWindow(chunks, chunks.length - 1)
        return
      }
      chunks = rows.map(([key, value]) => cachedChunk(key, value))
      i = 0
      const tail = chunks[chunks.length - 1]
      perChunk = Math.max(1, Math.round((tail.first + tail.count - chunks[0].first) / chunks.length))
      if (sequential) this.readAhead(chunks, end, Math.min(16, Math.ceil(limit / perChunk) + 1))
    }
  }

  /**
   * The chunk holding `offset` (or the last one before it): a point lookup when the chunk index knows
   * its key, else a reverse seek.
   */
  private async chunkHolding (offset: number): Promise<CachedChunk | null> {
    this.chunkIndex.dropBelow(this.record.first)
    const known = this.chunkIndex.chunkOf(offset)
    if (known !== undefined) {
      const key = keys.entry(this.id, known)
      const value = await this.ctx.partition.get(key)
      // gone meanwhile (retention): the reverse seek says what is there now
      if (value !== undefined) return cachedChunk(key, value)
    }
    const rows = await this.ctx.partition.range({ gte: keys.idPrefix(TAG.entry, this.id), lte: keys.entry(this.id, offset), reverse: true, limit: 1 })
    return rows.length > 0 ? cachedChunk(rows[0][0], rows[0][1]) : null
  }

  /** Keeps the chunk a read stopped in and a few after it (bounded) for the next page. */
  private keepWindow (chunks: CachedChunk[], from: number): void {
    let bytes = 0
    let to = from
    while (to < chunks.length && to - from < WINDOW_CHUNKS && (to === from || bytes + chunks[to].chunk.length <= WINDOW_BYTES)) bytes += chunks[to++].chunk.length
    this.window = from === 0 && to === chunks.length ? chunks : chunks.slice(from, to)
    // a read-ahead that does not continue the kept chunks is of no use any more
    if (this.ahead !== null && !this.ahead.after.equals(this.window[this.window.length - 1].key)) this.ahead = null
  }

  /** Starts reading the chunks after the last of `chunks` (the next page of a sequential reader). */
  private readAhead (chunks: CachedChunk[], end: number, want: number): void {
    const last = chunks[chunks.length - 1]
    if (last.first + last.count >= end) return
    let bytes = 0
    for (const c of chunks) bytes += c.chunk.length
    const n = Math.max(1, Math.min(want, Math.floor(READ_AHEAD_BYTES / Math.max(1, bytes / chunks.length))))
    const rows = this.ctx.partition.range({ gt: last.key, lt: keys.entry(this.id, end), limit: n })
    // a failure surfaces to the read that uses it (or to nobody when the read never comes)
    rows.catch(() => {})
    this.ahead = { after: last.key, end, rows }
  }

  /** Up to `want` chunks after the chunk key `after` and below offset `end`: from the read-ahead when it fits. */
  private async chunksAfter (after: Buffer, end: number, want: number): Promise<Array<[Buffer, Buffer]>> {
    const ahead = this.ahead
    if (ahead !== null && ahead.after.equals(after)) {
      this.ahead = null
      const rows = await ahead.rows
      // an empty read-ahead only says nothing was there when it was sent
      if (rows.length > 0 || ahead.end >= end) return rows
    }
    return await this.ctx.partition.range({ gt: after, lt: keys.entry(this.id, end), limit: want })
  }

  /** Reads up to limit entries from offset (clamped into the retained, written range). */
  async read (from: number, limit: number): Promise<ReadResult> {
    const start = Math.max(from, this.record.first)
    const end = this.durableNext
    const firstOffset = this.record.first
    if (start >= end || limit <= 0) return { messages: [], next: Math.max(start, Math.min(from, end)), truncated: from < firstOffset, firstOffset }
    const messages: StreamEntry[] = []
    await this.scan(start, end, limit, (offset, chunk, at, len) => { messages.push(decodeEntryAt(offset, chunk, at, len)); return true })
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
      if (from < to) await this.scan(from, to, to - from, (offset, chunk, at, len) => { out.set(offset, decodeEntryAt(offset, chunk, at, len)); return true })
      i = j + 1
    }
    return out
  }

  /**
   * Loads the stored time index points into memory (at startup, in the background: until it is done,
   * seeks by time read the stored index). Points written meanwhile are stored too, so the load reads
   * on until it finds no more; those that land in between are added from `loadingPoints`.
   */
  async loadTimeIndex (isStopped: () => boolean): Promise<void> {
    const { partition } = this.ctx
    const prefix = keys.idPrefix(TAG.time, this.id)
    const index = new TimeIndex(this.ctx.limits.indexPoints)
    let range: { gte?: Buffer, gt?: Buffer } = { gte: prefix }
    // bounded: every round reads at least one point, or stops
    for (let round = 0; round < 100_000_000; round++) {
      if (this.deleted || isStopped()) return
      const rows = await partition.range({ ...range, lt: prefixEnd(prefix), limit: 10_000 })
      for (const [key] of rows) {
        const p = timeKeyParts(key)
        if (p.offset >= this.record.first) index.add(p.timestamp, p.offset)
      }
      if (rows.length < 10_000) break
      range = { gt: rows[rows.length - 1][0] }
      await new Promise(resolve => setImmediate(resolve))
    }
    for (const p of this.loadingPoints ?? []) index.add(p.timestamp, p.offset)
    // points beyond what could be kept while loading are only in storage: seeks read between held points
    if (this.loadingOverflow) index.exact = false
    this.loadingPoints = null
    this.timeIndex = index
  }

  /** True once the time index is in memory (seeks by time no longer read the stored one). */
  get timeIndexLoaded (): boolean { return this.timeIndex !== null }

  /** Notes a written batch in the in-memory time index. */
  private indexBatch (timestamp: number, offset: number): void {
    if (this.timeIndex !== null) this.timeIndex.add(timestamp, offset)
    else if (this.loadingPoints !== null) {
      if (this.loadingPoints.length < this.ctx.limits.indexPoints) this.loadingPoints.push({ timestamp, offset })
      else this.loadingOverflow = true
    }
  }

  /**
   * The first offset whose timestamp is at or after time (durableNext when there is none). Entries of
   * one batch share a timestamp and the index holds a point at the first offset of every new timestamp,
   * so the first index point at or after time is the answer, unless time falls at or before the
   * timestamp of the first retained entry (whose point retention may have removed): then it is first.
   * With the index in memory that is a binary search (plus, once the index was thinned, one small read
   * of the stored index between the two points around time).
   */
  async seekTime (time: number): Promise<number> {
    const first = this.record.first
    const end = this.durableNext
    if (first >= end) return end
    const index = this.timeIndex
    if (index === null) return await this.seekTimeStored(time, first, end)
    if (time <= await this.headTimestamp(first)) return first
    index.dropBelow(first)
    const found = index.find(time)
    if (index.exact) return found.offset !== undefined ? Math.min(found.offset, end) : end
    const prefix = keys.idPrefix(TAG.time, this.id)
    const rows = await this.ctx.partition.range({ gte: keys.time(this.id, time, 0), lt: found.timestamp !== undefined ? keys.time(this.id, found.timestamp, 0) : prefixEnd(prefix), limit: 1 })
    const offset = rows.length > 0 ? timeKeyParts(rows[0][0]).offset : found.offset
    return offset !== undefined ? Math.min(Math.max(offset, first), end) : end
  }

  /** The timestamp of the first retained entry (read once per first offset). */
  private async headTimestamp (first: number): Promise<number> {
    if (this.head !== null && this.head.offset === first) return this.head.timestamp
    let timestamp = -Infinity
    await this.scan(first, first + 1, 1, (_, chunk, at) => { timestamp = entryTimestampAt(chunk, at); return false })
    if (this.record.first === first) this.head = { offset: first, timestamp }
    return timestamp
  }

  /** seekTime on the stored index alone (while the in-memory index is loading): a head read and an index seek. */
  private async seekTimeStored (time: number, first: number, end: number): Promise<number> {
    const prefix = keys.idPrefix(TAG.time, this.id)
    const [headTime, rows] = await Promise.all([
      this.headTimestamp(first),
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
