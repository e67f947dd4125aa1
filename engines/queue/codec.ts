import { name as nameKey, readName } from '../storage/keys.js'
import { InvalidArgument } from '../errors.js'

/**
 * Key layout of the queue partition (all binary, ordered bytewise):
 *
 *   'Q' name                    -> queue settings (JSON, with the queue's numeric id)
 *   'D' qid 'c'                 -> counters (totals, next sequence number)
 *   'D' qid 'b' rank            -> message body (enqueue time, topic, headers, dedup id, payload); immutable
 *   'D' qid 's' rank            -> message state (ready/delayed/leased/dead, deliveries, due time, receipt token)
 *   'D' qid 'd' rank            -> dead-letter index entry (empty value)
 *   'D' qid 'u' dedupId         -> dedup entry (rank + expiry)
 *
 * rank = [255 - priority][0][48-bit enqueue sequence], so a range read over 'b' or 's' walks messages in
 * delivery order: priority descending, then first in first out. The message id is the rank in hex.
 * Data keys start with the queue's numeric id (not its name), so a deleted queue's leftovers can never
 * be mistaken for a new queue of the same name.
 */

export const CATALOG = Buffer.from('Q')
export const DATA = Buffer.from('D')

export const KIND_COUNTERS = 0x63 // 'c'
export const KIND_BODY = 0x62 // 'b'
export const KIND_STATE = 0x73 // 's'
export const KIND_DEAD = 0x64 // 'd'
export const KIND_DEDUP = 0x75 // 'u'

export const MAX_SEQ = 2 ** 48 - 1

export function catalogKey (queue: string): Buffer {
  return Buffer.concat([CATALOG, nameKey(queue)])
}

export function catalogName (key: Buffer): string {
  return readName(key, CATALOG.length).value
}

/** 'D' + qid: the prefix of everything a queue stores. */
export function dataPrefix (qid: number): Buffer {
  const b = Buffer.allocUnsafe(5)
  b[0] = DATA[0]
  b.writeUInt32BE(qid, 1)
  return b
}

export function kindPrefix (qid: number, kind: number): Buffer {
  const b = Buffer.allocUnsafe(6)
  b[0] = DATA[0]
  b.writeUInt32BE(qid, 1)
  b[5] = kind
  return b
}

export function rank (priority: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b[0] = 255 - priority
  b[1] = 0
  b.writeUIntBE(seq, 2, 6)
  return b
}

export function messageKey (qid: number, kind: number, priority: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(14)
  b[0] = DATA[0]
  b.writeUInt32BE(qid, 1)
  b[5] = kind
  b[6] = 255 - priority
  b[7] = 0
  b.writeUIntBE(seq, 8, 6)
  return b
}

/** The key of one message's record from its id, or undefined when the id is not well formed. */
export function messageKeyFromId (qid: number, kind: number, id: string): Buffer | undefined {
  const parsed = parseMessageId(id)
  return parsed === undefined ? undefined : messageKey(qid, kind, parsed.priority, parsed.seq)
}

/** The (priority, seq) of a message key (the last 8 bytes). */
export function rankOfKey (key: Buffer): { priority: number, seq: number } {
  const at = key.length - 8
  return { priority: 255 - key[at], seq: key.readUIntBE(at + 2, 6) }
}

export function messageId (priority: number, seq: number): string {
  return rank(priority, seq).toString('hex')
}

const ID_PATTERN = /^[0-9a-f]{2}00[0-9a-f]{12}$/

export function parseMessageId (id: string): { priority: number, seq: number } | undefined {
  if (!ID_PATTERN.test(id)) return undefined
  const b = Buffer.from(id, 'hex')
  return { priority: 255 - b[0], seq: b.readUIntBE(2, 6) }
}

export function idOfKey (key: Buffer): string {
  return key.subarray(key.length - 8).toString('hex')
}

/** A receipt names one delivery: the message id and the lease token of that delivery. */
export function receiptOf (priority: number, seq: number, token: number): string {
  return `${messageId(priority, seq)}.${token.toString(36)}`
}

export interface ParsedReceipt { priority: number, seq: number, token: number }

export function parseReceipt (receipt: unknown): ParsedReceipt {
  if (typeof receipt !== 'string') throw new InvalidArgument('a receipt must be a string')
  const dot = receipt.indexOf('.')
  const id = dot < 0 ? undefined : parseMessageId(receipt.slice(0, dot))
  const tokenText = dot < 0 ? '' : receipt.slice(dot + 1)
  if (id === undefined || !/^[0-9a-z]{1,11}$/.test(tokenText)) {
    throw new InvalidArgument(`"${receipt.slice(0, 100)}" is not a receipt of this broker`, { receipt })
  }
  return { ...id, token: parseInt(tokenText, 36) }
}

// ---- message body ---------------------------------------------------------------------------------

export interface MessageBody {
  enqueuedAt: number
  topic?: string
  headers?: Record<string, string>
  dedupId?: string
  payload: Buffer
}

