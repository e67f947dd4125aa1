import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import fc from 'fast-check'
import { decodePayload, encodePayload, type PayloadEncoding } from '../../protocols/http/payload.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => { await broker.stop() })

interface Answer<T = Record<string, unknown>> { status: number, type: string | null, body: T }

async function call<T = Record<string, unknown>> (method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<Answer<T>> {
  const res = await fetch(`${broker.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    ...init
  })
  const text = await res.text()
  return { status: res.status, type: res.headers.get('content-type'), body: (text === '' ? {} : JSON.parse(text)) as T }
}

interface Msg { id: string, receipt: string, payload: unknown, encoding?: string, headers: Record<string, string>, deliveries: number, priority: number, topic?: string, enqueuedAt: number, firstDeliveredAt: number }

describe('queues over HTTP', () => {
  it('creates, updates, lists and deletes a queue', async () => {
    const created = await call('PUT', '/v1/queues/orders', { visibilityTimeout: 10, maxDeliveries: 3, backoff: { type: 'exponential', base: 1, max: 60 }, retention: 86400, dedupWindow: 60 })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({
      name: 'orders',
      settings: { visibilityTimeout: 10, maxDeliveries: 3, backoff: { type: 'exponential', base: 1, max: 60 }, retention: 86400, maxMessageBytes: 1048576, dedupWindow: 60, capture: [] },
      stats: { ready: 0, leased: 0, delayed: 0, dead: 0, pushed: 0, acked: 0, deadLettered: 0 }
    })
    expect((await call('PUT', '/v1/queues/orders', { deadLetter: 'orders-dead' })).body).toMatchObject({ settings: { deadLetter: 'orders-dead' } })
    expect((await call('PUT', '/v1/queues/orders', { deadLetter: 'orders' })).status).toBe(400)
    expect((await call('PUT', '/v1/queues/orders', { deadLetter: 'bad name' })).status).toBe(400)
    const updated = await call('PUT', '/v1/queues/orders', { backoff: null, retention: null, deadLetter: null })
    expect(updated.status).toBe(200)
    expect(updated.body).toMatchObject({ settings: { visibilityTimeout: 10, backoff: null, retention: null, deadLetter: null } })
    const list = await call<{ queues: Array<{ name: string }> }>('GET', '/v1/queues')
    expect(list.body.queues.map(q => q.name)).toContain('orders')
    expect((await call('GET', '/v1/queues/orders')).body).toMatchObject({ name: 'orders' })
    expect((await call('DELETE', '/v1/queues/orders')).status).toBe(204)
    expect((await call('GET', '/v1/queues/orders')).status).toBe(404)
    expect((await call('DELETE', '/v1/queues/orders')).status).toBe(404)
  })

  it('a received payload has the form encodePayload gives its bytes, whichever way it was pushed', async () => {
    const pushed = [
      { payload: { b: 1, 10: 'x', s: 'é ✓ \u007f', big: 1e21, neg: -0.5, nested: [null, true, { '': '' }] } },
      { payload: 'a JSON string with a DEL \u007f byte' },
      { payload: 12.5, encoding: 'json' },
      { payload: '{"a":1}', encoding: 'utf8' },
      { payload: '{ "a": 1 }', encoding: 'utf8' },
      { payload: 'AAEC/w==', encoding: 'base64' },
      { payload: 'eyJhIjoxfQ==', encoding: 'base64' }
    ] as const
    expect((await call('POST', '/v1/queues/forms/messages', { messages: pushed })).status).toBe(200)
    const got = await call<{ messages: Msg[] }>('POST', '/v1/queues/forms/receive', { max: 10 })
    const forms = got.body.messages.map(m => ({ payload: m.payload, encoding: m.encoding }))
    const expected = pushed.map(p => {
      const bytes = 'encoding' in p && p.encoding !== 'json' ? Buffer.from(p.payload as string, p.encoding) : Buffer.from(JSON.stringify(p.payload))
      return { encoding: undefined, ...encodePayload(bytes) }
    })
    expect(forms).toEqual(expected)
    // the DEL byte is not readable text: base64, as for any other such bytes
    expect(forms[1].encoding).toBe('base64')
    expect(forms[3]).toEqual({ payload: { a: 1 }, encoding: undefined })
  })

  it('push, receive, ack: payloads byte for byte, priorities, headers', async () => {
    const one = await call<{ ids: string[] }>('POST', '/v1/queues/jobs/messages', { payload: { task: 'email' }, headers: { trace: 'abc' } })
    expect(one.status).toBe(200)
    expect(one.body.ids).toHaveLength(1)
    const batch = await call<{ ids: string[] }>('POST', '/v1/queues/jobs/messages', {
      messages: [{ payload: 'plain text', encoding: 'utf8' }, { payload: 'AAEC/w==', encoding: 'base64', priority: 9 }]
    })
    expect(batch.body.ids).toHaveLength(2)
    const got = await call<{ messages: Msg[] }>('POST', '/v1/queues/jobs/receive', { max: 10 })
    expect(got.status).toBe(200)
    const ms = got.body.messages
    expect(ms.map(m => [m.payload, m.encoding])).toEqual([['AAEC/w==', 'base64'], [{ task: 'email' }, undefined], ['plain text', 'utf8']])
    expect(ms[1]).toMatchObject({ id: one.body.ids[0], headers: { trace: 'abc' }, deliveries: 1, priority: 0 })
    expect(typeof ms[1].enqueuedAt).toBe('number')
    const acked = await call<{ results: Array<{ status: string }> }>('POST', '/v1/queues/jobs/ack', { receipts: ms.map(m => m.receipt) })
    expect(acked.status).toBe(200)
    expect(acked.body.results.map(r => r.status)).toEqual(['acked', 'acked', 'acked'])
    expect((await call('GET', '/v1/queues/jobs')).body).toMatchObject({ stats: { ready: 0, leased: 0, pushed: 3, acked: 3 } })
  })

  it('receive with an empty body works; unknown queue is 404 problem+json', async () => {
    await call('PUT', '/v1/queues/empty')
    const res = await fetch(`${broker.url}/v1/queues/empty/receive`, { method: 'POST' })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ messages: [] })
    const missing = await call('POST', '/v1/queues/does-not-exist/receive', {})
    expect(missing.status).toBe(404)
    expect(missing.type).toContain('application/problem+json')
    expect(missing.body).toMatchObject({ status: 404, title: 'Not Found' })
  })

  it('stale, unknown and malformed receipts', async () => {
    await call('PUT', '/v1/queues/leases', { visibilityTimeout: 0.05 })
    await call('POST', '/v1/queues/leases/messages', { payload: 1 })
    const first = (await call<{ messages: Msg[] }>('POST', '/v1/queues/leases/receive', {})).body.messages[0]
    let second: Msg | undefined
    await waitFor(async () => {
      second = (await call<{ messages: Msg[] }>('POST', '/v1/queues/leases/receive', { visibilityTimeout: 60 })).body.messages[0]
      return second !== undefined
    })
    expect(second!.id).toBe(first.id)
    expect(second!.deliveries).toBe(2)
    const stale = await call<{ status: number, results: Array<{ status: string }> }>('POST', '/v1/queues/leases/ack', { receipts: [first.receipt] })
    expect(stale.status).toBe(409)
    expect(stale.type).toContain('application/problem+json')
    expect(stale.body.results[0].status).toBe('stale')
    const mixed = await call<{ results: Array<{ status: string }> }>('POST', '/v1/queues/leases/ack', { receipts: [first.receipt, second!.receipt] })
    expect(mixed.status).toBe(200)
    expect(mixed.body.results.map(r => r.status)).toEqual(['stale', 'acked'])
    expect((await call('POST', '/v1/queues/leases/ack', { receipts: [second!.receipt] })).status).toBe(404)
    for (const receipts of [['nonsense'], [], [42], 'x']) {
      const bad = await call('POST', '/v1/queues/leases/ack', { receipts })
      expect(bad.status).toBe(400)
      expect(bad.type).toContain('application/problem+json')
    }
    expect((await call('POST', '/v1/queues/leases/nack', { receipts: ['zz.1'] })).status).toBe(400)
  })

  it('bad inputs are 4xx problem+json and change nothing', async () => {
    await call('PUT', '/v1/queues/strict', { maxMessageBytes: 10 })
    const cases: Array<[string, string, unknown, number]> = [
      ['POST', '/v1/queues/strict/messages', { payload: 'x'.repeat(20), encoding: 'utf8' }, 413],
      ['POST', '/v1/queues/strict/messages', { messages: [{ payload: 1 }, { payload: 'y'.repeat(20), encoding: 'utf8' }] }, 413],
      ['POST', '/v1/queues/strict/messages', { payload: 1, delay: -1 }, 400],
      ['POST', '/v1/queues/strict/messages', { payload: 1, priority: 300 }, 400],
      ['POST', '/v1/queues/strict/messages', { payload: 1, unknown: true }, 400],
      ['POST', '/v1/queues/strict/messages', { payload: 1, messages: [{ payload: 2 }] }, 400],
      ['POST', '/v1/queues/strict/messages', {}, 400],
      ['POST', '/v1/queues/strict/messages', { messages: [] }, 400],
      ['POST', '/v1/queues/strict/messages', { messages: Array.from({ length: 1001 }, () => ({ payload: 1 })) }, 400],
      ['POST', '/v1/queues/strict/messages', { payload: 'not base64!', encoding: 'base64' }, 400],
      ['POST', '/v1/queues/strict/messages', '{not json', 400],
      ['POST', '/v1/queues/bad%20name/messages', { payload: 1 }, 400],
      ['PUT', `/v1/queues/${'x'.repeat(201)}`, {}, 400],
      ['PUT', '/v1/queues/strict', { visibilityTimeout: -1 }, 400],
      ['PUT', '/v1/queues/strict', { maxDeliveries: 0 }, 400],
      ['PUT', '/v1/queues/strict', { backoff: { type: 'linear', base: 1 } }, 400],
      ['PUT', '/v1/queues/strict', { backoff: { type: 'fixed', base: 10, max: 1 } }, 400],
      ['PUT', '/v1/queues/strict', { capture: ['a/#/b'] }, 400],
      ['PUT', '/v1/queues/strict', { nonsense: 1 }, 400],
      ['POST', '/v1/queues/strict/receive', { max: 0 }, 400],
      ['POST', '/v1/queues/strict/receive', { max: 1001 }, 400],
      ['POST', '/v1/queues/strict/receive', { wait: 21 }, 400],
      ['POST', '/v1/queues/strict/receive', { wait: '1' }, 400],
      ['POST', '/v1/queues/strict/nack', { receipts: ['ff00000000000000.1'], delay: -5 }, 400],
      ['POST', '/v1/queues/strict/extend', { receipts: ['ff00000000000000.1'] }, 400],
      ['GET', '/v1/queues/strict/dead?limit=0', undefined, 400],
      ['GET', '/v1/queues/strict/dead?cursor=zzz', undefined, 400],
      ['POST', '/v1/queues/strict/dead/redrive', { ids: ['nope'] }, 400],
      ['GET', '/v1/queues/missing/dead', undefined, 404],
      ['POST', '/v1/queues/missing/ack', { receipts: ['ff00000000000000.1'] }, 404]
    ]
    for (const [method, path, body, status] of cases) {
      const res = await call(method, path, body)
      expect({ method, path, status: res.status }).toEqual({ method, path, status })
      expect(res.type).toContain('application/problem+json')
    }
    expect((await call('GET', '/v1/queues/strict')).body).toMatchObject({ settings: { maxMessageBytes: 10, visibilityTimeout: 30 }, stats: { pushed: 0 } })
    expect((await call('GET', '/v1/queues/missing')).status).toBe(404)
  })

  it('nack, extend, dead letters, redrive, purge', async () => {
    await call('PUT', '/v1/queues/flow', { maxDeliveries: 2 })
    await call('POST', '/v1/queues/flow/messages', { messages: [{ payload: 'a', encoding: 'utf8' }, { payload: 'b', encoding: 'utf8' }, { payload: 'c', encoding: 'utf8', delay: 3600 }] })
    const [a, b] = (await call<{ messages: Msg[] }>('POST', '/v1/queues/flow/receive', { max: 2 })).body.messages
    const ext = await call<{ results: Array<{ status: string, at: number }> }>('POST', '/v1/queues/flow/extend', { receipts: [b.receipt], visibilityTimeout: 120 })
    expect(ext.body.results[0]).toMatchObject({ status: 'extended' })
    const dead = await call<{ results: Array<{ status: string }> }>('POST', '/v1/queues/flow/nack', { receipts: [a.receipt], dead: true, reason: 'bad input' })
    expect(dead.body.results[0].status).toBe('dead')
    const later = await call<{ results: Array<{ status: string }> }>('POST', '/v1/queues/flow/nack', { receipts: [b.receipt], delay: 3600, reason: 'retry later' })
    expect(later.body.results[0].status).toBe('delayed')
    const list = await call<{ messages: Array<{ id: string, payload: string, reason: string, deliveries: number, lastError: string }>, cursor: string | null }>('GET', '/v1/queues/flow/dead?limit=10')
    expect(list.body.cursor).toBeNull()
    expect(list.body.messages).toHaveLength(1)
    expect(list.body.messages[0]).toMatchObject({ id: a.id, payload: 'a', deliveries: 1, lastError: 'bad input' })
    expect(list.body.messages[0].reason).toContain('bad input')
    expect((await call('GET', '/v1/queues/flow')).body).toMatchObject({ stats: { ready: 0, delayed: 2, dead: 1, deadLettered: 1 } })
    expect((await call('POST', '/v1/queues/flow/dead/redrive', {})).body).toEqual({ redriven: 1, notFound: [] })
    const again = (await call<{ messages: Msg[] }>('POST', '/v1/queues/flow/receive', {})).body.messages
    expect(again[0]).toMatchObject({ id: a.id, deliveries: 1 })
    await call('POST', '/v1/queues/flow/nack', { receipts: [again[0].receipt], dead: true })
    expect((await call('DELETE', '/v1/queues/flow/dead')).body).toEqual({ purged: 1 })
    expect((await call('DELETE', '/v1/queues/flow/messages')).body).toEqual({ purged: 2 })
    expect((await call('GET', '/v1/queues/flow')).body).toMatchObject({ stats: { ready: 0, delayed: 0, dead: 0, leased: 0 } })
  })

  it('dedups pushes within the window', async () => {
    const first = await call<{ ids: string[] }>('POST', '/v1/queues/dedup/messages', { payload: 1, dedupId: 'order-17' })
    const second = await call<{ ids: string[] }>('POST', '/v1/queues/dedup/messages', { payload: 2, dedupId: 'order-17' })
    expect(second.body.ids).toEqual(first.body.ids)
    expect((await call('GET', '/v1/queues/dedup')).body).toMatchObject({ stats: { ready: 1, pushed: 1 } })
  })

  it('a long-polling receiver gets a pushed message at once; a receiver that leaves is removed', async () => {
    await call('PUT', '/v1/queues/poll')
    const controller = new AbortController()
    const leaving = fetch(`${broker.url}/v1/queues/poll/receive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ wait: 20 }), signal: controller.signal }).catch(() => null)
    await waitFor(() => broker.engines.queues.info('poll').stats.waiting === 1)
    controller.abort()
    await leaving
    await waitFor(() => broker.engines.queues.info('poll').stats.waiting === 0)
    const waiting = call<{ messages: Msg[] }>('POST', '/v1/queues/poll/receive', { wait: 20, max: 10 })
    await waitFor(() => broker.engines.queues.info('poll').stats.waiting === 1)
    await call('POST', '/v1/queues/poll/messages', { payload: 'wake up', encoding: 'utf8' })
    const got = await waiting
    expect(got.body.messages.map(m => m.payload)).toEqual(['wake up'])
    expect(broker.engines.queues.info('poll').stats).toMatchObject({ leased: 1, ready: 0 })
  })

  it('captures MQTT publishes with their topic', async () => {
    await call('PUT', '/v1/queues/telemetry', { capture: ['devices/+/alerts'] })
    const client = await mqtt.connectAsync(broker.mqttUrl)
    await client.publishAsync('devices/d1/alerts', 'overheat', { qos: 1 })
    await client.publishAsync('devices/d1/status', 'fine', { qos: 1 })
    await call('POST', '/v1/pubsub/publish', { topic: 'devices/d2/alerts', payload: { level: 3 } })
    await waitFor(() => broker.engines.queues.info('telemetry').stats.ready === 2)
    const got = (await call<{ messages: Msg[] }>('POST', '/v1/queues/telemetry/receive', { max: 10 })).body.messages
    expect(got.map(m => [m.topic, m.payload])).toEqual([['devices/d1/alerts', 'overheat'], ['devices/d2/alerts', { level: 3 }]])
    await client.endAsync()
  })

  it('a long-polling receiver does not hold up a graceful shutdown', async () => {
    const other = await startTestBroker()
    try {
      await fetch(`${other.url}/v1/queues/idle`, { method: 'PUT' })
      const waiting = fetch(`${other.url}/v1/queues/idle/receive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ wait: 20 }) })
        .then(res => res.status, () => 'closed')
      await waitFor(() => other.engines.queues.info('idle').stats.waiting === 1)
      // the test's own timeout (well below the 20 s wait) fails it if close() waited for the receiver
      await other.close()
      expect(['closed', 200, 503]).toContain(await waiting)
    } finally {
      await other.stop()
    }
  }, 10_000)

  it('autocreate off: push to a missing queue is 404', async () => {
    const strict = await startTestBroker({ queueAutocreate: false })
    try {
      const res = await fetch(`${strict.url}/v1/queues/nope/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payload: 1 }) })
      expect(res.status).toBe(404)
      const put = await fetch(`${strict.url}/v1/queues/nope`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
      expect(put.status).toBe(201)
      const ok = await fetch(`${strict.url}/v1/queues/nope/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payload: 1 }) })
      expect(ok.status).toBe(200)
    } finally {
      await strict.stop()
    }
  })

  it('exposes queue depths and totals in /metrics and routes in the OpenAPI document', async () => {
    await call('POST', '/v1/queues/metered/messages', { payload: 1 })
    const text = await (await fetch(`${broker.url}/metrics`)).text()
    expect(text).toContain('tetra_queue_messages{queue="metered",state="ready"} 1')
    expect(text).toContain('tetra_queue_pushed_total{queue="metered"} 1')
    const doc = await (await fetch(`${broker.url}/openapi.json`)).json() as { paths: Record<string, unknown> }
    for (const p of ['/v1/queues/{name}', '/v1/queues/{name}/messages', '/v1/queues/{name}/receive', '/v1/queues/{name}/ack', '/v1/queues/{name}/nack', '/v1/queues/{name}/extend', '/v1/queues/{name}/dead', '/v1/queues/{name}/dead/redrive']) {
      expect(doc.paths).toHaveProperty([p])
    }
  })
})

describe('push hand-off', () => {
  const special = fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '😀', '\u2028')
  const strings = fc.oneof(
    fc.string({ unit: 'grapheme-ascii' }).map(s => s.replace(/["\\]/g, '')),
    fc.string({ unit: 'grapheme' }).map(s => s.replace(/["\\]/g, '')),
    fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), special) })
  )
  const message: fc.Arbitrary<{ payload: unknown, encoding?: PayloadEncoding }> = fc.oneof(
    fc.record({ payload: strings }),
    fc.record({ payload: strings, encoding: fc.constantFrom<PayloadEncoding>('json', 'utf8') }),
    fc.record({ payload: fc.jsonValue() }),
    fc.record({ payload: fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b).toString('base64')), encoding: fc.constant<PayloadEncoding>('base64') })
  )
  let run = 0

  /** Pushes the body text and gives the stored payloads, in order. */
  async function pushed (text: string, count: number): Promise<Buffer[]> {
    const queue = `handoff-${run++}`
    const res = await fetch(`${broker.url}/v1/queues/${queue}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text })
    expect(res.status).toBe(200)
    return (await broker.engines.queues.receive(queue, { max: count })).map(d => d.payload)
  }

  it('stores exactly the bytes decodePayload gives, whatever the body text (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 12 }), fc.constantFrom(undefined, 1), async (messages, indent) => {
      const text = JSON.stringify(messages.length === 1 ? messages[0] : { messages }, null, indent)
      const got = await pushed(text, messages.length)
      expect(got.map(b => b.toString('hex'))).toEqual(messages.map(m => decodePayload(m.payload, m.encoding).toString('hex')))
    }), { numRuns: 60 })
  })

  it('takes the text of a string payload only from a body without escapes', async () => {
    expect((await pushed('{"messages":[{"payload":"ab"},{"payload":"é😀"},{"payload":{"n":1}}]}', 3)).map(String)).toEqual(['"ab"', '"é😀"', '{"n":1}'])
    expect((await pushed('{"messages":[{"payload":"a\\"b"},{"payload":"\\u00e9"},{"payload":"\\ud800"}]}', 3)).map(b => b.toString('hex')))
      .toEqual([JSON.stringify('a"b'), JSON.stringify('é'), JSON.stringify('\ud800')].map(s => Buffer.from(s).toString('hex')))
  })
})
