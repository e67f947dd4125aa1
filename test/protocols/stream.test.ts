import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect as netConnect } from 'node:net'
import mqtt from 'mqtt'
import { openSse, startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker({ streamMaxMessageBytes: 4096 }) })
afterAll(async () => { await broker.stop() })

async function call (method: string, path: string, body?: unknown): Promise<{ status: number, type: string, json: any }> {
  const res = await fetch(`${broker.url}${path}`, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined
  })
  const text = await res.text()
  return { status: res.status, type: res.headers.get('content-type') ?? '', json: text.length > 0 ? JSON.parse(text) : undefined }
}

describe('stream routes', () => {
  it('creates, appends, reads, pages, describes and deletes', async () => {
    let r = await call('PUT', '/v1/streams/orders', { maxCount: 1000, dedupWindow: 60 })
    expect(r.status).toBe(201)
    expect(r.json).toMatchObject({ name: 'orders', settings: { maxCount: 1000, dedupWindow: 60, capture: [] }, firstOffset: 0, lastOffset: -1, count: 0 })
    r = await call('POST', '/v1/streams/orders/messages', { payload: { id: 1 }, key: 'customer-7', headers: { source: 'web' } })
    expect(r).toMatchObject({ status: 200, json: { offsets: [0] } })
    r = await call('POST', '/v1/streams/orders/messages', { messages: [{ payload: 'plain', encoding: 'utf8' }, { payload: 'AP8=', encoding: 'base64' }, { payload: [1, 2], dedupId: 'd1' }], expectedLastOffset: 0 })
    expect(r.json).toEqual({ offsets: [1, 2, 3] })
    r = await call('POST', '/v1/streams/orders/messages', { payload: [1, 2], dedupId: 'd1' })
    expect(r.json).toEqual({ offsets: [3] })
    r = await call('GET', '/v1/streams/orders/messages?from=start&limit=2')
    expect(r.json.messages).toMatchObject([
      { offset: 0, key: 'customer-7', headers: { source: 'web' }, payload: { id: 1 } },
      { offset: 1, payload: 'plain', encoding: 'utf8' }
    ])
    expect(typeof r.json.messages[0].timestamp).toBe('number')
    expect(r.json.next).toBe(2)
    r = await call('GET', `/v1/streams/orders/messages?from=${r.json.next as number}`)
    expect(r.json.messages.map((m: any) => [m.offset, m.payload, m.encoding])).toEqual([[2, 'AP8=', 'base64'], [3, [1, 2], undefined]])
    r = await call('GET', `/v1/streams/orders/messages?time=${new Date(Date.now() + 60_000).toISOString()}`)
    expect(r.json).toMatchObject({ messages: [], next: 4 })
    r = await call('GET', '/v1/streams/orders')
    expect(r.json).toMatchObject({ firstOffset: 0, lastOffset: 3, nextOffset: 4, count: 4 })
    r = await call('GET', '/v1/streams')
    expect(r.json.streams.map((s: any) => s.name)).toContain('orders')
    const doc = await call('GET', '/openapi.json')
    expect(Object.keys(doc.json.paths)).toEqual(expect.arrayContaining(['/v1/streams/{name}', '/v1/streams/{name}/messages', '/v1/streams/{name}/tail', '/v1/streams/{name}/groups/{group}/receive', '/v1/streams/{name}/groups/{group}/dead/redrive']))
    expect((await call('DELETE', '/v1/streams/orders')).status).toBe(204)
    expect((await call('GET', '/v1/streams/orders')).status).toBe(404)
  })

  it('answers bad input with 4xx problem+json and keeps what was accepted', async () => {
    await call('POST', '/v1/streams/bad/messages', { payload: 1 })
    const cases: Array<[string, string, unknown, number]> = [
      ['GET', '/v1/streams/nope/messages', undefined, 404],
      ['GET', '/v1/streams/nope/tail', undefined, 404],
      ['GET', '/v1/streams/bad/messages?from=-1', undefined, 400],
      ['GET', '/v1/streams/bad/messages?from=abc', undefined, 400],
      ['GET', '/v1/streams/bad/messages?from=99', undefined, 400],
      ['GET', '/v1/streams/bad/messages?time=yesterday', undefined, 400],
      ['GET', '/v1/streams/bad/messages?from=0&time=5', undefined, 400],
      ['GET', '/v1/streams/bad/messages?limit=0', undefined, 400],
      ['GET', '/v1/streams/bad/messages?limit=5000', undefined, 400],
      ['POST', '/v1/streams/bad/messages', { payload: 'x'.repeat(5000) }, 413],
      ['POST', '/v1/streams/bad/messages', { messages: Array.from({ length: 1001 }, () => ({ payload: 1 })) }, 400],
      ['POST', '/v1/streams/bad/messages', {}, 400],
      ['POST', '/v1/streams/bad/messages', { payload: 1, messages: [{ payload: 2 }] }, 400],
      ['POST', '/v1/streams/bad/messages', { payload: 1, extra: true }, 400],
      ['POST', '/v1/streams/bad/messages', { payload: 'x', encoding: 'base64' }, 400],
      ['POST', '/v1/streams/bad/messages', { payload: 1, expectedLastOffset: 7 }, 409],
      ['PUT', '/v1/streams/bad', { maxCount: 0 }, 400],
      ['PUT', '/v1/streams/bad', { capture: ['a/#/b'] }, 400],
      ['PUT', '/v1/streams/bad%20name', {}, 400],
      ['PUT', '/v1/streams/bad/groups/g', { from: 'middle' }, 400],
      ['PUT', '/v1/streams/bad/groups/g', { from: 50 }, 400],
      ['POST', '/v1/streams/bad/groups/g/receive', { wait: 21 }, 400],
      ['POST', '/v1/streams/bad/groups/none/ack', { offsets: [0] }, 404],
      ['POST', '/v1/streams/bad/groups/g/commit', { offset: 'x' }, 400]
    ]
    for (const [method, path, body, status] of cases) {
      const r = await call(method, path, body)
      expect({ method, path, status: r.status }).toEqual({ method, path, status })
      expect(r.type).toContain('application/problem+json')
      expect(r.json.status).toBe(status)
    }
    const conflict = await call('POST', '/v1/streams/bad/messages', { payload: 1, expectedLastOffset: 7 })
    expect(conflict.json.lastOffset).toBe(0)
    expect((await call('GET', '/v1/streams/bad')).json).toMatchObject({ count: 1, lastOffset: 0 })
  })

  it('reads below the retained range from the first retained offset and says so', async () => {
    await call('PUT', '/v1/streams/short', { maxCount: 2 })
    await call('POST', '/v1/streams/short/messages', { messages: [1, 2, 3, 4, 5].map(payload => ({ payload })) })
    await broker.engines.streams.enforceRetention('short')
    const r = await call('GET', '/v1/streams/short/messages?from=0')
    expect(r.json).toMatchObject({ truncated: true, firstOffset: 3, next: 5 })
    expect(r.json.messages.map((m: any) => m.offset)).toEqual([3, 4])
  })
})

