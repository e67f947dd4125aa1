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

/** Bytes of a payload given in a JSON body. */
export function decodePayload (payload: unknown, encoding: PayloadEncoding | undefined): Buffer {
  const data = decodePayloadData(payload, encoding)
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data
}

/**
 * What decodePayload gives, with text left as a string (its UTF-8 bytes are the payload): the JSON text
 * of a JSON value, or a utf8 payload. A caller that writes the bytes into a larger buffer anyway saves a
 * Buffer and a copy per payload.
 */
export function decodePayloadData (payload: unknown, encoding: PayloadEncoding | undefined): string | Buffer {
  if (payload === undefined) throw new InvalidArgument('payload is required')
  if (encoding === undefined || encoding === 'json') return JSON.stringify(payload)
  if (typeof payload !== 'string') throw new InvalidArgument(`with encoding "${encoding}" the payload must be a string`)
  if (encoding === 'utf8') return payload
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload) || payload.length % 4 === 1) throw new InvalidArgument('payload is not valid base64')
  return Buffer.from(payload, 'base64')
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
 * The JSON form of bytes: the JSON value when the bytes are exactly its compact serialisation, else a
 * utf8 string when they are readable text, else base64. Either way decodePayload gives the same bytes back.
 */
export function encodePayload (bytes: Buffer): EncodedPayload {
  if (bytes.length > 0 && isReadableText(bytes)) {
    const text = bytes.toString('utf8')
    const first = text.charCodeAt(0)
    // only try JSON.parse where it could succeed: { [ " digit - t f n
    if (first === 123 || first === 91 || first === 34 || (first >= 48 && first <= 57) || first === 45 || first === 116 || first === 102 || first === 110) {
      try {
        const value: unknown = JSON.parse(text)
        if (JSON.stringify(value) === text) return { payload: value }
      } catch { /* not JSON: fall through */ }
    }
    return { payload: text, encoding: 'utf8' }
  }
  if (bytes.length === 0) return { payload: '', encoding: 'utf8' }
  return { payload: bytes.toString('base64'), encoding: 'base64' }
}
