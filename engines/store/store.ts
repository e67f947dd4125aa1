import { performance } from 'node:perf_hooks'
import type { Clock, TimerHandle } from '../clock.js'
import { Conflict, InsufficientStorage, InvalidArgument, NotFound, PreconditionFailed, TooLarge, Unavailable } from '../errors.js'
import { ChangeLog, KIND_CODE, type ChangeKind } from './change-log.js'
import { ContentTypes } from './content-types.js'
import { JsonIndex, parseJsonObject, type IndexDefinition } from './json-index.js'
import { Slab, SLAB_MAX_VALUE } from './slab.js'
import { Keyspace, RECORD_INTS, RECORD_USER_FIELDS } from './keyspace.js'

export type EvictionPolicy = 'lru' | 'none'
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'none']

export interface StoreOptions {
  clock: Clock
  /** Cap on the store's accounted bytes (see entryCost); 0 = no cap. */
  maxMemory: number
  eviction: EvictionPolicy
  /** Largest value in bytes. */
  maxValueBytes: number
  /** Events kept for change-feed resumption. */
  watchBacklog: number
  /** Pause between expiry sweeps while few keys are expired (ms). */
  sweepIntervalMs?: number
  /** Longest a sweep may run before yielding to the event loop (ms, wall time). */
  sweepSliceMs?: number
}

export interface SetOptions {
  /** Stored with the value; application/octet-stream when absent. */
  contentType?: string
  /** Time to live in ms (> 0). Without it the key has no TTL, unless keepTtl keeps the current one. */
  ttlMs?: number
  keepTtl?: boolean
  /** Only if the key does not exist. */
  ifAbsent?: boolean
  /** Only if the key exists. */
  ifPresent?: boolean
  /** Only if the key exists with this revision (compare-and-set). */
  ifRevision?: number
}

export interface StoredValue {
  value: Buffer
  contentType: string
  revision: number
  /** Epoch ms, or null without TTL. */
  expiresAt: number | null
}

export interface KeyInfo {
  key: string
  size: number
  contentType: string
  revision: number
  expiresAt: number | null
}

export interface MsetEntry { key: string, value: Uint8Array, contentType?: string, ttlMs?: number }

export interface StoreEvent {
  type: ChangeKind
  key: string
  revision: number
  /** set only: the new value (do not modify) and its content type. */
  value?: Uint8Array
  contentType?: string
  /** set and ttl: the key's expiry (epoch ms), null without TTL. */
  expiresAt?: number | null
  /** set events replayed from the backlog whose value has been replaced since: no value. */
  superseded?: boolean
}

export interface IndexInfo extends IndexDefinition {
  name: string
  ready: boolean
  indexedKeys: number
  distinctValues: number
}

export interface Page<T> { items: T[], cursor: string | null }

export interface StoreStats {
  keys: number
  bytes: number
  hits: number
  misses: number
  evictions: number
  expirations: number
}

export const MAX_KEY_BYTES = 1024
const MAX_TTL_MS = 100 * 365 * 24 * 3600 * 1000
const MAX_INDEXES = 64
const MAX_SCAN_LIMIT = 1000
export const INDEX_NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/
/**
 * Bytes accounted per key on top of its key and value bytes: the slot record (64), the hash table and
 * key-order entries and the rounding of the slab item holding key and value. An estimate of what a key
 * really costs, so that --store-max-memory is close to the memory the keyspace takes.
 */
export const ENTRY_OVERHEAD_BYTES = 80
const DEFAULT_CONTENT_TYPE = 'application/octet-stream'
/** What valueViewOf gives for an empty value (zero bytes: nothing a reader could change). */
const EMPTY_VALUE = Buffer.alloc(0)

/*
 * The store's per-key fields, in the caller's part of the keyspace's 64-byte slot record: a lookup
 * finds the key's hash, the fields and (in the item next to the key) the value in two cache misses.
 * Fields read by every get come first.
 */
const CHUNK_BITS = 14
const CHUNK_MASK = (1 << CHUNK_BITS) - 1
const F64_PER_RECORD = RECORD_INTS / 2
const F_REV = RECORD_USER_FIELDS / 2 // float64: revision
const F_EXP = F_REV + 1 // float64: expiry epoch ms, 0 = none
const I_LEN = RECORD_USER_FIELDS + 4 // int32: value length (the value is in the key's item when it fits, else in `large`)
const I_TYPE = I_LEN + 1 // content type id
const I_TTLPOS = I_LEN + 2 // position in the TTL array, -1 = no TTL
const I_PREV = I_LEN + 3 // LRU neighbour towards the most recent, -1 = none
const I_NEXT = I_LEN + 4 // LRU neighbour towards the least recent (free list link for free slots)

const SWEEP_SAMPLE = 20
/** A sweep repeats while more than this share of a sample had expired (Redis uses 25%; lower is tighter). */
const SWEEP_REPEAT_SHARE = 0.1

