import type { Target } from './router.js'
import type { Session } from './session.js'
import type { SubscriptionOptions } from './types.js'

/**
 * Shared subscriptions, `$share/{group}/{filter}` (MQTT 5 §4.8.2; Mosquitto, EMQX and HiveMQ offer them to
 * MQTT 3.1.1 clients too): each message matching the filter goes to one member of the group instead of to
 * every subscriber. Members are sessions: a member whose client is offline stays in the group while its
 * session lasts. A message goes to the connected members in turn; when none is connected, a QoS 1/2
 * message goes to the queue of an offline member whose session outlives its connection (in turn, as
 * EMQX and HiveMQ do), and is otherwise dropped, as a topic nobody subscribes to drops it.
 */

const SHARE_PREFIX = '$share/'

/** `$share/{group}/{filter}` -> its group and filter; undefined for other filters, null for a malformed share. */
export function parseShare (topic: string): { group: string, filter: string } | null | undefined {
  if (!topic.startsWith(SHARE_PREFIX)) return undefined
  const rest = topic.slice(SHARE_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return null
  const group = rest.slice(0, slash)
  const filter = rest.slice(slash + 1)
  if (group.includes('+') || group.includes('#') || filter.length === 0) return null
  return { group, filter }
}

export class SharedGroup {
  /** Each member's delivery (its subscription's QoS, retain as published, identifier), made once per join. */
  private readonly members = new Map<Session, Target>()
  private order: Target[] = []
  /** Index in `order` of the member that gets the next message. */
  private next = 0

  /** `share` is the whole `$share/{group}/{filter}`; `filter` the part that matches topics. */
  constructor (readonly share: string, readonly filter: string) {}

  get size (): number { return this.members.size }

  /** Adds a member or updates its options. */
  join (session: Session, options: SubscriptionOptions): void {
    const target: Target = {
      session,
      qos: options.qos,
      retainAsPublished: options.retainAsPublished === true,
      subscriptionIds: options.subscriptionId !== undefined ? [options.subscriptionId] : undefined,
      own: null
    }
    // no local is refused on shared subscriptions (MQTT-3.8.3-4): its own messages go to it too
    target.own = target
    const previous = this.members.get(session)
    this.members.set(session, target)
    if (previous === undefined) this.order.push(target)
    else this.order[this.order.indexOf(previous)] = target
  }

  /** Removes a member; true when the group is empty now. */
  leave (session: Session): boolean {
    const target = this.members.get(session)
    if (target !== undefined) {
      this.members.delete(session)
      const i = this.order.indexOf(target)
      this.order.splice(i, 1)
      if (this.next > i) this.next--
      if (this.next >= this.order.length) this.next = 0
    }
    return this.members.size === 0
  }

  /** The member that gets the next message of this QoS; undefined: nobody (dropped). */
  pick (qos: number): Target | undefined {
    const count = this.order.length
    for (let tried = 0; tried < count; tried++) {
      const i = (this.next + tried) % count
      const target = this.order[i]
      if (target.session.outlet === null) continue
      this.next = (i + 1) % count
      return target
    }
    if (qos === 0) return undefined
    for (let tried = 0; tried < count; tried++) {
      const i = (this.next + tried) % count
      const target = this.order[i]
      if (target.session.expiryInterval === 0) continue
      this.next = (i + 1) % count
      return target
    }
    return undefined
  }
}
