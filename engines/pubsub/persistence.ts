import { Readable } from 'node:stream'
import { QlobberTrue } from 'qlobber'
import QlobberSub, { type TrieSubscription } from 'qlobber/aedes/qlobber-sub.js'
import type { Partition, Storage, WriteOp } from '../storage/storage.js'

/**
 * aedes' persistence, durable in LevelDB: retained messages, the subscriptions of persistent sessions
 * (clean = false), the QoS 1/2 messages queued for them (offline, or sent and not yet acknowledged),
 * QoS 2 publishes received and awaiting PUBREL, and wills. Everything is held in memory as aedes'
 * memory persistence holds it (reads never touch the disk); every change is written through, and the
 * promise aedes waits on resolves once the write is durable under the fsync policy. aedes waits on
 * these before it acknowledges: a publish is routed (retained stored, queued for offline sessions)
 * before its PUBREC, and PubSub routes a QoS 1 publish that is kept somewhere before its PUBACK.
 *
 * Clean sessions keep nothing after they end, so their subscriptions and their QoS 2 in-flight state
 * stay in memory only. Checked by aedes-persistence's own abstract suite (test/engines/mqtt-persistence).
 */

/** A packet as aedes hands it over (aedes-packet's fields, and whatever else the packet carries). */
export interface MqttPacket {
  cmd: string
  topic: string
  payload: Buffer | string
  qos: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  clientId?: string
  [field: string]: unknown
}

/** What aedes passes as a client: its id and, for a connected client, whether its session is clean. */
interface ClientRef { id: string, clean?: boolean }
interface SubscriptionIn { topic: string, qos: number, rh?: number, rap?: number, nl?: boolean, subscriptionIdentifier?: number }
type SubscriptionRecord = Omit<SubscriptionIn, 'topic'>
/** The aedes broker: its id, and its connected clients by client id. */
interface BrokerRef { id: string, clients?: Record<string, unknown> }

export interface PersistenceOptions {
  /** Most levels of a topic the subscription trie takes (qlobber's max_words; default 100). */
  maxTopicLevels?: number
  /**
   * Most QoS 1/2 messages queued for one persistent session whose client is not connected (Mosquitto's
   * max_queued_messages); at the cap the oldest queued publish is dropped, in LevelDB too. 0 or absent: none.
   */
  maxQueued?: number
  /** Called once per message dropped at the cap. */
  onQueueDrop?: () => void
}
interface Queued { seq: number, packet: MqttPacket }

const TOPICS = { separator: '/', wildcard_one: '+', wildcard_some: '#' }

// record kinds: the first byte of each key
const RETAINED = 0x72 // r + topic
const SUBSCRIPTION = 0x73 // s + client + filter
const OUTGOING = 0x6f // o + client + seq (8 bytes, big-endian: the queue's order)
const INCOMING = 0x69 // i + client + messageId (2 bytes)
const WILL = 0x77 // w + client

/** kind + client id with its length (so that client ids that are prefixes of others cannot collide) + rest. */
function clientKey (kind: number, clientId: string, rest: Buffer | string = ''): Buffer {
  const id = Buffer.from(clientId, 'utf8')
  const tail = typeof rest === 'string' ? Buffer.from(rest, 'utf8') : rest
  const key = Buffer.allocUnsafe(3 + id.length + tail.length)
  key[0] = kind
  key.writeUInt16BE(id.length, 1)
  id.copy(key, 3)
  tail.copy(key, 3 + id.length)
  return key
}

/** [kind][u16 length][client id][rest] -> the client id and the rest. */
function splitClientKey (key: Buffer): { clientId: string, rest: Buffer } {
  const length = key.readUInt16BE(1)
  return { clientId: key.toString('utf8', 3, 3 + length), rest: key.subarray(3 + length) }
}

/** The value of `key` in `map`, made and set when there is none yet. */
function getOrCreate<K, V> (map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key)
  if (value === undefined) {
    value = create()
    map.set(key, value)
  }
  return value
}

function seqBytes (seq: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeBigUInt64BE(BigInt(seq))
  return b
}

function messageIdBytes (messageId: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(messageId & 0xffff)
  return b
}