/**
 * The in-memory key-value store. A Keyspace maps keys to slot numbers and keeps them in key order (for
 * scans with stable cursors) and holds each key's record, where the store keeps its per-key fields, and
 * the key's slab item, where the store keeps the value right after the key (values too large for an
 * item are Buffers of their own). Expiry
 * is checked on every read (an expired key is never served) and an active sweep samples keys with a TTL
 * the way Redis does, in slices short enough not to stall the event loop. A ring of recent events serves
 * the resumable change feed; JSON-field indexes follow every change.
 */
export class Store {
  private readonly clock: Clock
  private readonly maxMemory: number
  readonly maxValueBytes: number
  private readonly lruEnabled: boolean
  /** The result space of lookupMany. */
  private handles = new Int32Array(128)
  /** Where lookupMany leaves the sum of the bytes it loaded ahead, so the loads are not optimised away. */
  private touched = 0
  private readonly sweepIntervalMs: number
  private readonly sweepSliceMs: number

  private readonly keys = new Keyspace()
  /** The keyspace's slot records, which hold the store's fields too. */
  private readonly f64s = this.keys.f64s
  private readonly i32s = this.keys.i32s
  private nextUnused = 0
  private freeSlot = -1
  private lruHead = -1
  private lruTail = -1
  private ttlSlots: Int32Array
  private ttlCount = 0

  private readonly large = new Map<number, Buffer>()
  private readonly types = new ContentTypes()
  private readonly log: ChangeLog
  private readonly listeners = new Set<(event: StoreEvent) => void>()
  private readonly indexes = new Map<string, JsonIndex>()

  private bytes = 0
  private hits = 0
  private misses = 0
  private evictions = 0
  private expirations = 0
  /** Keys removed so far, for any reason: a slot number held across a removal may be stale. */
  private removed = 0
  private sweepTimer: TimerHandle | undefined
  private closed = false

  constructor (options: StoreOptions) {
    this.clock = options.clock
    this.maxMemory = options.maxMemory
    this.maxValueBytes = options.maxValueBytes
    this.lruEnabled = options.maxMemory > 0 && options.eviction === 'lru'
    this.sweepIntervalMs = options.sweepIntervalMs ?? 100
    this.sweepSliceMs = options.sweepSliceMs ?? 2
    this.ttlSlots = new Int32Array(1024)
    // ids continue from the clock (µs) so revisions and event ids from before a restart are not reused
    this.log = new ChangeLog(options.watchBacklog, Math.floor(this.clock.now()) * 1000)
  }

  /** --store-max-memory in bytes (0: no cap), for the dashboard's warning near the cap. */
  get memoryCap (): number { return this.maxMemory }

  get stats (): StoreStats {
    return { keys: this.keys.size, bytes: this.bytes, hits: this.hits, misses: this.misses, evictions: this.evictions, expirations: this.expirations }
  }

  get size (): number { return this.keys.size }
  /** The latest event id (= the highest revision given out). */
  get latestRevision (): number { return this.log.latest }

  // ---- reads ---------------------------------------------------------------------------------------

  /** The value, or undefined when missing or expired. */
  get (key: string): StoredValue | undefined {
    const slot = this.lookup(key)
    return slot < 0 ? undefined : this.storedValueOf(slot)
  }

  private storedValueOf (slot: number): StoredValue {
    const exp = this.num(slot, F_EXP)
    return {
      value: this.readValue(slot),
      contentType: this.types.name(this.int(slot, I_TYPE)),
      revision: this.num(slot, F_REV),
      expiresAt: exp === 0 ? null : exp
    }
  }

  /**
   * The low-level read behind get(), for serialisers that write many values out at once: counts the hit
   * or miss and touches the LRU like get(), and returns a handle to the key's record, or -1 when missing
   * or expired. Read the handle with valueViewOf / revisionOf / expiresAtOf / contentTypeOf, which
   * allocate no result object and copy no bytes. A handle (and a view read through it) is valid only
   * until the next call that changes the store: use it synchronously, never across an await.
   */
  lookup (key: string): number {
    return this.counted(this.live(key))
  }

  /** The value bytes of a handle from lookup(), without a copy (see lookup for how long it is valid). */
  valueViewOf (handle: number): Buffer {
    const len = this.int(handle, I_LEN)
    if (len === 0) return EMPTY_VALUE
    if (this.isLarge(handle, len)) return this.large.get(handle)!
    const off = this.keys.tailOffset(handle)
    return this.keys.tailBuffer(handle).subarray(off, off + len)
  }

  /**
   * Where the value bytes of a handle are, without even a view object: the buffer holding them (shared
   * with other values: read only valueLengthOf bytes from valueOffsetOf, and write nothing).
   */
  valueBufferOf (handle: number): Buffer {
    const len = this.int(handle, I_LEN)
    if (len === 0) return EMPTY_VALUE
    if (this.isLarge(handle, len)) return this.large.get(handle)!
    return this.keys.tailBuffer(handle)
  }

  valueOffsetOf (handle: number): number {
    const len = this.int(handle, I_LEN)
    return len === 0 || this.isLarge(handle, len) ? 0 : this.keys.tailOffset(handle)
  }

  valueLengthOf (handle: number): number { return this.int(handle, I_LEN) }

