import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { TooLarge } from '../../engines/errors.js'
import type { Payload, PayloadSlice } from '../../engines/stream/index.js'
import { decodePayload, type PayloadEncoding } from '../../protocols/http/payload.js'
import { appendMessages, type AppendItem } from '../../protocols/http/routes/stream-append.js'
import { noteBodyText } from '../../protocols/http/body-text.js'
import { startTestBroker, type TestBroker } from '../helpers.js'

/** The bytes the engine stores for a payload handed over as text, bytes or a slice. */
const stored = (p: Payload): Buffer => typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.isBuffer(p) ? p : p.bytes.subarray(p.start, p.end)

/** What the route hands to the engine for a body sent as `text` (decoded from UTF-8, as fastify does). */
function handOff (text: string): { items: AppendItem[], payloads: Payload[] } {
  const body = JSON.parse(text) as { messages: AppendItem[] }
  noteBodyText(body, text)
  return { items: body.messages, payloads: appendMessages(body, body.messages).map(m => m.payload) }
}

const special = fc.constantFrom('"', '\\', '\n', '\t', '\u0000', '\u001f', '\u007f', '\ud800', '\udfff', '\u2028', 'é', '😀', '/')
const strings = fc.oneof(
  // what most bodies carry: ASCII without anything to escape
  fc.string({ unit: 'grapheme-ascii' }).map(s => s.replace(/["\\]/g, '')),
  fc.string({ unit: 'grapheme' }).map(s => s.replace(/["\\]/g, '')),
  fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), special) })
)
const item: fc.Arbitrary<AppendItem> = fc.oneof(
  fc.record({ payload: strings }, { requiredKeys: ['payload'] }),
  fc.record({ payload: strings, encoding: fc.constantFrom<PayloadEncoding>('json', 'utf8') }),
  fc.record({ payload: fc.jsonValue(), encoding: fc.constantFrom<PayloadEncoding | undefined>(undefined, 'json') }).map(r => r.encoding === undefined ? { payload: r.payload } : r),
  fc.record({ payload: fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b).toString('base64')), encoding: fc.constant<PayloadEncoding>('base64') }),
  fc.record({ payload: strings, key: fc.string(), dedupId: fc.string({ minLength: 1 }) })
)

describe('append hand-off', () => {
  it('gives the engine exactly the bytes decodePayload gives, whatever the body text (property)', () => {
    fc.assert(fc.property(fc.array(item, { minLength: 1, maxLength: 20 }), fc.constantFrom(undefined, 1), (messages, indent) => {
      // over the wire and back as UTF-8, as the body parser gets it
      const text = Buffer.from(JSON.stringify({ messages }, null, indent), 'utf8').toString('utf8')
      const { items, payloads } = handOff(text)
      expect(payloads).toHaveLength(items.length)
      for (let i = 0; i < items.length; i++) {
        expect(stored(payloads[i]).equals(decodePayload(items[i].payload, items[i].encoding))).toBe(true)
      }
      const handed = appendMessages(JSON.parse(text) as object, items)
      expect(handed.map(m => [m.key, m.dedupId, m.headers])).toEqual(items.map(m => [m.key, m.dedupId, m.headers]))
    }), { numRuns: 300 })
  })

  it('takes the short ways only where they give the same bytes', () => {
    // ASCII without escapes: one buffer for the batch, a slice of it per message
    let r = handOff(JSON.stringify({ messages: [{ payload: 'ab' }, { payload: 7 }, { payload: 'cd', encoding: 'json' }, { payload: 'e f', encoding: 'utf8' }] }))
    expect(r.payloads.map(p => stored(p).toString())).toEqual(['"ab"', '7', '"cd"', 'e f'])
    const [a, , c] = r.payloads as PayloadSlice[]
    expect(a.bytes).toBe(c.bytes)
    // without escapes but not ASCII: quoted text, written as UTF-8 by the engine
    r = handOff('{"messages":[{"payload":"é😀"},{"payload":"x"}]}')
    expect(r.payloads).toEqual(['"é😀"', '"x"'])
    // with any escape in the text, every payload is serialised again
    r = handOff('{"messages":[{"payload":"a\\"b"},{"payload":"\\u00e9"},{"payload":"\\ud800"},{"payload":"plain"}]}')
    expect(r.payloads).toEqual([JSON.stringify('a"b'), JSON.stringify('é'), JSON.stringify('\ud800'), '"plain"'])
    // a body never noted (another parser) takes the general way
    const body = { messages: [{ payload: 'q' }] }
    expect(appendMessages(body, body.messages).map(m => m.payload)).toEqual(['"q"'])
  })

  it('refuses what decodePayload refuses', () => {
    expect(() => handOff('{"messages":[{"payload":"ok"},{"payload":5,"encoding":"utf8"}]}')).toThrow(/must be a string/)
    expect(() => handOff('{"messages":[{"payload":"@@","encoding":"base64"}]}')).toThrow(/base64/)
  })
})

