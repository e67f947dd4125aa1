/**
 * Slot numbers kept in the order of their keys, as a list of sorted chunks (Int32Array, no per-key heap
 * object): insert and delete cost a binary search plus a shift of at most MAX_CHUNK entries, and a scan
 * seeks to any key in O(log n). Keys themselves live elsewhere; `compare(key, slot)` orders a key
 * against the key of a slot (negative when key sorts first, as JavaScript compares strings).
 */
const MAX_CHUNK = 512
const MIN_CHUNK = 64

export type KeySlotComparator = (key: string, slot: number) => number

interface Chunk { id: number, slots: Int32Array, length: number }

/** Per-slot chunk ids are kept in pages of this many slots. */
const PAGE_BITS = 14
const PAGE_MASK = (1 << PAGE_BITS) - 1

export class SlotOrder {
  private chunks: Chunk[] = []
  private count = 0
  /** Chunk by id (ids are reused once a chunk is gone). */
  private readonly byId: Array<Chunk | undefined> = []
  private readonly freeIds: number[] = []
  /** The id of the chunk each slot is in, so a delete needs no key comparison. */
  private readonly chunkOf: Int32Array[] = []

  constructor (private readonly compare: KeySlotComparator) {}

  get size (): number { return this.count }

  /** Index of the chunk that holds key or where it belongs. */
  private chunkFor (key: string): number {
    const chunks = this.chunks
    let lo = 0
    let hi = chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.compare(key, chunks[mid].slots[0]) >= 0) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** First position in chunk whose key is >= key. */
  private lowerBound (chunk: Chunk, key: string): number {
    let lo = 0
    let hi = chunk.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.compare(key, chunk.slots[mid]) > 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Adds the slot holding key (which must not be present yet). */
  insert (key: string, slot: number): void {
    if (this.chunks.length === 0) {
      this.chunks.push(this.newChunk(slot))
      this.count = 1
      return
    }
    // keys arriving in ascending order (the common case) append without a search
    const tail = this.chunks[this.chunks.length - 1]
    const appending = this.compare(key, tail.slots[tail.length - 1]) > 0
    const ci = appending ? this.chunks.length - 1 : this.chunkFor(key)
    let chunk = this.chunks[ci]
    const at = appending ? chunk.length : this.lowerBound(chunk, key)
    if (chunk.length === MAX_CHUNK) {
      const last = ci === this.chunks.length - 1
      if (last && at === chunk.length) {
        // appending fills chunks completely instead of by halves
        this.chunks.push(this.newChunk(slot))
        this.count++
        return
      }
      const half = MAX_CHUNK >>> 1
      const right = this.newChunk(-1)
      right.slots.set(chunk.slots.subarray(half, chunk.length))
      right.length = chunk.length - half
      for (let i = 0; i < right.length; i++) this.setChunkOf(right.slots[i], right.id)
      chunk.length = half
      this.chunks.splice(ci + 1, 0, right)
      if (at > half) {
        chunk = right
        this.insertAt(right, at - half, slot)
        this.count++
        return
      }
    }
    this.insertAt(chunk, at, slot)
    this.count++
  }

  private insertAt (chunk: Chunk, at: number, slot: number): void {
    chunk.slots.copyWithin(at + 1, at, chunk.length)
    chunk.slots[at] = slot
    chunk.length++
    this.setChunkOf(slot, chunk.id)
  }

  /** A chunk holding just `slot` (none when slot is -1). */
  private newChunk (slot: number): Chunk {
    const id = this.freeIds.pop() ?? this.byId.length
    const chunk: Chunk = { id, slots: new Int32Array(MAX_CHUNK), length: 0 }
    this.byId[id] = chunk
    if (slot >= 0) {
      chunk.slots[0] = slot
      chunk.length = 1
      this.setChunkOf(slot, id)
    }
    return chunk
  }

  private dropChunk (ci: number): void {
    const [chunk] = this.chunks.splice(ci, 1)
    this.byId[chunk.id] = undefined
    this.freeIds.push(chunk.id)
  }

  private setChunkOf (slot: number, id: number): void {
    while (slot >>> PAGE_BITS >= this.chunkOf.length) this.chunkOf.push(new Int32Array(1 << PAGE_BITS))
    this.chunkOf[slot >>> PAGE_BITS][slot & PAGE_MASK] = id
  }

  /** Removes a slot (found through its chunk id, without comparing keys); false when it was not there. */
  delete (slot: number): boolean {
    const page = this.chunkOf[slot >>> PAGE_BITS]
    const chunk = page === undefined ? undefined : this.byId[page[slot & PAGE_MASK]]
    if (chunk === undefined) return false
    const at = chunk.slots.subarray(0, chunk.length).indexOf(slot)
    if (at < 0) return false
    chunk.slots.copyWithin(at, at + 1, chunk.length)
    chunk.length--
    this.count--
    if (chunk.length === 0) this.dropChunk(this.chunks.indexOf(chunk))
    else if (chunk.length < MIN_CHUNK && this.chunks.length > 1) this.mergeSmall(this.chunks.indexOf(chunk))
    return true
  }

  private mergeSmall (ci: number): void {
    const left = ci > 0 ? ci - 1 : ci
    const a = this.chunks[left]
    const b = this.chunks[left + 1]
    if (b === undefined || a.length + b.length > MAX_CHUNK) return
    a.slots.set(b.slots.subarray(0, b.length), a.length)
    for (let i = 0; i < b.length; i++) this.setChunkOf(b.slots[i], a.id)
    a.length += b.length
    this.dropChunk(left + 1)
  }

  /**
   * Slots in key order from the first key >= `from`, or > `after` when after >= from. The order must
   * not change while the iterator is in use: callers take a bounded page and seek again.
   */
  * iterate (from: string, after?: string): Generator<number> {
    if (this.chunks.length === 0) return
    const strict = after !== undefined && after >= from
    const start = strict ? after : from
    let ci = this.chunkFor(start)
    let i = this.lowerBound(this.chunks[ci], start)
    if (strict && i < this.chunks[ci].length && this.compare(start, this.chunks[ci].slots[i]) === 0) i++
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci]
      for (; i < chunk.length; i++) yield chunk.slots[i]
    }
  }
}
