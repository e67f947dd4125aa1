import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { topicMatches } from './topics.js'

/**
 * Shared subscriptions, `$share/{group}/{filter}` (as Mosquitto, EMQX and HiveMQ offer them to MQTT 3.1.1
 * clients): each message matching the filter goes to one connected member of the group, in turn, instead
 * of to every subscriber. aedes knows nothing of them: it keeps the client's subscription to the literal
 * `$share/...` filter (so SUBACK, UNSUBSCRIBE and a persistent session's restore work as for any filter,
 * and no real topic matches it), and this class routes the filter's messages itself. Members are the
 * connected clients: a group with none drops the message, as a topic nobody subscribes to does.
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

interface Member { client: Client, qos: number }
type DeliverFn = (packet: AedesPublishPacket, cb: () => void) => void

interface Group {
  filter: string
  members: Member[]
  /** Index of the member that gets the next message. */
  next: number
  deliver: DeliverFn
}

/** The part of an aedes client this module uses that aedes' typings leave out. */
interface DeliveringClient { closed?: boolean, clean?: boolean, publish: (message: object, done: (err?: Error) => void) => void }

export class SharedSubscriptions {
  /** By the full `$share/{group}/{filter}` topic. */
  private readonly groups = new Map<string, Group>()

  constructor (private readonly broker: Aedes) {}

  /** Adds (or updates the QoS of) a member; resolves once the group's routing is in place. */
  async join (client: Client, share: string, filter: string, qos: number): Promise<void> {
    const group = this.groups.get(share)
    if (group !== undefined) {
      const member = group.members.find(m => m.client.id === client.id)
      if (member !== undefined) {
        member.client = client
        member.qos = qos
      } else group.members.push({ client, qos })
      return
    }
    const created: Group = { filter, members: [{ client, qos }], next: 0, deliver: (packet, cb) => { this.deliver(created, packet, cb) } }
    this.groups.set(share, created)
    await new Promise<void>(resolve => { this.broker.subscribe(filter, created.deliver, resolve) })
  }

  /**
   * Removes a client from the groups of these filters (those that are shares). By the client object, not
   * its id: when a session is taken over, the new connection may have rejoined before the old one is gone.
   */
  leave (client: Client, topics: Iterable<string>): void {
    for (const topic of topics) {
      const group = this.groups.get(topic)
      if (group === undefined) continue
      group.members = group.members.filter(m => m.client !== client)
      if (group.members.length === 0) {
        this.groups.delete(topic)
        this.broker.unsubscribe(group.filter, group.deliver, () => {})
      }
    }
  }

  /** Removes a client from every group (it disconnected). */
  leaveAll (client: Client): void {
    this.leave(client, [...this.groups.keys()])
  }

  /** Whether a message on `topic` would go to a group with a persistent-session member (which stores it). */
  keepsFor (topic: string): boolean {
    for (const group of this.groups.values()) {
      if (!topicMatches(group.filter, topic)) continue
      if (group.members.some(m => (m.client as unknown as DeliveringClient).clean === false)) return true
    }
    return false
  }

  private deliver (group: Group, packet: AedesPublishPacket, cb: () => void): void {
    // MQTT 4.7.2: a filter starting with a wildcard does not match topics starting with '$'
    const first = group.filter.charCodeAt(0)
    if (packet.topic.charCodeAt(0) === 36 && (first === 43 || first === 35)) { cb(); return }
    const count = group.members.length
    for (let tried = 0; tried < count; tried++) {
      const i = (group.next + tried) % count
      const member = group.members[i]
      const client = member.client as unknown as DeliveringClient
      if (client.closed === true) continue
      group.next = (i + 1) % count
      // the client's own publish path: queued first for a persistent session, QoS capped by the subscription
      client.publish({
        cmd: 'publish',
        topic: packet.topic,
        payload: packet.payload,
        qos: Math.min(packet.qos, member.qos),
        retain: false,
        dup: false
      }, () => { cb() })
      return
    }
    cb()
  }
}