describe('append route bodies', () => {
  let broker: TestBroker
  beforeAll(async () => { broker = await startTestBroker({ streamMaxMessageBytes: 4096, httpBodyLimit: 64 * 1024 }) })
  afterAll(async () => { await broker.stop() })

  const post = async (path: string, body: string, type = 'application/json'): Promise<{ status: number, type: string, json: any }> => {
    const res = await fetch(`${broker.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body })
    const text = await res.text()
    return { status: res.status, type: res.headers.get('content-type') ?? '', json: text.length > 0 ? JSON.parse(text) : undefined }
  }

  it('stores every payload byte for byte, from texts with and without escapes', async () => {
    const bodies = [
      '{"messages":[{"payload":"plain ascii"},{"payload":{"a":[1,2.5,null]}},{"payload":"raw","encoding":"utf8"}]}',
      '{ "messages" : [ { "payload" : "spaced" } , { "payload" : 1e3 } ] }',
      '{"messages":[{"payload":"héllo 😀"},{"payload":"x"}]}',
      '{"messages":[{"payload":"q\\"uote"},{"payload":"back\\\\slash"},{"payload":"\\u0001\\n"},{"payload":"\\ud83d\\ude00"},{"payload":"\\ud800"}]}',
      '\ufeff{"payload":"after a byte order mark"}',
      '{"payload":"single","key":"k","headers":{"h":"v"},"dedupId":"d-1"}'
    ]
    const sent: unknown[] = []
    for (const body of bodies) {
      const r = await post('/v1/streams/exact/messages', body)
      expect(r.status).toBe(200)
      const parsed = JSON.parse(body.replace(/^\ufeff/, '')) as { messages?: Array<{ payload: unknown }>, payload?: unknown }
      sent.push(...(parsed.messages ?? [parsed]).map(m => m.payload))
    }
    const page = (await (await fetch(`${broker.url}/v1/streams/exact/messages?from=start&limit=1000`)).json()) as { messages: Array<{ payload: unknown, encoding?: string, key?: string }> }
    expect(page.messages.map(m => m.payload)).toEqual(sent)
    // what was stored is the compact JSON of each value (the utf8 one is its text)
    const log = broker.engines.streams.get('exact')
    const entries = (await log.read(0, 1000)).messages
    expect(entries.map(e => e.payload.toString('utf8'))).toEqual(sent.map((p, i) => i === 2 ? p : JSON.stringify(p)))
    expect(page.messages.at(-1)).toMatchObject({ key: 'k', payload: 'single' })
    // the media type with parameters and in other case is the same parser
    for (const type of ['application/json; charset=utf-8', 'Application/JSON']) {
      expect((await post('/v1/streams/exact/messages', '{"payload":"typed"}', type)).status).toBe(200)
    }
  })

  it('answers bad bodies with 4xx problem+json', async () => {
    const cases: Array<[string, string, number]> = [
      ['{"messages":[{"payload":"a"}', 'application/json', 400],
      ['', 'application/json', 400],
      ['{"__proto__":{"x":1},"payload":1}', 'application/json', 400],
      ['{"payload":1,"constructor":{"prototype":{"x":1}}}', 'application/json', 400],
      ['{"messages":[]}', 'application/json', 400],
      ['{"messages":[{"payload":"a","extra":1}]}', 'application/json', 400],
      ['{"messages":[{"payload":5,"encoding":"utf8"}]}', 'application/json', 400],
      ['{"messages":[{"payload":"é","encoding":"latin1"}]}', 'application/json', 400],
      [`{"payload":"${'x'.repeat(5000)}"}`, 'application/json', 413],
      [`{"messages":[{"payload":"${'x'.repeat(70 * 1024)}"}]}`, 'application/json', 413],
      ['payload=1', 'application/x-www-form-urlencoded', 415]
    ]
    for (const [body, type, status] of cases) {
      const r = await post('/v1/streams/strict/messages', body, type)
      expect({ body: body.slice(0, 60), status: r.status }).toEqual({ body: body.slice(0, 60), status })
      expect(r.type).toContain('application/problem+json')
    }
    expect((await (await fetch(`${broker.url}/v1/streams/strict`)).json() as { count?: number }).count ?? 0).toBe(0)
  })

  it('stores payloads given to the engine as text (as UTF-8, measured in bytes) or as slices', async () => {
    const streams = broker.engines.streams
    // a lone surrogate is written as U+FFFD, as Buffer.from writes it
    const texts = ['', 'ascii', 'héllo 😀', 'lone \ud800 surrogate \u2028']
    const packed = Buffer.from('..abc..')
    const offsets = await streams.append('text', [...texts.map(payload => ({ payload })), { payload: Buffer.from([0, 255]) }, { payload: { bytes: packed, start: 2, end: 5 } }, { payload: { bytes: packed, start: 3, end: 3 } }])
    const read = (await streams.read('text', { from: offsets[0], limit: 10 })).messages
    expect(read.map(e => e.payload)).toEqual([...texts.map(t => Buffer.from(t, 'utf8')), Buffer.from([0, 255]), Buffer.from('abc'), Buffer.alloc(0)])
    // 3000 characters, 6000 bytes: over the limit of 4096 bytes
    await expect(streams.append('text', [{ payload: 'é'.repeat(3000) }])).rejects.toBeInstanceOf(TooLarge)
    await expect(streams.append('text', [{ payload: { bytes: packed, start: 5, end: 8 } }])).rejects.toBeInstanceOf(RangeError)
    expect(streams.info('text').count).toBe(7)
  })
})
