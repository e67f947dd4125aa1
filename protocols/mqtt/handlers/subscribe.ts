import type mqttPacket from 'mqtt-packet'
import type { QoS, SubscriptionRequest } from '../../../engines/pubsub/types.js'
import { overTopicLimit } from '../../../engines/pubsub/topics.js'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'
import { parseShared, validFilter } from '../topics.js'
import { repeatedProperty } from './acks.js'

/** The largest subscription identifier (a variable byte integer, MQTT 5 §3.8.2.1.2). */
const MAX_SUBSCRIPTION_ID = 268_435_455

/**
 * SUBSCRIBE: each filter checked on its own (syntax and $share form, the topic limits, the ACL; a refused
 * one gets its failure code in the SUBACK: 0x80 in 3.1.1, 0x8F / 0x97 / 0x87 in v5), the granted QoS
 * capped by --mqtt-max-qos; the accepted ones go to the session, then the SUBACK, then the retained
 * messages they are owed (MQTT-3.3.1-6 / retain handling).
 */
export function handleSubscribe (c: Connection, packet: mqttPacket.ISubscribePacket): void {
  const session = c.session
  if (session === null) return
  const id = packet.messageId ?? 0
  if (id === 0) return c.fail(RC.protocolError, 'packet identifier 0') // MQTT-2.3.1-1
  if (packet.subscriptions.length === 0) return c.fail(RC.protocolError, 'a SUBSCRIBE without topic filters') // MQTT-3.8.3-3
  let subscriptionId: number | undefined
  const props = c.v5 ? packet.properties : undefined
  if (props !== undefined) {
    const repeated = repeatedProperty(props)
    if (repeated !== undefined || Array.isArray(props.subscriptionIdentifier)) return c.fail(RC.protocolError, `the property ${repeated ?? 'subscriptionIdentifier'} is given twice`)
    subscriptionId = props.subscriptionIdentifier
    if (subscriptionId !== undefined && (subscriptionId < 1 || subscriptionId > MAX_SUBSCRIPTION_ID)) return c.fail(RC.protocolError, 'subscription identifier 0')
  }
  const front = c.front
  const codes: number[] = []
  const accepted: SubscriptionRequest[] = []
  /** Index in `codes` of each accepted subscription. */
  const at: number[] = []
  for (const s of packet.subscriptions) {
    const shared = parseShared(s.topic)
    if (shared !== undefined && s.nl === true) return c.fail(RC.protocolError, 'no local on a shared subscription') // MQTT-3.8.3-4
    const code = refusal(c, s.topic, shared)
    if (code !== undefined) {
      codes.push(c.v5 ? code : 0x80)
      continue
    }
    const qos = Math.min(s.qos, front.settings.maxQos) as QoS
    const options: SubscriptionRequest['options'] = { qos }
    if (c.v5) {
      if (s.nl === true) options.noLocal = true
      if (s.rap === true) options.retainAsPublished = true
      if (s.rh !== undefined && s.rh !== 0) options.retainHandling = s.rh as 1 | 2
      if (subscriptionId !== undefined) options.subscriptionId = subscriptionId
    }
    at.push(codes.length)
    codes.push(qos)
    accepted.push({ filter: s.topic, options })
  }
  const suback = (): void => {
    c.sendPacket({ cmd: 'suback', messageId: id, granted: codes })
  }
  if (accepted.length === 0) {
    c.chainAck(suback)
    return
  }
  session.subscribe(accepted).then(existed => {
    if (c.state === 'closed') return
    c.chainAck(() => {
      suback()
      session.deliverRetained(accepted, existed)
    })
  }, (err: unknown) => {
    front.log('subscribe failed', { clientId: c.clientId, err: err instanceof Error ? err.message : String(err) })
    for (const i of at) codes[i] = c.v5 ? RC.unspecified : 0x80
    c.chainAck(suback)
  })
}

/** Why one filter is refused (its v5 SUBACK code), or undefined. */
function refusal (c: Connection, filter: string, shared: { group: string, filter: string } | null | undefined): number | undefined {
  if (shared === null || (shared === undefined && !validFilter(filter))) return RC.topicFilterInvalid
  const over = overTopicLimit(filter, c.front.bus.topicLimits)
  if (over !== undefined) {
    c.front.gate.limit(over === 'length' ? 'mqtt_max_topic_length' : 'mqtt_max_topic_levels')
    return RC.quotaExceeded
  }
  if (!c.front.gate.canSubscribe(c, shared?.filter ?? filter)) return RC.notAuthorized
  return undefined
}
