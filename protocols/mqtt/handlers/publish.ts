import { isUtf8 } from 'node:buffer'
import type mqttPacket from 'mqtt-packet'
import type { BusMessage, MessageProperties } from '../../../engines/pubsub/types.js'
import { overTopicLimit } from '../../../engines/pubsub/topics.js'
import type { Connection, OrderedPacket } from '../connection.js'
import { orderedUserProperties, primeQos0 } from '../encode.js'
import type { RawPublish } from '../reader.js'
import { RC } from '../reason.js'
import { hasWildcard, isSysTopic } from '../topics.js'
import { ackBytes, repeatedProperty } from './acks.js'
import { routingFrom } from '../flow.js'

type PublishProperties = NonNullable<mqttPacket.IPublishPacket['properties']>

/**
 * PUBLISH from the client: checked (topic, alias, limits, QoS and retain the broker offers, the receive
 * maximum, the ACL, the payload format), routed, then acknowledged once every durable write it causes is
 * done (PUBACK for QoS 1, PUBREC for QoS 2). QoS 0 allocates no promise and no closure of its own here.
 */
export function handlePublish (c: Connection, packet: mqttPacket.IPublishPacket): void {
  const front = c.front
  const settings = front.settings
  const qos = packet.qos
  const id = packet.messageId ?? 0
  let topic = packet.topic
  const props = c.v5 ? packet.properties : undefined
  if (qos === 0 && packet.dup) return c.fail(RC.protocolError, 'DUP set on a QoS 0 PUBLISH') // MQTT-3.3.1-2
  if (qos > 0 && id === 0) return c.fail(RC.protocolError, 'packet identifier 0') // MQTT-2.3.1-1
  if (props !== undefined) {
    const repeated = repeatedProperty(props)
    if (repeated !== undefined) return c.fail(RC.protocolError, `the property ${repeated} is given twice`)
    if (props.responseTopic !== undefined && (props.responseTopic.length === 0 || hasWildcard(props.responseTopic))) return c.fail(RC.protocolError, 'a response topic must be a topic name') // MQTT-3.3.2-14
    if (props.topicAlias !== undefined) {
      const resolved = c.inboundAliases === null ? 'invalid' : c.inboundAliases.resolve(props.topicAlias, topic)
      if (resolved === 'invalid') return c.fail(RC.topicAliasInvalid, `topic alias ${props.topicAlias} is 0 or over the maximum ${c.inboundAliases?.maximum ?? 0}`)
      if (resolved === undefined) return c.fail(RC.protocolError, `topic alias ${props.topicAlias} was never set`)
      topic = resolved
    }
    if (props.subscriptionIdentifier !== undefined) return c.fail(RC.protocolError, 'a PUBLISH from a client may not carry a subscription identifier')
  }
  if (topic.length === 0) return c.fail(c.v5 ? RC.protocolError : RC.topicNameInvalid, 'empty topic name')
  if (hasWildcard(topic)) return c.fail(RC.topicNameInvalid, 'a topic name may not hold wildcards')
  const over = overTopicLimit(topic, front.bus.topicLimits)
  if (over !== undefined) {
    front.gate.limit(over === 'length' ? 'mqtt_max_topic_length' : 'mqtt_max_topic_levels')
    return c.fail(RC.topicNameInvalid, `topic over the ${over} limit`)
  }
  if (qos > settings.maxQos) return c.fail(RC.qosNotSupported, `QoS ${qos} is over the maximum QoS ${settings.maxQos}`)
  if (packet.retain && !settings.retainAvailable) return c.fail(RC.retainNotSupported, 'retained messages are not available')
  if (qos > 0 && !takeInbound(c, qos as 1 | 2, id)) return
  if (isSysTopic(topic)) {
    // $SYS is the broker's: a 3.1.1 client is closed (no PUBACK), a v5 client told 0x87
    if (!c.v5) return c.fail(RC.notAuthorized, '$SYS topics are the broker\'s')
    return refuse(c, qos, id, RC.notAuthorized, '$SYS topics are the broker\'s')
  }
  if (!front.gate.canPublish(c, topic)) {
    if (settings.denyDisconnect) return c.fail(RC.notAuthorized, `publish to "${topic}" denied`)
    // 3.1.1 has no refusal of a PUBLISH: dropped and acknowledged; v5 says why
    return refuse(c, qos, id, RC.notAuthorized, `publish to "${topic}" denied`)
  }
  const payload = packet.payload as Buffer
  if (props?.payloadFormatIndicator === true && !isUtf8(payload)) {
    if (qos === 0) return c.fail(RC.payloadFormatInvalid, 'the payload format indicator says UTF-8 and the payload is not')
    return refuse(c, qos, id, RC.payloadFormatInvalid, 'the payload format indicator says UTF-8 and the payload is not')
  }
  const message: BusMessage = { topic, payload, qos, retain: packet.retain, from: c.clientId }
  if (props !== undefined) {
    const properties = messageProperties(props, (packet as OrderedPacket).userPropertyList)
    if (properties !== undefined) message.properties = properties
    if (props.messageExpiryInterval !== undefined) message.expiresAt = Date.now() + props.messageExpiryInterval * 1000
  }
  if (qos === 0) {
    const raw = (packet as RawPublish).raw
    if (raw !== undefined && message.properties === undefined && message.expiresAt === undefined) primeQos0(message, c.v5 ? 5 : 4, raw)
    routingFrom(c)
    const durable = front.bus.route(message, 'mqtt')
    routingFrom(null)
    if (durable !== undefined) durable.catch(noop)
    return
  }
  if (qos === 1) {
    routingFrom(c)
    const durable = front.bus.route(message, 'mqtt')
    routingFrom(null)
    if (durable === undefined && c.ackTail === null) {
      // kept nowhere and nothing before it waits: acknowledged at once, no closure made
      c.inboundQos1--
      c.send(ackBytes(c, 'puback', id, RC.success))
      return
    }
    c.ackAfter(durable, () => {
      c.inboundQos1--
      c.send(ackBytes(c, 'puback', id, RC.success))
    })
    return
  }
  const session = c.session
  if (session === null) return
  const fresh = session.receiveQos2(id)
  if (typeof fresh === 'boolean') {
    c.ackAfter(fresh ? front.bus.route(message, 'mqtt') : undefined, () => { c.send(ackBytes(c, 'pubrec', id, RC.success)) })
    return
  }
  // the id is being made durable first; the routing follows, the PUBREC after both
  c.ackAfter(fresh.then(isNew => isNew ? front.bus.route(message, 'mqtt') : undefined), () => { c.send(ackBytes(c, 'pubrec', id, RC.success)) })
}

