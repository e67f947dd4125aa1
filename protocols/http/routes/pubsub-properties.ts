import { isUtf8 } from 'node:buffer'
import { InvalidArgument } from '../../../engines/errors.js'
import type { MessageProperties, UserProperties } from '../../../engines/pubsub/types.js'

/**
 * MQTT 5 publish properties (§3.3.2.3) as they travel in JSON: the fields an HTTP publish body takes, and
 * the fields an SSE event, a retained message or a captured stream entry carries when the message has them.
 * One shape in and out, so what a client posts is what a reader gets back:
 *
 *   payloadFormat        0 | 1 (1: the payload is UTF-8, checked on the way in)
 *   contentType          string
 *   responseTopic        a topic name (no wildcards)
 *   correlationData      string: the bytes as UTF-8 text, or base64 with correlationEncoding "base64"
 *   correlationEncoding  "utf8" (the default) | "base64"
 *   userProperties       {name: value | [values in order]}, or on publish [[name, value], ...] in wire order
 *   userPropertyList     out only, when a name recurs between others: [[name, value], ...] in the order sent
 *   messageExpiry        seconds: on publish, how long the message may wait; on the way out, what is left of it
 */
export interface PropertiesBody {
  payloadFormat?: 0 | 1
  contentType?: string
  responseTopic?: string
  correlationData?: string
  correlationEncoding?: 'utf8' | 'base64'
  userProperties?: UserProperties | Array<[string, string]>
  messageExpiry?: number
}

/** MQTT's UTF-8 strings and binary data carry a 2-byte length (§1.5.4, §1.5.6). */
const MAX_MQTT_STRING_BYTES = 65_535
/** The message expiry interval is a four byte integer (§3.3.2.3.3); 0 is not a valid expiry (absent = never). */
const MAX_MESSAGE_EXPIRY = 4_294_967_295

/** JSON schema of the body fields (the route's schema spreads it into its properties). */
export const propertiesBodySchema = {
  payloadFormat: { type: 'integer', enum: [0, 1], description: '1: the payload is UTF-8 text (checked: a payload that is not is refused); 0 or absent: bytes' },
  contentType: { type: 'string', description: 'MQTT 5 content type, e.g. a MIME type' },
  responseTopic: { type: 'string', minLength: 1, description: 'MQTT 5 response topic: where a responder should publish its answer (a topic name, no wildcards)' },
  correlationData: { type: 'string', description: 'MQTT 5 correlation data: UTF-8 text, or base64 of the bytes with correlationEncoding "base64"' },
  correlationEncoding: { type: 'string', enum: ['utf8', 'base64'], description: 'How correlationData is written (default utf8)' },
  userProperties: {
    description: 'MQTT 5 user properties: {name: value} or {name: [values]} for a name given several times; or [[name, value], ...] to send them in exactly that order (a name may recur between others)',
    anyOf: [
      { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } },
      { type: 'array', items: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 } }
    ]
  },
  messageExpiry: { type: 'integer', minimum: 1, maximum: MAX_MESSAGE_EXPIRY, description: 'MQTT 5 message expiry interval in seconds: undelivered after it (queued and retained copies too)' }
} as const

/** The same fields on the way out (SSE events, retained messages, stream entries); messageExpiry is pubsub's (expiryOutSchema). */
export const propertiesOutSchema = {
  payloadFormat: { type: 'integer' },
  contentType: { type: 'string' },
  responseTopic: { type: 'string' },
  correlationData: { type: 'string' },
  correlationEncoding: { type: 'string', enum: ['base64'] },
  userProperties: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } },
  userPropertyList: { type: 'array', items: { type: 'array', items: { type: 'string' } }, description: 'present when a name recurs between others: the user properties in the order sent' }
} as const

export const expiryOutSchema = { messageExpiry: { type: 'integer', description: 'seconds left before the message expires' } } as const

/** A lone surrogate (JSON's "\\ud800" parses to one): its UTF-8 would be U+FFFD, not what was sent. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const wellFormed = (s: string): boolean => !LONE_SURROGATE.test(s)

/** An MQTT UTF-8 string (§1.5.4): well-formed (no lone surrogate), no U+0000, at most 65,535 bytes. */
function mqttString (value: string, field: string): string {
  if (!wellFormed(value)) throw new InvalidArgument(`${field} is not well-formed Unicode (a lone surrogate)`)
  if (value.includes('\u0000')) throw new InvalidArgument(`${field} must not contain the NUL character (U+0000)`)
  if (Buffer.byteLength(value, 'utf8') > MAX_MQTT_STRING_BYTES) throw new InvalidArgument(`${field} is longer than ${MAX_MQTT_STRING_BYTES} bytes`)
  return value
}

