import type { MessageProperties } from '../pubsub/types.js'
import { name as nameKey, readU64, u64 } from '../storage/keys.js'
import type { Payload } from './types.js'

/**
 * Key layout of the stream partition. Every stream and every consumer group gets a numeric id at
 * creation; data keys use that id, not the name, so a stream (or group) deleted and re-created under the
 * same name never meets the old one's keys while they are being removed in the background.
 *
 *   M name                      -> stream record (JSON: id, settings, counters)
 *   E id firstOffset            -> chunk: the entries of one append batch (see encodeChunk)
 *   T id timestamp offset       -> empty: time index, one point per append batch whose time is new
 *   D id dedupId                -> offset + timestamp of the message that carried it
 *   G id groupName              -> group record (JSON: gid, settings, committed, cursor)
 *   P gid offset                -> pending delivery (deliveries, lease end, consumer)
 *   X gid offset                -> dead letter (JSON)
 *   Z id                        -> tombstone: every key of this id is being deleted
 *   S                           -> the next id to hand out
 */
export const TAG = { meta: 0x4d, entry: 0x45, time: 0x54, dedup: 0x44, group: 0x47, pending: 0x50, dead: 0x58, tombstone: 0x5a, sequence: 0x53 } as const

/** The tags whose keys start with an id: what a tombstone removes. */
export const ID_TAGS = [TAG.entry, TAG.time, TAG.dedup, TAG.group, TAG.pending, TAG.dead] as const

const tagByte = (tag: number): Buffer => Buffer.from([tag])

export const keys = {
  meta: (stream: string) => Buffer.concat([tagByte(TAG.meta), nameKey(stream)]),
  metaPrefix: () => tagByte(TAG.meta),
  /** The prefix of every key of one id under one tag. */
  idPrefix: (tag: number, id: number) => Buffer.concat([tagByte(tag), u64(id)]),
  entry: (id: number, offset: number) => Buffer.concat([tagByte(TAG.entry), u64(id), u64(offset)]),
  time: (id: number, timestamp: number, offset: number) => Buffer.concat([tagByte(TAG.time), u64(id), u64(timestamp), u64(offset)]),
  dedup: (id: number, dedupId: string) => Buffer.concat([tagByte(TAG.dedup), u64(id), Buffer.from(dedupId, 'utf8')]),
  group: (id: number, group: string) => Buffer.concat([tagByte(TAG.group), u64(id), nameKey(group)]),
  pending: (gid: number, offset: number) => Buffer.concat([tagByte(TAG.pending), u64(gid), u64(offset)]),
  dead: (gid: number, offset: number) => Buffer.concat([tagByte(TAG.dead), u64(gid), u64(offset)]),
  tombstone: (id: number) => Buffer.concat([tagByte(TAG.tombstone), u64(id)]),
  tombstonePrefix: () => tagByte(TAG.tombstone),
  sequence: () => tagByte(TAG.sequence)
}

/** A big-endian u64 below 2^53 without going through BigInt (the read hot path). */
export const readNumber = (b: Buffer, at: number): number => b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4)

/** The offset at the end of an entry, pending or dead key (tag + id + offset). */
export const offsetOfKey = (key: Buffer): number => readNumber(key, 9)
/** The id in any id-prefixed key. */
export const idOfKey = (key: Buffer): number => readU64(key, 1)
/** Timestamp and offset of a time index key. */
export const timeKeyParts = (key: Buffer): { timestamp: number, offset: number } => ({ timestamp: readU64(key, 9), offset: readU64(key, 17) })

/** One message of a stream, as stored and as read back. */
export interface StreamEntry {
  offset: number
  timestamp: number
  payload: Buffer
  key?: string
  headers?: Record<string, string>
  /** Set on captured messages: the MQTT topic, QoS and retain flag of the publish. */
  topic?: string
  qos?: 0 | 1 | 2
  retain?: boolean
  /** Set on captured messages that had them: the publish's MQTT 5 properties, unchanged. */
  properties?: MessageProperties
}

const FLAG_TOPIC = 1
const FLAG_KEY = 2
const FLAG_HEADERS = 4
const FLAG_RETAIN = 8
const QOS_SHIFT = 4
/** Entries written before properties were captured do not have this bit: they read back as they did. */
const FLAG_PROPERTIES = 64

