import { encodeBody, segmentHeaderSize, writeSegmentHeader, type BodyInput } from './codec.js'

/**
 * Segments: the bodies of one push batch stored as ONE LevelDB value (codec.ts encodeSegment), so a push
 * of n messages costs one write op instead of n, and an ack request one op per segment it touches (the
 * segment's gone bitmap, or the segment's deletion once all its messages are gone) instead of one per
 * message. Small pushes (one to three messages) share a segment too: the one of their group commit,
 * which stays open for more bodies until the storage assembles the commit's batch (OpenSegment). A
 * message is "gone" from its segment when it was acked, expired or purged, or when it left as a dead
 * letter (purged or moved to its deadLetter queue); dead letters themselves stay in place.
 *
 * Every live segment is known in memory (loaded at start), so where a message's body is stored follows
 * from its sequence number: inside the range of a segment, or else in its own body record.
 */

/** First allocation of an open segment's buffer (it doubles as bodies join). */
const OPEN_SEGMENT_CHUNK = 16 * 1024

/**
 * The bodies of a segment that is still open: encoded one after another into one growing buffer (no
 * allocation per message), made into the segment's value when its write's batch is assembled.
 */
export class OpenSegment {
  private chunk: Buffer
  /** Bytes of the bodies so far. */
  used = 0
  private readonly ends: number[] = []
  private readonly priorities: number[] = []

  constructor (firstBodySize: number) {
    this.chunk = Buffer.allocUnsafeSlow(Math.max(OPEN_SEGMENT_CHUNK, firstBodySize))
  }

  /** Adds a body; returns its bytes. */
  append (body: BodyInput, size: number, priority: number): Buffer {
    if (this.used + size > this.chunk.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.chunk.length * 2, this.used + size))
      this.chunk.copy(grown, 0, 0, this.used)
      this.chunk = grown
    }
    const encoded = encodeBody(body, this.chunk, this.used)
    this.used += size
    this.ends.push(this.used)
    this.priorities.push(priority)
    return encoded
  }

  /** The body of the segment's i-th message. */
  body (i: number): Buffer {
    return this.chunk.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i])
  }

  /** The size the segment's value will have with one more body of `size` bytes. */
  sizeWith (size: number): number {
    return segmentHeaderSize(this.ends.length + 1) + this.used + size
  }

  /** The segment's value (codec.ts segment layout), allocated at its exact size. */
  value (): Buffer {
    const header = segmentHeaderSize(this.ends.length)
    const value = Buffer.allocUnsafeSlow(header + this.used)
    writeSegmentHeader(value, this.priorities, this.ends.map(end => end + header))
    this.chunk.copy(value, header, 0, this.used)
    return value
  }
}

/** One stored segment: messages with the sequence numbers start .. start + count - 1. */
export class Segment {
  /** Messages not gone yet; the segment is deleted when this reaches 0. */
  live: number
  /** Bit i set: message start + i is gone. Made on the first message to go. */
  gone: Uint8Array | undefined
  /** A gone bitmap record exists on disk (deleted with the segment). */
  goneWritten = false
  /** Deleted (all its messages gone); still in SegmentIndex's list until the next compaction. */
  removed = false
  /** The segment's value while kept in memory (QueueState.bodies explains when). */
  cached: Buffer | undefined
  /** Messages not yet handed out (nor gone) since the push: the segment stays cached until none is left. */
  pending: number
  /**
   * Set while the segment is open (see OpenSegment): its bodies are here, not yet in `cached` nor in
   * LevelDB, and `count` still grows by appendOpen.
   */
  open: OpenSegment | undefined
  /** The write that stores the segment (for an open one: the write its later messages' pushes wait for). */
  written: Promise<void> | undefined

  constructor (readonly start: number, public count: number, gone?: Uint8Array) {
    this.live = count
    this.pending = count
    if (gone !== undefined) {
      this.gone = new Uint8Array(Math.ceil(count / 8))
      this.gone.set(gone.subarray(0, this.gone.length))
      for (let i = 0; i < count; i++) if (this.isGoneAt(i)) this.live--
      this.goneWritten = true
    }
  }

  /** Adds a message's body to an open segment; returns the body's bytes. */
  appendOpen (body: BodyInput, size: number, priority: number): Buffer {
    const encoded = (this.open as OpenSegment).append(body, size, priority)
    this.count++
    this.live++
    this.pending++
    return encoded
  }

  isGoneAt (i: number): boolean {
    return this.gone !== undefined && (this.gone[i >> 3] & (1 << (i & 7))) !== 0
  }

  isGone (seq: number): boolean {
    return this.isGoneAt(seq - this.start)
  }

  /** Marks a message gone; false when it already was. */
  markGone (seq: number): boolean {
    const i = seq - this.start
    if (this.gone === undefined) this.gone = new Uint8Array(Math.ceil(this.count / 8))
    const bit = 1 << (i & 7)
    if ((this.gone[i >> 3] & bit) !== 0) return false
    this.gone[i >> 3] |= bit
    this.live--
    return true
  }

  /** A copy of the gone bitmap, to be written (the live one keeps changing). */
  goneRecord (): Buffer {
    return Buffer.from(this.gone ?? new Uint8Array(Math.ceil(this.count / 8)))
  }
}

/**
 * The live segments of a queue in ascending order of start, found by sequence number with a binary
 * search. Segments are only ever added with a start above every earlier one (sequence numbers grow), so
 * the list stays sorted by appending; a removed segment is dropped from the list lazily, in a compaction
 * once removed ones make up half of it (a removal from the front costs O(1) amortised, not a splice).
 */
export class SegmentIndex {
  private list: Segment[] = []
  private removedCount = 0
  /** The segment found last: consecutive lookups (a batch of messages) mostly hit the same one. */
  private last: Segment | undefined

  get size (): number { return this.list.length - this.removedCount }

  add (segment: Segment): void {
    const tail = this.list[this.list.length - 1]
    if (tail !== undefined && tail.start + tail.count > segment.start) throw new Error('segments must be added in ascending order')
    this.list.push(segment)
  }

  /** The live segment that holds seq, or undefined (its body is in a record of its own, or it is gone). */
  find (seq: number): Segment | undefined {
    const last = this.last
    if (last !== undefined && seq >= last.start && seq < last.start + last.count) return last.removed ? undefined : last
    const list = this.list
    let lo = 0
    let hi = list.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const s = list[mid]
      if (seq < s.start) hi = mid - 1
      else if (seq >= s.start + s.count) lo = mid + 1
      else {
        this.last = s
        return s.removed ? undefined : s
      }
    }
    return undefined
  }

  remove (segment: Segment): void {
    if (segment.removed) return
    segment.removed = true
    this.removedCount++
    if (this.removedCount > 64 && this.removedCount * 2 > this.list.length) {
      this.list = this.list.filter(s => !s.removed)
      this.removedCount = 0
      if (this.last?.removed === true) this.last = undefined
    }
  }

  clear (): void {
    for (const s of this.list) s.removed = true
    this.list = []
    this.removedCount = 0
    this.last = undefined
  }
}
