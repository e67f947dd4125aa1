import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { createServer, type Server } from 'node:net'
import { Tetra, BadRequestError, ConnectionError, TimeoutError, UnavailableError, type Message } from '../../src/client/index.js'
import { Tetra as NodeTetra } from '../../src/client/node.js'

let broker: TestBroker
let tetra: Tetra

beforeAll(async () => {
  broker = await startTestBroker()
  tetra = new Tetra({ url: broker.url })
})
afterAll(async () => { await broker?.stop() })

async function collect (iterator: AsyncIterableIterator<Message>, count: number, publish: () => Promise<void>): Promise<Message[]> {
  const out: Message[] = []
  const reading = (async () => {
    for await (const m of iterator) {
      out.push(m)
      if (out.length === count) break
    }
  })()
  // subscribed once a message comes: publish until the first arrives (bounded), then the rest
  for (let i = 0; i < 100 && out.length === 0; i++) {
    await publish()
    await new Promise(resolve => setTimeout(resolve, 30))
  }
  await reading
  return out
}

describe('client: pubsub', () => {
  it('publish with MQTT 5 properties reaches an SSE subscriber with them', async () => {
    const got = await collect(tetra.pubsub.subscribe('dev/+/cmd'), 1, async () => {
      await tetra.pubsub.publish('dev/42/cmd', { action: 'reboot' }, {
        qos: 1, contentType: 'application/json', responseTopic: 'dev/42/reply', correlationData: new Uint8Array([255, 0]), userProperties: { origin: 'ops' }, messageExpiry: 60
      })
    })
    expect(got[0]).toMatchObject({ topic: 'dev/42/cmd', payload: { action: 'reboot' }, qos: 1, contentType: 'application/json', responseTopic: 'dev/42/reply', userProperties: { origin: 'ops' } })
    expect(got[0].correlationData).toEqual(new Uint8Array([255, 0]))
  })

  it('subscribe over MQTT (TCP and WebSocket) with MQTT.js; retained messages', async () => {
    await tetra.pubsub.publish('ret/a', 'kept', { retain: true, qos: 1 })
    expect((await tetra.pubsub.retained('ret/#')).map(m => m.payload)).toEqual(['kept'])
    for (const url of [broker.mqttUrl, broker.wsUrl]) {
      const got = await collect(tetra.pubsub.subscribe(['m/#'], { mqtt: { url } }), 1, async () => {
        await tetra.pubsub.publish('m/x', new Uint8Array([1, 2, 255]), { userProperties: { a: 'b' } })
      })
      expect(got[0]).toMatchObject({ topic: 'm/x', payload: new Uint8Array([1, 2, 255]), userProperties: { a: 'b' } })
    }
  })

  it('a 4xx is a typed error and is not retried; an unreachable broker is a ConnectionError after the retries', async () => {
    let calls = 0
    const counting = new Tetra({ url: broker.url, fetch: async (input, init) => { calls++; return await fetch(input, init) } })
    await expect(counting.pubsub.publish('a/+', 1)).rejects.toBeInstanceOf(BadRequestError)
    expect(calls).toBe(1)
    const nowhere = new Tetra({ url: 'http://127.0.0.1:1', retries: 2, retryDelay: 10 })
    await expect(nowhere.pubsub.publish('a', 1)).rejects.toBeInstanceOf(ConnectionError)
  })

  it('a 503 is retried with back-off, then succeeds', async () => {
    let calls = 0
    const flaky = new Tetra({
      url: broker.url,
      retryDelay: 5,
      fetch: async (input, init) => {
        calls++
        if (calls < 3) return new Response(JSON.stringify({ type: 'x', title: 'Service Unavailable', status: 503, detail: 'shutting down' }), { status: 503, headers: { 'content-type': 'application/problem+json' } })
        return await fetch(input, init)
      }
    })
    expect(await flaky.pubsub.publish('a', 1)).toMatchObject({ topic: 'a' })
    expect(calls).toBe(3)
    const down = new Tetra({ url: broker.url, retries: 1, retryDelay: 5, fetch: async () => new Response('{"status":503,"title":"x","type":"x","detail":"down"}', { status: 503 }) })
    await expect(down.stats()).rejects.toBeInstanceOf(UnavailableError)
  })

  it('a subscription ends with the AbortSignal', async () => {
    const controller = new AbortController()
    const it = tetra.pubsub.subscribe('nothing/#', { signal: controller.signal })
    setTimeout(() => { controller.abort(new Error('bye')) }, 100)
    await expect(it.next()).rejects.toThrow('bye')
    expect(await tetra.ready()).toBe(true)
    await waitFor(async () => (await tetra.stats()) !== undefined, 1000)
  })

  it('a call without an answer ends with a TimeoutError, through fetch and through the Node sockets', async () => {
    const silent: Server = createServer(() => { /* accepts, never answers */ })
    await new Promise<void>(resolve => { silent.listen(0, '127.0.0.1', resolve) })
    const port = (silent.address() as { port: number }).port
    try {
      for (const client of [new Tetra({ url: `http://127.0.0.1:${port}`, timeout: 200 }), new NodeTetra({ url: `http://127.0.0.1:${port}`, timeout: 200 })]) {
        await expect(client.store.get('k')).rejects.toBeInstanceOf(TimeoutError)
        await expect(client.store.get('k', { timeout: 100 })).rejects.toBeInstanceOf(TimeoutError)
      }
    } finally {
      silent.close()
    }
  })
})
