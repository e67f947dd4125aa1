import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
const clients: MqttClient[] = []
beforeAll(async () => { broker = await startTestBroker({ sseHeartbeatMs: 200 }) })
afterAll(async () => {
  await Promise.all(clients.map(async c => await c.endAsync(true)))
  await broker.stop()
})

async function connect (transport: 'tcp' | 'ws', options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(transport === 'tcp' ? broker.mqttUrl : broker.wsUrl, { reconnectPeriod: 0, ...options })
  clients.push(client)
  return client
}

function collect (client: MqttClient): Array<{ topic: string, payload: string, qos: number, retain: boolean }> {
  const got: Array<{ topic: string, payload: string, qos: number, retain: boolean }> = []
  client.on('message', (topic, payload, packet) => { got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }) })
  return got
}

async function publishHttp (body: unknown): Promise<Response> {
  return await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

describe('MQTT over TCP and WebSocket', () => {
  for (const qos of [0, 1, 2] as const) {
    it(`delivers QoS ${qos} between TCP and WS clients`, async () => {
      const sub = await connect('ws')
      const got = collect(sub)
      await sub.subscribeAsync(`q${qos}/#`, { qos })
      const pub = await connect('tcp')
      for (let i = 0; i < 20; i++) await pub.publishAsync(`q${qos}/x/${i}`, `m${i}`, { qos })
      await waitFor(() => got.length === 20)
      expect(got.map(m => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`))
      expect(new Set(got.map(m => m.qos))).toEqual(new Set([qos]))
    })
  }

  it('negotiates the mqtt WebSocket subprotocol', async () => {
    const { WebSocket } = await import('ws')
    const ws = new WebSocket(broker.wsUrl, ['mqtt'])
    const protocol = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => { resolve(ws.protocol) })
      ws.on('error', reject)
    })
    expect(protocol).toBe('mqtt')
    ws.close()
  })

  it('matches + and # and keeps $ topics out of wildcard subscriptions', async () => {
    const sub = await connect('tcp')
    const got = collect(sub)
    await sub.subscribeAsync(['w/+/c', 'w/a/#', '#'])
    const pub = await connect('tcp')
    await pub.publishAsync('w/b/c', '1')
    await pub.publishAsync('w/a/b/c', '2')
    await pub.publishAsync('w/a', '3')
    await pub.publishAsync('$app/x', 'dollar')
    await pub.publishAsync('done', 'end')
    await waitFor(() => got.some(m => m.topic === 'done'))
    const topics = got.map(m => m.topic)
    expect(topics).toContain('w/b/c')
    expect(topics).toContain('w/a/b/c')
    expect(topics).toContain('w/a')
    expect(topics).not.toContain('$app/x')
  })

  it('keeps retained messages for later subscribers and clears them with an empty payload', async () => {
    const pub = await connect('tcp')
    await pub.publishAsync('r/one', 'kept', { retain: true, qos: 1 })
    const late = await connect('ws')
    const got = collect(late)
    await late.subscribeAsync('r/#')
    await waitFor(() => got.length === 1)
    expect(got[0]).toMatchObject({ topic: 'r/one', payload: 'kept', retain: true })
    await pub.publishAsync('r/one', '', { retain: true, qos: 1 })
    const later = await connect('tcp')
    const got2 = collect(later)
    await later.subscribeAsync('r/#')
    await pub.publishAsync('r/marker', 'x')
    await waitFor(() => got2.length === 1)
    expect(got2.map(m => m.topic)).toEqual(['r/marker'])
  })

  it('publishes the will when a client goes away without DISCONNECT', async () => {
    const watcher = await connect('tcp')
    const got = collect(watcher)
    await watcher.subscribeAsync('wills/#')
    const dying = await connect('tcp', { will: { topic: 'wills/d1', payload: Buffer.from('gone'), qos: 1, retain: false } })
    dying.stream.destroy()
    await waitFor(() => got.length === 1)
    expect(got[0]).toMatchObject({ topic: 'wills/d1', payload: 'gone' })
  })

  it('resumes a persistent session with the QoS 1 messages it missed', async () => {
    const first = await connect('tcp', { clientId: 'persist-1', clean: false })
    await first.subscribeAsync('offline/#', { qos: 1 })
    await first.endAsync()
    const pub = await connect('tcp')
    await pub.publishAsync('offline/a', 'while away', { qos: 1 })
    const again = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'persist-1', clean: false, reconnectPeriod: 0, manualConnect: false })
    clients.push(again)
    const got = collect(again)
    await waitFor(() => got.length === 1)
    expect(got[0]).toMatchObject({ topic: 'offline/a', payload: 'while away' })
  })

  it('refuses a client\'s publish to $SYS/: no PUBACK, the connection is closed, nobody gets it', async () => {
    const watcher = await connect('tcp')
    const got = collect(watcher)
    await watcher.subscribeAsync('$SYS/fake/#')
    const pub = await connect('tcp')
    const closed = new Promise<void>((resolve, reject) => {
      pub.once('close', () => { resolve() })
      setTimeout(() => { reject(new Error('the connection stayed open')) }, 5000)
    })
    pub.on('error', () => {})
    let acked = false
    pub.publish('$SYS/fake/uptime', '1', { qos: 1 }, err => { if (err == null) acked = true })
    await closed
    // a publish that did reach subscribers would be there by the time a round trip to the broker ends
    await watcher.subscribeAsync('sync/x')
    expect(acked).toBe(false)
    expect(got).toEqual([])
  })
})

describe('HTTP publish', () => {
  it('reaches MQTT subscribers with the same bytes, for JSON, utf8 and base64 payloads', async () => {
    const sub = await connect('tcp')
    const got: Buffer[] = []
    sub.on('message', (_t, p) => got.push(p))
    await sub.subscribeAsync('h/#', { qos: 1 })
    expect((await publishHttp({ topic: 'h/json', payload: { a: [1, 'x'] } })).status).toBe(200)
    expect((await publishHttp({ topic: 'h/text', payload: 'plain text', encoding: 'utf8', qos: 1 })).status).toBe(200)
    const bytes = Buffer.from([0, 255, 1, 128, 10])
    expect((await publishHttp({ topic: 'h/bin', payload: bytes.toString('base64'), encoding: 'base64', qos: 2 })).status).toBe(200)
    await waitFor(() => got.length === 3)
    expect(got[0].toString()).toBe('{"a":[1,"x"]}')
    expect(got[1].toString()).toBe('plain text')
    expect(got[2]).toEqual(bytes)
  })

  it('a retained HTTP publish is what a later MQTT subscriber gets', async () => {
    expect((await publishHttp({ topic: 'hr/state', payload: { on: true }, retain: true })).status).toBe(200)
    const sub = await connect('ws')
    const got = collect(sub)
    await sub.subscribeAsync('hr/+')
    await waitFor(() => got.length === 1)
    expect(got[0]).toMatchObject({ topic: 'hr/state', payload: '{"on":true}', retain: true })
  })

  it('MQTT publishes are counted in /metrics by protocol', async () => {
    const pub = await connect('tcp')
    await pub.publishAsync('count/me', 'x', { qos: 1 })
    const text = await (await fetch(`${broker.url}/metrics`)).text()
    expect(text).toMatch(/tetra_messages_in_total\{protocol="mqtt"\} [1-9]/)
    expect(text).toMatch(/tetra_messages_in_total\{protocol="http"\} [1-9]/)
    expect(text).toMatch(/tetra_mqtt_connections [1-9]/)
  })

  for (const [why, body] of [
    ['a + wildcard', { topic: 'a/+/c', payload: 1 }],
    ['a # wildcard', { topic: 'a/#', payload: 1 }],
    ['an empty topic', { topic: '', payload: 1 }],
    ['a $SYS topic', { topic: '$SYS/broker/x', payload: 1 }],
    ['a missing payload', { topic: 'a' }],
    ['a bad qos', { topic: 'a', payload: 1, qos: 3 }],
    ['a qos of the wrong type', { topic: 'a', payload: 1, qos: '1' }],
    ['an unknown field', { topic: 'a', payload: 1, colour: 'red' }],
    ['bad base64', { topic: 'a', payload: '***', encoding: 'base64' }],
    ['a non-string utf8 payload', { topic: 'a', payload: 5, encoding: 'utf8' }]
  ] as const) {
    it(`answers 400 problem+json to ${why}`, async () => {
      const res = await publishHttp(body)
      expect(res.status).toBe(400)
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/)
      const problem = await res.json() as { status: number, title: string, detail: string, type: string }
      expect(problem.status).toBe(400)
      expect(problem.detail.length).toBeGreaterThan(0)
    })
  }
})

describe('SSE subscribe', () => {
  it('streams matching messages from MQTT and HTTP, retained first, then removes its subscription', async () => {
    await publishHttp({ topic: 's/retained', payload: 'old', encoding: 'utf8', retain: true })
    const before = broker.engines.pubsub.activeSubscriptions
    const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=s/%2B&filter=t/%23`)
    await sse.opened
    await waitFor(() => sse.events.length === 1)
    expect(JSON.parse(sse.events[0].data)).toEqual({ topic: 's/retained', payload: 'old', encoding: 'utf8', qos: 0, retain: true })
    const pub = await connect('tcp')
    await pub.publishAsync('s/mqtt', Buffer.from([1, 2, 3]), { qos: 1 })
    await publishHttp({ topic: 't/deep/er', payload: [1, 2] })
    await pub.publishAsync('u/other', 'not matched')
    await publishHttp({ topic: 's/last', payload: 'end', encoding: 'utf8' })
    await waitFor(() => sse.events.length === 4)
    const data = sse.events.map(e => JSON.parse(e.data) as Record<string, unknown>)
    expect(data[1]).toEqual({ topic: 's/mqtt', payload: 'AQID', encoding: 'base64', qos: 1, retain: false })
    expect(data[2]).toEqual({ topic: 't/deep/er', payload: [1, 2], qos: 0, retain: false })
    expect(data[3].topic).toBe('s/last')
    await waitFor(() => sse.comments.includes('heartbeat'), 3000, 'a heartbeat comment')
    expect(broker.engines.pubsub.activeSubscriptions).toBe(before + 2)
    sse.close()
    await waitFor(() => broker.engines.pubsub.activeSubscriptions === before, 5000, 'the subscription to be removed')
  })

  it('skips retained messages with retained=false', async () => {
    await publishHttp({ topic: 'skip/r', payload: 'old', encoding: 'utf8', retain: true })
    const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=skip/%23&retained=false`)
    await sse.opened
    await waitFor(() => broker.engines.pubsub.activeSubscriptions > 0)
    await publishHttp({ topic: 'skip/new', payload: 'new', encoding: 'utf8' })
    await waitFor(() => sse.events.length === 1)
    expect(JSON.parse(sse.events[0].data).topic).toBe('skip/new')
    sse.close()
  })

  it('refuses bad filters with 400', async () => {
    for (const q of ['', '?filter=a/b%23', '?filter=a%2Bb', '?filter=a&other=1']) {
      const res = await fetch(`${broker.url}/v1/pubsub/subscribe${q}`)
      expect(res.status).toBe(400)
      expect(res.headers.get('content-type')).toMatch(/problem\+json/)
    }
  })

  it('lists retained messages by filter', async () => {
    await publishHttp({ topic: 'list/a', payload: { n: 1 }, retain: true })
    await publishHttp({ topic: 'list/b/c', payload: 'x', encoding: 'utf8', retain: true })
    const res = await fetch(`${broker.url}/v1/pubsub/retained?filter=list/%23`)
    const body = await res.json() as { messages: Array<{ topic: string }> }
    expect(body.messages.map(m => m.topic).sort()).toEqual(['list/a', 'list/b/c'])
  })
})
