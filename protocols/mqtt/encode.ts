import type { BusMessage, Delivery, UserProperties } from '../../engines/pubsub/types.js'

/**
 * The PUBLISH encoder of the delivery path, written by hand rather than through mqtt-packet's generate
 * (which builds a property map, validates it and allocates per call): one allocation of the exact size.
 * A QoS 0 delivery with nothing of its own (no subscription identifier, no topic alias) is encoded once
 * per message, protocol and retain flag, and the same bytes go to every subscriber: the bus hands a
 * message to its subscribers one after another, so a cache of the last message is hit by all of them.
 */

/** What varies per subscriber in a PUBLISH. */
export interface PublishFields {
  /** 4 (3.1 and 3.1.1 share the PUBLISH format) or 5. */
  version: 4 | 5
  /** Empty when a topic alias stands for it. */
  topic: string
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
  packetId: number
  /** v5 only. */
  topicAlias?: number
  subscriptionIds?: number[]
  /** Remaining seconds of the message expiry (v5 only). */
  expirySeconds?: number
}

function varintBytes (n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

function writeVarint (buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    buf[at++] = byte
  } while (n > 0)
  return at
}

function forEachUserProperty (props: UserProperties, list: Array<[string, string]> | undefined, fn: (name: string, value: string) => void): void {
  if (list !== undefined) {
    for (const [name, value] of list) fn(name, value)
    return
  }
  for (const name of Object.keys(props)) {
    const value = props[name]
    if (Array.isArray(value)) for (const v of value) fn(name, v)
    else fn(name, value)
  }
}

/** Bytes of the v5 PUBLISH properties (without their own length prefix). */
function propertiesLength (message: BusMessage, f: PublishFields): number {
  let n = 0
  const p = message.properties
  if (p !== undefined) {
    if (p.payloadFormat !== undefined) n += 2
    if (p.contentType !== undefined) n += 3 + Buffer.byteLength(p.contentType)
    if (p.responseTopic !== undefined) n += 3 + Buffer.byteLength(p.responseTopic)
    if (p.correlationData !== undefined) n += 3 + p.correlationData.length
    if (p.userProperties !== undefined) forEachUserProperty(p.userProperties, p.userPropertyList, (k, v) => { n += 5 + Buffer.byteLength(k) + Buffer.byteLength(v) })
  }
  if (f.expirySeconds !== undefined) n += 5
  if (f.topicAlias !== undefined) n += 3
  if (f.subscriptionIds !== undefined) for (const id of f.subscriptionIds) n += 1 + varintBytes(id)
  return n
}

function writeString (buf: Buffer, at: number, text: string): number {
  const len = buf.write(text, at + 2, 'utf8')
  buf.writeUInt16BE(len, at)
  return at + 2 + len
}

function writeProperties (buf: Buffer, at: number, message: BusMessage, f: PublishFields): number {
  const p = message.properties
  if (p?.payloadFormat !== undefined) { buf[at++] = 0x01; buf[at++] = p.payloadFormat }
  if (f.expirySeconds !== undefined) { buf[at++] = 0x02; buf.writeUInt32BE(f.expirySeconds, at); at += 4 }
  if (p?.contentType !== undefined) { buf[at++] = 0x03; at = writeString(buf, at, p.contentType) }
  if (p?.responseTopic !== undefined) { buf[at++] = 0x08; at = writeString(buf, at, p.responseTopic) }
  if (p?.correlationData !== undefined) {
    buf[at++] = 0x09
    buf.writeUInt16BE(p.correlationData.length, at)
    p.correlationData.copy(buf, at + 2)
    at += 2 + p.correlationData.length
  }
  if (f.subscriptionIds !== undefined) for (const id of f.subscriptionIds) { buf[at++] = 0x0b; at = writeVarint(buf, at, id) }
  if (f.topicAlias !== undefined) { buf[at++] = 0x23; buf.writeUInt16BE(f.topicAlias, at); at += 2 }
  if (p?.userProperties !== undefined) {
    forEachUserProperty(p.userProperties, p.userPropertyList, (k, v) => {
      buf[at++] = 0x26
      at = writeString(buf, at, k)
      at = writeString(buf, at, v)
    })
  }
  return at
}

/** The size in bytes a PUBLISH would have (to check it against the client's maximum packet size). */
export function publishSize (message: BusMessage, f: PublishFields): number {
  let remaining = 2 + Buffer.byteLength(f.topic) + (f.qos > 0 ? 2 : 0) + message.payload.length
  if (f.version === 5) {
    const props = propertiesLength(message, f)
    remaining += varintBytes(props) + props
  }
  return 1 + varintBytes(remaining) + remaining
}

