import type { Partition, Storage, WriteOp } from '../storage/storage.js'
import type { BusMessage, MessageProperties, QoS, SubscriptionOptions } from './types.js'

/**
 * The bus's records in LevelDB (partition `mqtt`): retained messages, the subscriptions, QoS 1/2 queue and
 * QoS 2 ids received of every session that outlives its connection, the session's expiry and the time it
 * went offline, and every connection's will. The key kinds and value encodings are those of the previous
 * release (whose bus was aedes-based), so a data directory it wrote opens with its retained messages,
 * sessions and queued messages; the session record (`e`) is new, and a session without one (written by
 * the previous release: MQTT 3.1.1 clean session 0) never expires.
 *
 * Everything lives in memory (sessions.ts, retained.ts); this module only builds the write ops and reads
 * the records back at start.
 */

/** A record as the previous release encoded it (aedes' packet fields), and as this one still does. */
export interface MqttPacket {
  cmd: string
  topic: string
  payload: Buffer | string
  qos: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  [field: string]: unknown
}

// record kinds: the first byte of each key
const RETAINED = 0x72 // r + topic
const SUBSCRIPTION = 0x73 // s + client + filter
const OUTGOING = 0x6f // o + client + seq (8 bytes, big-endian: the queue's order)
const INCOMING = 0x69 // i + client + packet id (2 bytes)
const WILL = 0x77 // w + client
const SESSION = 0x65 // e + client: {expiryInterval, offlineAt}

/**
 * Client ids as UTF-8, for the keys of the records written per message (Buffer.from of the id was 5% of
 * the broker's CPU on QoS 1 to a persistent session). Starts over when full.
 */
const idBytes = new Map<string, Buffer>()
const ID_CACHE_SIZE = 10_000

function clientIdBytes (clientId: string): Buffer {
  let id = idBytes.get(clientId)
  if (id === undefined) {
    if (idBytes.size >= ID_CACHE_SIZE) idBytes.clear()
    id = Buffer.from(clientId, 'utf8')
    idBytes.set(clientId, id)
  }
  return id
}

/** kind + client id with its length (so that client ids that are prefixes of others cannot collide) + rest. */
export function clientKey (kind: number, clientId: string, rest: Buffer | string = ''): Buffer {
  const id = clientIdBytes(clientId)
  const tail = typeof rest === 'string' ? Buffer.from(rest, 'utf8') : rest
  const key = Buffer.allocUnsafe(3 + id.length + tail.length)
  key[0] = kind
  key.writeUInt16BE(id.length, 1)
  id.copy(key, 3)
  tail.copy(key, 3 + id.length)
  return key
}

function splitClientKey (key: Buffer): { clientId: string, rest: Buffer } {
  const length = key.readUInt16BE(1)
  return { clientId: key.toString('utf8', 3, 3 + length), rest: key.subarray(3 + length) }
}

function seqBytes (seq: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  // two 32-bit halves: no BigInt per message (sequence numbers stay below 2^53)
  b.writeUInt32BE(Math.floor(seq / 0x100000000), 0)
  b.writeUInt32BE(seq >>> 0, 4)
  return b
}

function packetIdBytes (packetId: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(packetId & 0xffff)
  return b
}

/**
 * A packet as bytes: [u32 length][JSON of every field but the payload][payload]. Buffers inside other
 * fields (correlation data) go through JSON as {type: 'Buffer', data} and come back as Buffers.
 */
export function encodePacket (packet: MqttPacket): Buffer {
  const { payload, ...fields } = packet
  const header: Record<string, unknown> = { ...fields }
  for (const key of Object.keys(header)) if (header[key] === undefined) delete header[key]
  if (typeof payload === 'string') header.payloadText = true
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload ?? Buffer.alloc(0)
  const out = Buffer.allocUnsafe(4 + json.length + body.length)
  out.writeUInt32BE(json.length, 0)
  json.copy(out, 4)
  body.copy(out, 4 + json.length)
  return out
}

/**
 * A queued publish as encodePacket encodes it, its JSON header written by hand: JSON.stringify of the
 * packet object was 7% of the broker's CPU on QoS 1 to a persistent session (bench/mqtt/profile.ts
 * qos1-session); the message's properties, when there are some, still go through it.
 */
function encodeEntry (entry: StoredEntry): Buffer {
  const m = entry.message
  let json = `{"cmd":"publish","topic":${JSON.stringify(m.topic)},"qos":${entry.qos},"retain":${entry.retain ? 'true' : 'false'}`
  if (m.properties !== undefined) json += `,"properties":${JSON.stringify(m.properties)}`
  if (m.expiresAt !== undefined) json += `,"expiresAt":${m.expiresAt}`
  if (m.from !== undefined) json += `,"from":${JSON.stringify(m.from)}`
  if (entry.subscriptionIds !== undefined) json += `,"subscriptionIds":[${entry.subscriptionIds.join(',')}]`
  if (entry.packetId !== 0) json += `,"messageId":${entry.packetId}`
  json += '}'
  const jsonBytes = Buffer.byteLength(json)
  const out = Buffer.allocUnsafe(4 + jsonBytes + m.payload.length)
  out.writeUInt32BE(jsonBytes, 0)
  out.write(json, 4, 'utf8')
  m.payload.copy(out, 4 + jsonBytes)
  return out
}

