import type { Delivery, KickReason, Outlet } from '../../engines/pubsub/types.js'
import type { Connection } from './connection.js'
import { encodePublish, expirySeconds, publishSize, sharedQos0, type PublishFields } from './encode.js'
import { RC } from './reason.js'
import { backpressure, PAUSE_BYTES } from './flow.js'

/**
 * A connection's side of its session: the bus calls deliver() for each message to the client (live,
 * retained at subscribe, queued), release() for a PUBREL to send, kick() to end the connection.
 *
 * The QoS 0 path allocates nothing per subscriber in the common case: the ACL answer is cached by the
 * principal, the bytes are shared (encode.ts), and the writer queues them without a closure.
 */
export class MqttOutlet implements Outlet {
  constructor (private readonly connection: Connection) {}

  deliver (delivery: Delivery): boolean {
    const c = this.connection
    if (c.state === 'closed') return false
    if (!c.front.gate.canReceive(c, delivery.message.topic)) return false
    if (delivery.qos > 0 && c.window !== null) return c.window.offer(delivery)
    return this.write(delivery)
  }

  /** Encodes and queues one delivery; false when it is not sent (over a limit). */
  write (delivery: Delivery): boolean {
    const c = this.connection
    if (c.state === 'closed') return false
    const message = delivery.message
    const front = c.front
    const v5 = c.version === 5
    const expiry = v5 && message.expiresAt !== undefined ? expirySeconds(message, Date.now()) : undefined
    if (delivery.qos === 0) {
      // a subscriber that does not keep up loses QoS 0 messages rather than growing the broker's memory
      const pending = c.writer.pending
      if (pending > PAUSE_BYTES) {
        if (pending > front.settings.sendBufferBytes) {
          front.stats.droppedQos0++
          return false
        }
        backpressure(c)
      }
      if (!v5 || (delivery.subscriptionIds === undefined && c.outboundAliases === null)) {
        const bytes = sharedQos0(delivery, v5 ? 5 : 4, expiry)
        if (bytes.length > c.clientMaxPacket) {
          front.stats.droppedTooLarge++
          return false
        }
        c.send(bytes)
        return true
      }
    }
    const fields: PublishFields = {
      version: v5 ? 5 : 4,
      topic: message.topic,
      qos: delivery.qos,
      retain: delivery.retain,
      dup: delivery.dup === true,
      packetId: delivery.packetId ?? 0
    }
    if (v5) {
      if (expiry !== undefined) fields.expirySeconds = expiry
      if (delivery.subscriptionIds !== undefined && delivery.subscriptionIds.length > 0) fields.subscriptionIds = delivery.subscriptionIds
      const aliases = c.outboundAliases
      // checked as if the alias were new (3 bytes more): an alias is only given to a message that is sent
      if (aliases !== null) fields.topicAlias = 0
      if (publishSize(message, fields) > c.clientMaxPacket) {
        front.stats.droppedTooLarge++
        return false
      }
      if (aliases !== null) {
        const { alias, known } = aliases.aliasFor(message.topic)
        fields.topicAlias = alias
        if (known) fields.topic = ''
      }
    }
    c.send(encodePublish(message, fields))
    return true
  }

  release (packetId: number): void {
    this.connection.send(Buffer.from([0x62, 0x02, packetId >> 8, packetId & 0xff]))
  }

  kick (reason: KickReason): void {
    const c = this.connection
    switch (reason) {
      case 'takeover':
        c.fail(RC.sessionTakenOver, 'another connection took this session over')
        break
      case 'shutdown':
        c.fail(RC.serverShuttingDown, 'the server is shutting down')
        break
      case 'expired':
        c.fail(RC.notAuthorized, 'the session expired')
        break
      case 'revoked':
        c.publishWill = false
        c.fail(RC.notAuthorized, 'the credentials of this connection were revoked')
        break
      default:
        // a reason added to the contract later (an operator's disconnect...): 0x98 administrative action
        c.fail(RC.administrativeAction, `disconnected by the broker (${String(reason)})`)
    }
  }
}
