import { isUtf8 } from 'node:buffer'
import type { StreamEntry } from '../../../engines/stream/index.js'
import { compactJsonValue } from '../payload.js'
import { propertiesJson } from './pubsub-properties.js'

/**
 * The JSON of stream messages written straight into one buffer: exactly the bytes of
 * JSON.stringify(entryJson(entry)) (a test holds the two together), without building an object per
 * message, parsing JSON payloads back into values or encoding one large string at the end. A payload
 * that is compact JSON is copied as it is stored.
 */
export class JsonWriter {
  private buf: Buffer
  private at = 0

  constructor (initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes)
  }

  get length (): number { return this.at }

  private room (n: number): void {
    if (this.at + n <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n))
    this.buf.copy(bigger, 0, 0, this.at)
    this.buf = bigger
  }

  /** Text known to be ASCII (property names, numbers, base64). */
  ascii (s: string): this {
    const n = s.length
    this.room(n)
    // short pieces (names, numbers) are copied by hand: cheaper than a call into the encoder
    if (n <= 32) {
      const buf = this.buf
      for (let i = 0, at = this.at; i < n; i++) buf[at + i] = s.charCodeAt(i)
      this.at += n
    } else this.at += this.buf.write(s, this.at, 'latin1')
    return this
  }

  /**
   * A number in decimal. (Measured: String() and a byte copy beat writing digits by hand, V8 caches
   * the strings of recent numbers.)
   */
  int (n: number): this { return this.ascii(String(n)) }

  utf8 (s: string): this {
    this.room(Buffer.byteLength(s))
    this.at += this.buf.write(s, this.at, 'utf8')
    return this
  }

  bytes (b: Buffer): this {
    this.room(b.length)
    this.at += b.copy(this.buf, this.at)
    return this
  }

  /** What was written so far (a view of the writer's buffer: write no more once it is handed on). */
  view (): Buffer { return this.buf.subarray(0, this.at) }
}

const NOT_TEXT = 0
/** Readable text that needs escaping in a JSON string (quotes, backslashes, tab, newline, CR). */
const TEXT = 1
/** Readable text that goes into a JSON string as it is. */
const PLAIN_TEXT = 2
/** Readable text that is a JSON string literal as JSON.stringify writes it (no escapes inside). */
const PLAIN_JSON_STRING = 3

/** What each byte says about the payload: bit flags OR-ed over its bytes. */
const CONTROL = 1
const ESCAPED = 2
const QUOTE = 4
const HIGH = 8
const BYTE_FLAGS = new Uint8Array(256)
for (let b = 0; b < 256; b++) {
  BYTE_FLAGS[b] = b === 9 || b === 10 || b === 13 || b === 0x5c
    ? ESCAPED
    : b < 0x20 || b === 0x7f ? CONTROL : b === 0x22 ? QUOTE : b >= 0x80 ? HIGH : 0
}

/**
 * Classifies payload bytes as encodePayload (payload.ts) decides: readable text is valid UTF-8 without
 * control characters other than tab, newline and CR, and without DEL. One table lookup per byte.
 */
function classify (bytes: Buffer): number {
  const n = bytes.length
  let inner = 0
  for (let i = 1; i < n - 1; i++) inner |= BYTE_FLAGS[bytes[i]]
  const ends = n >= 2 ? BYTE_FLAGS[bytes[0]] | BYTE_FLAGS[bytes[n - 1]] : BYTE_FLAGS[bytes[0]]
  const all = inner | ends
  if ((all & CONTROL) !== 0 || ((all & HIGH) !== 0 && !isUtf8(bytes))) return NOT_TEXT
  if (n >= 2 && bytes[0] === 0x22 && bytes[n - 1] === 0x22 && (inner & (QUOTE | ESCAPED)) === 0) return PLAIN_JSON_STRING
  return (all & (QUOTE | ESCAPED)) === 0 ? PLAIN_TEXT : TEXT
}

