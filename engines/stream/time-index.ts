/** Small to start with: a broker may hold many small streams. */
const INITIAL_CAPACITY = 16

/**
 * An in-memory copy of a stream's time index: one point (timestamp, offset) at the first offset of every
 * new batch timestamp, as stored under the T keys. A seek by time is then a binary search here instead of
 * index reads in storage.
 *
 * Memory is bounded whatever the stream's length: when maxPoints are held (16 bytes each: 1 MiB for the
 * default 65 536), every second point is
 * dropped and the index is no longer `exact`; a seek then brackets the time between two points held here
 * and reads the one stored point between them (one small range read in storage).
 *
 * Points below the stream's first offset (removed by retention) are dropped as the first offset moves.
 */
export class TimeIndex {
  private timestamps: Float64Array
  private offsets: Float64Array
  private readonly maxPoints: number
  private start = 0
  private end = 0
  /** True while every stored point at or above the first offset is held here. */
  exact = true

  constructor (maxPoints: number) {
    this.maxPoints = Math.max(2, Math.floor(maxPoints))
    this.timestamps = new Float64Array(Math.min(INITIAL_CAPACITY, this.maxPoints))
    this.offsets = new Float64Array(this.timestamps.length)
  }

  get size (): number { return this.end - this.start }

  get lastTimestamp (): number { return this.end > this.start ? this.timestamps[this.end - 1] : -Infinity }

  /** Adds a point (timestamps and offsets strictly increase; anything else is ignored). */
  add (timestamp: number, offset: number): void {
    if (this.end > this.start && (timestamp <= this.timestamps[this.end - 1] || offset <= this.offsets[this.end - 1])) return
    if (this.end === this.timestamps.length) this.makeRoom()
    this.timestamps[this.end] = timestamp
    this.offsets[this.end] = offset
    this.end++
  }

  private makeRoom (): void {
    const size = this.size
    if (this.start > 0 && size <= this.timestamps.length / 2) {
      this.timestamps.copyWithin(0, this.start, this.end)
      this.offsets.copyWithin(0, this.start, this.end)
    } else if (this.timestamps.length < this.maxPoints) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(Math.min(this.maxPoints, a.length * 2))
        b.set(a.subarray(this.start, this.end))
        return b
      }
      this.timestamps = grow(this.timestamps)
      this.offsets = grow(this.offsets)
    } else {
      // full: keep every second point, so the points still span the whole retained stream
      let w = 0
      for (let r = this.start; r < this.end; r += 2, w++) {
        this.timestamps[w] = this.timestamps[r]
        this.offsets[w] = this.offsets[r]
      }
      this.end = w
      this.start = 0
      this.exact = false
      return
    }
    this.end = size
    this.start = 0
  }

  /** Forgets the points below the first retained offset. */
  dropBelow (first: number): void {
    while (this.start < this.end && this.offsets[this.start] < first) this.start++
  }

  /**
   * The first point at or after `time`: its index among the held points (size when there is none),
   * with its timestamp and offset (undefined when there is none).
   */
  find (time: number): { i: number, timestamp?: number, offset?: number } {
    let lo = this.start
    let hi = this.end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.timestamps[mid] < time) lo = mid + 1
      else hi = mid
    }
    return lo < this.end ? { i: lo - this.start, timestamp: this.timestamps[lo], offset: this.offsets[lo] } : { i: this.size }
  }
}
