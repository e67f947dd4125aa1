import { Slab, SLAB_MAX_VALUE } from './slab.js'
import { SlotOrder } from './slot-order.js'

/*
 * Per-slot records: 64 bytes per slot (one cache line), in chunks so growing never copies. The first
 * RECORD_OWN_FIELDS int32 are the keyspace's; the rest (RECORD_USER_FIELDS onwards) belong to the
 * caller, which keeps its per-key fields there so that a lookup touches a single record.
 */
const CHUNK_BITS = 14
const CHUNK_SLOTS = 1 << CHUNK_BITS
const CHUNK_MASK = CHUNK_SLOTS - 1
/** int32 per record. */
export const RECORD_INTS = 16
const K_HASH = 0
/** Slab address of the slot's item: the key's characters, then the tail (see setTail). */
const K_ADDR = 1
/** Length in UTF-16 code units; WIDE_FLAG set when stored as UTF-16 rather than one byte per unit. */
const K_LEN = 2
/** Next slot + 1 in the same hash bucket, 0 = end of chain. */
const K_NEXT = 3
/** Bytes of tail after the key in the item. */
const K_TAIL = 4
/**
 * The item address of the next slot in the chain (as the bucket keeps the head's), so a walk down a
 * chain loads the next record and its key bytes at the same time rather than one after the other.
 */
const K_NEXT_ADDR = 5
/** The first int32 of a record the caller may use (even, so a float64 can start there). */
export const RECORD_USER_FIELDS = 6
/** Buckets moved from the old table to the new one by every operation while a resize is under way. */
const REHASH_STEP = 16
const WIDE_FLAG = 0x40000000
const LEN_MASK = WIDE_FLAG - 1

/**
 * The key -> slot index of the store, without a JavaScript object per key: a chained hash table of slot
 * numbers in Int32Arrays, key characters in a slab (one byte per character when every code unit fits,
 * else UTF-16) followed by the caller's tail bytes (the store's value), and the slots again in key order
 * for scans. A million keys then cost a few typed arrays
 * instead of a million strings and Map entries: less memory and nothing for the garbage collector to trace.
 * The table doubles when it holds more keys than buckets, incrementally like Redis: every operation moves
 * a few buckets of the old table, so no single call rehashes a million keys.
 */
export class Keyspace {
  /**
   * Two int32 per bucket: the first slot of its chain + 1 (0 = empty) and that slot's item address. With
   * the address at hand, a lookup reads the key's bytes and its record at the same time (two independent
   * cache misses overlap) instead of one after the other.
   */
  private table = new Int32Array(32)
  /** Buckets - 1. */
  private mask = 15
  /** While resizing: the old table; its buckets below rehashAt have been moved. */
  private old: Int32Array | null = null
  private oldMask = 0
  private rehashAt = 0
  private count = 0
  /** Per-key working space of findMany. */
  private scratch = new Int32Array(256)
  /** Where findMany leaves the sum of the bytes it loaded ahead, so the loads are not optimised away. */
  private touched = 0
  /** Record chunks as int32 and as float64 (the same memory), for the caller's fields too. */
  readonly i32s: Int32Array[] = []
  readonly f64s: Float64Array[] = []
  private readonly records = this.i32s
  private readonly slab = new Slab()
  readonly order = new SlotOrder((key, slot) => this.compare(key, slot))

  get size (): number { return this.count }

  /** The slot of key, or -1. */
  find (key: string): number {
    const hash = hashKey(key)
    if (this.old !== null) {
      this.rehashStep()
      if (this.old !== null && (hash & this.oldMask) >= this.rehashAt) {
        const slot = this.search(this.old, hash & this.oldMask, hash, key)
        if (slot >= 0) return slot
      }
    }
    return this.search(this.table, hash & this.mask, hash, key)
  }