export function encodePublish (message: BusMessage, f: PublishFields): Buffer {
  const topicBytes = Buffer.byteLength(f.topic)
  const props = f.version === 5 ? propertiesLength(message, f) : -1
  const remaining = 2 + topicBytes + (f.qos > 0 ? 2 : 0) + (props >= 0 ? varintBytes(props) + props : 0) + message.payload.length
  const buf = Buffer.allocUnsafe(1 + varintBytes(remaining) + remaining)
  buf[0] = 0x30 | (f.dup ? 0x08 : 0) | (f.qos << 1) | (f.retain ? 1 : 0)
  let at = writeVarint(buf, 1, remaining)
  buf.writeUInt16BE(topicBytes, at)
  at += 2
  // all ASCII when as many bytes as UTF-16 units: latin1 writes them without UTF-8 encoding
  buf.write(f.topic, at, topicBytes === f.topic.length ? 'latin1' : 'utf8')
  at += topicBytes
  if (f.qos > 0) { buf.writeUInt16BE(f.packetId, at); at += 2 }
  if (props >= 0) {
    at = writeVarint(buf, at, props)
    at = writeProperties(buf, at, message, f)
  }
  message.payload.copy(buf, at)
  return buf
}

/** Seconds of message expiry left at `now` (at least 0), or undefined for a message that does not expire. */
export function expirySeconds (message: BusMessage, now: number): number | undefined {
  if (message.expiresAt === undefined) return undefined
  return Math.max(0, Math.ceil((message.expiresAt - now) / 1000))
}

// ---- the shared bytes of QoS 0 deliveries -------------------------------------------------------------

let cachedMessage: BusMessage | null = null
/** One fields object reused for every shared encoding (no allocation per message). */
const qos0Fields: PublishFields = { version: 4, topic: '', qos: 0, retain: false, dup: false, packetId: 0 }
/** Slots: v4 retain 0, v4 retain 1, v5 retain 0, v5 retain 1. */
const cachedBytes: Array<Buffer | null> = [null, null, null, null]
const cachedExpiry: Array<number | undefined> = [undefined, undefined, undefined, undefined]

/**
 * The bytes of a QoS 0 delivery without per-subscriber fields, shared by every subscriber of the same
 * message (a fan-out to 1,000 encodes once instead of 1,000 times).
 */
export function sharedQos0 (delivery: Delivery, version: 4 | 5, expiry: number | undefined): Buffer {
  const message = delivery.message
  if (cachedMessage !== message) {
    cachedMessage = message
    cachedBytes[0] = cachedBytes[1] = cachedBytes[2] = cachedBytes[3] = null
  }
  const slot = (version === 5 ? 2 : 0) + (delivery.retain ? 1 : 0)
  const hit = cachedBytes[slot]
  if (hit !== null && (version === 4 || cachedExpiry[slot] === expiry)) return hit
  const fields = qos0Fields
  fields.version = version
  fields.topic = message.topic
  fields.retain = delivery.retain
  fields.expirySeconds = version === 5 ? expiry : undefined
  const bytes = encodePublish(message, fields)
  cachedBytes[slot] = bytes
  cachedExpiry[slot] = expiry
  return bytes
}

/** The pairs of a user property record, in the record's order (names grouped). */
export function flattenUserProperties (props: UserProperties): Array<[string, string]> {
  const out: Array<[string, string]> = []
  forEachUserProperty(props, undefined, (k, v) => { out.push([k, v]) })
  return out
}

/**
 * The order of `pairs` when the record cannot keep it (a name recurs between others: MQTT-3.3.2-18 asks
 * for the order sent), else undefined.
 */
export function orderedUserProperties (props: UserProperties, pairs: Array<[string, string]>): Array<[string, string]> | undefined {
  const grouped = flattenUserProperties(props)
  if (grouped.length !== pairs.length) return undefined
  for (let i = 0; i < pairs.length; i++) if (grouped[i][0] !== pairs[i][0] || grouped[i][1] !== pairs[i][1]) return pairs
  return undefined
}

/**
 * Seeds the shared bytes of `message` for QoS 0 subscribers of the publisher's version with the bytes it
 * came in as (a QoS 0 PUBLISH without flags or properties is exactly what they get): a fan-in then encodes
 * nothing.
 */
export function primeQos0 (message: BusMessage, version: 4 | 5, bytes: Buffer): void {
  cachedMessage = message
  cachedBytes[0] = cachedBytes[1] = cachedBytes[2] = cachedBytes[3] = null
  const slot = version === 5 ? 2 : 0
  cachedBytes[slot] = bytes
  cachedExpiry[slot] = undefined
}
