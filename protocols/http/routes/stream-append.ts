import type { AppendMessage, Payload } from '../../../engines/stream/index.js'
import { decodePayloadData, type PayloadEncoding } from '../payload.js'
import { bodyTextOf, isPlainString, type BodyText } from '../body-text.js'

/*
 * The append route's hand-off from a parsed JSON body to the engine, without serialising every payload
 * again (see body-text.ts: a string payload of a text without escapes is its text in quotes).
 */

/** One message of an append body. */
export interface AppendItem { payload: unknown, encoding?: PayloadEncoding, key?: string, headers?: Record<string, string>, dedupId?: string }

const isPlain = (m: AppendItem, text: BodyText | undefined): m is AppendItem & { payload: string } => isPlainString(m.payload, m.encoding, text)

/**
 * The messages of an append body (`body` is the parsed body the items came from), each payload given
 * to the engine as the same bytes decodePayload would give:
 *  - from an all-ASCII text without escapes, the string payloads of the batch are written into one
 *    buffer and handed over as slices of it (one allocation per batch, not one Buffer per message);
 *  - from a text without escapes, a string payload as `"` + s + `"` (the engine writes text itself);
 *  - otherwise decodePayloadData (JSON.stringify for a JSON value).
 */
export function appendMessages (body: object, items: AppendItem[]): AppendMessage[] {
  const text = bodyTextOf(body)
  const out: AppendMessage[] = new Array(items.length)
  // from an all-ASCII text: the quoted string payloads side by side, "a""b""c", one byte per character,
  // written with one call (a native call per message costs more than its copy on small payloads)
  let packed: Buffer | null = null
  if (text?.ascii === true) {
    const plain: string[] = []
    for (const m of items) if (isPlain(m, text)) plain.push(m.payload)
    if (plain.length > 0) packed = Buffer.from(`"${plain.join('""')}"`, 'latin1')
  }
  let at = 0
  for (let i = 0; i < items.length; i++) {
    const m = items[i]
    let payload: Payload
    if (isPlain(m, text)) {
      const n = m.payload.length + 2
      payload = packed !== null ? { bytes: packed, start: at, end: at + n } : `"${m.payload}"`
      at += n
    } else {
      payload = decodePayloadData(m.payload, m.encoding, items.length === 1 && items[0] === body ? 'payload' : `messages[${i}].payload`)
    }
    out[i] = { payload, key: m.key, headers: m.headers, dedupId: m.dedupId }
  }
  return out
}
