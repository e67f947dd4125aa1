/**
 * What happened to a key; `revision` is both the event id and (for set) the key's new revision. `ttl`:
 * the key's TTL was set or removed (its value and revision stay).
 */
export type ChangeKind = 'set' | 'delete' | 'expire' | 'evict' | 'ttl'
const KINDS: readonly ChangeKind[] = ['set', 'delete', 'expire', 'evict', 'ttl']
export const KIND_CODE: Readonly<Record<ChangeKind, number>> = { set: 0, delete: 1, expire: 2, evict: 3, ttl: 4 }

export interface LoggedChange {
  revision: number
  kind: ChangeKind
  key: string
  /** ttl events: the expiry the key was given (epoch ms), or 0 for none. */
  expiresAt: number
}

/**
 * The bounded backlog of the change feed: the last `capacity` events in a ring, without values (a replayed
 * set reads the key's current value if it is still that revision). A ttl event keeps the expiry it set, so
 * that a replay tells what the change was even when the key changed again since. Event ids are consecutive
 * integers, so an id maps to its ring slot directly.
 */
export class ChangeLog {
  private readonly kinds: Uint8Array
  private readonly keys: string[]
  private readonly expiries: Float64Array
  private count = 0
  private latestId: number
  /** The ring slot of latestId, kept as a small integer: ids are above 2^31, where % is a slow float op. */
  private latestPos: number

  constructor (readonly capacity: number, startId: number) {
    this.kinds = new Uint8Array(capacity)
    this.keys = new Array<string>(capacity).fill('')
    this.expiries = new Float64Array(capacity)
    this.latestId = startId
    this.latestPos = startId % capacity
  }

  get latest (): number { return this.latestId }
  /** The oldest id still held (latest + 1 when empty). */
  get oldest (): number { return this.latestId - this.count + 1 }

  /** Records the event with id latest + 1; `expiresAt` only for ttl events (0: the TTL was removed). */
  append (kind: number, key: string, expiresAt = 0): void {
    ++this.latestId
    const pos = this.latestPos + 1 === this.capacity ? 0 : this.latestPos + 1
    this.latestPos = pos
    this.kinds[pos] = kind
    this.keys[pos] = key
    this.expiries[pos] = expiresAt
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
      yield { revision: id, kind: KINDS[this.kinds[pos]], key: this.keys[pos], expiresAt: this.expiries[pos] }
    }
  }
}
