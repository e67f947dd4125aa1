import type { Clock, TimerHandle } from '../clock.js'
import { InvalidArgument, NotFound, Unavailable } from '../errors.js'
import type { PubSub } from '../pubsub/pubsub.js'
import { validateFilter } from '../pubsub/topics.js'
import type { Partition, Storage, WriteOp } from '../storage/storage.js'
import { prefixEnd, readName, u64 } from '../storage/keys.js'
import { CaptureBuffer } from './capture.js'
import { chunkCount, decodeDedup, decodePending, ID_TAGS, idOfKey, keys, offsetOfKey, TAG } from './codec.js'
import { ConsumerGroup, type DeadLetter, type Delivery, type GroupInfo, type GroupRecord } from './group.js'
import { StreamLog, type ReadResult } from './log.js'
import { enforceRetention, overLimits } from './retention.js'
import {
  DEFAULT_GROUP_SETTINGS, DEFAULT_LIMITS, type AppendMessage, type GroupSettings, type StartPosition,
  type StreamContext, type StreamLimits, type StreamRecord, type StreamSettings, type StreamStats
} from './types.js'

export const NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/
const MAX_CAPTURE_FILTERS = 100

/** Settings as a caller gives them on create/update; omitted limits mean "no limit". */
export interface StreamSettingsInput {
  maxAgeMs?: number
  maxBytes?: number
  maxCount?: number
  capture?: string[]
  dedupWindowMs?: number
}

export interface StreamInfo {
  name: string
  settings: StreamSettings
  createdAt: number
  /** First retained offset (== nextOffset when empty). */
  firstOffset: number
  /** Last written offset, -1 before the first append. */
  lastOffset: number
  nextOffset: number
  count: number
  bytes: number
  groups: string[]
}

export interface GroupInput {
  start?: StartPosition
  ackWaitMs?: number
  maxDeliveries?: number
  maxPending?: number
}

export interface ReadOptions {
  from?: number | 'start' | 'end'
  time?: number
  limit: number
}

function checkName (kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) throw new InvalidArgument(`${kind} name must match [A-Za-z0-9._-]{1,200}`)
}

