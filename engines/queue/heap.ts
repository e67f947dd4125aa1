/**
 * Min-heaps (and the ready queue) for the queue's in-memory indexes. Ready and delayed messages can
 * number in the millions, so they are kept as fixed-width numeric rows in Float64Arrays (8 bytes per
 * column, no object per message); leases are few and change often, so they live in an indexed heap of
 * objects that supports removal and re-keying in O(log n).
 */

/** Rows of `width` numbers, ordered by column 0, then column 1. */
export class TupleHeap {
  private data: Float64Array
  private count = 0
  private readonly minCapacity: number

  constructor (readonly width: number, capacity = 64) {
    this.minCapacity = capacity
    this.data = new Float64Array(width * capacity)
  }

  get size (): number { return this.count }

  /** Column `col` of the smallest row (undefined when empty). */
  peek (col: number): number | undefined {
    return this.count === 0 ? undefined : this.data[col]
  }

  push (a: number, b: number, c = 0, d = 0): void {
    const w = this.width
    if ((this.count + 1) * w > this.data.length) {
      const grown = new Float64Array(this.data.length * 2)
      grown.set(this.data)
      this.data = grown
    }
    const at = this.count * w
    this.data[at] = a
    this.data[at + 1] = b
    if (w > 2) this.data[at + 2] = c
    if (w > 3) this.data[at + 3] = d
    this.count++
    this.siftUp(this.count - 1)
  }

  /** Removes the smallest row and copies it into `out`; false when empty. */
  pop (out: number[]): boolean {
    if (this.count === 0) return false
    const w = this.width
    for (let i = 0; i < w; i++) out[i] = this.data[i]
    this.count--
    if (this.count > 0) {
      this.data.copyWithin(0, this.count * w, this.count * w + w)
      this.siftDown(0)
    }
    this.maybeShrink()
    return true
  }

  /** Every row in heap (not sorted) order. */
  * rows (): Generator<number[]> {
    const w = this.width
    for (let i = 0; i < this.count; i++) yield Array.from(this.data.subarray(i * w, i * w + w))
  }

  clear (): void {
    this.count = 0
    this.data = new Float64Array(this.width * this.minCapacity)
  }

  private less (i: number, j: number): boolean {
    const w = this.width
    const a = this.data[i * w]
    const b = this.data[j * w]
    if (a !== b) return a < b
    return this.data[i * w + 1] < this.data[j * w + 1]
  }

  private swap (i: number, j: number): void {
    const w = this.width
    for (let k = 0; k < w; k++) {
      const t = this.data[i * w + k]
      this.data[i * w + k] = this.data[j * w + k]
      this.data[j * w + k] = t
    }
  }

  private siftUp (i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(i, parent)) return
      this.swap(i, parent)
      i = parent
    }
  }

  private siftDown (i: number): void {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let smallest = i
      if (l < this.count && this.less(l, smallest)) smallest = l
      if (r < this.count && this.less(r, smallest)) smallest = r
      if (smallest === i) return
      this.swap(i, smallest)
      i = smallest
    }
  }

  /** Gives memory back after a large backlog drains. */
  private maybeShrink (): void {
    const capacity = this.data.length / this.width
    if (capacity > 4096 && this.count < capacity / 4) {
      this.data = this.data.slice(0, Math.max(this.minCapacity, capacity >> 1) * this.width)
    }
  }
}

/**
 * The ready messages of one priority as rows (seq, enqueuedAt), smallest seq first. Messages mostly come
 * in seq order (new pushes): those are appended to a FIFO ring, O(1) in and out. A message that comes back
 * behind the ring's last one (nack, expired lease, redrive, restart) goes to a heap instead, O(log n).
 * Taking compares the two heads.
 */
export class ReadyQueue {
  private ring: Float64Array
  /** Row index of the ring's first row, and its row count. */
  private head = 0
  private count = 0
  private readonly heap = new TupleHeap(2)
  private readonly minCapacity: number

  constructor (capacity = 64) {
    this.minCapacity = capacity
    this.ring = new Float64Array(2 * capacity)
  }

  get size (): number { return this.count + this.heap.size }

  push (seq: number, enqueuedAt: number): void {
    const capacity = this.ring.length >> 1
    if (this.count > 0 && seq <= this.ring[2 * ((this.head + this.count - 1) % capacity)]) {
      this.heap.push(seq, enqueuedAt)
      return
    }
    if (this.count === capacity) this.resize(capacity * 2)
    const at = 2 * ((this.head + this.count) % (this.ring.length >> 1))
    this.ring[at] = seq
    this.ring[at + 1] = enqueuedAt
    this.count++
  }