/**
 * A packet as bytes: [u32 length][JSON of every field but the payload][payload]. Buffers inside other
 * fields (MQTT 5 properties) go through JSON as {type: 'Buffer', data} and come back as Buffers.
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

export class DurableMqttPersistence {
  private readonly retainedByTopic = new Map<string, MqttPacket>()
  private readonly subscriptions = new Map<string, Map<string, SubscriptionRecord>>()
  private readonly trie: QlobberSub
  private readonly topics: typeof TOPICS & { max_words: number }
  private readonly outgoing = new Map<string, Queued[]>()
  private readonly incoming = new Map<string, Map<number, MqttPacket>>()
  private readonly wills = new Map<string, MqttPacket>()
  private nextSeq = 1
  /** Messages in all outgoing queues. */
  private queued = 0
  private brokerRef: BrokerRef = { id: '' }
  private destroyed = false

  private constructor (private readonly storage: Storage, private readonly partition: Partition, private readonly options: PersistenceOptions) {
    this.topics = { ...TOPICS, max_words: Math.max(options.maxTopicLevels ?? 100, 100) }
    this.trie = new QlobberSub(this.topics)
  }

  /** Opens the persistence of the data directory, with everything a previous run left. */
  static async open (storage: Storage, options: PersistenceOptions = {}): Promise<DurableMqttPersistence> {
    const p = new DurableMqttPersistence(storage, storage.partition('mqtt'), options)
    await p.load()
    return p
  }

  /** aedes calls this when it starts (it insists on an async function). */
  async setup (broker: BrokerRef): Promise<void> {
    this.brokerRef = broker
  }

  /** The broker given to setup (aedes-persistence's test suite reads it back). */
  get broker (): BrokerRef { return this.brokerRef }

  // ---- retained --------------------------------------------------------------------------------

  async storeRetained (packet: MqttPacket): Promise<void> {
    const copy: MqttPacket = { ...packet }
    const key = Buffer.concat([Buffer.of(RETAINED), Buffer.from(copy.topic, 'utf8')])
    if (copy.payload.length === 0) {
      this.retainedByTopic.delete(copy.topic)
      await this.write([this.partition.del(key)])
    } else {
      this.retainedByTopic.set(copy.topic, copy)
      await this.write([this.partition.put(key, encodePacket(copy))])
    }
  }

  createRetainedStream (filter: string): Readable {
    return Readable.from(this.retainedMatching([filter]))
  }

  createRetainedStreamCombi (filters: string[]): Readable {
    return Readable.from(this.retainedMatching(filters))
  }

  /**
   * Retained messages per filter, as aedes' memory persistence gives them (a message once per matching
   * filter), except that a filter starting with a wildcard does not match topics starting with '$'
   * (MQTT 3.1.1, 4.7.2), as in live routing: '#' gets no retained $SYS/ statistics.
   */
  private * retainedMatching (filters: string[]): Generator<MqttPacket> {
    for (const filter of filters) {
      const matcher = new QlobberTrue(this.topics).add(filter)
      const skipDollar = filter.startsWith('+') || filter.startsWith('#')
      for (const [topic, packet] of this.retainedByTopic) {
        if (skipDollar && topic.startsWith('$')) continue
        if (matcher.test(topic)) yield packet
      }
    }
  }

  // ---- subscriptions of persistent sessions ----------------------------------------------------

  async addSubscriptions (client: ClientRef, subs: SubscriptionIn[]): Promise<void> {
    const stored = getOrCreate(this.subscriptions, client.id, () => new Map<string, SubscriptionRecord>())
    const ops: WriteOp[] = []
    for (const sub of subs) {
      const record: SubscriptionRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
      this.applySubscription(client.id, stored, sub.topic, record)
      if (client.clean !== true) ops.push(this.partition.put(clientKey(SUBSCRIPTION, client.id, sub.topic), Buffer.from(JSON.stringify(record), 'utf8')))
    }
    await this.write(ops)
  }

  /** Adds or replaces one subscription in memory; only QoS 1/2 ones take part in matching (offline queueing). */
  private applySubscription (clientId: string, stored: Map<string, SubscriptionRecord>, filter: string, record: SubscriptionRecord): void {
    const previous = stored.get(filter)
    if (record.qos > 0) this.trie.add(filter, { clientId, topic: filter, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
    else if (previous !== undefined && previous.qos > 0) this.trie.remove(filter, { clientId, topic: filter })
    stored.set(filter, record)
  }

  async removeSubscriptions (client: ClientRef, filters: string[]): Promise<void> {
    const stored = this.subscriptions.get(client.id)
    if (stored === undefined) return
    const ops: WriteOp[] = []
    for (const filter of filters) {
      const record = stored.get(filter)
      if (record === undefined) continue
      if (record.qos > 0) this.trie.remove(filter, { clientId: client.id, topic: filter })
      stored.delete(filter)
      ops.push(this.partition.del(clientKey(SUBSCRIPTION, client.id, filter)))
    }
    if (stored.size === 0) this.subscriptions.delete(client.id)
    await this.write(ops)
  }

  async subscriptionsByClient (client: ClientRef): Promise<SubscriptionIn[]> {
    const stored = this.subscriptions.get(client.id)
    return stored === undefined ? [] : [...stored].map(([topic, record]) => ({ topic, ...record }))
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.subscriptions.size }
  }

  async subscriptionsByTopic (topic: string): Promise<TrieSubscription[]> {
    return this.trie.match(topic)
  }

  /** Whether a QoS 1/2 publish to `topic` would be queued for some persistent session. */
  hasQueuingSubscribers (topic: string): boolean {
    // as aedes does when it queues: a $SYS/ topic is not queued for filters that start with a wildcard
    const matches = this.trie.match(topic)
    if (!topic.startsWith('$SYS/')) return matches.length > 0
    return matches.some(sub => sub.topic[0] !== '+' && sub.topic[0] !== '#')
  }

  /** Counts for $SYS/broker/ (see sys-topics.ts). */
  get retainedCount (): number { return this.retainedByTopic.size }
  get queuedCount (): number { return this.queued }

  /** Clients with a session kept here (subscriptions or queued messages), and their subscription counts. */
  * sessions (): Generator<[clientId: string, subscriptions: number]> {
    for (const [clientId, stored] of this.subscriptions) yield [clientId, stored.size]
    for (const clientId of this.outgoing.keys()) if (!this.subscriptions.has(clientId)) yield [clientId, 0]
  }

  async cleanSubscriptions (client: ClientRef): Promise<void> {
    const stored = this.subscriptions.get(client.id)
    if (stored === undefined) return
    const ops: WriteOp[] = []
    for (const [filter, record] of stored) {
      if (record.qos > 0) this.trie.remove(filter, { clientId: client.id, topic: filter })
      ops.push(this.partition.del(clientKey(SUBSCRIPTION, client.id, filter)))
    }
    this.subscriptions.delete(client.id)
    await this.write(ops)
  }

  getClientList (filter: string): Readable {
    const clients: string[] = []
    for (const [clientId, stored] of this.subscriptions) if (stored.has(filter)) clients.push(clientId)
    return Readable.from(clients)
  }

  // ---- messages queued for persistent sessions -------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string }, packet: MqttPacket): Promise<void> {
    const ops: WriteOp[] = []
    this.enqueue(ops, sub.clientId, packet)
    await this.write(ops)
  }

  async outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: MqttPacket): Promise<void> {
    if (subs.length === 0) return
    const encoded = encodePacket(queuedCopy(packet))
    const ops: WriteOp[] = []
    for (const sub of subs) this.enqueue(ops, sub.clientId, packet, encoded)
    await this.write(ops)
  }

  private enqueue (ops: WriteOp[], clientId: string, packet: MqttPacket, encoded?: Buffer): void {
    const copy = queuedCopy(packet)
    const seq = this.nextSeq++
    const queue = getOrCreate(this.outgoing, clientId, () => [])
    this.dropOverCap(ops, clientId, queue)
    queue.push({ seq, packet: copy })
    this.queued++
    ops.push(this.partition.put(clientKey(OUTGOING, clientId, seqBytes(seq)), encoded ?? encodePacket(copy)))
  }

  /**
   * --mqtt-max-queued: before a message joins the queue of a session whose client is offline, the oldest
   * queued publishes go while the queue is at the cap (a PUBREL in the queue stays: its QoS 2 exchange
   * must end). A connected client's queue is bounded by --mqtt-max-inflight instead (protocols/mqtt).
   */
  private dropOverCap (ops: WriteOp[], clientId: string, queue: Queued[]): void {
    const cap = this.options.maxQueued ?? 0
    if (cap <= 0 || queue.length < cap || this.brokerRef.clients?.[clientId] !== undefined) return
    while (queue.length >= cap) {
      const i = queue.findIndex(entry => entry.packet.cmd === 'publish')
      if (i < 0) return
      const [dropped] = queue.splice(i, 1)
      this.queued--
      ops.push(this.partition.del(clientKey(OUTGOING, clientId, seqBytes(dropped.seq))))
      this.options.onQueueDrop?.()
    }
  }

  /**
   * A queued packet was given its message id (matched by broker id and counter), or a publish was
   * replaced by its PUBREL (matched by message id). Throws when no such packet is queued.
   */
  async outgoingUpdate (client: ClientRef, packet: MqttPacket): Promise<void> {
    const queue = this.outgoing.get(client.id) ?? []
    // A PUBREL carries no broker id: it is matched by message id alone. (Matching it by broker id too, as
    // aedes' memory persistence does, makes undefined equal undefined: a second PUBREL then renumbers the
    // first one, which is still stored in place of its publish, and that message is never completed.)
    const hasOrigin = packet.brokerId !== undefined
    for (const entry of queue) {
      const queued = entry.packet
      if (hasOrigin && queued.brokerId === packet.brokerId) {
        if (queued.brokerCounter === packet.brokerCounter) {
          queued.messageId = packet.messageId
          // A QoS 1 message sent again after a restart may take a new message id (the old one died with
          // the connection; MQTT allows the duplicate), so only a QoS 2 message's id is written: its
          // receiver may hold that id awaiting PUBREL, and a new id would deliver the message twice.
          if (queued.qos === 2) await this.write([this.partition.put(clientKey(OUTGOING, client.id, seqBytes(entry.seq)), encodePacket(queued))])
          return
        }
        // message ids wrap at 65535: a different counter with the same id is another packet, go on
      } else if (queued.messageId === packet.messageId) {
        // a copy: aedes goes on to write its own object
        entry.packet = { ...packet }
        await this.write([this.partition.put(clientKey(OUTGOING, client.id, seqBytes(entry.seq)), encodePacket(entry.packet))])
        return
      }
    }
    throw new Error('no such packet')
  }

  async outgoingClearMessageId (client: ClientRef, packet: MqttPacket): Promise<MqttPacket | undefined> {
    const queue = this.outgoing.get(client.id)
    if (queue === undefined) return undefined
    // a packet not sent yet (no message id) is found by its origin: aedes clears one that it will not send
    // (the ACL refused it at delivery); by message id alone it would clear the first unsent one instead
    const byOrigin = packet.messageId === undefined && packet.brokerId !== undefined
    const i = byOrigin
      ? queue.findIndex(entry => entry.packet.brokerId === packet.brokerId && entry.packet.brokerCounter === packet.brokerCounter)
      : queue.findIndex(entry => entry.packet.messageId === packet.messageId)
    if (i < 0) return undefined
    const [entry] = queue.splice(i, 1)
    this.queued--
    if (queue.length === 0) this.outgoing.delete(client.id)
    await this.write([this.partition.del(clientKey(OUTGOING, client.id, seqBytes(entry.seq)))])
    return entry.packet
  }

  outgoingStream (client: ClientRef): Readable {
    // a copy: the queue changes while aedes sends it
    return Readable.from((this.outgoing.get(client.id) ?? []).map(entry => entry.packet))
  }

  // ---- QoS 2 publishes received, awaiting PUBREL -----------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: MqttPacket): Promise<void> {
    const copy: MqttPacket = { ...queuedCopy(packet), messageId: packet.messageId }
    getOrCreate(this.incoming, client.id, () => new Map<number, MqttPacket>()).set(packet.messageId ?? 0, copy)
    if (client.clean !== true) await this.write([this.partition.put(clientKey(INCOMING, client.id, messageIdBytes(packet.messageId ?? 0)), encodePacket(copy))])
  }

  async incomingGetPacket (client: ClientRef, packet: MqttPacket): Promise<MqttPacket> {
    const stored = this.incoming.get(client.id)?.get(packet.messageId ?? 0)
    if (stored === undefined) throw new Error('no such packet')
    return stored
  }

  async incomingDelPacket (client: ClientRef, packet: MqttPacket): Promise<void> {
    const stored = this.incoming.get(client.id)
    const messageId = packet.messageId ?? 0
    if (stored?.has(messageId) !== true) throw new Error('no such packet')
    stored.delete(messageId)
    if (stored.size === 0) this.incoming.delete(client.id)
    if (client.clean !== true) await this.write([this.partition.del(clientKey(INCOMING, client.id, messageIdBytes(messageId)))])
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    const stored = this.incoming.get(client.id)
    if (stored === undefined) return
    this.incoming.delete(client.id)
    await this.write([...stored.keys()].map(messageId => this.partition.del(clientKey(INCOMING, client.id, messageIdBytes(messageId)))))
  }

  // ---- wills ---------------------------------------------------------------------------------------

  /**
   * Wills are durable for every client: after a crash, the new broker instance (another broker id)
   * publishes the wills of the clients the old one had, as MQTT asks when a connection ends unannounced.
   */
  async putWill (client: ClientRef, packet: MqttPacket): Promise<void> {
    packet.brokerId = this.brokerRef.id
    packet.clientId = client.id
    this.wills.set(client.id, packet)
    await this.write([this.partition.put(clientKey(WILL, client.id), encodePacket(packet))])
  }

  async getWill (client: ClientRef): Promise<MqttPacket | undefined> {
    return this.wills.get(client.id)
  }

  async delWill (client: ClientRef): Promise<MqttPacket | undefined> {
    const will = this.wills.get(client.id)
    if (will === undefined) return undefined
    this.wills.delete(client.id)
    await this.write([this.partition.del(clientKey(WILL, client.id))])
    return will
  }

  /** Wills left by brokers that are not in `brokers` (the live ones): a crashed or stopped broker's. */
  streamWill (brokers: Record<string, unknown> = {}): Readable {
    return Readable.from([...this.wills.values()].filter(will => brokers[will.brokerId ?? ''] === undefined))
  }

  async destroy (): Promise<void> {
    if (this.destroyed) throw new Error('destroyed called twice!')
    this.destroyed = true
  }

  // ---- storage -------------------------------------------------------------------------------------

  private async write (ops: WriteOp[]): Promise<void> {
    if (ops.length > 0) await this.storage.write(ops)
  }

  private async load (): Promise<void> {
    for await (const [key, value] of this.partition.entries()) {
      switch (key[0]) {
        case RETAINED: {
          const packet = decodePacket(value)
          this.retainedByTopic.set(packet.topic, packet)
          break
        }
        case SUBSCRIPTION: {
          const { clientId, rest } = splitClientKey(key)
          const stored = getOrCreate(this.subscriptions, clientId, () => new Map<string, SubscriptionRecord>())
          this.applySubscription(clientId, stored, rest.toString('utf8'), JSON.parse(value.toString('utf8')) as SubscriptionRecord)
          break
        }
        case OUTGOING: {
          const { clientId, rest } = splitClientKey(key)
          const seq = Number(rest.readBigUInt64BE(0))
          // keys sort by client, then seq: each queue comes back in its order
          getOrCreate(this.outgoing, clientId, () => []).push({ seq, packet: decodePacket(value) })
          this.queued++
          if (seq >= this.nextSeq) this.nextSeq = seq + 1
          break
        }
        case INCOMING: {
          const { clientId, rest } = splitClientKey(key)
          getOrCreate(this.incoming, clientId, () => new Map<number, MqttPacket>()).set(rest.readUInt16BE(0), decodePacket(value))
          break
        }
        case WILL: {
          const { clientId } = splitClientKey(key)
          this.wills.set(clientId, decodePacket(value))
          break
        }
      }
    }
  }
}

/** The copy of a packet that a queue keeps, as aedes-packet makes it (falsy fields take its defaults; a message id is given when it is sent). */
function queuedCopy (packet: MqttPacket): MqttPacket {
  const copy = {} as MqttPacket
  for (const field of ['clientId', 'nl', 'properties', 'messageExpiry']) if (Object.prototype.hasOwnProperty.call(packet, field)) copy[field] = packet[field]
  copy.cmd = packet.cmd || 'publish'
  copy.brokerId = packet.brokerId
  copy.brokerCounter = packet.brokerCounter || 0
  copy.topic = packet.topic
  copy.payload = packet.payload || Buffer.alloc(0)
  copy.qos = packet.qos || 0
  copy.retain = packet.retain || false
  copy.dup = packet.dup || false
  if (copy.qos > 0 || copy.cmd !== 'publish') copy.messageId = undefined
  return copy
}