/** First characters with which a JSON text can begin: { [ " digit - t f n */
function mayBeJson (first: number): boolean {
  return first === 123 || first === 91 || first === 34 || (first >= 48 && first <= 57) || first === 45 || first === 116 || first === 102 || first === 110
}

/** `"payload":...` and, when the payload is not JSON, `,"encoding":...` (see encodePayload). */
function writePayload (out: JsonWriter, bytes: Buffer): void {
  if (bytes.length === 0) {
    out.ascii('"payload":"","encoding":"utf8"')
    return
  }
  const kind = classify(bytes)
  if (kind === NOT_TEXT) {
    out.ascii('"payload":"').ascii(bytes.toString('base64')).ascii('","encoding":"base64"')
    return
  }
  // a string literal without escapes is its own compact serialisation: no need to parse it
  if (kind === PLAIN_JSON_STRING) {
    out.ascii('"payload":').bytes(bytes)
    return
  }
  // text that cannot be JSON and needs no escaping is copied between quotes as it is
  if (kind === PLAIN_TEXT && !mayBeJson(bytes[0])) {
    out.ascii('"payload":"').bytes(bytes).ascii('","encoding":"utf8"')
    return
  }
  const text = bytes.toString('utf8')
  if (mayBeJson(text.charCodeAt(0)) && compactJsonValue(text) !== undefined) {
    out.ascii('"payload":').bytes(bytes)
    return
  }
  out.ascii('"payload":').utf8(JSON.stringify(text)).ascii(',"encoding":"utf8"')
}

/** One message as JSON: {offset, timestamp, topic?, qos?, retain?, (MQTT 5 properties)?, key?, headers?, payload, encoding?}. */
export function writeEntryJson (out: JsonWriter, e: StreamEntry): void {
  out.ascii('{"offset":').int(e.offset).ascii(',"timestamp":').int(e.timestamp).ascii(',')
  if (e.topic !== undefined) {
    out.ascii('"topic":').utf8(JSON.stringify(e.topic)).ascii(',')
    if (e.qos !== undefined) out.ascii('"qos":').int(e.qos).ascii(',')
    if (e.retain !== undefined) out.ascii(e.retain ? '"retain":true,' : '"retain":false,')
  }
  if (e.properties !== undefined) {
    // rare (captured MQTT 5 publishes that carry properties): the object's members as JSON.stringify writes them
    const json = JSON.stringify(propertiesJson(e.properties) ?? {})
    if (json.length > 2) out.utf8(json.slice(1, -1)).ascii(',')
  }
  if (e.key !== undefined) out.ascii('"key":').utf8(JSON.stringify(e.key)).ascii(',')
  if (e.headers !== undefined) out.ascii('"headers":').utf8(JSON.stringify(e.headers)).ascii(',')
  writePayload(out, e.payload)
  out.ascii('}')
}

/** A page of a read: {messages, next, firstOffset, truncated}, the bytes JSON.stringify would give. */
export function pageJson (messages: StreamEntry[], next: number, firstOffset: number, truncated: boolean): Buffer {
  let estimate = 1024
  for (const m of messages) estimate += m.payload.length + 96
  const out = new JsonWriter(estimate)
  out.ascii('{"messages":[')
  for (let i = 0; i < messages.length; i++) {
    if (i > 0) out.ascii(',')
    writeEntryJson(out, messages[i])
  }
  out.ascii('],"next":').int(next).ascii(',"firstOffset":').int(firstOffset).ascii(',"truncated":').ascii(truncated ? 'true' : 'false').ascii('}')
  return out.view()
}

/** One Server-Sent Event per message (`id:` = offset, `data:` = the message's JSON), appended to out. */
export function writeSseEvent (out: JsonWriter, e: StreamEntry): void {
  out.ascii('id: ').int(e.offset).ascii('\ndata: ')
  writeEntryJson(out, e)
  out.ascii('\n\n')
}
