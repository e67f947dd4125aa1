/**
 * Payloads on the wire (DESIGN §3): a JSON value travels as itself; other bytes as a string with
 * `encoding: "utf8"` or `"base64"`. The client sends a Uint8Array as base64 and any other value as JSON,
 * and gives back what the broker sends decoded: JSON as the value, utf8 as a string, base64 as bytes.
 */

export type Encoding = 'utf8' | 'base64'
/** What a client call takes as a payload: a JSON value, or bytes. */
export type Payload = unknown
export interface WirePayload { payload: unknown, encoding?: Encoding }

const hasBuffer = typeof (globalThis as { Buffer?: unknown }).Buffer === 'function'

export function bytesToBase64 (bytes: Uint8Array): string {
  if (hasBuffer) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  let text = ''
  // String.fromCharCode with many arguments at once: 32 KiB keeps under every engine's argument limit
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(text)
}

export function base64ToBytes (text: string): Uint8Array {
  if (hasBuffer) {
    const b = Buffer.from(text, 'base64')
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
  }
  const bin = atob(text)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

/** The {payload, encoding?} fields of a request for a value given by the caller. */
export function encodePayload (value: Payload): WirePayload {
  if (value instanceof Uint8Array) return { payload: bytesToBase64(value), encoding: 'base64' }
  if (value instanceof ArrayBuffer) return { payload: bytesToBase64(new Uint8Array(value)), encoding: 'base64' }
  if (value === undefined) throw new TypeError('a payload is required (null is a JSON payload)')
  return { payload: value }
}

/** A payload as the caller wants it back from {payload, encoding?}. */
export function decodePayload (payload: unknown, encoding: unknown): unknown {
  if (encoding === 'base64' && typeof payload === 'string') return base64ToBytes(payload)
  return payload
}

/** Text a UTF-8 string is: a payload given as a plain string from a command line, kept as text. */
export function textPayload (text: string): WirePayload {
  return { payload: text, encoding: 'utf8' }
}
