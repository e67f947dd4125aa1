import { randomUUID } from 'node:crypto'
import mqttPacket from 'mqtt-packet'
import type { BusMessage, SessionRequest } from '../../../engines/pubsub/types.js'
import { overTopicLimit } from '../../../engines/pubsub/topics.js'
import { InboundAliases, OutboundAliases } from '../aliases.js'
import type { Connection, OrderedPacket } from '../connection.js'
import { flattenUserProperties, orderedUserProperties } from '../encode.js'
import type { ConnectDenial } from '../gate.js'
import { MqttOutlet } from '../outlet.js'
import { WaitingWindow } from '../inflight.js'
import { RC, v3ConnackCode } from '../reason.js'
import { hasWildcard, isSysTopic } from '../topics.js'
import { repeatedProperty } from './acks.js'

type Connect = mqttPacket.IConnectPacket

/** 3.1.1 clean session 0: the session never expires (MQTT 5 §3.1.2.11.2 maps it so). */
const NEVER = 0xffffffff

/**
 * CONNECT: the protocol checks, the limits admitted before any credential (connect rate, connection cap),
 * the credentials, the will, the keepalive bounds; then the session from the bus and the CONNACK, with,
 * for v5, the properties that tell the client the broker's limits. Any refusal: CONNACK with its code
 * (3.1.1 return code, or v5 reason code and reason string), then the connection closes (MQTT-3.2.2-5).
 */
