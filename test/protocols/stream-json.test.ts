import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import type { StreamEntry } from '../../engines/stream/index.js'
import { entryJson } from '../../protocols/http/routes/streams.js'
import { JsonWriter, pageJson, writeSseEvent } from '../../protocols/http/routes/stream-json.js'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'

/** Payload bytes of every kind: JSON values, strings with and without escapes, text, binary, empty. */
const payloadBytes = fc.oneof(
  fc.json().map(j => Buffer.from(j)),
  fc.jsonValue().map(v => Buffer.from(JSON.stringify(v))),
  fc.string({ unit: 'binary' }).map(s => Buffer.from(JSON.stringify(s))),
  fc.string({ unit: 'binary' }).map(s => Buffer.from(s)),
  fc.string().map(s => Buffer.from(s)),
  fc.string().map(s => Buffer.from(JSON.stringify(s))),
  fc.constantFrom('"a\\u0041"', '"\u007f"', '"tab\there"', '" spaced "', '""', '"', '"a"b"', '1.0', '-0', 'null', ' 1', '{"a":1,"a":2}').map(s => Buffer.from(s)),
  fc.uint8Array({ maxLength: 80 }).map(b => Buffer.from(b))
)

const entry = fc.record({
  offset: fc.oneof(fc.nat(), fc.maxSafeNat()),
  timestamp: fc.oneof(fc.nat(), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 })),
  payload: payloadBytes,
  topic: fc.option(fc.string({ unit: 'binary' }), { nil: undefined }),
  qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  retain: fc.boolean(),
  key: fc.option(fc.string({ unit: 'binary' }), { nil: undefined }),
  headers: fc.option(fc.dictionary(fc.string(), fc.string()), { nil: undefined })
}).map(r => {
  const e: StreamEntry = { offset: r.offset, timestamp: r.timestamp, payload: r.payload }
  if (r.topic !== undefined) { e.topic = r.topic; e.qos = r.qos; e.retain = r.retain }
  if (r.key !== undefined) e.key = r.key
  if (r.headers !== undefined) e.headers = r.headers
  return e
})

describe('stream message JSON', () => {
  it('writes exactly the bytes of JSON.stringify(entryJson(entry)) (property)', () => {
    fc.assert(fc.property(fc.array(entry, { maxLength: 5 }), fc.nat(), fc.nat(), fc.boolean(), (entries, next, first, truncated) => {
      const expected = JSON.stringify({ messages: entries.map(entryJson), next, firstOffset: first, truncated })
      expect(pageJson(entries, next, first, truncated).toString('utf8')).toBe(expected)
      const out = new JsonWriter(16)
      for (const e of entries) writeSseEvent(out, e)
      expect(out.view().toString('utf8')).toBe(entries.map(e => `id: ${e.offset}\ndata: ${JSON.stringify(entryJson(e))}\n\n`).join(''))
    }), { numRuns: 3000 })
  })
})

describe('stream pages over HTTP', () => {
  let broker: TestBroker
  beforeAll(async () => { broker = await startTestBroker() })
  afterAll(async () => { await broker.stop() })

  it('gives the next position in Tetra-Next and a Link rel="next" header that reads the next page', async () => {
    const messages = Array.from({ length: 25 }, (_, i) => ({ payload: { i } }))
    expect((await fetch(`${broker.url}/v1/streams/pages/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) })).status).toBe(200)
    let url: string | null = `${broker.url}/v1/streams/pages/messages?from=start&limit=10`
    const seen: number[] = []
    for (let page = 0; page < 5 && url !== null; page++) {
      const res: Response = await fetch(url)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      const body = await res.json() as { messages: Array<{ offset: number, payload: { i: number } }>, next: number }
      expect(res.headers.get('tetra-next')).toBe(String(body.next))
      const link = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')
      expect(link?.[1]).toBe(`/v1/streams/pages/messages?from=${body.next}&limit=10`)
      for (const m of body.messages) {
        expect(m.payload).toEqual({ i: m.offset })
        seen.push(m.offset)
      }
      url = body.messages.length > 0 ? new URL(link![1], broker.url).toString() : null
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i))
    // a seek by time gives the position after what it returned, too
    const res = await fetch(`${broker.url}/v1/streams/pages/messages?time=0&limit=3`)
    expect(res.headers.get('tetra-next')).toBe('3')
    expect(res.headers.get('link')).toBe('</v1/streams/pages/messages?from=3&limit=3>; rel="next"')
  })

  it('tails with one event per message, framed in bulk, in order', async () => {
    const messages = Array.from({ length: 3000 }, (_, i) => ({ payload: `m${i}`, encoding: 'utf8' }))
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${broker.url}/v1/streams/bulk/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: messages.slice(i * 1000, i * 1000 + 1000) }) })
      expect(res.status).toBe(200)
    }
    const sse = openSse(`${broker.url}/v1/streams/bulk/tail?from=start`)
    try {
      await waitFor(() => sse.events.length >= 3000, 10_000, 'every event of the tail')
      const events = sse.events
      expect(events).toHaveLength(3000)
      expect(events.map(e => e.id)).toEqual(Array.from({ length: 3000 }, (_, i) => String(i)))
      expect(events.map(e => (JSON.parse(e.data) as { payload: string }).payload)).toEqual(messages.map(m => m.payload))
    } finally {
      sse.close()
    }
  })
})