function reviveBuffers (_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data)
  }
  return value
}

export function decodePacket (bytes: Buffer): MqttPacket {
  const length = bytes.readUInt32BE(0)
  const header = JSON.parse(bytes.toString('utf8', 4, 4 + length), reviveBuffers) as MqttPacket & { payloadText?: boolean }
  const body = Buffer.from(bytes.subarray(4 + length))
  const { payloadText, ...packet } = header
  packet.payload = payloadText === true ? body.toString('utf8') : body
  return packet
}

function toQoS (n: unknown): QoS {
  return n === 1 ? 1 : n === 2 ? 2 : 0
}

/** A message as a record: the previous release's packet fields, with this release's additions. */
function messagePacket (message: BusMessage, fields: Record<string, unknown> = {}): MqttPacket {
  return {
    cmd: 'publish',
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
    properties: message.properties,
    expiresAt: message.expiresAt,
    from: message.from,
    ...fields
  }
}

function packetMessage (packet: MqttPacket): BusMessage {
  const message: BusMessage = {
    topic: packet.topic,
    payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'utf8') : packet.payload,
    qos: toQoS(packet.qos),
    retain: packet.retain === true
  }
  if (packet.properties !== undefined && packet.properties !== null) message.properties = packet.properties as MessageProperties
  if (typeof packet.expiresAt === 'number') message.expiresAt = packet.expiresAt
  if (typeof packet.from === 'string') message.from = packet.from
  else if (typeof packet.clientId === 'string') message.from = packet.clientId
  return message
}

/** A subscription's record: the previous release's field names (aedes'). */
interface SubscriptionRecord { qos: number, rh?: number, rap?: boolean | number, nl?: boolean | number, subscriptionIdentifier?: number }

function subscriptionRecord (options: SubscriptionOptions): SubscriptionRecord {
  const record: SubscriptionRecord = { qos: options.qos }
  if (options.retainHandling !== undefined) record.rh = options.retainHandling
  if (options.retainAsPublished === true) record.rap = true
  if (options.noLocal === true) record.nl = true
  if (options.subscriptionId !== undefined) record.subscriptionIdentifier = options.subscriptionId
  return record
}

function subscriptionOptions (record: SubscriptionRecord): SubscriptionOptions {
  const options: SubscriptionOptions = { qos: toQoS(record.qos) }
  if (record.rh === 0 || record.rh === 1 || record.rh === 2) options.retainHandling = record.rh
  if (record.rap === true || record.rap === 1) options.retainAsPublished = true
  if (record.nl === true || record.nl === 1) options.noLocal = true
  if (typeof record.subscriptionIdentifier === 'number') options.subscriptionId = record.subscriptionIdentifier
  return options
}

/** A QoS 1/2 message owed to a session, as stored. */
export interface StoredEntry {
  seq: number
  /** A publish; for a QoS 2 message the client acknowledged with PUBREC: released (only its packet id matters). */
  released: boolean
  message: BusMessage
  qos: QoS
  retain: boolean
  subscriptionIds?: number[]
  /** 0: none given yet (not sent). */
  packetId: number
}

export interface StoredSession {
  subscriptions: Map<string, SubscriptionOptions>
  queue: StoredEntry[]
  inbound: number[]
  /** Absent: written by the previous release (never expires). */
  meta?: { expiryInterval: number, offlineAt: number | null }
}

/** A will: its message, its delay, and its message expiry in seconds from when it is published (MQTT 5 §3.1.3.2.4). */
export interface StoredWill { message: BusMessage, delay: number, expiryInterval?: number }

export interface Loaded {
  retained: BusMessage[]
  sessions: Map<string, StoredSession>
  wills: Map<string, StoredWill>
  /** The next queue sequence number (after every stored one). */
  nextSeq: number
}

export class BusRecords {
  readonly partition: Partition

  constructor (private readonly storage: Storage) {
    this.partition = storage.partition('mqtt')
  }

  async write (ops: WriteOp[]): Promise<void> {
    if (ops.length > 0) await this.storage.write(ops)
  }

  retainedPut (message: BusMessage): WriteOp {
    return this.partition.put(Buffer.concat([Buffer.of(RETAINED), Buffer.from(message.topic, 'utf8')]), encodePacket(messagePacket(message, { retain: true })))
  }

  retainedDel (topic: string): WriteOp {
    return this.partition.del(Buffer.concat([Buffer.of(RETAINED), Buffer.from(topic, 'utf8')]))
  }