  revisionOf (handle: number): number { return this.num(handle, F_REV) }

  /** Epoch ms, or null without TTL. */
  expiresAtOf (handle: number): number | null {
    const exp = this.num(handle, F_EXP)
    return exp === 0 ? null : exp
  }

  contentTypeOf (handle: number): string { return this.types.name(this.int(handle, I_TYPE)) }

  /** Metadata without reading the value (no hit/miss counted, no LRU touch). */
  info (key: string): KeyInfo | undefined {
    const slot = this.live(key)
    return slot < 0 ? undefined : this.infoOf(slot, key)
  }

  mget (keys: readonly string[]): Array<StoredValue | null> {
    const handles = this.lookupMany(keys)
    const out: Array<StoredValue | null> = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) out[i] = handles[i] < 0 ? null : this.storedValueOf(handles[i])
    return out
  }

  /**
   * lookup() for many keys at once, faster per key than one call each (see Keyspace.findMany). The
   * result is working space shared by every call: read it before the next call into the store.
   */
  lookupMany (keys: readonly string[]): Int32Array {
    const handles = this.liveMany(keys)
    for (let i = 0; i < keys.length; i++) this.counted(handles[i])
    return handles
  }

  /** Counts a read as a hit or a miss and touches the LRU on a hit; returns the slot (-1 = missing). */
  private counted (slot: number): number {
    if (slot < 0) this.misses++
    else {
      this.hits++
      if (this.lruEnabled) this.touch(slot)
    }
    return slot
  }

  // ---- writes --------------------------------------------------------------------------------------

  set (key: string, value: Uint8Array, options: SetOptions = {}): { revision: number } {
    let slot = this.live(key)
    if (options.ifAbsent === true && slot >= 0) throw new PreconditionFailed(`key "${key}" exists`, { revision: this.num(slot, F_REV) })
    if (options.ifPresent === true && slot < 0) throw new PreconditionFailed(`key "${key}" does not exist`)
    if (options.ifRevision !== undefined) {
      if (slot < 0) throw new PreconditionFailed(`key "${key}" does not exist`)
      const current = this.num(slot, F_REV)
      if (current !== options.ifRevision) throw new PreconditionFailed(`key "${key}" is at revision ${current}, not ${options.ifRevision}`, { revision: current })
    }
    if (slot < 0) validateKey(key)
    this.checkValue(value)
    const expiresAt = options.ttlMs !== undefined ? this.expiryFor(options.ttlMs) : undefined
    const typeId = this.types.acquire(options.contentType ?? DEFAULT_CONTENT_TYPE)
    if (this.maxMemory > 0) {
      try {
        const extra = entryCost(key, value.length) - (slot >= 0 ? this.slotCost(slot) : 0)
        this.makeRoom(extra, slot >= 0 ? [slot] : [])
      } catch (err) {
        this.types.release(typeId)
        throw err
      }
    }
    if (slot < 0) slot = this.insertSlot(key)
    return { revision: this.write(slot, key, value, typeId, expiresAt ?? (options.keepTtl === true ? -1 : 0)) }
  }

  /** All entries or none; with ifAbsent, none of the keys may exist. Later duplicates win. */
  mset (entries: readonly MsetEntry[], options: { ifAbsent?: boolean } = {}): number[] {
    const n = entries.length
    // the slot each key had when checked, so the writes need no second lookup (see below); plain arrays,
    // as small typed arrays cost an off-heap allocation each
    const slots: number[] = new Array<number>(n)
    const expiries: number[] = new Array<number>(n)
    const typeIds: number[] = new Array<number>(n)
    let acquired = 0
    const removedBefore = this.removed
    // the byte count of the batch only matters under a memory cap
    const capped = this.maxMemory > 0
    const protectedSlots: number[] = []
    const seen = capped ? new Map<string, number>() : undefined
    let extra = 0
    try {
      const found = this.liveMany(entries.map(e => e.key))
      for (let i = 0; i < n; i++) {
        const e = entries[i]
        const slot = found[i]
        slots[i] = slot
        if (slot < 0) validateKey(e.key)
        else {
          if (options.ifAbsent === true) throw new PreconditionFailed(`key "${e.key}" exists`, { key: e.key })
          if (capped) protectedSlots.push(slot)
        }
        this.checkValue(e.value)
        expiries[i] = e.ttlMs !== undefined ? this.expiryFor(e.ttlMs) : 0
        typeIds[i] = this.types.acquire(e.contentType ?? DEFAULT_CONTENT_TYPE)
        acquired++
        if (seen !== undefined) {
          const before = seen.get(e.key)
          if (before !== undefined) extra -= before
          else if (slot >= 0) extra -= this.slotCost(slot)
          const cost = entryCost(e.key, e.value.length)
          seen.set(e.key, cost)
          extra += cost
        }
      }
      this.makeRoom(extra, protectedSlots)
    } catch (err) {
      for (let i = 0; i < acquired; i++) this.types.release(typeIds[i])
      throw err
    }
    // A slot found above is still the key's unless some key has been removed since (expired on the way,
    // or evicted by makeRoom): its slot may then have been freed. Keys that were absent may have been
    // added by an earlier entry of this batch, so they are looked up again.
    const slotsValid = this.removed === removedBefore
    const revisions: number[] = new Array(n)
    for (let i = 0; i < n; i++) {
      const e = entries[i]
      let slot = slotsValid && slots[i] >= 0 ? slots[i] : this.keys.find(e.key)
      if (slot < 0) slot = this.insertSlot(e.key)
      revisions[i] = this.write(slot, e.key, e.value, typeIds[i], expiries[i])
    }
    return revisions
  }

  /** Removes the key; NotFound when missing, PreconditionFailed when ifRevision does not match. */
  delete (key: string, options: { ifRevision?: number } = {}): void {
    const slot = this.live(key)
    if (slot < 0) throw new NotFound(`key "${key}" not found`)
    if (options.ifRevision !== undefined && this.num(slot, F_REV) !== options.ifRevision) {
      throw new PreconditionFailed(`key "${key}" is at revision ${this.num(slot, F_REV)}, not ${options.ifRevision}`, { revision: this.num(slot, F_REV) })
    }
    this.remove(slot, 'delete')
  }

  /** Adds `by` to an integer value (a missing key counts as 0) and keeps its TTL; Conflict when not an integer. */
  incr (key: string, by = 1): { value: number, revision: number } {
    if (!Number.isSafeInteger(by)) throw new InvalidArgument('by must be an integer')
    const current = this.get(key)
    let base = 0
    if (current !== undefined) {
      const text = current.value.toString('latin1')
      if (!/^-?\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new Conflict(`the value of "${key}" is not an integer`)
      }
      base = Number(text)
    }
    const next = base + by
    if (!Number.isSafeInteger(next)) throw new Conflict(`incrementing "${key}" would overflow a 53-bit integer`)
    const { revision } = this.set(key, Buffer.from(String(next), 'latin1'), {
      contentType: current?.contentType ?? 'application/json',
      keepTtl: true
    })
    return { value: next, revision }
  }

  /**
   * Sets (ttlMs) or removes (null) the TTL of an existing key and emits a ttl event; the key's revision
   * does not change (the event takes the next event id, as a delete does).
   */
  setTtl (key: string, ttlMs: number | null): KeyInfo {
    const slot = this.live(key)
    if (slot < 0) throw new NotFound(`key "${key}" not found`)
    const expiresAt = ttlMs === null ? 0 : this.expiryFor(ttlMs)
    if (expiresAt === 0) this.clearExpiry(slot)
    else this.setExpiry(slot, expiresAt)
    this.logChange('ttl', key, expiresAt)
    return this.infoOf(slot, key)
  }

  // ---- scans ---------------------------------------------------------------------------------------

  /**
   * Keys under prefix in key order, after the cursor (the last key of the previous page). A key that
   * exists for the whole scan is returned exactly once, whatever else is written meanwhile.
   */
  scan (options: { prefix?: string, cursor?: string, limit?: number } = {}): Page<KeyInfo> {
    const prefix = options.prefix ?? ''
    const after = options.cursor !== undefined ? decodeCursor(options.cursor) : undefined
    return this.collect(this.keys.iterate(prefix, after), options.limit, k => k.startsWith(prefix))
  }

  /** Keys whose indexed field has this value (text form), in key order, after the cursor. */
  findByIndex (name: string, value: string, options: { cursor?: string, limit?: number } = {}): Page<KeyInfo> {
    const index = this.indexes.get(name)
    if (index === undefined) throw new NotFound(`index "${name}" not found`)
    if (!index.ready) throw new Unavailable(`index "${name}" is still being built`)
    const after = options.cursor !== undefined ? decodeCursor(options.cursor) : undefined
    const keys = index.keysWith(value, after)
    if (keys === undefined) return { items: [], cursor: null }
    return this.collect(this.slotsOf(keys), options.limit, () => true)
  }

  /**
   * Takes up to `limit` live keys from an ordered key iterator. Expired keys met on the way are counted
   * against a bound (so a page never walks an unbounded run of them) and expired after the walk, since
   * the sorted structures must not change under the iterator.
   */
  private * slotsOf (keys: Iterable<string>): Generator<number> {
    for (const key of keys) {
      const slot = this.keys.find(key)
      if (slot >= 0) yield slot
    }
  }

  private collect (slots: Iterator<number>, limitOption: number | undefined, inRange: (key: string) => boolean): Page<KeyInfo> {
    const limit = Math.min(Math.max(1, Math.floor(limitOption ?? 100)), MAX_SCAN_LIMIT)
    const items: KeyInfo[] = []
    const expired: number[] = []
    const now = this.clock.now()
    let examined = 0
    let last: string | undefined
    let exhausted = true
    for (let r = slots.next(); !r.done; r = slots.next()) {
      const slot = r.value
      const key = this.keys.keyOf(slot)
      if (!inRange(key)) break
      if (items.length >= limit || examined >= limit * 10) {
        exhausted = false
        break
      }
      examined++
      last = key
      const exp = this.num(slot, F_EXP)
      if (exp !== 0 && exp <= now) {
        expired.push(slot)
        continue
      }
      items.push(this.infoOf(slot, key))
    }
    for (const slot of expired) this.expireSlot(slot)
    return { items, cursor: exhausted || last === undefined ? null : encodeCursor(last) }
  }

  // ---- change feed ---------------------------------------------------------------------------------

  /** Calls listener synchronously after every change; returns the unsubscribe function. */
  watch (listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Replays the events after `afterId` in order. Returns false (and replays nothing) when some of them
   * are no longer in the backlog or afterId is unknown: the reader must re-read the keys it follows.
   * A replayed set carries the key's value only if that is still its current revision.
   */
  replay (afterId: number, visit: (event: StoreEvent) => void, withValues = false): boolean {
    if (!this.log.canReplayAfter(afterId)) return false
    const now = this.clock.now()
    for (const change of this.log.after(afterId)) {
      const event: StoreEvent = { type: change.kind, key: change.key, revision: change.revision }
      if (change.kind === 'set') {
        const slot = this.keys.find(change.key)
        const current = slot >= 0 && this.num(slot, F_REV) === change.revision
        const exp = current ? this.num(slot, F_EXP) : 0
        if (!current || (exp !== 0 && exp <= now)) event.superseded = true
        else {
          event.contentType = this.types.name(this.int(slot, I_TYPE))
          event.expiresAt = exp === 0 ? null : exp
          if (withValues) event.value = this.readValue(slot)
        }
      } else if (change.kind === 'ttl') event.expiresAt = change.expiresAt === 0 ? null : change.expiresAt
      visit(event)
    }
    return true
  }

  // ---- indexes -------------------------------------------------------------------------------------

  /**
   * Creates (or replaces, when the definition differs) an index and indexes the keys that already exist,
   * in slices that yield to the event loop; resolves once it is complete. created is false when an
   * identical index already existed.
   */
  async createIndex (name: string, definition: IndexDefinition): Promise<{ index: IndexInfo, created: boolean }> {
    if (!INDEX_NAME_PATTERN.test(name)) throw new InvalidArgument('index name must match [A-Za-z0-9._-]{1,200}')
    validateField(definition.field)
    if (Buffer.byteLength(definition.prefix) > MAX_KEY_BYTES) throw new InvalidArgument(`prefix is longer than ${MAX_KEY_BYTES} bytes`)
    const existing = this.indexes.get(name)
    if (existing !== undefined && existing.definition.prefix === definition.prefix && existing.definition.field === definition.field) {
      await this.waitReady(existing)
      return { index: indexInfo(existing), created: false }
    }
    if (existing === undefined && this.indexes.size >= MAX_INDEXES) throw new Conflict(`at most ${MAX_INDEXES} indexes`)
    const index = new JsonIndex(name, { prefix: definition.prefix, field: definition.field })
    this.indexes.set(name, index)
    await this.buildIndex(index)
    return { index: indexInfo(index), created: true }
  }

  listIndexes (): IndexInfo[] { return [...this.indexes.values()].map(indexInfo) }

  getIndex (name: string): IndexInfo {
    const index = this.indexes.get(name)
    if (index === undefined) throw new NotFound(`index "${name}" not found`)
    return indexInfo(index)
  }

  deleteIndex (name: string): void {
    if (!this.indexes.delete(name)) throw new NotFound(`index "${name}" not found`)
  }

  private async waitReady (index: JsonIndex): Promise<void> {
    for (let i = 0; !index.ready && this.indexes.get(index.name) === index && !this.closed; i++) await yieldToEventLoop()
    if (!index.ready) throw new Conflict(`index "${index.name}" was replaced or removed while being built`)
  }

  /**
   * Reads every existing key under the prefix, in key order, a time slice at a time. Writes during the
   * build update the index themselves, so indexing a key twice is harmless and none is missed.
   */
  private async buildIndex (index: JsonIndex): Promise<void> {
    const prefix = index.definition.prefix
    let after: string | undefined
    for (;;) {
      if (this.closed || this.indexes.get(index.name) !== index) throw new Conflict(`index "${index.name}" was replaced or removed while being built`)
      const started = performance.now()
      const batch: string[] = []
      for (const slot of this.keys.iterate(prefix, after)) {
        const key = this.keys.keyOf(slot)
        if (!key.startsWith(prefix)) break
        batch.push(key)
        if (batch.length >= 256) break
      }
      if (batch.length === 0) break
      for (const key of batch) {
        const slot = this.live(key)
        if (slot >= 0) index.update(key, parseJsonObject(this.valueViewOf(slot)))
      }
      after = batch[batch.length - 1]
      if (performance.now() - started >= this.sweepSliceMs || batch.length >= 256) await yieldToEventLoop()
    }
    index.ready = true
  }

  // ---- lifecycle -----------------------------------------------------------------------------------

  close (): void {
    this.closed = true
    this.sweepTimer?.cancel()
    this.sweepTimer = undefined
    this.listeners.clear()
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** A 32-bit field of a slot record. */
  private int (slot: number, field: number): number { return this.i32s[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + field] }
  private setInt (slot: number, field: number, value: number): void { this.i32s[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + field] = value }
  /** A 64-bit float field of a slot record. */
  private num (slot: number, field: number): number { return this.f64s[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * F64_PER_RECORD + field] }
  private setNum (slot: number, field: number, value: number): void { this.f64s[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * F64_PER_RECORD + field] = value }

  /** True when the value (len > 0 bytes) of slot is kept in `large` rather than in the key's item. */
  private isLarge (slot: number, len: number): boolean { return this.keys.tailLength(slot) !== len }

  /**
   * live() for many keys at once, into the shared working space of lookupMany. Also loads the last byte
   * of every value that sits after its key before any is read: a value's bytes often reach into a cache
   * line the key comparison did not bring in, and these loads then overlap as the lookups' do.
   */
  private liveMany (keys: readonly string[]): Int32Array {
    const n = keys.length
    if (this.handles.length < n) this.handles = new Int32Array(Math.max(n, 2 * this.handles.length))
    const handles = this.handles
    this.keys.findMany(keys, handles)
    let touched = 0
    for (let i = 0; i < n; i++) {
      const slot = handles[i]
      if (slot < 0) continue
      const len = this.int(slot, I_LEN)
      if (len > 0 && !this.isLarge(slot, len)) touched += this.keys.tailBuffer(slot)[this.keys.tailOffset(slot) + len - 1]
    }
    this.touched = touched
    const now = this.clock.now()
    for (let i = 0; i < n; i++) {
      const slot = handles[i]
      if (slot < 0) continue
      const exp = this.num(slot, F_EXP)
      if (exp !== 0 && exp <= now) {
        this.expireSlot(slot)
        // later repeats of this key in the batch found the slot that has just gone
        for (let j = i; j < n; j++) if (handles[j] === slot) handles[j] = -1
      }
    }
    return handles
  }

  /** The slot of a live key, expiring it first if its time has come; -1 when missing. */
  private live (key: string): number {
    const slot = this.keys.find(key)
    if (slot < 0) return -1
    const exp = this.num(slot, F_EXP)
    if (exp !== 0 && exp <= this.clock.now()) {
      this.expireSlot(slot)
      return -1
    }
    return slot
  }

  private infoOf (slot: number, key: string): KeyInfo {
    const exp = this.num(slot, F_EXP)
    return {
      key,
      size: this.int(slot, I_LEN),
      contentType: this.types.name(this.int(slot, I_TYPE)),
      revision: this.num(slot, F_REV),
      expiresAt: exp === 0 ? null : exp
    }
  }

  private readValue (slot: number): Buffer {
    const len = this.int(slot, I_LEN)
    if (len === 0) return Buffer.alloc(0)
    if (this.isLarge(slot, len)) return Buffer.from(this.large.get(slot)!)
    const out = Buffer.allocUnsafe(len)
    const page = this.keys.tailBuffer(slot)
    const off = this.keys.tailOffset(slot)
    // a byte loop beats the native copy's call overhead for small values
    if (len <= 64) for (let i = 0; i < len; i++) out[i] = page[off + i]
    else page.copy(out, 0, off, off + len)
    return out
  }

  private checkValue (value: Uint8Array): void {
    if (value.length > this.maxValueBytes) throw new TooLarge(`value is ${value.length} bytes; the limit is ${this.maxValueBytes}`, { limit: this.maxValueBytes })
  }

  private expiryFor (ttlMs: number): number {
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) throw new InvalidArgument('ttl must be a positive number of seconds')
    if (ttlMs > MAX_TTL_MS) throw new InvalidArgument('ttl must be at most 100 years')
    return this.clock.now() + Math.max(1, Math.ceil(ttlMs))
  }

  private slotCost (slot: number): number {
    return entryCostOf(this.keys.keyLength(slot), this.int(slot, I_LEN))
  }

  /**
   * Makes room for `extra` more bytes under the memory cap: with LRU, evicts least recently used keys
   * (never the ones being written); otherwise, or when even that cannot make room, refuses with 507
   * before touching anything.
   */
  private makeRoom (extra: number, protectedSlots: readonly number[]): void {
    if (this.maxMemory === 0 || extra <= 0 || this.bytes + extra <= this.maxMemory) return
    const refuse = (): never => {
      throw new InsufficientStorage(`the store is full (${this.bytes} of ${this.maxMemory} bytes used; this write needs ${extra} more)`, { usedBytes: this.bytes, maxBytes: this.maxMemory })
    }
    if (!this.lruEnabled) refuse()
    let kept = 0
    for (const slot of protectedSlots) kept += this.slotCost(slot)
    if (kept + extra > this.maxMemory) refuse()
    const now = this.clock.now()
    let victim = this.lruTail
    while (this.bytes + extra > this.maxMemory && victim >= 0) {
      const towardsHead = this.int(victim, I_PREV)
      if (!protectedSlots.includes(victim)) {
        const exp = this.num(victim, F_EXP)
        if (exp !== 0 && exp <= now) this.expireSlot(victim)
        else {
          this.evictions++
          this.remove(victim, 'evict')
        }
      }
      victim = towardsHead
    }
  }

  private insertSlot (key: string): number {
    let slot = this.freeSlot
    if (slot >= 0) this.freeSlot = this.int(slot, I_NEXT)
    else {
      slot = this.nextUnused++
      this.keys.reserve(slot)
    }
    this.setInt(slot, I_LEN, 0)
    this.setInt(slot, I_PREV, -1)
    this.setInt(slot, I_NEXT, -1)
    this.setInt(slot, I_TTLPOS, -1)
    this.setInt(slot, I_TYPE, -1)
    this.setNum(slot, F_EXP, 0)
    this.keys.add(key, slot)
    this.bytes += entryCost(key, 0)
    if (this.lruEnabled) this.pushFront(slot)
    return slot
  }

  /**
   * Writes value, type and expiry (-1 = keep the current one, 0 = none) to a slot that holds `key`,
   * assigns the next revision, updates indexes and emits the set event.
   */
  private write (slot: number, key: string, value: Uint8Array, typeId: number, expiresAt: number): number {
    const oldLen = this.int(slot, I_LEN)
    const oldType = this.int(slot, I_TYPE)
    const len = value.length
    const existed = oldType >= 0
    this.bytes += valueCost(len) - valueCost(oldLen)
    this.freeLarge(slot, oldLen)
    if (len <= this.keys.maxTail(slot)) this.keys.setTail(slot, value)
    else {
      this.keys.setTail(slot, EMPTY_VALUE)
      this.large.set(slot, Buffer.from(value))
    }
    this.setInt(slot, I_LEN, len)
    if (existed) this.types.release(oldType)
    this.setInt(slot, I_TYPE, typeId)
    if (expiresAt > 0) this.setExpiry(slot, expiresAt)
    else if (expiresAt === 0) this.clearExpiry(slot)
    if (this.lruEnabled) this.touch(slot)
    const revision = this.log.latest + 1
    this.setNum(slot, F_REV, revision)
    if (this.indexes.size > 0) this.indexValue(key, value)
    this.log.append(KIND_CODE.set, key)
    if (this.listeners.size > 0) {
      const exp = this.num(slot, F_EXP)
      this.emit({ type: 'set', key, revision, value, contentType: this.types.name(typeId), expiresAt: exp === 0 ? null : exp })
    }
    return revision
  }

  private indexValue (key: string, value: Uint8Array): void {
    let parsed: unknown
    let didParse = false
    for (const index of this.indexes.values()) {
      if (!index.covers(key)) continue
      if (!didParse) {
        parsed = parseJsonObject(value)
        didParse = true
      }
      index.update(key, parsed)
    }
  }

  /** Drops the value of slot (len bytes) from `large` if it is there; one in the key's item goes with it. */
  private freeLarge (slot: number, len: number): void {
    if (len > 0 && this.isLarge(slot, len)) this.large.delete(slot)
  }

  private expireSlot (slot: number): void {
    this.expirations++
    this.remove(slot, 'expire')
  }

  /** Removes a key everywhere and emits its delete / expire / evict event. */
  private remove (slot: number, kind: 'delete' | 'expire' | 'evict'): void {
    const len = this.int(slot, I_LEN)
    this.freeLarge(slot, len)
    const key = this.keys.remove(slot)
    this.removed++
    this.bytes -= entryCost(key, len)
    this.types.release(this.int(slot, I_TYPE))
    this.clearExpiry(slot)
    if (this.lruEnabled) this.unlink(slot)
    if (this.indexes.size > 0) for (const index of this.indexes.values()) index.remove(key)
    this.setInt(slot, I_TYPE, -1)
    this.setInt(slot, I_NEXT, this.freeSlot)
    this.freeSlot = slot
    this.logChange(kind, key)
  }

  /** Logs and emits an event that carries no value: delete, expire, evict, and ttl with the expiry it set (0: none). */
  private logChange (kind: Exclude<ChangeKind, 'set'>, key: string, expiresAt = 0): void {
    const revision = this.log.latest + 1
    this.log.append(KIND_CODE[kind], key, expiresAt)
    if (this.listeners.size === 0) return
    if (kind === 'ttl') this.emit({ type: kind, key, revision, expiresAt: expiresAt === 0 ? null : expiresAt })
    else this.emit({ type: kind, key, revision })
  }

  private emit (event: StoreEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  // TTL set: a dense array of slots with a TTL, so the sweep can sample them uniformly at random

  private setExpiry (slot: number, at: number): void {
    this.setNum(slot, F_EXP, at)
    if (this.int(slot, I_TTLPOS) >= 0) return
    if (this.ttlCount === this.ttlSlots.length) {
      const bigger = new Int32Array(this.ttlSlots.length * 2)
      bigger.set(this.ttlSlots)
      this.ttlSlots = bigger
    }
    this.ttlSlots[this.ttlCount] = slot
    this.setInt(slot, I_TTLPOS, this.ttlCount++)
    if (this.sweepTimer === undefined && !this.closed) this.scheduleSweep(this.sweepIntervalMs)
  }

  private clearExpiry (slot: number): void {
    // a slot has a TTL position exactly when it has an expiry: testing the expiry first spares a write
    // without TTL the read of I_TTLPOS, which can sit in the record's second cache line
    if (this.num(slot, F_EXP) === 0) return
    this.setNum(slot, F_EXP, 0)
    const pos = this.int(slot, I_TTLPOS)
    if (pos < 0) return
    const last = this.ttlSlots[--this.ttlCount]
    this.ttlSlots[pos] = last
    this.setInt(last, I_TTLPOS, pos)
    this.setInt(slot, I_TTLPOS, -1)
  }

  private scheduleSweep (ms: number): void {
    this.sweepTimer = this.clock.setTimer(() => { this.sweep() }, ms)
  }

  /**
   * Redis-style active expiry: sample keys with a TTL at random and expire those past due; repeat while
   * a sample shows many expired, up to a slice of wall time. If the slice ran out with many still
   * expired, come back almost at once (after the event loop has had its turn), else after the interval.
   */
  private sweep (): void {
    this.sweepTimer = undefined
    if (this.closed) return
    const started = performance.now()
    const now = this.clock.now()
    let busy = false
    while (this.ttlCount > 0) {
      let expired = 0
      const samples = Math.min(SWEEP_SAMPLE, this.ttlCount)
      for (let s = 0; s < samples && this.ttlCount > 0; s++) {
        const slot = this.ttlSlots[Math.floor(Math.random() * this.ttlCount)]
        if (this.num(slot, F_EXP) <= now) {
          this.expireSlot(slot)
          expired++
        }
      }
      if (expired <= samples * SWEEP_REPEAT_SHARE) break
      if (performance.now() - started >= this.sweepSliceMs) {
        busy = true
        break
      }
    }
    if (this.ttlCount > 0) this.scheduleSweep(busy ? 1 : this.sweepIntervalMs)
  }

  // LRU list: head = most recently used

  private touch (slot: number): void {
    if (slot === this.lruHead) return
    this.unlink(slot)
    this.pushFront(slot)
  }

  private unlink (slot: number): void {
    const prev = this.int(slot, I_PREV)
    const next = this.int(slot, I_NEXT)
    if (prev >= 0) this.setInt(prev, I_NEXT, next)
    else if (this.lruHead === slot) this.lruHead = next
    if (next >= 0) this.setInt(next, I_PREV, prev)
    else if (this.lruTail === slot) this.lruTail = prev
    this.setInt(slot, I_PREV, -1)
    this.setInt(slot, I_NEXT, -1)
  }

  private pushFront (slot: number): void {
    this.setInt(slot, I_PREV, -1)
    this.setInt(slot, I_NEXT, this.lruHead)
    if (this.lruHead >= 0) this.setInt(this.lruHead, I_PREV, slot)
    else this.lruTail = slot
    this.lruHead = slot
  }
}

function valueCost (len: number): number {
  return len === 0 ? 0 : len <= SLAB_MAX_VALUE ? Slab.itemSize(len) : len
}

/** Bytes a key accounts for under the memory cap. */
export function entryCost (key: string, valueLength: number): number {
  return entryCostOf(key.length, valueLength)
}

function entryCostOf (keyLength: number, valueLength: number): number {
  return ENTRY_OVERHEAD_BYTES + keyLength + valueCost(valueLength)
}

/** Throws InvalidArgument unless key is 1..1024 bytes of well-formed UTF-8. */
export function validateKey (key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgument('key must not be empty')
  // a UTF-8 byte is at most 3 per UTF-16 unit: short keys need no byte count
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new InvalidArgument(`key is longer than ${MAX_KEY_BYTES} bytes (UTF-8)`)
  }
  if (!isWellFormed(key)) throw new InvalidArgument('key is not well-formed Unicode')
}

/** String.prototype.isWellFormed (Node 20; not in the ES2022 typings): no lone surrogates. */
const isWellFormed = (text: string): boolean => (text as unknown as { isWellFormed: () => boolean }).isWellFormed()

function validateField (field: unknown): void {
  if (typeof field !== 'string' || field.length === 0 || field.length > 200) throw new InvalidArgument('field must be a dotted path of 1..200 characters, e.g. "user.country"')
  const parts = field.split('.')
  if (parts.length > 16 || parts.some(p => p.length === 0)) throw new InvalidArgument('field must be a dotted path of non-empty names, at most 16 deep')
}

function indexInfo (index: JsonIndex): IndexInfo {
  return { name: index.name, ...index.definition, ready: index.ready, indexedKeys: index.indexedKeys, distinctValues: index.distinctValues }
}

export function encodeCursor (key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

export function decodeCursor (cursor: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new InvalidArgument('cursor is not valid; pass the cursor of the previous page as is')
  const key = Buffer.from(cursor, 'base64url').toString('utf8')
  if (key.length === 0) throw new InvalidArgument('cursor is not valid; pass the cursor of the previous page as is')
  return key
}

function yieldToEventLoop (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}
