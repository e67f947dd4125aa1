import { name as nameKey, readName } from '../storage/keys.js'
import { InvalidArgument } from '../errors.js'

/**
 * Key layout of the queue partition (all binary, ordered bytewise):
 *
 *   'Q' name                    -> queue settings (JSON, with the queue's numeric id)
 *   'D' qid 'c'                 -> counters (totals, next sequence number)
 *   'D' qid 'g' u64 start       -> segment: the bodies of the messages start, start + 1, ... of one push batch
 *                                  (see encodeSegment and segments.ts); immutable
 *   'D' qid 'a' u64 start       -> the segment's gone bitmap: which of its messages are acked, expired,
 *                                  purged or moved away (absent: none yet); deleted with the segment
 *   'D' qid 'b' rank            -> the body of a message not in a segment (pushed alone or in a small batch);
 *                                  immutable. Body = enqueue and due time, topic, headers, dedup id, payload
 *   'D' qid 's' rank            -> message state (ready/delayed/leased/dead, deliveries, due time, receipt token),
 *                                  written from the first delivery on; without one the body's due time decides
 *   'D' qid 'l' u64             -> lease record: the deliveries handed out by one receive (see encodeLeases)
 *   'D' qid 'd' rank            -> dead-letter index entry (empty value)
 *   'D' qid 'u' dedupId         -> dedup entry (rank + expiry)
 *
 * rank = [255 - priority][0][48-bit enqueue sequence], so a range read over 'b' or 's' walks messages in
 * delivery order: priority descending, then first in first out. The message id is the rank in hex.
 * Data keys start with the queue's numeric id (not its name), so a deleted queue's leftovers can never
 * be mistaken for a new queue of the same name.
 *
 * Which record says how a message stands: the one with the highest lease token. Tokens grow, also across
 * restarts (the engine starts above every token it finds), and every state record carries one: the token
 * of the delivery it ends (nack, expired lease) or a fresh one (release, redrive, dead-lettering at
 * receive). On a tie the state record wins: it is the outcome of that delivery.
 */

export const CATALOG = Buffer.from('Q')
export const DATA = Buffer.from('D')

export const KIND_COUNTERS = 0x63 // 'c'
export const KIND_BODY = 0x62 // 'b'
export const KIND_STATE = 0x73 // 's'
export const KIND_DEAD = 0x64 // 'd'
export const KIND_DEDUP = 0x75 // 'u'
export const KIND_LEASE = 0x6c // 'l'
export const KIND_SEGMENT = 0x67 // 'g'
export const KIND_GONE = 0x61 // 'a'

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

/** '00' + the rank's first byte in hex, for each priority: the start of every id. */
const ID_PREFIX: string[] = Array.from({ length: 256 }, (_, priority) => (255 - priority).toString(16).padStart(2, '0') + '00')
/** Zeros to pad a hex sequence number of each length to 12 digits. */
const ZEROS: string[] = Array.from({ length: 13 }, (_, n) => '0'.repeat(12 - n))

/** The rank in hex, built as a string from tables: ids are made for every message pushed and delivered. */
export function messageId (priority: number, seq: number): string {
  const hex = seq.toString(16)
  return ID_PREFIX[priority] + ZEROS[hex.length] + hex
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

/** A receipt names one delivery: the message id and the lease token of that delivery (base 36). */
export function receiptOfId (id: string, token: number): string {
  return id + '.' + base36(token)
}

const B36_LOW = 36 ** 5
const B36_ZEROS: string[] = Array.from({ length: 6 }, (_, n) => '0'.repeat(5 - n))

/**
 * token.toString(36), in two halves below 2^30: V8 converts such small integers several times faster
 * than a larger number (tokens start at a random point up to 2^40), and a receipt is made per delivery.
 */
function base36 (token: number): string {
  const low = token % B36_LOW
  const high = (token - low) / B36_LOW
  if (high === 0) return low.toString(36)
  const digits = low.toString(36)
  return high.toString(36) + B36_ZEROS[digits.length] + digits
}

export interface ParsedReceipt { priority: number, seq: number, token: number }

/** Whether text[from, to) is all lowercase hex digits. */
function isHex (text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false
  }
  return true
}

/** Whether text[from, to) is all base-36 digits (0-9, a-z). */
function isBase36 (text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122))) return false
  }
  return true
}

// Receipts come by the thousand per ack request: checked char by char rather than with regexes and a
// hex Buffer (the same rules as ID_PATTERN plus 1 to 11 base-36 token digits).
export function parseReceipt (receipt: unknown): ParsedReceipt {
  if (typeof receipt !== 'string') throw new InvalidArgument('a receipt must be a string')
  const n = receipt.length
  if (n < 18 || n > 28 || receipt.charCodeAt(16) !== 46 || receipt.charCodeAt(2) !== 48 || receipt.charCodeAt(3) !== 48 ||
    !isHex(receipt, 0, 16) || !isBase36(receipt, 17, n)) {
    throw new InvalidArgument(`"${receipt.slice(0, 100)}" is not a receipt of this broker`, { receipt })
  }
  return { priority: 255 - digits(receipt, 0, 2, 16), seq: digits(receipt, 4, 16, 16), token: digits(receipt, 17, n, 36) }
}