  subscriptionPut (clientId: string, filter: string, options: SubscriptionOptions): WriteOp {
    return this.partition.put(clientKey(SUBSCRIPTION, clientId, filter), Buffer.from(JSON.stringify(subscriptionRecord(options)), 'utf8'))
  }

  subscriptionDel (clientId: string, filter: string): WriteOp {
    return this.partition.del(clientKey(SUBSCRIPTION, clientId, filter))
  }

  /** A queue entry: a publish (with its packet id once sent), or a released QoS 2 message. */
  outgoingPut (clientId: string, entry: StoredEntry): WriteOp {
    const key = clientKey(OUTGOING, clientId, seqBytes(entry.seq))
    if (entry.released) return this.partition.put(key, encodePacket({ cmd: 'pubrel', topic: '', payload: Buffer.alloc(0), qos: 2, messageId: entry.packetId }))
    return this.partition.put(key, encodeEntry(entry))
  }

  outgoingDel (clientId: string, seq: number): WriteOp {
    return this.partition.del(clientKey(OUTGOING, clientId, seqBytes(seq)))
  }

  incomingPut (clientId: string, packetId: number): WriteOp {
    return this.partition.put(clientKey(INCOMING, clientId, packetIdBytes(packetId)), encodePacket({ cmd: 'publish', topic: '', payload: Buffer.alloc(0), qos: 2, messageId: packetId }))
  }

  incomingDel (clientId: string, packetId: number): WriteOp {
    return this.partition.del(clientKey(INCOMING, clientId, packetIdBytes(packetId)))
  }

  willPut (clientId: string, will: StoredWill): WriteOp {
    return this.partition.put(clientKey(WILL, clientId), encodePacket(messagePacket(will.message, { clientId, delay: will.delay, willExpiry: will.expiryInterval })))
  }

  willDel (clientId: string): WriteOp {
    return this.partition.del(clientKey(WILL, clientId))
  }

  sessionPut (clientId: string, expiryInterval: number, offlineAt: number | null): WriteOp {
    return this.partition.put(clientKey(SESSION, clientId), Buffer.from(JSON.stringify({ expiryInterval, offlineAt }), 'utf8'))
  }

  sessionDel (clientId: string): WriteOp {
    return this.partition.del(clientKey(SESSION, clientId))
  }

  /** Everything a previous run left. */
  async load (): Promise<Loaded> {
    const loaded: Loaded = { retained: [], sessions: new Map(), wills: new Map(), nextSeq: 1 }
    const session = (clientId: string): StoredSession => {
      let s = loaded.sessions.get(clientId)
      if (s === undefined) {
        s = { subscriptions: new Map(), queue: [], inbound: [] }
        loaded.sessions.set(clientId, s)
      }
      return s
    }
    for await (const [key, value] of this.partition.entries()) {
      switch (key[0]) {
        case RETAINED: {
          const message = packetMessage(decodePacket(value))
          message.retain = true
          delete message.from
          loaded.retained.push(message)
          break
        }
        case SUBSCRIPTION: {
          const { clientId, rest } = splitClientKey(key)
          session(clientId).subscriptions.set(rest.toString('utf8'), subscriptionOptions(JSON.parse(value.toString('utf8')) as SubscriptionRecord))
          break
        }
        case OUTGOING: {
          const { clientId, rest } = splitClientKey(key)
          const seq = Number(rest.readBigUInt64BE(0))
          const packet = decodePacket(value)
          const released = packet.cmd === 'pubrel'
          const message = packetMessage(packet)
          const subscriptionIds = Array.isArray(packet.subscriptionIds) ? packet.subscriptionIds as number[] : undefined
          // keys sort by client, then seq: each queue comes back in its order
          session(clientId).queue.push({
            seq,
            released,
            message,
            qos: released ? 2 : message.qos,
            retain: message.retain,
            ...(subscriptionIds !== undefined ? { subscriptionIds } : {}),
            packetId: typeof packet.messageId === 'number' ? packet.messageId : 0
          })
          if (seq >= loaded.nextSeq) loaded.nextSeq = seq + 1
          break
        }
        case INCOMING: {
          const { clientId, rest } = splitClientKey(key)
          session(clientId).inbound.push(rest.readUInt16BE(0))
          break
        }
        case WILL: {
          const { clientId } = splitClientKey(key)
          const packet = decodePacket(value)
          const message = packetMessage(packet)
          message.from = clientId
          const will: StoredWill = { message, delay: typeof packet.delay === 'number' ? packet.delay : 0 }
          if (typeof packet.willExpiry === 'number') will.expiryInterval = packet.willExpiry
          loaded.wills.set(clientId, will)
          break
        }
        case SESSION: {
          const { clientId } = splitClientKey(key)
          const meta = JSON.parse(value.toString('utf8')) as { expiryInterval: number, offlineAt: number | null }
          session(clientId).meta = { expiryInterval: meta.expiryInterval, offlineAt: meta.offlineAt ?? null }
          break
        }
      }
    }
    return loaded
  }
}