function positive (what: string, n: number | undefined, allowZero = false): void {
  if (n === undefined) return
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !allowZero)) throw new InvalidArgument(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} number`)
}

/**
 * The stream engine: named append-only logs on the storage partition 'stream', with retention,
 * consumer groups and capture of MQTT topics. Offsets are dense from 0 and never reused.
 */
export class StreamEngine {
  readonly stats: StreamStats = { appended: 0, appendBatches: 0, captured: 0, captureDropped: 0, retentionRemoved: 0, deduplicated: 0, groupDelivered: 0, groupAcked: 0, deadLettered: 0 }
  private readonly logs = new Map<string, StreamLog>()
  private readonly captures = new Map<StreamLog, CaptureBuffer>()
  private readonly retaining = new Map<StreamLog, Promise<number>>()
  private readonly retainAgain = new Set<StreamLog>()
  private readonly background = new Set<Promise<unknown>>()
  private sequence = 0
  private retentionTimer: TimerHandle | null = null
  private closed = false
  private readonly ctx: StreamContext

  private constructor (private readonly storage: Storage, private readonly partition: Partition, private readonly pubsub: PubSub, readonly clock: Clock, readonly limits: StreamLimits) {
    this.ctx = {
      storage,
      partition,
      clock,
      limits,
      stats: this.stats,
      nextId: () => this.sequence++,
      sequenceOp: () => partition.put(keys.sequence(), u64(this.sequence))
    }
  }

  static async open (storage: Storage, pubsub: PubSub, clock: Clock, limits: Partial<StreamLimits> = {}): Promise<StreamEngine> {
    const engine = new StreamEngine(storage, storage.partition('stream'), pubsub, clock, { ...DEFAULT_LIMITS, ...limits })
    await engine.load()
    engine.scheduleRetention()
    return engine
  }

  /** Rebuilds the in-memory state from storage: records, groups, pending deliveries, dedup ids. */
  private async load (): Promise<void> {
    const p = this.partition
    const seq = await p.get(keys.sequence())
    let maxId = seq !== undefined ? Number(seq.readBigUInt64BE(0)) - 1 : -1
    const tombstones: number[] = []
    for await (const [key] of p.entries({ gte: keys.tombstonePrefix(), lt: prefixEnd(keys.tombstonePrefix()) })) {
      const id = idOfKey(key)
      tombstones.push(id)
      maxId = Math.max(maxId, id)
    }
    for await (const [key, value] of p.entries({ gte: keys.metaPrefix(), lt: prefixEnd(keys.metaPrefix()) })) {
      const name = readName(key, 1).value
      const record = JSON.parse(value.toString()) as StreamRecord
      maxId = Math.max(maxId, record.id)
      // the record is written with every batch; the last entry key is a cross-check of next
      const last = await p.range({ gte: keys.idPrefix(TAG.entry, record.id), lt: prefixEnd(keys.idPrefix(TAG.entry, record.id)), reverse: true, limit: 1 })
      if (last.length > 0) record.next = Math.max(record.next, offsetOfKey(last[0][0]) + chunkCount(last[0][1]))
      const log = new StreamLog(name, record, this.ctx)
      this.logs.set(name, log)
      await this.loadDedup(log)
      for await (const [gkey, gvalue] of p.entries({ gte: keys.idPrefix(TAG.group, record.id), lt: prefixEnd(keys.idPrefix(TAG.group, record.id)) })) {
        const groupName = readName(gkey, 9).value
        const grecord = JSON.parse(gvalue.toString()) as GroupRecord
        maxId = Math.max(maxId, grecord.gid)
        const group = new ConsumerGroup(groupName, grecord, log, this.ctx)
        for await (const [pkey, pvalue] of p.entries({ gte: keys.idPrefix(TAG.pending, grecord.gid), lt: prefixEnd(keys.idPrefix(TAG.pending, grecord.gid)) })) {
          group.restorePending(offsetOfKey(pkey), decodePending(pvalue))
        }
        log.groups.set(groupName, group)
      }
    }
    this.sequence = maxId + 1
    for (const log of this.logs.values()) {
      this.startCapture(log)
      // seeks by time use the stored index until the one in memory is loaded
      this.track(log.loadTimeIndex(() => this.closed))
    }
    for (const id of tombstones) this.track(this.purgeId(id))
  }

  private async loadDedup (log: StreamLog): Promise<void> {
    const found: Array<{ id: string, offset: number, timestamp: number }> = []
    for await (const [key, value] of this.partition.entries({ gte: keys.idPrefix(TAG.dedup, log.id), lt: prefixEnd(keys.idPrefix(TAG.dedup, log.id)) })) {
      found.push({ id: key.toString('utf8', 9), ...decodeDedup(value) })
    }
    found.sort((a, b) => a.timestamp - b.timestamp || a.offset - b.offset)
    for (const d of found) log.restoreDedup(d.id, d.offset, d.timestamp)
    log.sweepDedup()
  }

  private track (p: Promise<unknown>): void {
    const tracked = p.catch(() => { /* background work retries at the next start */ }).finally(() => { this.background.delete(tracked) })
    this.background.add(tracked)
  }

  private checkOpen (): void {
    if (this.closed) throw new Unavailable('the stream engine is shutting down')
  }

  // ---- streams -------------------------------------------------------------------------------

  private settingsFrom (input: StreamSettingsInput): StreamSettings {
    positive('maxAge', input.maxAgeMs)
    positive('maxBytes', input.maxBytes)
    positive('maxCount', input.maxCount)
    positive('dedupWindow', input.dedupWindowMs, true)
    for (const [what, n] of [['maxBytes', input.maxBytes], ['maxCount', input.maxCount]] as const) {
      if (n !== undefined && !Number.isInteger(n)) throw new InvalidArgument(`${what} must be an integer`)
    }
    const capture = [...new Set(input.capture ?? [])]
    if (capture.length > MAX_CAPTURE_FILTERS) throw new InvalidArgument(`at most ${MAX_CAPTURE_FILTERS} capture filters`)
    for (const f of capture) validateFilter(f)
    const settings: StreamSettings = { capture, dedupWindowMs: input.dedupWindowMs ?? this.limits.defaultDedupWindowMs }
    if (input.maxAgeMs !== undefined) settings.maxAgeMs = input.maxAgeMs
    if (input.maxBytes !== undefined) settings.maxBytes = input.maxBytes
    if (input.maxCount !== undefined) settings.maxCount = input.maxCount
    return settings
  }

  /** Creates the stream in memory; the returned ops persist it. */
  private createLog (name: string, settings: StreamSettings): { log: StreamLog, ops: WriteOp[] } {
    const now = this.clock.now()
    const record: StreamRecord = { id: this.ctx.nextId(), createdAt: now, settings, next: 0, first: 0, bytes: 0, lastTimestamp: 0, lastIndexedTimestamp: 0 }
    const log = new StreamLog(name, record, this.ctx, true)
    this.logs.set(name, log)
    this.startCapture(log)
    return { log, ops: [log.metaOp(), this.ctx.sequenceOp()] }
  }

  /** Creates a stream or replaces its settings (PUT semantics: omitted limits are removed). */
  async put (name: string, input: StreamSettingsInput): Promise<{ created: boolean, info: StreamInfo }> {
    this.checkOpen()
    checkName('stream', name)
    const settings = this.settingsFrom(input)
    const existing = this.logs.get(name)
    if (existing === undefined) {
      const { log, ops } = this.createLog(name, settings)
      await this.storage.write(ops)
      // once the reply is out, matching publishes are captured
      await log.captureReady
      return { created: true, info: this.describe(log) }
    }
    const captureChanged = existing.record.settings.capture.join('\n') !== settings.capture.join('\n')
    existing.record.settings = settings
    if (captureChanged) {
      await this.stopCapture(existing)
      this.startCapture(existing)
      await existing.captureReady
    }
    await this.storage.write([existing.metaOp()])
    this.kickRetention(existing)
    return { created: false, info: this.describe(existing) }
  }

  get (name: string): StreamLog {
    const log = this.logs.get(name)
    if (log === undefined) {
      checkName('stream', name)
      throw new NotFound(`stream ${name} does not exist`)
    }
    return log
  }

  list (): StreamInfo[] {
    return [...this.logs.values()].sort((a, b) => a.name < b.name ? -1 : 1).map(l => this.describe(l))
  }

  info (name: string): StreamInfo { return this.describe(this.get(name)) }

  private describe (log: StreamLog): StreamInfo {
    const next = log.durableNext
    return {
      name: log.name,
      settings: log.record.settings,
      createdAt: log.record.createdAt,
      firstOffset: Math.min(log.record.first, next),
      lastOffset: next - 1,
      nextOffset: next,
      count: Math.max(0, next - log.record.first),
      bytes: log.record.bytes,
      groups: [...log.groups.keys()].sort()
    }
  }

  /** Removes a stream, its groups and (in the background) all of its data. */
  async delete (name: string): Promise<void> {
    this.checkOpen()
    const log = this.get(name)
    this.logs.delete(name)
    log.deleted = true
    await this.stopCapture(log)
    const ops: WriteOp[] = [this.partition.del(keys.meta(name)), this.partition.put(keys.tombstone(log.id), Buffer.alloc(0))]
    for (const g of log.groups.values()) {
      g.stop()
      ops.push(this.partition.put(keys.tombstone(g.gid), Buffer.alloc(0)))
    }
    log.wake()
    await this.storage.write(ops)
    this.track(this.purgeId(log.id))
    for (const g of log.groups.values()) this.track(this.purgeId(g.gid))
  }

  /** Deletes every key of a deleted stream or group id in bounded chunks, then its tombstone. */
  private async purgeId (id: number): Promise<void> {
    for (const tag of ID_TAGS) {
      const prefix = keys.idPrefix(tag, id)
      for (let round = 0; round < 10_000_000 && !this.closed; round++) {
        const rows = await this.partition.range({ gte: prefix, lt: prefixEnd(prefix), limit: this.limits.retentionChunk })
        if (rows.length === 0) break
        await this.storage.write(rows.map(([k]) => this.partition.del(k)))
        await new Promise(resolve => setImmediate(resolve))
      }
      if (this.closed) return
    }
    await this.storage.write([this.partition.del(keys.tombstone(id))])
  }

  // ---- append and read -----------------------------------------------------------------------

  async append (name: string, messages: AppendMessage[], expectedLastOffset?: number): Promise<number[]> {
    this.checkOpen()
    let log = this.logs.get(name)
    if (log === undefined) {
      checkName('stream', name)
      if (!this.limits.autocreate) throw new NotFound(`stream ${name} does not exist (create it with PUT first; autocreate is off)`)
      const created = this.createLog(name, this.settingsFrom({}))
      log = created.log
      // written ahead of the batch (writes apply in order), so the stream exists even if the batch is refused
      void this.storage.write(created.ops).catch(() => {})
    }
    if (expectedLastOffset !== undefined && (!Number.isInteger(expectedLastOffset) || expectedLastOffset < -1)) {
      throw new InvalidArgument('expectedLastOffset must be an integer >= -1 (-1: the stream has no messages yet)')
    }
    const offsets = await log.append(messages, expectedLastOffset)
    if (overLimits(log)) this.kickRetention(log)
    return offsets
  }

  /** The offset a position refers to now. */
  async resolve (log: StreamLog, position: StartPosition): Promise<number> {
    switch (position.from) {
      case 'start': return log.first
      case 'end': return log.durableNext
      case 'time': return await log.seekTime(position.time)
      case 'offset':
        if (!Number.isInteger(position.offset) || position.offset < 0) throw new InvalidArgument('an offset is a non-negative integer')
        if (position.offset > log.durableNext) {
          throw new InvalidArgument(`offset ${position.offset} is beyond the end of stream ${log.name} (next offset ${log.durableNext})`, { nextOffset: log.durableNext })
        }
        return position.offset
    }
  }

  async read (name: string, options: ReadOptions): Promise<ReadResult> {
    this.checkOpen()
    const log = this.get(name)
    if (options.from !== undefined && options.time !== undefined) throw new InvalidArgument('give either from or time, not both')
    let start: number
    if (options.time !== undefined) start = await log.seekTime(options.time)
    else if (options.from === undefined || options.from === 'start') start = log.first
    else if (options.from === 'end') start = log.durableNext
    else start = await this.resolve(log, { from: 'offset', offset: options.from })
    const result = await log.read(start, options.limit)
    return { ...result, truncated: options.from !== undefined && typeof options.from === 'number' && options.from < result.firstOffset }
  }

  // ---- retention -----------------------------------------------------------------------------

  private kickRetention (log: StreamLog): void {
    if (this.closed) return
    if (this.retaining.has(log)) {
      // a pass is running with the limits and time of when it started: run once more after it
      this.retainAgain.add(log)
      return
    }
    const run = enforceRetention(log, this.ctx, () => this.closed).finally(() => {
      this.retaining.delete(log)
      if (this.retainAgain.delete(log) && !log.deleted) this.kickRetention(log)
    })
    this.retaining.set(log, run)
    this.track(run)
  }

  private scheduleRetention (): void {
    if (this.closed) return
    this.retentionTimer = this.clock.setTimer(() => {
      this.retentionTimer = null
      for (const log of this.logs.values()) {
        log.sweepDedup()
        this.kickRetention(log)
      }
      this.scheduleRetention()
    }, this.limits.retentionIntervalMs)
  }

  /** Runs retention on one stream now and resolves when it is within its limits (for tests and tools). */
  async enforceRetention (name: string): Promise<number> {
    const log = this.get(name)
    await this.retaining.get(log)
    return await enforceRetention(log, this.ctx, () => this.closed)
  }

  // ---- capture -------------------------------------------------------------------------------

  private startCapture (log: StreamLog): void {
    const filters = log.record.settings.capture
    if (filters.length === 0) return
    const buffer = new CaptureBuffer(log, this.ctx)
    this.captures.set(log, buffer)
    let off: (() => Promise<void>) | null = null
    let cancelled = false
    // durable: an MQTT QoS 1/2 publisher's acknowledgement waits for the captured message's append
    const subscribed = this.pubsub.subscribe(filters, m => buffer.add(m), { durable: true }).then(fn => {
      off = fn
      if (cancelled) void fn()
    })
    this.track(subscribed)
    log.captureOff = async () => {
      cancelled = true
      await subscribed.catch(() => {})
      if (off !== null) await off()
      await buffer.drain()
    }
    log.captureReady = subscribed
  }

  private async stopCapture (log: StreamLog): Promise<void> {
    const off = log.captureOff
    log.captureOff = null
    this.captures.delete(log)
    if (off !== null) await off()
  }

  // ---- consumer groups -----------------------------------------------------------------------

  private groupSettings (input: GroupInput, base: GroupSettings): GroupSettings {
    positive('ackWait', input.ackWaitMs)
    for (const [what, n] of [['maxDeliveries', input.maxDeliveries], ['maxPending', input.maxPending]] as const) {
      if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new InvalidArgument(`${what} must be a positive integer`)
    }
    return {
      ackWaitMs: input.ackWaitMs ?? base.ackWaitMs,
      maxDeliveries: input.maxDeliveries ?? base.maxDeliveries,
      maxPending: input.maxPending ?? base.maxPending
    }
  }

  getGroup (stream: string, group: string): ConsumerGroup {
    const g = this.get(stream).groups.get(group)
    if (g === undefined) {
      checkName('group', group)
      throw new NotFound(`consumer group ${group} of stream ${stream} does not exist`)
    }
    return g
  }

  /** Creates a group (from its start position) or updates its settings. */
  async putGroup (stream: string, group: string, input: GroupInput): Promise<{ created: boolean, info: GroupInfo }> {
    this.checkOpen()
    checkName('group', group)
    const log = this.get(stream)
    const existing = log.groups.get(group)
    if (existing !== undefined) {
      const position = input.start !== undefined ? await this.resolve(log, input.start) : undefined
      await existing.update(this.groupSettings(input, existing.record.settings), position)
      return { created: false, info: existing.info() }
    }
    const settings = this.groupSettings(input, DEFAULT_GROUP_SETTINGS)
    const position = await this.resolve(log, input.start ?? { from: 'start' })
    // the position was resolved asynchronously: another request may have created the group meanwhile
    const raced = log.groups.get(group)
    if (raced !== undefined) return await this.putGroup(stream, group, input)
    const g = this.createGroup(log, group, settings, position)
    await this.storage.write([g.recordOp(), this.ctx.sequenceOp()])
    return { created: true, info: g.info() }
  }

  private createGroup (log: StreamLog, group: string, settings: GroupSettings, position: number): ConsumerGroup {
    if (log.deleted) throw new NotFound(`stream ${log.name} does not exist`)
    const record: GroupRecord = { gid: this.ctx.nextId(), createdAt: this.clock.now(), settings, committed: position, cursor: position, deadCount: 0 }
    const g = new ConsumerGroup(group, record, log, this.ctx)
    log.groups.set(group, g)
    return g
  }

  listGroups (stream: string): GroupInfo[] {
    return [...this.get(stream).groups.values()].sort((a, b) => a.name < b.name ? -1 : 1).map(g => g.info())
  }

  /** Receives for one reader; the group is created from the start of the stream on first use. */
  async receive (stream: string, group: string, options: { max: number, waitMs: number, consumer: string }): Promise<Delivery[]> {
    this.checkOpen()
    const log = this.get(stream)
    let g = log.groups.get(group)
    if (g === undefined) {
      checkName('group', group)
      g = this.createGroup(log, group, DEFAULT_GROUP_SETTINGS, log.first)
      void this.storage.write([g.recordOp(), this.ctx.sequenceOp()]).catch(() => {})
    }
    if (options.waitMs < 0 || options.waitMs > 20_000) throw new InvalidArgument('wait must be between 0 and 20 seconds')
    return await g.receive(options.max, options.waitMs, options.consumer)
  }

  async ack (stream: string, group: string, offsets: number[]): Promise<{ acked: number, committed: number }> {
    this.checkOpen()
    for (const o of offsets) if (!Number.isInteger(o) || o < 0) throw new InvalidArgument('offsets are non-negative integers')
    return await this.getGroup(stream, group).ack(offsets)
  }

  async commit (stream: string, group: string, offset: number): Promise<{ committed: number }> {
    this.checkOpen()
    return await this.getGroup(stream, group).commit(offset)
  }

  async dead (stream: string, group: string, from: number, limit: number): Promise<{ messages: DeadLetter[], next: number | null }> {
    return await this.getGroup(stream, group).listDead(from, limit)
  }

  async redrive (stream: string, group: string, offsets?: number[]): Promise<{ redriven: number }> {
    this.checkOpen()
    return await this.getGroup(stream, group).redrive(offsets)
  }

  async deleteGroup (stream: string, group: string): Promise<void> {
    this.checkOpen()
    const log = this.get(stream)
    const g = this.getGroup(stream, group)
    log.groups.delete(group)
    g.stop()
    await this.storage.write([this.partition.del(keys.group(log.id, group)), this.partition.put(keys.tombstone(g.gid), Buffer.alloc(0))])
    this.track(this.purgeId(g.gid))
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Totals for /metrics. */
  totals (): { streams: number, entries: number, bytes: number, groups: number } {
    let entries = 0
    let bytes = 0
    let groups = 0
    for (const log of this.logs.values()) {
      entries += Math.max(0, log.durableNext - log.first)
      bytes += log.record.bytes
      groups += log.groups.size
    }
    return { streams: this.logs.size, entries, bytes, groups }
  }

  streamNames (): string[] { return [...this.logs.keys()] }

  get isClosed (): boolean { return this.closed }

  /** Stops capture (writing what was captured), long-polls, tails and background work. */
  async close (): Promise<void> {
    if (this.closed) return
    for (const log of this.logs.values()) await this.stopCapture(log)
    this.closed = true
    this.retentionTimer?.cancel()
    for (const log of this.logs.values()) {
      for (const g of log.groups.values()) g.stop(true)
      log.deleted = true
      log.wake()
    }
    await Promise.all([...this.background])
  }
}
