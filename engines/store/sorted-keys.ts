/**
 * A set of strings in sorted order (UTF-16 code unit order, as JavaScript compares strings), as a list of
 * sorted chunks: insert and delete cost a binary search plus a splice of at most MAX_CHUNK pointers, and
 * iteration can start at any string in O(log n). An index keeps the keys of each field value in one, so
 * its pages follow the same cursor rule as a scan: the next page starts strictly after the last key.
 */
const MAX_CHUNK = 512
const MIN_CHUNK = 64

export class SortedKeys {
  private chunks: string[][] = []
  private count = 0

  get size (): number { return this.count }

  /** Index of the chunk that holds key or where key belongs. */
  private chunkFor (key: string): number {
    const chunks = this.chunks
    let lo = 0
    let hi = chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (chunks[mid][0] <= key) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** Adds key; a key already present is left as is. */
  insert (key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key])
      this.count = 1
      return
    }
    const ci = this.chunkFor(key)
    const chunk = this.chunks[ci]
    const at = lowerBound(chunk, key)
    if (chunk[at] === key) return
    chunk.splice(at, 0, key)
    this.count++
    if (chunk.length > MAX_CHUNK) {
      // keys arriving in ascending order (the common case) fill chunks completely instead of by halves
      if (ci === this.chunks.length - 1 && at === chunk.length - 1) this.chunks.push([chunk.pop()!])
      else this.chunks.splice(ci + 1, 0, chunk.splice(MAX_CHUNK >>> 1))
    }
  }

  /** Removes key; false when it was not there. */
  delete (key: string): boolean {
    if (this.chunks.length === 0) return false
    const ci = this.chunkFor(key)
    const chunk = this.chunks[ci]
    const at = lowerBound(chunk, key)
    if (chunk[at] !== key) return false
    chunk.splice(at, 1)
    this.count--
    if (chunk.length === 0) this.chunks.splice(ci, 1)
    else if (chunk.length < MIN_CHUNK && this.chunks.length > 1) this.mergeSmall(ci)
    return true
  }

  private mergeSmall (ci: number): void {
    const left = ci > 0 ? ci - 1 : ci
    const a = this.chunks[left]
    const b = this.chunks[left + 1]
    if (b === undefined || a.length + b.length > MAX_CHUNK) return
    for (const k of b) a.push(k)
    this.chunks.splice(left + 1, 1)
  }

  has (key: string): boolean {
    if (this.chunks.length === 0) return false
    const chunk = this.chunks[this.chunkFor(key)]
    return chunk[lowerBound(chunk, key)] === key
  }

  /**
   * Keys in order starting at `from` (inclusive) or strictly after `after` when given. Holding the
   * iterator across writes is not supported: callers take a bounded page and seek again.
   */
  * iterate (from: string, after?: string): Generator<string> {
    if (this.chunks.length === 0) return
    const start = after !== undefined && after >= from ? after : from
    const strict = after !== undefined && after >= from
    let ci = this.chunkFor(start)
    let i = lowerBound(this.chunks[ci], start)
    if (strict && this.chunks[ci][i] === start) i++
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci]
      for (; i < chunk.length; i++) yield chunk[i]
    }
  }
}

function lowerBound (arr: string[], key: string): number {
  let lo = 0
  let hi = arr.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (arr[mid] < key) lo = mid + 1
    else hi = mid
  }
  return lo
}
