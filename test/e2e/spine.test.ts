import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => { await broker.stop() })

describe('spine smoke', () => {
  it('HTTP publish reaches MQTT over TCP and WS, and SSE', async () => {
    const tcp = await mqtt.connectAsync(broker.mqttUrl)
    const ws = await mqtt.connectAsync(broker.wsUrl)
    await tcp.subscribeAsync('a/+/c')
    await ws.subscribeAsync('a/#')
    const got: string[] = []
    tcp.on('message', (t, p) => got.push(`tcp ${t} ${p.toString()}`))
    ws.on('message', (t, p) => got.push(`ws ${t} ${p.toString()}`))
    const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=a/%2B/c`)
    await sse.opened
    await waitFor(() => broker.engines.pubsub.activeSubscriptions === 1)
    const res = await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'a/b/c', payload: { x: 1 } }) })
    expect(res.status).toBe(200)
    await waitFor(() => got.length === 2 && sse.events.length === 1)
    expect(got.sort()).toEqual(['tcp a/b/c {"x":1}', 'ws a/b/c {"x":1}'])
    expect(JSON.parse(sse.events[0].data)).toEqual({ topic: 'a/b/c', payload: { x: 1 }, qos: 0, retain: false })
    sse.close()
    await waitFor(() => broker.engines.pubsub.activeSubscriptions === 0)
    await tcp.endAsync()
    await ws.endAsync()
  })
})
