import { Slab } from './slab.js'
import { SlotOrder } from './slot-order.js'

/* Per-slot key record: 4 int32 per slot, in chunks so growing never copies. */
const CHUNK_BITS = 14
const CHUNK_SLOTS = 1 << CHUNK_BITS
const CHUNK_MASK = CHUNK_SLOTS - 1
const STRIDE = 4
const K_HASH = 0
const K_ADDR = 1
/** Length in UTF-16 code units; WIDE_FLAG set when stored as UTF-16 rather than one byte per unit. */
const K_LEN = 2
/** Next slot + 1 in the same hash bucket, 0 = end of chain. */
const K_NEXT = 3
/** Buckets moved from the old table to the new one by every operation while a resize is under way. */
const REHASH_STEP = 16
const WIDE_FLAG = 0x40000000
const LEN_MASK = WIDE_FLAG - 1

/**
 * The key -> slot index of the store, without a JavaScript object per key: a chained hash table of slot
 * numbers in Int32Arrays, key characters in a slab (one byte per character when every code unit fits,
 * else UTF-16), and the slots again in key order for scans. A million keys then cost a few typed arrays
 * instead of a million strings and Map entries: less memory and nothing for the garbage collector to trace.
 * The table doubles when it holds more keys than buckets, incrementally like Redis: every operation moves
 * a few buckets of the old table, so no single call rehashes a million keys.
 */
export class Keyspace {
  /** Bucket -> first slot + 1 (0 = empty). */
  private table = new Int32Array(16)
  private mask = 15
  /** While resizing: the old table; its buckets below rehashAt have been moved. */
  private old: Int32Array | null = null
  private oldMask = 0
  private rehashAt = 0
  private count = 0
  private readonly records: Int32Array[] = []
  private readonly slab = new Slab()
  readonly order = new SlotOrder((key, slot) => this.compare(key, slot))

  get size (): number { return this.count }

  /** The slot of key, or -1. */
  find (key: string): number {
    const hash = hashKey(key)
    if (this.old !== null) {
      this.rehashStep()
      if (this.old !== null && (hash & this.oldMask) >= this.rehashAt) {
        const slot = this.search(this.old[hash & this.oldMask], hash, key)
        if (slot >= 0) return slot
      }
    }
    return this.search(this.table[hash & this.mask], hash, key)
  }

  private search (head: number, hash: number, key: string): number {
    for (let entry = head; entry !== 0;) {
      const slot = entry - 1
      const rec = this.records[slot >>> CHUNK_BITS]
      const r = (slot & CHUNK_MASK) * STRIDE
      if (rec[r + K_HASH] === hash && this.equals(key, rec[r + K_ADDR], rec[r + K_LEN])) return slot
      entry = rec[r + K_NEXT]
    }
    return -1
  }

  /** Records key for a slot (key must not be present). */
  add (key: string, slot: number): void {
    while (slot >>> CHUNK_BITS >= this.records.length) this.records.push(new Int32Array(CHUNK_SLOTS * STRIDE))
    if (this.old !== null) this.rehashStep()
    else if (this.count + 1 > this.table.length) this.startResize()
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
    const r = (slot & CHUNK_MASK) * STRIDE
    rec[r + K_HASH] = hash
    rec[r + K_ADDR] = addr
    rec[r + K_LEN] = key.length | (wide ? WIDE_FLAG : 0)
    // new keys always go to the new table
    const bucket = hash & this.mask
    rec[r + K_NEXT] = this.table[bucket]
    this.table[bucket] = slot + 1
    this.count++
    this.order.insert(key, slot)
  }

  /** Forgets the key of a slot; returns the key. */
  remove (slot: number): string {
    const key = this.keyOf(slot)
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * STRIDE
    this.order.delete(slot)
    if (this.old !== null) this.rehashStep()
    const hash = rec[r + K_HASH]
    const inOld = this.old !== null && (hash & this.oldMask) >= this.rehashAt && this.unlink(this.old, hash & this.oldMask, slot)
    if (!inOld) this.unlink(this.table, hash & this.mask, slot)
    this.count--
    const len = rec[r + K_LEN]
    this.slab.free(rec[r + K_ADDR], (len & WIDE_FLAG) !== 0 ? (len & LEN_MASK) * 2 : len)
    return key
  }

  keyOf (slot: number): string {
    const rec = this.records[slot >>> CHUNK_BITS]
    const r = (slot & CHUNK_MASK) * STRIDE
    const addr = rec[r + K_ADDR]
    const len = rec[r + K_LEN]
    const off = Slab.offset(addr)
    const page = this.slab.page(addr)
    return (len & WIDE_FLAG) !== 0 ? page.toString('utf16le', off, off + (len & LEN_MASK) * 2) : page.toString('latin1', off, off + len)
  }

  /** Length of the key of a slot in UTF-16 code units. */
  keyLength (slot: number): number {
    return this.records[slot >>> CHUNK_BITS][(slot & CHUNK_MASK) * STRIDE + K_LEN] & LEN_MASK
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
    const r = (slot & CHUNK_MASK) * STRIDE
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
    for (let entry = table[bucket]; entry !== 0;) {
      const current = entry - 1
      const rec = this.records[current >>> CHUNK_BITS]
      const r = (current & CHUNK_MASK) * STRIDE
      if (current === slot) {
        if (prev < 0) table[bucket] = rec[r + K_NEXT]
        else this.records[prev >>> CHUNK_BITS][(prev & CHUNK_MASK) * STRIDE + K_NEXT] = rec[r + K_NEXT]
        return true
      }
      prev = current
      entry = rec[r + K_NEXT]
    }
    return false
  }

  private startResize (): void {
    this.old = this.table
    this.oldMask = this.mask
    this.rehashAt = 0
    this.table = new Int32Array(this.old.length * 2)
    this.mask = this.table.length - 1
  }

  /** Moves the next REHASH_STEP buckets of the old table into the new one. */
  private rehashStep (): void {
    const old = this.old!
    const end = Math.min(old.length, this.rehashAt + REHASH_STEP)
    for (let b = this.rehashAt; b < end; b++) {
      for (let entry = old[b]; entry !== 0;) {
        const slot = entry - 1
        const rec = this.records[slot >>> CHUNK_BITS]
        const r = (slot & CHUNK_MASK) * STRIDE
        const next = rec[r + K_NEXT]
        const bucket = rec[r + K_HASH] & this.mask
        rec[r + K_NEXT] = this.table[bucket]
        this.table[bucket] = entry
        entry = next
      }
      old[b] = 0
    }
    this.rehashAt = end
    if (end === old.length) this.old = null
  }
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
