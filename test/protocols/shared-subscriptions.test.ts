import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { parseShare } from '../../engines/pubsub/shared.js'

let broker: TestBroker
const clients: MqttClient[] = []
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => {
  await Promise.all(clients.map(async c => await c.endAsync(true)))
  await broker.stop()
})

async function connect (options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0, ...options })
  clients.push(client)
  return client
}

function collect (client: MqttClient): Array<{ topic: string, payload: string, qos: number }> {
  const got: Array<{ topic: string, payload: string, qos: number }> = []
  client.on('message', (topic, payload, packet) => { got.push({ topic, payload: payload.toString(), qos: packet.qos }) })
  return got
}

describe('shared subscriptions ($share/{group}/{filter})', () => {
  it('gives each message to one member of the group, in turn, while plain subscribers get every one', async () => {
    const members = await Promise.all([0, 1, 2].map(async () => await connect()))
    const got = members.map(collect)
    for (const m of members) await m.subscribeAsync('$share/workers/jobs/+', { qos: 1 })
    // another group on the same filter gets its own copy of each message
    const other = await connect()
    const otherGot = collect(other)
    await other.subscribeAsync('$share/audit/jobs/#', { qos: 0 })
    const plain = await connect()
    const plainGot = collect(plain)
    await plain.subscribeAsync('jobs/#', { qos: 1 })

    const publisher = await connect()
    for (let i = 0; i < 30; i++) await publisher.publishAsync(`jobs/${i % 3}`, `j${i}`, { qos: 1 })
    await waitFor(() => got.flat().length === 30 && plainGot.length === 30 && otherGot.length === 30, 5000, 'deliveries')
    const delivered = got.flat().map(m => m.payload).sort()
    expect(delivered).toEqual(Array.from({ length: 30 }, (_, i) => `j${i}`).sort())
    // in turn: 10 each
    expect(got.map(g => g.length)).toEqual([10, 10, 10])
    expect(new Set(got.flat().map(m => m.qos))).toEqual(new Set([1]))
    expect(new Set(otherGot.map(m => m.qos))).toEqual(new Set([0]))
  })

  it('stops giving messages to a member that unsubscribes or disconnects; none left drops them', async () => {
    const a = await connect()
    const b = await connect()
    const gotA = collect(a)
    const gotB = collect(b)
    await a.subscribeAsync('$share/g2/work', { qos: 0 })
    await b.subscribeAsync('$share/g2/work', { qos: 0 })
    const publisher = await connect()
    await a.unsubscribeAsync('$share/g2/work')
    for (let i = 0; i < 6; i++) await publisher.publishAsync('work', `w${i}`, { qos: 1 })
    await waitFor(() => gotB.length === 6, 5000, 'b gets all')
    expect(gotA).toEqual([])

    await b.endAsync()
    const c = await connect()
    const gotC = collect(c)
    await publisher.publishAsync('work', 'nobody', { qos: 1 })
    await c.subscribeAsync('$share/g2/work', { qos: 0 })
    await publisher.publishAsync('work', 'for-c', { qos: 1 })
    await waitFor(() => gotC.length === 1, 5000, 'c gets the next one')
    expect(gotC.map(m => m.payload)).toEqual(['for-c'])
    expect(gotB).toHaveLength(6)
  })

  it('refuses a malformed share in the SUBACK and keeps $ topics out of wildcard shares', async () => {
    const client = await connect()
    // (MQTT.js itself refuses filters such as $share/g+/x before sending them, and fails a SUBACK with 0x80)
    const suback = new Promise<number[]>(resolve => {
      client.on('packetreceive', packet => { if (packet.cmd === 'suback') resolve(packet.granted as number[]) })
    })
    await client.subscribeAsync({ '$share//x': { qos: 0 }, '$share/g': { qos: 0 } }).catch(() => {})
    expect(await suback).toEqual([128, 128])
    const got = collect(client)
    await client.subscribeAsync('$share/dollar/#', { qos: 0 })
    await client.subscribeAsync('$share/dollar2/$app/+', { qos: 0 })
    const publisher = await connect()
    await publisher.publishAsync('$app/x', 'not for #', { qos: 1 })
    await waitFor(() => got.length >= 1, 5000, 'the $app share')
    await publisher.publishAsync('sync', 'after', { qos: 1 })
    await waitFor(() => got.some(m => m.payload === 'after'), 5000, 'sync')
    expect(got.filter(m => m.payload === 'not for #')).toHaveLength(1)
  })

  it('a persistent session rejoins its groups when it reconnects, and gets QoS 1 messages through its session', async () => {
    const first = await connect({ clientId: 'shared-worker', clean: false })
    await first.subscribeAsync('$share/p/tasks', { qos: 1 })
    await first.endAsync()
    const again = await connect({ clientId: 'shared-worker', clean: false })
    const got = collect(again)
    const publisher = await connect()
    for (let i = 0; i < 3; i++) await publisher.publishAsync('tasks', `t${i}`, { qos: 1 })
    await waitFor(() => got.length === 3, 5000, 'the tasks')
    expect(got.map(m => [m.payload, m.qos])).toEqual([['t0', 1], ['t1', 1], ['t2', 1]])
  })

  it('keeps the membership of a session taken over by a new connection with the same client id', async () => {
    const old = await connect({ clientId: 'shared-takeover', clean: false })
    old.on('error', () => {})
    await old.subscribeAsync('$share/t/handover', { qos: 1 })
    const taking = await connect({ clientId: 'shared-takeover', clean: false })
    const got = collect(taking)
    await waitFor(() => !old.connected, 5000, 'the old connection closed')
    const publisher = await connect()
    await publisher.publishAsync('handover', 'h1', { qos: 1 })
    await waitFor(() => got.length === 1, 5000, 'the new connection gets it')
    expect(got[0].payload).toBe('h1')
  })

  it('parses $share/{group}/{filter}', () => {
    expect(parseShare('jobs/#')).toBeUndefined()
    expect(parseShare('$share/g/jobs/#')).toEqual({ group: 'g', filter: 'jobs/#' })
    expect(parseShare('$share/g//a')).toEqual({ group: 'g', filter: '/a' })
    expect(parseShare('$share/g')).toBeNull()
    expect(parseShare('$share//a')).toBeNull()
    expect(parseShare('$share/g/')).toBeNull()
    expect(parseShare('$share/#/a')).toBeNull()
  })
})