export async function handleConnect (c: Connection, packet: Connect): Promise<void> {
  c.version = packet.protocolVersion ?? 4
  c.clientId = packet.clientId
  const front = c.front
  const settings = front.settings
  const v5 = c.v5
  const props = v5 ? packet.properties : undefined

  // ---- the packet itself ----
  if (!v5 && packet.password !== undefined && packet.username === undefined) return refuseMalformed(c, 'a password without a user name') // MQTT-3.1.2-22
  if (packet.will !== undefined && (packet.will.qos ?? 0) > 2) return refuseMalformed(c, 'will QoS 3') // MQTT-3.1.2-14
  if (props !== undefined) {
    const repeated = repeatedProperty(props)
    if (repeated !== undefined) return refuse(c, RC.protocolError, `the property ${repeated} is given twice`)
    if (props.receiveMaximum === 0) return refuse(c, RC.protocolError, 'receive maximum 0')
    if (props.maximumPacketSize === 0) return refuse(c, RC.protocolError, 'maximum packet size 0')
    if (props.authenticationMethod !== undefined) return refuse(c, RC.badAuthenticationMethod, `authentication method ${JSON.stringify(props.authenticationMethod)} is not supported`)
  }
  const willProps = v5 ? packet.will?.properties : undefined
  if (willProps !== undefined && repeatedProperty(willProps) !== undefined) return refuse(c, RC.protocolError, 'a will property is given twice')

  // ---- the client id ----
  let assigned: string | undefined
  if (c.clientId.length === 0) {
    // MQTT-3.1.3-8: a 3.1.1 client without an id must ask for a clean session
    if (!v5 && !packet.clean) return refuse(c, RC.clientIdNotValid, 'an empty client id needs a clean session')
    assigned = (v5 ? 'auto-' : 'tetra-') + randomUUID()
    c.clientId = assigned
  }

  // ---- limits before credentials ----
  const limited = front.gate.admit(c)
  if (limited === 'mqtt_connect_rate') return refuse(c, RC.connectionRateExceeded, 'connection rate exceeded', 3)
  if (limited !== null) return refuse(c, RC.quotaExceeded, 'too many connections', 3)

  // ---- keepalive ----
  const asked = packet.keepalive ?? 0
  let keepAlive = asked
  if (asked > settings.keepAliveMax || (asked === 0 && settings.keepAliveMax < 65535)) {
    // a 3.1.1 client cannot be told another keepalive: refused (as Mosquitto's max_keepalive does)
    if (!v5) return refuse(c, RC.clientIdNotValid, `keep alive ${asked} is over the maximum ${settings.keepAliveMax}`)
    keepAlive = settings.keepAliveMax
  } else if (v5 && asked < settings.keepAliveMin) keepAlive = settings.keepAliveMin

  // ---- credentials ----
  const denial = await front.gate.authenticate(c, packet.username, packet.password, user => {
    const previous = front.client(c.clientId)
    return previous !== undefined && front.gate.userOf(previous) === user
  })
  if (c.isClosed) return
  if (denial !== null) return refuse(c, ...DENIALS[denial])

  // ---- the will ----
  let will: SessionRequest['will']
  if (packet.will !== undefined) {
    const w = packet.will
    const qos = (w.qos ?? 0) as 0 | 1 | 2
    if (w.topic.length === 0 || hasWildcard(w.topic)) return refuse(c, RC.topicNameInvalid, 'the will topic is not a topic name')
    const over = overTopicLimit(w.topic, front.bus.topicLimits)
    if (over !== undefined) {
      front.gate.limit(over === 'length' ? 'mqtt_max_topic_length' : 'mqtt_max_topic_levels')
      return refuse(c, RC.topicNameInvalid, `the will topic is over the ${over} limit`)
    }
    if (qos > settings.maxQos) return refuse(c, RC.qosNotSupported, `will QoS ${qos} is over the maximum QoS ${settings.maxQos}`)
    if (w.retain === true && !settings.retainAvailable) return refuse(c, RC.retainNotSupported, 'retained messages are not available')
    // a will the client may not publish is not kept (checked again by the bus's rules when it is published)
    if (!isSysTopic(w.topic) && front.gate.canPublish(c, w.topic)) {
      const message: BusMessage = { topic: w.topic, payload: Buffer.isBuffer(w.payload) ? w.payload : Buffer.from(w.payload), qos, retain: w.retain === true, from: c.clientId }
      if (willProps !== undefined) {
        const properties: NonNullable<BusMessage['properties']> = {}
        if (willProps.payloadFormatIndicator !== undefined) properties.payloadFormat = willProps.payloadFormatIndicator ? 1 : 0
        if (willProps.contentType !== undefined) properties.contentType = willProps.contentType
        if (willProps.responseTopic !== undefined) properties.responseTopic = willProps.responseTopic
        if (willProps.correlationData !== undefined) properties.correlationData = willProps.correlationData
        if (willProps.userProperties !== undefined) {
          properties.userProperties = willProps.userProperties
          // the packet's pairs: the CONNECT's own user properties first, then the will's
          const pairs = (packet as OrderedPacket).userPropertyList
          const own = props?.userProperties !== undefined ? flattenUserProperties(props.userProperties).length : 0
          const ordered = pairs !== undefined ? orderedUserProperties(willProps.userProperties, pairs.slice(own)) : undefined
          if (ordered !== undefined) properties.userPropertyList = ordered
        }
        if (Object.keys(properties).length > 0) message.properties = properties
      }
      will = { message, delay: willProps?.willDelayInterval ?? 0 }
      // its Message Expiry Interval counts from when it is published: the bus turns it into expiresAt then
      if (willProps?.messageExpiryInterval !== undefined) will.expiryInterval = willProps.messageExpiryInterval
    }
  }

  // ---- the session ----
  c.sessionExpiry = v5 ? (props?.sessionExpiryInterval ?? 0) : packet.clean === true ? 0 : NEVER
  const window = Math.min(props?.receiveMaximum ?? 65535, settings.maxInflight)
  let outlet: MqttOutlet | undefined
  if (c.sessionExpiry === 0 && settings.maxWaiting > 0) {
    const o = outlet = new MqttOutlet(c)
    c.window = new WaitingWindow(window, settings.maxWaiting, d => o.write(d), (d, counted) => {
      if (counted) front.gate.limit('mqtt_max_inflight')
      if (d.packetId !== undefined) c.session?.acknowledged(d.packetId)
    })
  }
  const request: SessionRequest = {
    clientId: c.clientId,
    cleanStart: packet.clean === true,
    expiryInterval: c.sessionExpiry,
    receiveMaximum: c.window !== null ? 65535 : window,
    ...(will !== undefined ? { will } : {})
  }
  if (v5) {
    c.problemInformation = props?.requestProblemInformation !== false
    if (props?.maximumPacketSize !== undefined) c.clientMaxPacket = props.maximumPacketSize
    if (settings.topicAliasMax > 0) c.inboundAliases = new InboundAliases(settings.topicAliasMax)
    if ((props?.topicAliasMaximum ?? 0) > 0) c.outboundAliases = new OutboundAliases(props?.topicAliasMaximum ?? 0)
  }
  let session
  try {
    session = await front.bus.connect(request, outlet ?? new MqttOutlet(c))
  } catch (err) {
    front.log('session not opened', { clientId: c.clientId, err: err instanceof Error ? err.message : String(err) })
    return refuse(c, RC.serverUnavailable, 'the session could not be opened', 3)
  }
  if (c.isClosed) {
    // gone while its session was being opened: the session is left at once, its will owed
    session.detach({ publishWill: true })
    return
  }
  c.session = session
  front.registered(c)

  // ---- CONNACK ----
  const connack: mqttPacket.IConnackPacket = { cmd: 'connack', sessionPresent: !request.cleanStart && session.present }
  if (v5) {
    connack.reasonCode = RC.success
    const p: NonNullable<mqttPacket.IConnackPacket['properties']> = {}
    if (assigned !== undefined) p.assignedClientIdentifier = assigned
    if (keepAlive !== asked) p.serverKeepAlive = keepAlive
    if (settings.receiveMaximum < 65535) p.receiveMaximum = settings.receiveMaximum
    if (settings.maxQos < 2) p.maximumQoS = settings.maxQos
    if (!settings.retainAvailable) p.retainAvailable = false
    p.maximumPacketSize = settings.maxPacketSize
    p.topicAliasMaximum = settings.topicAliasMax
    p.wildcardSubscriptionAvailable = true
    p.subscriptionIdentifiersAvailable = true
    p.sharedSubscriptionAvailable = true
    if (props?.requestResponseInformation === true) p.responseInformation = settings.responseInformationPrefix + c.clientId
    connack.properties = p
  } else connack.returnCode = 0
  c.writer.writeNow(mqttPacket.generate(connack, { protocolVersion: c.version }))
  c.state = 'connected'
  c.startKeepAlive(keepAlive)
  // a resumed session's subscriptions under the rules in force now (they may have changed while it was away)
  if (session.present && c.principal !== null) front.cutSubscriptions(c, c.principal)
  // The session's first deliveries (what a resumed session is owed) and the answers to packets sent behind
  // the CONNECT go a turn of the event loop after the CONNACK, in a write of their own: a client library
  // that resolves its connect on the CONNACK has its message handlers in place before they arrive.
  setImmediate(connectedLater, c)
}