  /**
   * The slots of many keys (-1 for missing) into out. A single lookup waits for two dependent cache
   * misses (bucket, then record and key bytes); over a batch, each step runs for every key before the
   * next step starts, so the misses of different keys are in flight together instead of one after the
   * other. The answers are those of find() for each key.
   */
  findMany (keys: readonly string[], out: Int32Array): void {
    const n = keys.length
    if (this.old !== null || n < 4) {
      for (let i = 0; i < n; i++) out[i] = this.find(keys[i])
      return
    }
    if (this.scratch.length < n) this.scratch = new Int32Array(n)
    const scratch = this.scratch
    const table = this.table
    const mask = this.mask
    // step 1: hashes, and the chain heads loaded for all keys at once
    for (let i = 0; i < n; i++) {
      const hash = hashKey(keys[i])
      scratch[i] = hash
      out[i] = table[2 * (hash & mask)]
    }
    // step 2: the head records and the first bytes of their keys, again for all keys at once
    let touched = 0
    for (let i = 0; i < n; i++) {
      const entry = out[i]
      if (entry === 0) continue
      const slot = entry - 1
      const addr = table[2 * (scratch[i] & mask) + 1]
      touched += this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + K_HASH] + this.slab.page(addr)[Slab.offset(addr)]
    }
    this.touched = touched
    // step 3: the comparisons, now from cache
    for (let i = 0; i < n; i++) {
      const hash = scratch[i]
      out[i] = out[i] === 0 ? -1 : this.search(table, hash & mask, hash, keys[i])
    }
  }

  private search (table: Int32Array, bucket: number, hash: number, key: string): number {
    let entry = table[2 * bucket]
    let addr = table[2 * bucket + 1]
    while (entry !== 0) {
      const slot = entry - 1
      const rec = this.records[slot >>> CHUNK_BITS]
      const r = (slot & CHUNK_MASK) * RECORD_INTS
      if (rec[r + K_HASH] === hash && this.equals(key, addr, rec[r + K_LEN])) return slot
      entry = rec[r + K_NEXT]
      addr = rec[r + K_NEXT_ADDR]
    }
    return -1
  }

  /** Makes sure the record of slot exists. */
  reserve (slot: number): void {
    while (slot >>> CHUNK_BITS >= this.i32s.length) {
      const chunk = new ArrayBuffer(CHUNK_SLOTS * RECORD_INTS * 4)
      this.i32s.push(new Int32Array(chunk))
      this.f64s.push(new Float64Array(chunk))
    }
  }

  /** Records key for a slot (key must not be present), with an empty tail. */
  add (key: string, slot: number): void {
    this.reserve(slot)
    if (this.old !== null) this.rehashStep()
    else if (this.count + 1 > this.mask + 1) this.startResize()
    const hash = hashKey(key)
    let wide = false
    for (let i = 0; i < key.length; i++) {
      if (key.charCodeAt(i) > 0xff) {
        wide = true
        break
      }
    }
    const bytes = wide ? key.length * 2 : key.length
    const addr = this.slab.alloc(bytes)
    this.slab.page(addr).write(key, Slab.offset(addr), bytes, wide ? 'utf16le' : 'latin1')
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    rec[r + K_HASH] = hash
    rec[r + K_ADDR] = addr
    rec[r + K_LEN] = key.length | (wide ? WIDE_FLAG : 0)
    rec[r + K_TAIL] = 0
    // new keys always go to the new table
    const bucket = hash & this.mask
    rec[r + K_NEXT] = this.table[2 * bucket]
    rec[r + K_NEXT_ADDR] = this.table[2 * bucket + 1]
    this.table[2 * bucket] = slot + 1
    this.table[2 * bucket + 1] = addr
    this.count++
    this.order.insert(key, slot)
  }

  /** Forgets the key of a slot; returns the key. */
  remove (slot: number): string {
    const key = this.keyOf(slot)
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    this.order.delete(slot)
    if (this.old !== null) this.rehashStep()
    const hash = rec[r + K_HASH]
    const inOld = this.old !== null && (hash & this.oldMask) >= this.rehashAt && this.unlink(this.old, hash & this.oldMask, slot)
    if (!inOld) this.unlink(this.table, hash & this.mask, slot)
    this.count--
    this.slab.free(rec[r + K_ADDR], keyBytes(rec[r + K_LEN]) + rec[r + K_TAIL])
    rec[r + K_TAIL] = 0
    return key
  }

  /** Bytes of tail the item of slot holds. */
  tailLength (slot: number): number {
    return this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + K_TAIL]
  }

  /** Longest tail the slot's item can take: an item is at most SLAB_MAX_VALUE bytes, key included. */
  maxTail (slot: number): number {
    return SLAB_MAX_VALUE - keyBytes(this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + K_LEN])
  }

  /** The buffer holding the tail of slot (shared: read tailLength bytes from tailOffset only). */
  tailBuffer (slot: number): Buffer {
    return this.slab.page(this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + K_ADDR])
  }

  tailOffset (slot: number): number {
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    return Slab.offset(rec[r + K_ADDR]) + keyBytes(rec[r + K_LEN])
  }

  /**
   * Stores bytes (at most maxTail(slot)) right after the key in the slot's item, so a lookup that has
   * just compared the key finds them in the same cache lines. The item is rewritten in place when its
   * size class does not change, else moved to an item of the right class.
   */
  setTail (slot: number, bytes: Uint8Array): void {
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    const addr = rec[r + K_ADDR]
    const keyLen = keyBytes(rec[r + K_LEN])
    const oldSize = keyLen + rec[r + K_TAIL]
    const newSize = keyLen + bytes.length
    if (Slab.itemSize(oldSize) === Slab.itemSize(newSize)) {
      this.slab.page(addr).set(bytes, Slab.offset(addr) + keyLen)
    } else {
      const moved = this.slab.alloc(newSize)
      const target = this.slab.page(moved)
      const at = Slab.offset(moved)
      const off = Slab.offset(addr)
      this.slab.page(addr).copy(target, at, off, off + keyLen)
      target.set(bytes, at + keyLen)
      this.slab.free(addr, oldSize)
      rec[r + K_ADDR] = moved
      this.itemMoved(slot, rec[r + K_HASH], moved)
    }
    rec[r + K_TAIL] = bytes.length
  }

  keyOf (slot: number): string {
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    const addr = rec[r + K_ADDR]
    const len = rec[r + K_LEN]
    const off = Slab.offset(addr)
    const page = this.slab.page(addr)
    return (len & WIDE_FLAG) !== 0 ? page.toString('utf16le', off, off + (len & LEN_MASK) * 2) : page.toString('latin1', off, off + len)
  }

  /** Length of the key of a slot in UTF-16 code units. */
  keyLength (slot: number): number {
    return this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * RECORD_INTS + K_LEN] & LEN_MASK
  }

  /** Slots in key order (see SlotOrder.iterate). */
  iterate (from: string, after?: string): Generator<number> {
    return this.order.iterate(from, after)
  }

  private equals (key: string, addr: number, lenField: number): boolean {
    const len = lenField & LEN_MASK
    if (len !== key.length) return false
    const page = this.slab.page(addr)
    const off = Slab.offset(addr)
    if ((lenField & WIDE_FLAG) === 0) {
      for (let i = 0; i < len; i++) if (page[off + i] !== key.charCodeAt(i)) return false
    } else {
      for (let i = 0; i < len; i++) if ((page[off + 2 * i] | (page[off + 2 * i + 1] << 8)) !== key.charCodeAt(i)) return false
    }
    return true
  }

  /** Orders key against the key of slot, code unit by code unit (JavaScript string order). */
  private compare (key: string, slot: number): number {
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * RECORD_INTS
    const addr = rec[r + K_ADDR]
    const lenField = rec[r + K_LEN]
    const len = lenField & LEN_MASK
    const page = this.slab.page(addr)
    const off = Slab.offset(addr)
    const wide = (lenField & WIDE_FLAG) !== 0
    const n = Math.min(len, key.length)
    for (let i = 0; i < n; i++) {
      const unit = wide ? page[off + 2 * i] | (page[off + 2 * i + 1] << 8) : page[off + i]
      const diff = key.charCodeAt(i) - unit
      if (diff !== 0) return diff
    }
    return key.length - len
  }

  /** Takes slot out of the chain of bucket in table; false when it is not there. */
  private unlink (table: Int32Array, bucket: number, slot: number): boolean {
    let prev = -1
    for (let entry = table[2 * bucket]; entry !== 0;) {
      const current = entry - 1
      const rec = this.records[current >>> CHUNK_BITS]
      const r = (current & CHUNK_MASK) * RECORD_INTS
      if (current === slot) {
        const next = rec[r + K_NEXT]
        const nextAddr = rec[r + K_NEXT_ADDR]
        if (prev >= 0) {
          const prevRec = this.records[prev >>> CHUNK_BITS]
          const p = (prev & CHUNK_MASK) * RECORD_INTS
          prevRec[p + K_NEXT] = next
          prevRec[p + K_NEXT_ADDR] = nextAddr
        } else {
          table[2 * bucket] = next
          table[2 * bucket + 1] = nextAddr
        }
        return true
      }
      prev = current
      entry = rec[r + K_NEXT]
    }
    return false
  }

  /**
   * Keeps the copies of a moved item's address right: in its bucket when the slot heads its chain, else
   * in the record before it. A key being resized can be in the old table's chain or the new one's.
   */
  private itemMoved (slot: number, hash: number, addr: number): void {
    this.relink(this.table, hash & this.mask, slot, addr)
    if (this.old !== null) this.relink(this.old, hash & this.oldMask, slot, addr)
  }

  private relink (table: Int32Array, bucket: number, slot: number, addr: number): void {
    let entry = table[2 * bucket]
    if (entry === slot + 1) {
      table[2 * bucket + 1] = addr
      return
    }
    while (entry !== 0) {
      const rec = this.records[(entry - 1) >>> CHUNK_BITS]
      const r = ((entry - 1) & CHUNK_MASK) * RECORD_INTS
      entry = rec[r + K_NEXT]
      if (entry === slot + 1) {
        rec[r + K_NEXT_ADDR] = addr
        return
      }
    }
  }

  private startResize (): void {
    this.old = this.table
    this.oldMask = this.mask
    this.rehashAt = 0
    this.table = new Int32Array(this.old.length * 2)
    this.mask = this.table.length / 2 - 1
  }

  /** Moves the next REHASH_STEP buckets of the old table into the new one. */
  private rehashStep (): void {
    const old = this.old!
    const buckets = this.oldMask + 1
    const end = Math.min(buckets, this.rehashAt + REHASH_STEP)
    for (let b = this.rehashAt; b < end; b++) {
      for (let entry = old[2 * b]; entry !== 0;) {
        const slot = entry - 1
        const rec = this.records[slot >>> CHUNK_BITS]
        const r = (slot & CHUNK_MASK) * RECORD_INTS
        const next = rec[r + K_NEXT]
        const bucket = rec[r + K_HASH] & this.mask
        rec[r + K_NEXT] = this.table[2 * bucket]
        rec[r + K_NEXT_ADDR] = this.table[2 * bucket + 1]
        this.table[2 * bucket] = entry
        this.table[2 * bucket + 1] = rec[r + K_ADDR]
        entry = next
      }
      old[2 * b] = 0
      old[2 * b + 1] = 0
    }
    this.rehashAt = end
    if (end === buckets) this.old = null
  }
}

/** Bytes the characters of a key take in its item, from its K_LEN field. */
function keyBytes (lenField: number): number {
  return (lenField & WIDE_FLAG) !== 0 ? (lenField & LEN_MASK) * 2 : lenField
}

/** FNV-1a over UTF-16 code units with a murmur3 finaliser, so sequential keys spread over the table. */
function hashKey (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h | 0
}