/**
 * Counts an inbound QoS 1/2 publish against the broker's receive window: v5, its Receive Maximum
 * (--mqtt-receive-maximum; one more: DISCONNECT 0x93, MQTT-3.3.4-8); 3.1.1, QoS 2 ones awaiting PUBREL
 * against --mqtt-max-inflight (one more closes the connection: 3.1.1 cannot advertise a window). A QoS 2
 * publish sent again with the id of one awaiting release is not counted twice.
 */
function takeInbound (c: Connection, qos: 1 | 2, id: number): boolean {
  if (qos === 2 && c.inboundQos2.has(id)) return true
  const settings = c.front.settings
  if (c.v5 ? c.inboundQos1 + c.inboundQos2.size >= settings.receiveMaximum : qos === 2 && c.inboundQos2.size >= settings.maxInflight) {
    c.front.gate.limit('mqtt_max_inflight')
    c.fail(RC.receiveMaximumExceeded, c.v5 ? `more than the receive maximum of ${settings.receiveMaximum} QoS 1/2 publishes unacknowledged` : 'too many QoS 2 publishes awaiting PUBREL')
    return false
  }
  if (qos === 1) c.inboundQos1++
  else c.inboundQos2.add(id)
  return true
}

/** A publish not routed but acknowledged (QoS 1/2) with a v5 reason code (3.1.1: plain success). */
function refuse (c: Connection, qos: 0 | 1 | 2, id: number, code: number, reason: string): void {
  if (qos === 1) {
    c.chainAck(() => {
      c.inboundQos1--
      c.send(ackBytes(c, 'puback', id, code, reason))
    })
  } else if (qos === 2) {
    // a refused QoS 2 flow ends at the PUBREC (>= 0x80): nothing awaits release
    if (c.v5) c.inboundQos2.delete(id)
    else c.session?.receiveQos2(id)
    c.chainAck(() => { c.send(ackBytes(c, 'pubrec', id, code, reason)) })
  }
}

/** The properties that travel with the message unchanged (MQTT-3.3.2-15 ... -20). */
function messageProperties (p: PublishProperties, pairs: Array<[string, string]> | undefined): MessageProperties | undefined {
  if (p.payloadFormatIndicator === undefined && p.contentType === undefined && p.responseTopic === undefined && p.correlationData === undefined && p.userProperties === undefined) return undefined
  const out: MessageProperties = {}
  if (p.payloadFormatIndicator !== undefined) out.payloadFormat = p.payloadFormatIndicator ? 1 : 0
  if (p.contentType !== undefined) out.contentType = p.contentType
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic
  if (p.correlationData !== undefined) out.correlationData = p.correlationData
  if (p.userProperties !== undefined) {
    out.userProperties = { ...p.userProperties }
    const ordered = pairs !== undefined ? orderedUserProperties(p.userProperties, pairs) : undefined
    if (ordered !== undefined) out.userPropertyList = ordered
  }
  return out
}

function noop (): void {}
