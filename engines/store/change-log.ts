/** What happened to a key; `revision` is both the event id and (for set) the key's new revision. */
export type ChangeKind = 'set' | 'delete' | 'expire' | 'evict'
const KINDS: readonly ChangeKind[] = ['set', 'delete', 'expire', 'evict']
export const KIND_CODE: Readonly<Record<ChangeKind, number>> = { set: 0, delete: 1, expire: 2, evict: 3 }

export interface LoggedChange { revision: number, kind: ChangeKind, key: string }

/**
 * The bounded backlog of the change feed: the last `capacity` events in a ring, without values (a replayed
 * set reads the key's current value if it is still that revision). Event ids are consecutive integers, so
 * an id maps to its ring slot directly.
 */
export class ChangeLog {
  private readonly kinds: Uint8Array
  private readonly keys: string[]
  private count = 0
  private latestId: number
  /** The ring slot of latestId, kept as a small integer: ids are above 2^31, where % is a slow float op. */
  private latestPos: number

  constructor (readonly capacity: number, startId: number) {
    this.kinds = new Uint8Array(capacity)
    this.keys = new Array<string>(capacity).fill('')
    this.latestId = startId
    this.latestPos = startId % capacity
  }

  get latest (): number { return this.latestId }
  /** The oldest id still held (latest + 1 when empty). */
  get oldest (): number { return this.latestId - this.count + 1 }

  /** Records the event with id latest + 1. */
  append (kind: number, key: string): void {
    ++this.latestId
    const pos = this.latestPos + 1 === this.capacity ? 0 : this.latestPos + 1
    this.latestPos = pos
    this.kinds[pos] = kind
    this.keys[pos] = key
    if (this.count < this.capacity) this.count++
  }

  /** True when every event after `afterId` is still held (and afterId is not from the future). */
  canReplayAfter (afterId: number): boolean {
    return Number.isSafeInteger(afterId) && afterId >= this.oldest - 1 && afterId <= this.latestId
  }

  /** Events with ids after afterId up to the latest, oldest first; check canReplayAfter first. */
  * after (afterId: number): Generator<LoggedChange> {
    for (let id = afterId + 1; id <= this.latestId; id++) {
      const pos = id % this.capacity
      yield { revision: id, kind: KINDS[this.kinds[pos]], key: this.keys[pos] }
    }
  }
}
