/** Small to start with: a broker may hold many small streams. */
const INITIAL_CAPACITY = 16

/**
 * The first offsets of a stream's chunks, for the chunks written since `coveredFrom`: a read that
 * starts at an offset at or above it finds its chunk's key here (a binary search) and reads it with one
 * point lookup instead of a reverse seek in storage (which costs much more, and much more again while
 * LevelDB compacts). Below coveredFrom (chunks written before a restart, or dropped to stay within
 * bounds) reads seek in storage as before.
 *
 * Memory is bounded: at most maxPoints offsets (8 bytes each); when full, the older half is dropped and
 * coveredFrom moves up to the oldest offset still held.
 */
export class ChunkIndex {
  private starts: Float64Array
  private readonly maxPoints: number
  private start = 0
  private end = 0

  /** Every chunk starting at or above this offset is held. */
  constructor (public coveredFrom: number, maxPoints: number) {
    this.maxPoints = Math.max(2, Math.floor(maxPoints))
    this.starts = new Float64Array(Math.min(INITIAL_CAPACITY, this.maxPoints))
  }

  get size (): number { return this.end - this.start }

  /** Adds the first offset of a chunk just written (chunks are added in offset order). */
  add (first: number): void {
    if (first < this.coveredFrom || (this.end > this.start && first <= this.starts[this.end - 1])) return
    if (this.end === this.starts.length) this.makeRoom()
    this.starts[this.end++] = first
  }

  private makeRoom (): void {
    const size = this.size
    if (this.start > 0 && size <= this.starts.length / 2) {
      this.starts.copyWithin(0, this.start, this.end)
    } else if (this.starts.length < this.maxPoints) {
      const bigger = new Float64Array(Math.min(this.maxPoints, this.starts.length * 2))
      bigger.set(this.starts.subarray(this.start, this.end))
      this.starts = bigger
    } else {
      // full: keep the newer half (readers mostly read near the end of a stream)
      const keep = size >> 1
      this.starts.copyWithin(0, this.end - keep, this.end)
      this.start = 0
      this.end = keep
      this.coveredFrom = this.starts[0]
      return
    }
    this.start = 0
    this.end = size
  }

  /** The first offset of the chunk holding `offset`, when that chunk is held. */
  chunkOf (offset: number): number | undefined {
    if (offset < this.coveredFrom || this.end === this.start) return undefined
    let lo = this.start
    let hi = this.end
    // the last start <= offset
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.starts[mid] <= offset) lo = mid + 1
      else hi = mid
    }
    return lo > this.start ? this.starts[lo - 1] : undefined
  }

  /** Forgets chunks that lie wholly below the first retained offset. */
  dropBelow (first: number): void {
    while (this.end - this.start >= 2 && this.starts[this.start + 1] <= first) this.start++
    if (this.end > this.start && this.coveredFrom < this.starts[this.start]) this.coveredFrom = this.starts[this.start]
  }
}