describe('stream tail over SSE', () => {
  it('sends history then live messages and resumes after Last-Event-ID without gap or duplicate', async () => {
    await call('POST', '/v1/streams/feed/messages', { messages: Array.from({ length: 30 }, (_, i) => ({ payload: i })) })
    const first = openSse(`${broker.url}/v1/streams/feed/tail?from=start`)
    expect((await first.opened).headers.get('content-type')).toContain('text/event-stream')
    await waitFor(() => first.events.length >= 30, 5000, 'history')
    await call('POST', '/v1/streams/feed/messages', { messages: Array.from({ length: 10 }, (_, i) => ({ payload: 30 + i })) })
    await waitFor(() => first.events.length >= 35, 5000, 'live')
    first.close()
    const seen = first.events.map(e => Number(e.id))
    const lastId = first.events[first.events.length - 1].id!
    // appended while no reader was connected
    await call('POST', '/v1/streams/feed/messages', { messages: Array.from({ length: 20 }, (_, i) => ({ payload: 40 + i })) })
    const second = openSse(`${broker.url}/v1/streams/feed/tail`, { 'last-event-id': lastId })
    await waitFor(() => second.events.length >= 59 - Number(lastId), 5000, 'resumed')
    const all = [...seen, ...second.events.map(e => Number(e.id))]
    expect(all).toEqual(Array.from({ length: 60 }, (_, i) => i))
    for (const e of [...first.events, ...second.events]) expect(JSON.parse(e.data).payload).toBe(Number(e.id))
    second.close()
    // lastEventId in the query works the same (browsers cannot set the header by hand)
    const third = openSse(`${broker.url}/v1/streams/feed/tail?lastEventId=57`)
    await waitFor(() => third.events.length >= 2, 5000, 'query resume')
    expect(third.events.map(e => e.id)).toEqual(['58', '59'])
    third.close()
  })

  it('pauses a reader that does not read and lets it catch up from storage, in order and complete', async () => {
    const payload = 'x'.repeat(2000)
    for (let i = 0; i < 3; i++) await call('POST', '/v1/streams/slow/messages', { messages: Array.from({ length: 1000 }, () => ({ payload, encoding: 'utf8' })) })
    const socket = netConnect(broker.httpAddress.port, '127.0.0.1')
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString() })
    await new Promise<void>(resolve => socket.once('connect', resolve))
    socket.write('GET /v1/streams/slow/tail?from=start HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n')
    await waitFor(() => text.includes('id: 0'), 5000, 'first event')
    socket.pause()
    for (let i = 0; i < 3; i++) await call('POST', '/v1/streams/slow/messages', { messages: Array.from({ length: 1000 }, () => ({ payload, encoding: 'utf8' })) })
    socket.resume()
    await waitFor(() => text.includes('id: 5999\n'), 20_000, 'all events')
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map(m => Number(m[1]))
    expect(ids).toEqual(Array.from({ length: 6000 }, (_, i) => i))
    socket.destroy()
  })

  it('resumes exactly after the last event when the server goes away and comes back', async () => {
    const tmp = tempDir()
    try {
      let b = await startTestBroker({}, tmp.dir)
      const post = async (base: string, from: number, n: number): Promise<void> => {
        const res = await fetch(`${base}/v1/streams/restart/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: Array.from({ length: n }, (_, i) => ({ payload: from + i })) }) })
        expect(res.status).toBe(200)
      }
      await post(b.url, 0, 25)
      const first = openSse(`${b.url}/v1/streams/restart/tail?from=start`)
      await waitFor(() => first.events.length === 25, 5000, 'history')
      await b.close() // the server ends the stream
      b = await startTestBroker({}, tmp.dir)
      await post(b.url, 25, 15)
      const lastId = first.events[first.events.length - 1].id!
      const second = openSse(`${b.url}/v1/streams/restart/tail`, { 'last-event-id': lastId })
      await waitFor(() => second.events.length === 15, 5000, 'resumed after restart')
      const ids = [...first.events, ...second.events].map(e => Number(e.id))
      expect(ids).toEqual(Array.from({ length: 40 }, (_, i) => i))
      second.close()
      await b.close()
    } finally {
      tmp.remove()
    }
  })

  it('rejects a Last-Event-ID beyond the end', async () => {
    await call('POST', '/v1/streams/short2/messages', { payload: 1 })
    const res = await fetch(`${broker.url}/v1/streams/short2/tail`, { headers: { 'last-event-id': '50' } })
    expect(res.status).toBe(400)
    expect(res.headers.get('content-type')).toContain('application/problem+json')
  })
})

describe('consumer groups over HTTP', () => {
  it('creates, receives with leases, acks, commits, lists and deletes groups', async () => {
    await call('POST', '/v1/streams/work/messages', { messages: Array.from({ length: 6 }, (_, i) => ({ payload: i })) })
    let r = await call('PUT', '/v1/streams/work/groups/billing', { from: 'start', ackWait: 30, maxDeliveries: 3 })
    expect(r.status).toBe(201)
    expect(r.json).toMatchObject({ name: 'billing', committed: 0, ackWait: 30, maxDeliveries: 3 })
    const a = await call('POST', '/v1/streams/work/groups/billing/receive', { max: 2, consumer: 'a' })
    const b = await call('POST', '/v1/streams/work/groups/billing/receive', { max: 2, consumer: 'b' })
    expect(a.json.messages.map((m: any) => [m.offset, m.deliveries, m.payload])).toEqual([[0, 1, 0], [1, 1, 1]])
    expect(b.json.messages.map((m: any) => m.offset)).toEqual([2, 3])
    r = await call('POST', '/v1/streams/work/groups/billing/ack', { offsets: [2, 3] })
    expect(r.json).toEqual({ acked: 2, committed: 0 })
    r = await call('POST', '/v1/streams/work/groups/billing/commit', { offset: 1 })
    expect(r.json).toEqual({ committed: 4 })
    r = await call('GET', '/v1/streams/work/groups')
    expect(r.json.groups[0]).toMatchObject({ name: 'billing', committed: 4, pending: 0, lag: 2, dead: 0 })
    expect(r.json.groups[0].readers.map((x: any) => x.consumer).sort()).toEqual(['a', 'b'])
    // long-poll: an append wakes the waiting reader
    const waiting = call('POST', '/v1/streams/work/groups/billing/receive', { max: 10, wait: 10, consumer: 'c' })
    const got = await waiting
    expect(got.json.messages.map((m: any) => m.offset)).toEqual([4, 5])
    const waiting2 = call('POST', '/v1/streams/work/groups/billing/receive', { max: 10, wait: 10, consumer: 'c' })
    await waitFor(async () => (await call('GET', '/v1/streams/work/groups/billing')).json.readers.length === 3)
    await call('POST', '/v1/streams/work/messages', { payload: 'late' })
    expect((await waiting2).json.messages.map((m: any) => m.payload)).toEqual(['late'])
    r = await call('GET', '/v1/streams/work/groups/billing/dead')
    expect(r.json).toEqual({ messages: [], next: null })
    expect((await call('POST', '/v1/streams/work/groups/billing/dead/redrive', {})).json).toEqual({ redriven: 0 })
    expect((await call('DELETE', '/v1/streams/work/groups/billing')).status).toBe(204)
    expect((await call('GET', '/v1/streams/work/groups/billing')).status).toBe(404)
  })
})

describe('capture', () => {
  it('appends publishes from MQTT over TCP and WebSocket and from HTTP, with topic, qos and retain', async () => {
    const r = await call('PUT', '/v1/streams/telemetry', { capture: ['sensors/#'] })
    expect(r.json.settings.capture).toEqual(['sensors/#'])
    await broker.engines.streams.get('telemetry').captureReady
    const tcp = await mqtt.connectAsync(broker.mqttUrl)
    const ws = await mqtt.connectAsync(broker.wsUrl)
    await tcp.publishAsync('sensors/a/temp', '21.5', { qos: 1 })
    await tcp.publishAsync('elsewhere', 'not captured', { qos: 1 })
    await ws.publishAsync('sensors/b/hum', Buffer.from([0, 1, 2]), { qos: 0, retain: true })
    await call('POST', '/v1/pubsub/publish', { topic: 'sensors/c', payload: { v: 1 }, qos: 1 })
    await waitFor(async () => (await call('GET', '/v1/streams/telemetry')).json.count === 3, 5000, 'captured')
    const read = await call('GET', '/v1/streams/telemetry/messages?from=start')
    const byTopic = Object.fromEntries(read.json.messages.map((m: any) => [m.topic, m]))
    expect(byTopic['sensors/a/temp']).toMatchObject({ qos: 1, retain: false, payload: 21.5 })
    expect(byTopic['sensors/b/hum']).toMatchObject({ qos: 0, retain: true, payload: 'AAEC', encoding: 'base64' })
    expect(byTopic['sensors/c']).toMatchObject({ qos: 1, payload: { v: 1 } })
    const metrics = await (await fetch(`${broker.url}/metrics`)).text()
    expect(metrics).toMatch(/tetra_stream_captured_total 3/)
    expect(metrics).toMatch(/tetra_stream_messages\{stream="telemetry"\} 3/)
    await tcp.endAsync()
    await ws.endAsync()
  })
})
