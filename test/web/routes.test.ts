import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { gunzipSync } from 'node:zlib'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { buildDashboard } from './browser.js'

// The dashboard's routes over plain HTTP (no browser): its files and their caching, the counters, queue
// peek, MQTT clients, and --dashboard readonly.

let broker: TestBroker
const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  await fetch(broker.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

beforeAll(async () => {
  buildDashboard()
  broker = await startTestBroker()
}, 60_000)
afterAll(async () => { await broker?.stop() })

describe('dashboard routes', () => {
  it('serves the page uncached and its content-named files for a year, gzipped when asked', async () => {
    const page = await fetch(`${broker.url}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('cache-control')).toBe('no-cache')
    // the browser itself keeps the page to the broker: no script, style, image or connection from elsewhere
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*connect-src 'self'/)
    const html = await page.text()
    const script = /src="\/assets\/(app-[A-Za-z0-9]+\.js)"/.exec(html)?.[1]
    expect(script).toBeDefined()
    // nothing from elsewhere: every URL the page names is the broker's own
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    const asset = await fetch(`${broker.url}/assets/${script}`, { headers: { 'accept-encoding': 'gzip' } })
    expect(asset.status).toBe(200)
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(asset.headers.get('content-type')).toMatch(/^text\/javascript/)
    const plain = await fetch(`${broker.url}/assets/${script}`, { headers: { 'accept-encoding': 'identity' } })
    expect(plain.headers.get('content-encoding')).toBeNull()
    const raw = Buffer.from(await plain.arrayBuffer())
    expect(raw.toString()).not.toMatch(/https?:\/\/(fonts|cdn|unpkg|cdnjs)/)
    const missing = await fetch(`${broker.url}/assets/nope.js`)
    expect(missing.status).toBe(404)
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    // fetch() undoes the gzip itself; a raw request shows it is there
    const { request } = await import('node:http')
    const gz = await new Promise<Buffer>((resolve, reject) => {
      request(`${broker.url}/assets/${script}`, { headers: { 'accept-encoding': 'gzip' } }, res => {
        expect(res.headers['content-encoding']).toBe('gzip')
        const chunks: Buffer[] = []
        res.on('data', c => chunks.push(c as Buffer)).on('end', () => { resolve(Buffer.concat(chunks)) })
      }).on('error', reject).end()
    })
    expect(gunzipSync(gz).equals(raw)).toBe(true)
  })

  it('GET /v1/dashboard tells the mode, the version and whether auth is on', async () => {
    expect(await (await fetch(`${broker.url}/v1/dashboard`)).json()).toMatchObject({ mode: 'on', auth: false, version: expect.any(String) })
  })

  it('counters: GET /v1/stats and its SSE stream (history first, then samples); warnings name dead letters', async () => {
    await fetch(`${broker.url}/v1/queues/stat-q`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
    await post('/v1/queues/stat-q/messages', { payload: 1 })
    const got = await (await post('/v1/queues/stat-q/receive', {})).json() as { messages: Array<{ receipt: string }> }
    await post('/v1/queues/stat-q/nack', { receipts: [got.messages[0].receipt], dead: true })
    await post('/v1/pubsub/publish', { topic: 'stat/t', payload: 1 })
    const stats = await (await fetch(`${broker.url}/v1/stats`)).json() as { now: { pubsub: { in: number }, queues: { pushed: number, dead: number } }, history: unknown[], warnings: Array<{ kind: string, name: string }>, fsync: string }
    expect(stats.now.pubsub.in).toBeGreaterThanOrEqual(1)
    expect(stats.now.queues).toMatchObject({ pushed: 1, dead: 1 })
    expect(stats.fsync).toBe('interval')
    expect(Array.isArray(stats.history)).toBe(true)
    expect(stats.warnings).toContainEqual(expect.objectContaining({ kind: 'dead-letters', name: 'stat-q' }))

    const stream = openSse(`${broker.url}/v1/stats/stream`)
    try {
      await waitFor(() => stream.events.some(e => e.event === 'sample'), 6000, 'a sample event')
      expect(stream.events[0].event).toBe('history')
      const sample = JSON.parse(stream.events.find(e => e.event === 'sample')!.data) as { sample: { t: number }, warnings: unknown[] }
      expect(sample.sample.t).toBeGreaterThan(0)
      // the open stream is among the SSE streams counted
      const during = await (await fetch(`${broker.url}/v1/stats`)).json() as { now: { connections: { sse: number } } }
      expect(during.now.connections.sse).toBeGreaterThanOrEqual(1)
    } finally {
      stream.close()
    }
  })

  it('warnings: a consumer group 1000 messages behind, the store above 90% of its memory cap', async () => {
    const capped = await startTestBroker({ storeMaxMemory: 20_000, storeEviction: 'none' })
    try {
      const messages = Array.from({ length: 1000 }, (_, i) => ({ payload: i }))
      expect((await fetch(`${capped.url}/v1/streams/lagging/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) })).status).toBeLessThan(300)
      await fetch(`${capped.url}/v1/streams/lagging/groups/slow`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"from":"start"}' })
      const warnings = async (): Promise<Array<{ kind: string, name?: string, stream?: string }>> => ((await (await fetch(`${capped.url}/v1/stats`)).json()) as { warnings: Array<{ kind: string }> }).warnings
      expect(await warnings()).toEqual([expect.objectContaining({ kind: 'group-lag', name: 'slow', stream: 'lagging' })])
      // fill the store until a write is refused at the cap (507), then it is above 90%
      for (let i = 0; i < 200; i++) {
        const res = await fetch(`${capped.url}/v1/store/keys/fill/${i}`, { method: 'PUT', body: 'x'.repeat(500) })
        if (res.status === 507) break
      }
      expect(await warnings()).toContainEqual(expect.objectContaining({ kind: 'store-memory' }))
    } finally {
      await capped.stop()
    }
  })

  it('GET /v1/queues/{name}/peek shows the next messages without leasing them', async () => {
    await post('/v1/queues/peek-q/messages', { messages: [{ payload: { a: 1 } }, { payload: 'two', encoding: 'utf8', priority: 9 }] })
    const res = await fetch(`${broker.url}/v1/queues/peek-q/peek?limit=5`)
    expect(res.status).toBe(200)
    const body = await res.json() as { messages: Array<{ payload: unknown, priority: number, deliveries: number }> }
    expect(body.messages.map(m => m.payload)).toEqual(['two', { a: 1 }])
    expect(body.messages.every(m => m.deliveries === 0)).toBe(true)
    expect(await (await fetch(`${broker.url}/v1/queues/peek-q`)).json()).toMatchObject({ stats: { ready: 2, leased: 0 } })
    expect((await fetch(`${broker.url}/v1/queues/peek-q/peek?limit=101`)).status).toBe(400)
    expect((await fetch(`${broker.url}/v1/queues/nope/peek`)).status).toBe(404)
  })

  it('GET /v1/pubsub/clients lists MQTT sessions with their connection; DELETE disconnects one (MQTT 5: DISCONNECT 0x98)', async () => {
    const client = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'kick-5', protocolVersion: 5, reconnectPeriod: 0, keepalive: 42 })
    try {
      const list = await (await fetch(`${broker.url}/v1/pubsub/clients`)).json() as { clients: Array<Record<string, unknown>> }
      expect(list.clients).toContainEqual(expect.objectContaining({ clientId: 'kick-5', connected: true, version: 5, transport: 'mqtt_tcp', keepAlive: 42, address: expect.stringContaining('127.0.0.1') }))
      const stats = await (await fetch(`${broker.url}/v1/stats`)).json() as { now: { connections: { mqtt: number, mqttTransports: Record<string, number> } } }
      expect(stats.now.connections).toMatchObject({ mqtt: 1, mqttTransports: { mqtt_tcp: 1 } })
      const disconnected = new Promise<number | undefined>(resolve => { client.on('disconnect', packet => { resolve(packet.reasonCode) }) })
      expect((await fetch(`${broker.url}/v1/pubsub/clients/kick-5`, { method: 'DELETE' })).status).toBe(204)
      expect(await disconnected).toBe(0x98)
      await waitFor(async () => (await fetch(`${broker.url}/v1/pubsub/clients/kick-5`, { method: 'DELETE' })).status === 404, 5000, 'the client to be gone')
    } finally {
      await client.endAsync(true)
    }
  })

  it('--dashboard readonly refuses the page\'s writes (not other clients\', not tickets)', async () => {
    const readonly = await startTestBroker({ dashboard: 'readonly' })
    try {
      const page = { 'tetra-dashboard': '1', 'content-type': 'application/json' }
      const refused = await fetch(`${readonly.url}/v1/queues/q/messages`, { method: 'POST', headers: page, body: '{"payload":1}' })
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { detail: string }).detail).toMatch(/read-only/)
      expect((await fetch(`${readonly.url}/v1/queues/q/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"payload":1}' })).status).toBeLessThan(300)
      expect((await fetch(`${readonly.url}/v1/auth/ticket`, { method: 'POST', headers: page, body: '{}' })).status).toBe(200)
      expect((await fetch(`${readonly.url}/v1/queues/q`, { headers: page })).status).toBe(200)
      expect(await (await fetch(`${readonly.url}/v1/dashboard`)).json()).toMatchObject({ mode: 'readonly' })
    } finally {
      await readonly.stop()
    }
  })
})