  /** Column `col` (0 seq, 1 enqueuedAt) of the smallest row (undefined when empty). */
  peek (col: number): number | undefined {
    if (this.fromRing()) return this.ring[2 * this.head + col]
    return this.heap.peek(col)
  }

  /** Removes the smallest row into `out` = [seq, enqueuedAt]; false when empty. */
  pop (out: number[]): boolean {
    if (!this.fromRing()) return this.heap.pop(out)
    out[0] = this.ring[2 * this.head]
    out[1] = this.ring[2 * this.head + 1]
    this.head = (this.head + 1) % (this.ring.length >> 1)
    this.count--
    // gives memory back after a large backlog drains
    const capacity = this.ring.length >> 1
    if (capacity > 4096 && this.count < capacity / 4) this.resize(Math.max(this.minCapacity, capacity >> 1))
    return true
  }

  /** Every row, in no particular order. */
  * rows (): Generator<number[]> {
    const capacity = this.ring.length >> 1
    for (let i = 0; i < this.count; i++) {
      const at = 2 * ((this.head + i) % capacity)
      yield [this.ring[at], this.ring[at + 1]]
    }
    yield * this.heap.rows()
  }

  /**
   * The `n` smallest rows, smallest first, without removing them (a queue's peek): the ring's first n in
   * order, merged with the heap's rows (the heap holds only messages that came back out of order).
   */
  smallest (n: number): Array<[number, number]> {
    const out: Array<[number, number]> = []
    const capacity = this.ring.length >> 1
    for (let i = 0; i < this.count && i < n; i++) {
      const at = 2 * ((this.head + i) % capacity)
      out.push([this.ring[at], this.ring[at + 1]])
    }
    if (this.heap.size === 0) return out
    for (const row of this.heap.rows()) out.push([row[0], row[1]])
    return out.sort((a, b) => a[0] - b[0]).slice(0, n)
  }

  /** Whether the smallest row is the ring's head (else the heap's top, or none). */
  private fromRing (): boolean {
    if (this.count === 0) return false
    const top = this.heap.peek(0)
    return top === undefined || this.ring[2 * this.head] < top
  }

  private resize (capacity: number): void {
    const next = new Float64Array(2 * capacity)
    const old = this.ring.length >> 1
    for (let i = 0; i < this.count; i++) {
      const from = 2 * ((this.head + i) % old)
      next[2 * i] = this.ring[from]
      next[2 * i + 1] = this.ring[from + 1]
    }
    this.ring = next
    this.head = 0
  }
}

export interface HeapItem { heapIndex: number }

/** A binary min-heap of objects that know their position, so any item can be removed or re-keyed. */
export class IndexedHeap<T extends HeapItem> {
  private items: T[] = []

  constructor (private readonly less: (a: T, b: T) => boolean) {}

  get size (): number { return this.items.length }

  peek (): T | undefined { return this.items[0] }

  push (item: T): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.siftUp(item.heapIndex)
  }

  pop (): T | undefined {
    const top = this.items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  remove (item: T): void {
    const i = item.heapIndex
    if (i < 0 || this.items[i] !== item) return
    const last = this.items.pop() as T
    item.heapIndex = -1
    if (i < this.items.length) {
      this.items[i] = last
      last.heapIndex = i
      this.siftUp(i)
      this.siftDown(last.heapIndex)
    }
  }

  /** Restores order after the item's key changed. */
  update (item: T): void {
    if (item.heapIndex < 0) return
    this.siftUp(item.heapIndex)
    this.siftDown(item.heapIndex)
  }

  clear (): void {
    for (const item of this.items) item.heapIndex = -1
    this.items = []
  }

  private place (item: T, i: number): void {
    this.items[i] = item
    item.heapIndex = i
  }

  private siftUp (i: number): void {
    const item = this.items[i]
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = this.items[parent]
      if (!this.less(item, p)) break
      this.place(p, i)
      i = parent
    }
    this.place(item, i)
  }

  private siftDown (i: number): void {
    const item = this.items[i]
    const n = this.items.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const child = r < n && this.less(this.items[r], this.items[l]) ? r : l
      if (!this.less(this.items[child], item)) break
      this.place(this.items[child], i)
      i = child
    }
    this.place(item, i)
  }
}
