import { isUtf8 } from 'node:buffer'
import { InvalidArgument } from '../../engines/errors.js'

/**
 * How message payloads travel in JSON bodies. A JSON value is carried as itself; other bytes as a string
 * with encoding "base64" or "utf8". What goes in comes out byte for byte, whatever protocol reads it.
 */
export type PayloadEncoding = 'json' | 'base64' | 'utf8'

export interface EncodedPayload {
  payload: unknown
  encoding?: 'base64' | 'utf8'
}

/** JSON schema for the payload + encoding pair inside request bodies. */
export const encodingSchema = { type: 'string', enum: ['json', 'base64', 'utf8'] } as const

/**
 * The deepest nesting of arrays and objects a JSON payload may have (`[[1]]` is 2 levels). JSON parsers
 * cap it too (serde_json 128, Jackson 1000, .NET 64 by default); deeper values would overflow the stack
 * of JSON.stringify (at about 4,000 levels on Node 20, fewer in a deep call stack), so they are refused on the way in and
 * read back as utf8 text on the way out.
 */
export const MAX_JSON_DEPTH = 512

/** Whether `value` nests arrays and objects more than `max` levels deep (recursion at most max + 1 calls). */
export function nestedDeeperThan (value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (max === 0) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (nestedDeeperThan(value[i], max - 1)) return true
    return false
  }
  const object = value as Record<string, unknown>
  for (const key in object) if (nestedDeeperThan(object[key], max - 1)) return true
  return false
}

/**
 * Bytes of a payload given in a JSON body. `field` names it in refusals (e.g. "messages[2].payload").
 */
export function decodePayload (payload: unknown, encoding: PayloadEncoding | undefined, field = 'payload'): Buffer {
  const data = decodePayloadData(payload, encoding, field)
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data
}

/**
 * What decodePayload gives, with text left as a string (its UTF-8 bytes are the payload): the JSON text
 * of a JSON value, or a utf8 payload. A caller that writes the bytes into a larger buffer anyway saves a
 * Buffer and a copy per payload.
 */
export function decodePayloadData (payload: unknown, encoding: PayloadEncoding | undefined, field = 'payload'): string | Buffer {
  if (payload === undefined) throw new InvalidArgument(`${field} is required`)
  if (encoding === undefined || encoding === 'json') {
    if (nestedDeeperThan(payload, MAX_JSON_DEPTH)) throw new InvalidArgument(`${field} is nested more than ${MAX_JSON_DEPTH} levels deep (arrays and objects); send it as a string with encoding "utf8" instead`)
    return JSON.stringify(payload)
  }
  if (typeof payload !== 'string') throw new InvalidArgument(`${field}: with encoding "${encoding}" it must be a string`)
  if (encoding === 'utf8') return payload
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload) || payload.length % 4 === 1) throw new InvalidArgument(`${field} is not valid base64`)
  return Buffer.from(payload, 'base64')
}

/**
 * The value of `text` when the text is exactly the compact serialisation of a JSON value nested at most
 * MAX_JSON_DEPTH levels (such text is carried as JSON; see encodePayload), else undefined.
 */
export function compactJsonValue (text: string): { value: unknown } | undefined {
  try {
    const value: unknown = JSON.parse(text)
    if (!nestedDeeperThan(value, MAX_JSON_DEPTH) && JSON.stringify(value) === text) return { value }
  } catch { /* not JSON */ }
  return undefined
}

/** Text a person would read: valid UTF-8 without control characters other than tab, newline and CR. */
function isReadableText (bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]
    if ((b < 0x20 && b !== 9 && b !== 10 && b !== 13) || b === 0x7f) return false
  }
  return isUtf8(bytes)
}

/**
 * The JSON form of bytes: the JSON value when the bytes are exactly its compact serialisation and it
 * nests at most MAX_JSON_DEPTH levels, else a utf8 string when they are readable text, else base64. Either way decodePayload gives the same bytes back.
 */
export function encodePayload (bytes: Buffer): EncodedPayload {
  if (bytes.length > 0 && isReadableText(bytes)) {
    const text = bytes.toString('utf8')
    const first = text.charCodeAt(0)
    // only try JSON.parse where it could succeed: { [ " digit - t f n
    if (first === 123 || first === 91 || first === 34 || (first >= 48 && first <= 57) || first === 45 || first === 116 || first === 102 || first === 110) {
      const json = compactJsonValue(text)
      if (json !== undefined) return { payload: json.value }
    }
    return { payload: text, encoding: 'utf8' }
  }
  if (bytes.length === 0) return { payload: '', encoding: 'utf8' }
  return { payload: bytes.toString('base64'), encoding: 'base64' }
}