function connectedLater (c: Connection): void {
  if (!c.isClosed) c.connected()
}

/** The gate's denials: v5 reason code, reason string, 3.1.1 return code. */
const DENIALS: Record<ConnectDenial, [number, string, number?]> = {
  'bad-credentials': [RC.badUserNameOrPassword, 'bad user name or password'],
  'not-authorized': [RC.notAuthorized, 'not authorized'],
  'per-user': [RC.quotaExceeded, 'too many connections of this user', 5],
  unavailable: [RC.serverUnavailable, 'server unavailable', 3]
}

/**
 * CONNACK with a refusal, then the connection closes. `v3Code` overrides the 3.1.1 return code nearest to
 * the v5 one. A 3.1.1 CONNECT refused for a code 3.1.1 cannot express is closed without CONNACK.
 */
function refuse (c: Connection, code: number, reason: string, v3Code?: number): void {
  if (c.state === 'closed') return
  const bytes = c.v5
    ? mqttPacket.generate({ cmd: 'connack', sessionPresent: false, reasonCode: code, properties: { reasonString: reason } }, { protocolVersion: 5 })
    : v3Code !== undefined || code === RC.clientIdNotValid || code === RC.badUserNameOrPassword || code === RC.notAuthorized
      ? mqttPacket.generate({ cmd: 'connack', sessionPresent: false, returnCode: v3Code ?? v3ConnackCode(code) }, { protocolVersion: 4 })
      : undefined
  c.front.log('connect refused', { clientId: c.clientId, reason })
  c.writer.release()
  if (bytes !== undefined) c.writer.write(bytes)
  c.end()
}

/** A malformed CONNECT: v5 CONNACK 0x81; a 3.1.1 client is closed (MQTT-3.1.4-1). */
function refuseMalformed (c: Connection, reason: string): void {
  c.front.bad(c)
  refuse(c, RC.malformed, reason)
}