export function encodeBody (m: MessageBody): Buffer {
  const topic = m.topic === undefined ? Buffer.alloc(0) : Buffer.from(m.topic, 'utf8')
  const headers = m.headers === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(m.headers), 'utf8')
  const dedup = m.dedupId === undefined ? Buffer.alloc(0) : Buffer.from(m.dedupId, 'utf8')
  const head = Buffer.allocUnsafe(8 + 4 + 4 + 2)
  head.writeDoubleBE(m.enqueuedAt, 0)
  head.writeUInt32BE(topic.length, 8)
  head.writeUInt32BE(headers.length, 12)
  head.writeUInt16BE(dedup.length, 16)
  return Buffer.concat([head, topic, headers, dedup, m.payload])
}

export function decodeBody (b: Buffer): MessageBody {
  const enqueuedAt = b.readDoubleBE(0)
  const topicLen = b.readUInt32BE(8)
  const headersLen = b.readUInt32BE(12)
  const dedupLen = b.readUInt16BE(16)
  let at = 18
  const topic = topicLen > 0 ? b.toString('utf8', at, at + topicLen) : undefined
  at += topicLen
  const headers = headersLen > 0 ? JSON.parse(b.toString('utf8', at, at + headersLen)) as Record<string, string> : undefined
  at += headersLen
  const dedupId = dedupLen > 0 ? b.toString('utf8', at, at + dedupLen) : undefined
  at += dedupLen
  return { enqueuedAt, topic, headers, dedupId, payload: b.subarray(at) }
}

// ---- message state --------------------------------------------------------------------------------

export enum Status { Ready = 0, Delayed = 1, Leased = 2, Dead = 3 }

export interface MessageState {
  status: Status
  deliveries: number
  enqueuedAt: number
  /** 0 before the first delivery. */
  firstDeliveredAt: number
  /** Delayed: when it becomes ready; leased: when the lease runs out; dead: when it was dead-lettered. */
  at: number
  /** Lease token of the current (or last) delivery. */
  token: number
  /** Why it was dead-lettered. */
  reason?: string
  /** The last error a consumer gave with a nack. */
  lastError?: string
}

const MAX_TEXT = 4096

function clip (text: string | undefined): Buffer {
  if (text === undefined) return Buffer.alloc(0)
  const b = Buffer.from(text, 'utf8')
  return b.length > MAX_TEXT ? b.subarray(0, MAX_TEXT) : b
}

export function encodeState (s: MessageState): Buffer {
  const reason = clip(s.reason)
  const lastError = clip(s.lastError)
  const b = Buffer.allocUnsafe(37 + 2 + reason.length + 2 + lastError.length)
  b[0] = s.status
  b.writeUInt32BE(s.deliveries, 1)
  b.writeDoubleBE(s.enqueuedAt, 5)
  b.writeDoubleBE(s.firstDeliveredAt, 13)
  b.writeDoubleBE(s.at, 21)
  b.writeDoubleBE(s.token, 29)
  b.writeUInt16BE(reason.length, 37)
  reason.copy(b, 39)
  const at = 39 + reason.length
  b.writeUInt16BE(lastError.length, at)
  lastError.copy(b, at + 2)
  return b
}

export function decodeState (b: Buffer): MessageState {
  const reasonLen = b.readUInt16BE(37)
  const at = 39 + reasonLen
  const lastErrorLen = b.readUInt16BE(at)
  return {
    status: b[0] as Status,
    deliveries: b.readUInt32BE(1),
    enqueuedAt: b.readDoubleBE(5),
    firstDeliveredAt: b.readDoubleBE(13),
    at: b.readDoubleBE(21),
    token: b.readDoubleBE(29),
    reason: reasonLen > 0 ? b.toString('utf8', 39, 39 + reasonLen) : undefined,
    lastError: lastErrorLen > 0 ? b.toString('utf8', at + 2, at + 2 + lastErrorLen) : undefined
  }
}

// ---- counters and dedup entries -------------------------------------------------------------------

export interface QueueCounters {
  pushed: number
  acked: number
  deadLettered: number
  expired: number
  /** The next enqueue sequence number (never reused, also across restarts). */
  nextSeq: number
}

export function encodeCounters (c: QueueCounters): Buffer {
  const b = Buffer.allocUnsafe(40)
  b.writeDoubleBE(c.pushed, 0)
  b.writeDoubleBE(c.acked, 8)
  b.writeDoubleBE(c.deadLettered, 16)
  b.writeDoubleBE(c.expired, 24)
  b.writeDoubleBE(c.nextSeq, 32)
  return b
}

export function decodeCounters (b: Buffer): QueueCounters {
  return { pushed: b.readDoubleBE(0), acked: b.readDoubleBE(8), deadLettered: b.readDoubleBE(16), expired: b.readDoubleBE(24), nextSeq: b.readDoubleBE(32) }
}

export function dedupKey (qid: number, dedupId: string): Buffer {
  return Buffer.concat([kindPrefix(qid, KIND_DEDUP), Buffer.from(dedupId, 'utf8')])
}

export function encodeDedup (id: string, expiresAt: number): Buffer {
  const b = Buffer.allocUnsafe(16)
  Buffer.from(id, 'hex').copy(b, 0)
  b.writeDoubleBE(expiresAt, 8)
  return b
}

export function decodeDedup (key: Buffer, value: Buffer): { dedupId: string, id: string, expiresAt: number } {
  return { dedupId: key.toString('utf8', 6), id: value.toString('hex', 0, 8), expiresAt: value.readDoubleBE(8) }
}