/** The number text[from, to) spells in a base up to 36 (digits checked before); like parseInt, inexact past 2^53 (such a token matches no lease). */
function digits (text: string, from: number, to: number, base: number): number {
  let value = 0
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    value = value * base + (c <= 57 ? c - 48 : c - 87)
  }
  return value
}

// ---- message body ---------------------------------------------------------------------------------

export interface MessageBody {
  enqueuedAt: number
  /**
   * When a message pushed with a delay becomes ready (0: ready at once). A message that was never
   * delivered has no state record: its body alone says ready (or delayed until `due`), which saves a
   * write per push.
   */
  due: number
  /** The payload bytes are the compact JSON serialisation of a value (pushed as JSON over HTTP). */
  json: boolean
  topic?: string
  headers?: Record<string, string>
  dedupId?: string
  payload: Buffer
}

const BODY_HEAD = 8 + 8 + 1 + 4 + 4 + 2
const FLAG_JSON = 1

/** A body to encode: its payload may be text, which stands for its UTF-8 bytes, `payloadBytes` of them. */
export interface BodyInput extends Omit<MessageBody, 'payload'> {
  payload: Buffer | string
  payloadBytes: number
}

/** Bytes encodeBody needs for a message. */
export function bodySize (m: BodyInput): number {
  return BODY_HEAD + (m.topic === undefined ? 0 : Buffer.byteLength(m.topic)) +
    (m.headers === undefined ? 0 : Buffer.byteLength(JSON.stringify(m.headers))) +
    (m.dedupId === undefined ? 0 : Buffer.byteLength(m.dedupId)) + m.payloadBytes
}

/**
 * Encodes a body into `into` at `offset` (exactly bodySize(m) bytes) and returns that slice, so a push
 * batch's bodies can share one allocation.
 */
export function encodeBody (m: BodyInput, into?: Buffer, offset = 0): Buffer {
  const b = into ?? Buffer.allocUnsafe(bodySize(m))
  const headers = m.headers === undefined ? undefined : JSON.stringify(m.headers)
  b.writeDoubleBE(m.enqueuedAt, offset)
  b.writeDoubleBE(m.due, offset + 8)
  b[offset + 16] = m.json ? FLAG_JSON : 0
  let at = offset + BODY_HEAD
  const topicLen = m.topic === undefined ? 0 : b.write(m.topic, at, 'utf8')
  at += topicLen
  const headersLen = headers === undefined ? 0 : b.write(headers, at, 'utf8')
  at += headersLen
  const dedupLen = m.dedupId === undefined ? 0 : b.write(m.dedupId, at, 'utf8')
  at += dedupLen
  b.writeUInt32BE(topicLen, offset + 17)
  b.writeUInt32BE(headersLen, offset + 21)
  b.writeUInt16BE(dedupLen, offset + 25)
  at += typeof m.payload === 'string' ? b.write(m.payload, at, m.payloadBytes, 'utf8') : m.payload.copy(b, at)
  return b.subarray(offset, at)
}

export function decodeBody (b: Buffer): MessageBody {
  const enqueuedAt = b.readDoubleBE(0)
  const due = b.readDoubleBE(8)
  const json = (b[16] & FLAG_JSON) !== 0
  const topicLen = b.readUInt32BE(17)
  const headersLen = b.readUInt32BE(21)
  const dedupLen = b.readUInt16BE(25)
  let at = BODY_HEAD
  const topic = topicLen > 0 ? b.toString('utf8', at, at + topicLen) : undefined
  at += topicLen
  const headers = headersLen > 0 ? JSON.parse(b.toString('utf8', at, at + headersLen)) as Record<string, string> : undefined
  at += headersLen
  const dedupId = dedupLen > 0 ? b.toString('utf8', at, at + dedupLen) : undefined
  at += dedupLen
  return { enqueuedAt, due, json, topic, headers, dedupId, payload: b.subarray(at) }
}

/** The enqueue time and due time of a body, without decoding the rest (used when loading a queue). */
export function bodyTimes (b: Buffer): { enqueuedAt: number, due: number } {
  return { enqueuedAt: b.readDoubleBE(0), due: b.readDoubleBE(8) }
}

// ---- segments -------------------------------------------------------------------------------------