function userProperties (input: UserProperties | Array<[string, string]>): Pick<MessageProperties, 'userProperties' | 'userPropertyList'> {
  const out: UserProperties = {}
  if (!Array.isArray(input)) {
    for (const [name, value] of Object.entries(input)) {
      const field = `userProperties[${JSON.stringify(name)}]`
      mqttString(name, `${field} (the name)`)
      out[name] = typeof value === 'string'
        ? mqttString(value, field)
        : value.map((v, i) => mqttString(v, `${field}[${i}]`))
    }
    return { userProperties: out }
  }
  // pairs in wire order: the record groups them by name; the list keeps the order when a name recurs between others
  let interleaved = false
  let previous: string | undefined
  for (let i = 0; i < input.length; i++) {
    const [name, value] = input[i]
    mqttString(name, `userProperties[${i}][0] (the name)`)
    mqttString(value, `userProperties[${i}][1]`)
    const had = out[name]
    if (had === undefined) out[name] = value
    else {
      if (previous !== name) interleaved = true
      out[name] = typeof had === 'string' ? [had, value] : [...had, value]
    }
    previous = name
  }
  return interleaved ? { userProperties: out, userPropertyList: input.map(([n, v]) => [n, v]) } : { userProperties: out }
}

function correlationBytes (data: string, encoding: 'utf8' | 'base64' | undefined): Buffer {
  let bytes: Buffer
  if (encoding === 'base64') {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(data) || data.length % 4 === 1) throw new InvalidArgument('correlationData is not valid base64 (correlationEncoding "base64")')
    bytes = Buffer.from(data, 'base64')
  } else {
    if (!wellFormed(data)) throw new InvalidArgument('correlationData is not well-formed Unicode (a lone surrogate); send bytes as base64 with correlationEncoding "base64"')
    bytes = Buffer.from(data, 'utf8')
  }
  if (bytes.length > MAX_MQTT_STRING_BYTES) throw new InvalidArgument(`correlationData is longer than ${MAX_MQTT_STRING_BYTES} bytes`)
  return bytes
}

/**
 * The bus's properties and expiry from a publish body (already through the schema), checked as an MQTT 5
 * broker checks them: MQTT strings, a response topic without wildcards, a UTF-8 payload when payloadFormat
 * is 1. Throws InvalidArgument naming the field.
 */
export function propertiesFromBody (body: PropertiesBody, payload: Buffer): { properties?: MessageProperties, messageExpiry?: number } {
  const p: MessageProperties = {}
  let any = false
  if (body.payloadFormat !== undefined) {
    if (body.payloadFormat === 1 && !isUtf8(payload)) throw new InvalidArgument('payload is not valid UTF-8, which payloadFormat 1 says it is')
    p.payloadFormat = body.payloadFormat
    any = true
  }
  if (body.contentType !== undefined) { p.contentType = mqttString(body.contentType, 'contentType'); any = true }
  if (body.responseTopic !== undefined) {
    const topic = mqttString(body.responseTopic, 'responseTopic')
    if (topic.includes('+') || topic.includes('#')) throw new InvalidArgument(`responseTopic "${topic}" contains a wildcard (+ or #): it must be a topic name`)
    p.responseTopic = topic
    any = true
  }
  if (body.correlationData !== undefined) { p.correlationData = correlationBytes(body.correlationData, body.correlationEncoding); any = true } else if (body.correlationEncoding !== undefined) {
    throw new InvalidArgument('correlationEncoding is given without correlationData')
  }
  if (body.userProperties !== undefined) { Object.assign(p, userProperties(body.userProperties)); any = true }
  return { ...(any ? { properties: p } : {}), ...(body.messageExpiry !== undefined ? { messageExpiry: body.messageExpiry } : {}) }
}

/**
 * The JSON fields of a message's properties, in a fixed order, only those present (a message without
 * properties adds nothing: readers from before see what they saw). `expiresAt` (ms since the epoch) gives
 * messageExpiry as the whole seconds left at `now`, rounded up as MQTT 5 forwards it (§3.3.2.3.3).
 */
export function propertiesJson (p: MessageProperties | undefined, expiresAt?: number, now?: number): Record<string, unknown> | undefined {
  if (p === undefined && expiresAt === undefined) return undefined
  const out: Record<string, unknown> = {}
  if (p !== undefined) {
    if (p.payloadFormat !== undefined) out.payloadFormat = p.payloadFormat
    if (p.contentType !== undefined) out.contentType = p.contentType
    if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic
    if (p.correlationData !== undefined) {
      const bytes = p.correlationData
      // text comes back as it was posted; other bytes (from an MQTT publisher) as base64
      if (isUtf8(bytes)) out.correlationData = bytes.toString('utf8')
      else {
        out.correlationData = bytes.toString('base64')
        out.correlationEncoding = 'base64'
      }
    }
    if (p.userProperties !== undefined) out.userProperties = p.userProperties
    if (p.userPropertyList !== undefined) out.userPropertyList = p.userPropertyList
  }
  if (expiresAt !== undefined && now !== undefined) out.messageExpiry = Math.max(1, Math.ceil((expiresAt - now) / 1000))
  return Object.keys(out).length === 0 ? undefined : out
}
