import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AppendMessage, Payload } from '../../../engines/stream/index.js'
import { decodePayloadData, type PayloadEncoding } from '../payload.js'

/*
 * The append route's hand-off from a parsed JSON body to the engine, without serialising every payload
 * again. The payload of a message given as a JSON value is stored as its compact JSON text, which for a
 * string `s` is JSON.stringify(s); in the common case that is just `"` + s + `"` (see BodyText).
 */

/** One message of an append body. */
export interface AppendItem { payload: unknown, encoding?: PayloadEncoding, key?: string, headers?: Record<string, string>, dedupId?: string }

/**
 * What is known of the JSON text a parsed append body came from. `unescaped`: the text holds no
 * backslash. Then no string in it needs escaping: a quote, a backslash or a control character inside a
 * string literal can only be written with a backslash, and text decoded from UTF-8 holds no lone
 * surrogates; so JSON.stringify(s) of each of its strings is `"` + s + `"`. `ascii`: the text is all
 * ASCII, so each of those strings takes s.length + 2 bytes.
 */
interface BodyText { unescaped: boolean, ascii: boolean }
const bodyTexts = new WeakMap<object, BodyText>()

type JsonBodyParser = (request: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => void

/**
 * Parses JSON bodies in `scope` with fastify's own parser (same limits, same prototype poisoning
 * checks) and notes what the text says about the strings in it (see BodyText).
 */
export function registerAppendBodyParser (scope: FastifyInstance): void {
  const config = scope.initialConfig
  const parseJson = scope.getDefaultJsonParser(config.onProtoPoisoning ?? 'error', config.onConstructorPoisoning ?? 'error') as JsonBodyParser
  scope.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string
    parseJson(request, text, (err, value) => {
      if (err === null) noteBodyText(value, text)
      done(err, value)
    })
  })
}

/** Notes what the JSON text `text` says about the strings of `value`, the value parsed from it. */
export function noteBodyText (value: unknown, text: string): void {
  if (typeof value !== 'object' || value === null) return
  const unescaped = !text.includes('\\')
  bodyTexts.set(value, { unescaped, ascii: unescaped && Buffer.byteLength(text, 'utf8') === text.length })
}

/** A JSON string payload whose text is `"` + payload + `"` (see BodyText). */
const isPlainString = (m: AppendItem, text: BodyText | undefined): m is AppendItem & { payload: string } =>
  text !== undefined && text.unescaped && typeof m.payload === 'string' && (m.encoding === undefined || m.encoding === 'json')

/**
 * The messages of an append body (`body` is the parsed body the items came from), each payload given
 * to the engine as the same bytes decodePayload would give:
 *  - from an all-ASCII text without escapes, the string payloads of the batch are written into one
 *    buffer and handed over as slices of it (one allocation per batch, not one Buffer per message);
 *  - from a text without escapes, a string payload as `"` + s + `"` (the engine writes text itself);
 *  - otherwise decodePayloadData (JSON.stringify for a JSON value).
 */
export function appendMessages (body: object, items: AppendItem[]): AppendMessage[] {
  const text = bodyTexts.get(body)
  const out: AppendMessage[] = new Array(items.length)
  // from an all-ASCII text: the quoted string payloads side by side, "a""b""c", one byte per character,
  // written with one call (a native call per message costs more than its copy on small payloads)
  let packed: Buffer | null = null
  if (text?.ascii === true) {
    const plain: string[] = []
    for (const m of items) if (isPlainString(m, text)) plain.push(m.payload)
    if (plain.length > 0) packed = Buffer.from(`"${plain.join('""')}"`, 'latin1')
  }
  let at = 0
  for (let i = 0; i < items.length; i++) {
    const m = items[i]
    let payload: Payload
    if (isPlainString(m, text)) {
      const n = m.payload.length + 2
      payload = packed !== null ? { bytes: packed, start: at, end: at + n } : `"${m.payload}"`
      at += n
    } else {
      payload = decodePayloadData(m.payload, m.encoding)
    }
    out[i] = { payload, key: m.key, headers: m.headers, dedupId: m.dedupId }
  }
  return out
}