/** The key of a segment ('g') or of its gone bitmap ('a'). */
export function segmentKey (qid: number, kind: number, start: number): Buffer {
  const b = Buffer.allocUnsafe(14)
  b[0] = DATA[0]
  b.writeUInt32BE(qid, 1)
  b[5] = kind
  b.writeUInt16BE(0, 6)
  b.writeUIntBE(start, 8, 6)
  return b
}

export function segmentStartOfKey (key: Buffer): number {
  return key.readUIntBE(key.length - 6, 6)
}

/**
 * Segment value: u32 count, then per message u8 priority and u32 end offset of its body (from the start
 * of the value), then the encoded bodies back to back. Message i has sequence number start + i.
 */
const SEGMENT_ENTRY = 5

export function segmentHeaderSize (count: number): number {
  return 4 + count * SEGMENT_ENTRY
}

/** Writes the header of a segment whose bodies (already in place) end at the given offsets. */
export function writeSegmentHeader (into: Buffer, priorities: number[], ends: number[]): void {
  into.writeUInt32BE(priorities.length, 0)
  for (let i = 0; i < priorities.length; i++) {
    const at = 4 + i * SEGMENT_ENTRY
    into[at] = priorities[i]
    into.writeUInt32BE(ends[i], at + 1)
  }
}

export function segmentCount (segment: Buffer): number {
  return segment.readUInt32BE(0)
}

export function segmentPriority (segment: Buffer, i: number): number {
  return segment[4 + i * SEGMENT_ENTRY]
}

/** The encoded body of message i (a view into the segment). */
export function segmentBody (segment: Buffer, i: number): Buffer {
  const from = i === 0 ? segmentHeaderSize(segmentCount(segment)) : segment.readUInt32BE(4 + (i - 1) * SEGMENT_ENTRY + 1)
  return segment.subarray(from, segment.readUInt32BE(4 + i * SEGMENT_ENTRY + 1))
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

const NO_TEXT = Buffer.alloc(0)

function clip (text: string | undefined): Buffer {
  if (text === undefined) return NO_TEXT
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

/** The lease token of a state record, without decoding the rest. */
export function stateToken (b: Buffer): number {
  return b.readDoubleBE(29)
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

// ---- lease records --------------------------------------------------------------------------------

/**
 * The deliveries of all receives in one group commit are written as ONE record (not a state record per
 * message, nor a record per receive; see QueueEngine.joinLeaseRecord): what a restart needs of a
 * delivery is its count, first delivery time and last error (a lease itself does not survive a restart).
 * The record is deleted with the last of its leases to end; until then, entries of leases
 * that ended are outranked by the state record their end wrote (same token) or by the message being gone.
 */
export interface LeaseEntry {
  priority: number
  seq: number
  token: number
  deliveries: number
  firstDeliveredAt: number
  lastError?: string
}

export function leaseKey (qid: number, id: number): Buffer {
  const b = Buffer.allocUnsafe(14)
  b[0] = DATA[0]
  b.writeUInt32BE(qid, 1)
  b[5] = KIND_LEASE
  b.writeUIntBE(Math.floor(id / 2 ** 32), 6, 4)
  b.writeUInt32BE(id % 2 ** 32, 10)
  return b
}

export function leaseIdOfKey (key: Buffer): number {
  return key.readUInt32BE(key.length - 8) * 2 ** 32 + key.readUInt32BE(key.length - 4)
}

const LEASE_ENTRY = 1 + 6 + 8 + 4 + 8 + 2

export function encodeLeases (entries: LeaseEntry[]): Buffer {
  const errors = entries.map(e => clip(e.lastError))
  let size = 0
  for (const e of errors) size += LEASE_ENTRY + e.length
  const b = Buffer.allocUnsafe(size)
  let at = 0
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    b[at] = e.priority
    b.writeUIntBE(e.seq, at + 1, 6)
    b.writeDoubleBE(e.token, at + 7)
    b.writeUInt32BE(e.deliveries, at + 15)
    b.writeDoubleBE(e.firstDeliveredAt, at + 19)
    b.writeUInt16BE(errors[i].length, at + 27)
    errors[i].copy(b, at + 29)
    at += LEASE_ENTRY + errors[i].length
  }
  return b
}

export function decodeLeases (b: Buffer): LeaseEntry[] {
  const out: LeaseEntry[] = []
  let at = 0
  while (at + LEASE_ENTRY <= b.length) {
    const errorLen = b.readUInt16BE(at + 27)
    out.push({
      priority: b[at],
      seq: b.readUIntBE(at + 1, 6),
      token: b.readDoubleBE(at + 7),
      deliveries: b.readUInt32BE(at + 15),
      firstDeliveredAt: b.readDoubleBE(at + 19),
      lastError: errorLen > 0 ? b.toString('utf8', at + 29, at + 29 + errorLen) : undefined
    })
    at += LEASE_ENTRY + errorLen
  }
  return out
}