/** An entry measured and ready to be written into a chunk (see writeEntry). */
export interface PreparedEntry {
  timestamp: number
  flags: number
  /** Topic, key, headers JSON and properties JSON, those present, in that order. */
  parts: Buffer[]
  payload: Payload
  payloadBytes: number
  /** Encoded size in bytes. */
  size: number
}

/** What an entry is made of before it is stored. */
export interface EntryInput {
  payload: Payload
  key?: string
  headers?: Record<string, string>
  topic?: string
  qos?: 0 | 1 | 2
  retain?: boolean
  properties?: MessageProperties
}

const NO_PARTS: Buffer[] = []

/** Properties as stored: JSON, with the correlation data (bytes) in base64. */
interface StoredProperties extends Omit<MessageProperties, 'correlationData'> { correlationData?: string }

function encodeProperties (p: MessageProperties): Buffer {
  const stored: StoredProperties = { ...p, correlationData: p.correlationData?.toString('base64') }
  return Buffer.from(JSON.stringify(stored), 'utf8')
}

function decodeProperties (json: string): MessageProperties {
  const stored = JSON.parse(json) as StoredProperties
  const { correlationData, ...rest } = stored
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

/**
 * An entry is encoded as: u64 timestamp, u8 flags (topic/key/headers present, retain, qos in bits 4-5,
 * properties present), then u32-length-prefixed topic, key, headers JSON and properties JSON when present,
 * and the payload bytes to the end.
 * A payload given as text or as a slice is measured here and written straight into the chunk: no
 * Buffer per message.
 */
export function prepareEntry (e: EntryInput, timestamp: number): PreparedEntry {
  let parts = NO_PARTS
  let flags = 0
  const payloadBytes = payloadLength(e.payload)
  let size = 9 + payloadBytes
  if (e.topic !== undefined || e.key !== undefined || e.headers !== undefined || e.properties !== undefined) {
    parts = []
    if (e.topic !== undefined) { flags |= FLAG_TOPIC; parts.push(Buffer.from(e.topic, 'utf8')) }
    if (e.key !== undefined) { flags |= FLAG_KEY; parts.push(Buffer.from(e.key, 'utf8')) }
    if (e.headers !== undefined) { flags |= FLAG_HEADERS; parts.push(Buffer.from(JSON.stringify(e.headers), 'utf8')) }
    if (e.properties !== undefined) { flags |= FLAG_PROPERTIES; parts.push(encodeProperties(e.properties)) }
    for (const part of parts) size += 4 + part.length
  }
  if (e.retain === true) flags |= FLAG_RETAIN
  flags |= (e.qos ?? 0) << QOS_SHIFT
  return { timestamp, flags, parts, payload: e.payload, payloadBytes, size }
}

/**
 * A big-endian u32 by plain byte stores: writeUInt32BE validates its arguments on every call, which costs
 * more than the payload copy on small messages. The values here are sizes and halves of a u64.
 */
function putU32 (out: Buffer, at: number, n: number): void {
  out[at] = n >>> 24
  out[at + 1] = n >>> 16
  out[at + 2] = n >>> 8
  out[at + 3] = n
}

function payloadLength (p: Payload): number {
  if (typeof p === 'string') return Buffer.byteLength(p, 'utf8')
  if (Buffer.isBuffer(p)) return p.length
  // a slice outside its buffer would leave bytes of the chunk unwritten
  if (!(Number.isInteger(p.start) && Number.isInteger(p.end) && p.start >= 0 && p.start <= p.end && p.end <= p.bytes.length)) {
    throw new RangeError(`payload slice [${p.start}, ${p.end}) is outside its buffer of ${p.bytes.length} bytes`)
  }
  return p.end - p.start
}

function writeEntry (out: Buffer, at: number, e: PreparedEntry): number {
  putU32(out, at, Math.floor(e.timestamp / 2 ** 32))
  putU32(out, at + 4, e.timestamp % 2 ** 32)
  out[at + 8] = e.flags
  at += 9
  for (const part of e.parts) {
    putU32(out, at, part.length)
    part.copy(out, at + 4)
    at += 4 + part.length
  }
  const p = e.payload
  if (typeof p === 'string') out.write(p, at, e.payloadBytes, 'utf8')
  else if (Buffer.isBuffer(p)) p.copy(out, at)
  else p.bytes.copy(out, at, p.start, p.end)
  return at + e.payloadBytes
}

/**
 * Decodes the entry stored at chunk[at, at + len) without first cutting it out of the chunk: the
 * payload is the only view created (one view per message is what the read path can afford).
 */
export function decodeEntryAt (offset: number, chunk: Buffer, at: number, len: number): StreamEntry {
  const end = at + len
  const timestamp = readNumber(chunk, at)
  const flags = chunk[at + 8]
  at += 9
  if ((flags & (FLAG_TOPIC | FLAG_KEY | FLAG_HEADERS | FLAG_PROPERTIES)) === 0) return { offset, timestamp, payload: chunk.subarray(at, end) }
  const take = (): string => {
    const n = chunk.readUInt32BE(at)
    const s = chunk.toString('utf8', at + 4, at + 4 + n)
    at += 4 + n
    return s
  }
  const entry: StreamEntry = { offset, timestamp, payload: EMPTY }
  if ((flags & FLAG_TOPIC) !== 0) {
    entry.topic = take()
    entry.qos = ((flags >> QOS_SHIFT) & 3) as 0 | 1 | 2
    entry.retain = (flags & FLAG_RETAIN) !== 0
  }
  if ((flags & FLAG_KEY) !== 0) entry.key = take()
  if ((flags & FLAG_HEADERS) !== 0) entry.headers = JSON.parse(take()) as Record<string, string>
  if ((flags & FLAG_PROPERTIES) !== 0) entry.properties = decodeProperties(take())
  entry.payload = chunk.subarray(at, end)
  return entry
}

const EMPTY = Buffer.alloc(0)

/** Timestamp of the entry stored at chunk[at...]. */
export const entryTimestampAt = (chunk: Buffer, at: number): number => readNumber(chunk, at)

/** Timestamp of an encoded entry without decoding the rest. */
export const entryTimestamp = (value: Buffer): number => readNumber(value, 0)

/** A pending delivery: u32 deliveries, u64 lease end (ms), then the consumer name. */
export interface PendingRecord { deliveries: number, leaseUntil: number, consumer: string }

export function encodePending (p: PendingRecord): Buffer {
  const consumer = Buffer.from(p.consumer, 'utf8')
  const out = Buffer.allocUnsafe(12 + consumer.length)
  out.writeUInt32BE(p.deliveries, 0)
  out.writeBigUInt64BE(BigInt(p.leaseUntil), 4)
  consumer.copy(out, 12)
  return out
}

export function decodePending (value: Buffer): PendingRecord {
  return { deliveries: value.readUInt32BE(0), leaseUntil: readU64(value, 4), consumer: value.toString('utf8', 12) }
}

export function encodeDedup (offset: number, timestamp: number): Buffer {
  return Buffer.concat([u64(offset), u64(timestamp)])
}

export function decodeDedup (value: Buffer): { offset: number, timestamp: number } {
  return { offset: readU64(value, 0), timestamp: readU64(value, 8) }
}

/**
 * One append batch is stored as one chunk under the offset of its first entry: u32 count, then per entry
 * u32 length + the encoded entry. One LevelDB entry per batch instead of per message is what makes
 * appends cheap; a read seeks to the chunk holding its first offset and skips what lies before it.
 */
export function encodeChunk (entries: PreparedEntry[]): Buffer {
  let size = 4
  for (const e of entries) size += 4 + e.size
  const out = Buffer.allocUnsafe(size)
  out.writeUInt32BE(entries.length, 0)
  let at = 4
  for (const e of entries) {
    putU32(out, at, e.size)
    at = writeEntry(out, at + 4, e)
  }
  return out
}

export const chunkCount = (chunk: Buffer): number => chunk.readUInt32BE(0)

/**
 * Calls fn(offset, chunk, at, len) for each entry of a chunk from offset `from` on, until fn returns
 * false; the entry's bytes are chunk[at, at + len). No view is cut per entry: on a replay that would
 * cost as much as the rest of the read.
 */
export function forEachInChunk (firstOffset: number, chunk: Buffer, from: number, fn: (offset: number, chunk: Buffer, at: number, len: number) => boolean): void {
  const count = chunk.readUInt32BE(0)
  let at = 4
  let i = 0
  // skip the entries before `from` by their lengths alone
  for (; i < count && firstOffset + i < from; i++) at += 4 + chunk.readUInt32BE(at)
  for (; i < count; i++) {
    const len = chunk.readUInt32BE(at)
    if (!fn(firstOffset + i, chunk, at + 4, len)) return
    at += 4 + len
  }
}
