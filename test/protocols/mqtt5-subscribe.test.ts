import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type mqttPacket from 'mqtt-packet'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { Clients, collect } from './mqtt5-fixture.js'

/** MQTT 5 SUBSCRIBE and UNSUBSCRIBE on the front-end of our own: options, identifiers, reason codes. */

let broker: TestBroker
const clients = new Clients()
beforeAll(async () => { broker = await startTestBroker({ mqttSysIntervalMs: 0, mqttMaxTopicLevels: 4 }) })
afterAll(async () => {
  await clients.close()
  await broker.stop()
})

describe('MQTT 5 SUBSCRIBE', () => {
  it('[MQTT-3.3.4-3] [MQTT-3.3.4-4] subscription identifiers come back with the messages of the subscriptions that have them', async () => {
    const sub = await clients.connect(broker.mqttUrl)
    const got = collect(sub)
    await sub.subscribeAsync('ids/a/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await sub.subscribeAsync('ids/+/x', { qos: 1, properties: { subscriptionIdentifier: 9 } })
    await sub.subscribeAsync('ids/b/#', { qos: 1 })
    const pub = await clients.connect(broker.mqttUrl)
    await pub.publishAsync('ids/a/x', 'both', { qos: 1 })
    await pub.publishAsync('ids/b/y', 'none', { qos: 1 })
    await waitFor(() => got.length === 2, 5000, 'both messages')
    const both = got.find(p => p.payload.toString() === 'both')
    expect([(both?.properties?.subscriptionIdentifier as number[] | number)].flat().sort()).toEqual([7, 9])
    expect(got.find(p => p.payload.toString() === 'none')?.properties?.subscriptionIdentifier).toBeUndefined()
  })

  it('[MQTT-3.8.3-3] no local: a message is not sent back to the connection that published it', async () => {
    const self = await clients.connect(broker.mqttUrl, { clientId: 'no-local-self' })
    const got = collect(self)
    await self.subscribeAsync('nl/#', { qos: 1, nl: true })
    const other = await clients.connect(broker.mqttUrl)
    await self.publishAsync('nl/t', 'mine', { qos: 1 })
    await other.publishAsync('nl/t', 'theirs', { qos: 1 })
    await waitFor(() => got.length >= 1, 5000, 'the other\'s message')
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(got.map(p => p.payload.toString())).toEqual(['theirs'])
  })

  it('[MQTT-3.8.3-4] no local on a shared subscription is a protocol error: DISCONNECT 0x82', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'nl-shared', keepalive: 60 })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/nl/#', qos: 0, nl: true, rap: false, rh: 0 }] })
    expect((await client.disconnected())?.reasonCode).toBe(0x82)
  })

  it('[MQTT-3.3.1-12] [MQTT-3.3.1-13] retain as published: the retain flag of a live message is kept; without it, cleared', async () => {
    const keep = await clients.connect(broker.mqttUrl)
    const kept = collect(keep)
    await keep.subscribeAsync('rap/#', { qos: 1, rap: true })
    const clear = await clients.connect(broker.mqttUrl)
    const cleared = collect(clear)
    await clear.subscribeAsync('rap/#', { qos: 1 })
    const pub = await clients.connect(broker.mqttUrl)
    await pub.publishAsync('rap/t', 'r', { qos: 1, retain: true })
    await waitFor(() => kept.length === 1 && cleared.length === 1, 5000, 'the message on both')
    expect(kept[0].retain).toBe(true)
    expect(cleared[0].retain).toBe(false)
  })

  it('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] retain handling 0: retained at every subscribe; 1: only when new; 2: never', async () => {
    const pub = await clients.connect(broker.mqttUrl)
    await pub.publishAsync('rh/t', 'kept', { qos: 1, retain: true })
    const counts: number[] = []
    for (const rh of [0, 1, 2] as const) {
      const { client } = await clients.raw(broker.mqtt.port, { clientId: `rh-${rh}`, keepalive: 60 })
      for (const messageId of [1, 2]) {
        client.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: 'rh/#', qos: 0, nl: false, rap: false, rh }] })
        await client.next('suback')
      }
      await new Promise(resolve => setTimeout(resolve, 100))
      counts.push(client.packets.filter(p => p.cmd === 'publish').length)
    }
    expect(counts).toEqual([2, 1, 0])
  })

  it('[MQTT-3.9.3-1] SUBACK reason codes per filter: granted QoS, 0x8F for a malformed filter or $share, 0x97 over a topic limit', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'codes', keepalive: 60 })
    client.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'ok/#', qos: 2, nl: false, rap: false, rh: 0 },
        { topic: 'bad/#/x', qos: 0, nl: false, rap: false, rh: 0 },
        { topic: '$share//x', qos: 0, nl: false, rap: false, rh: 0 },
        { topic: 'a/b/c/d/e', qos: 1, nl: false, rap: false, rh: 0 },
        { topic: '$share/g/ok/+', qos: 1, nl: false, rap: false, rh: 0 }
      ]
    })
    const suback = await client.next<mqttPacket.ISubackPacket>('suback')
    expect(suback.granted).toEqual([2, 0x8f, 0x8f, 0x97, 1])
  })

  it('[MQTT-3.11.3-1] UNSUBACK reason codes: 0x00 for a subscription that existed, 0x11 for one that did not', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'unsub-codes', keepalive: 60 })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/a', qos: 0, nl: false, rap: false, rh: 0 }] })
    await client.next('suback')
    client.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['u/a', 'u/never'] })
    expect((await client.next<mqttPacket.IUnsubackPacket>('unsuback')).granted).toEqual([0, 0x11])
  })

  it('[MQTT-3.1.2-29] request problem information 0: no reason string on a PUBACK; 1 (the default): a reason string', async () => {
    const quiet = await clients.raw(broker.mqtt.port, { clientId: 'quiet', keepalive: 60, properties: { requestProblemInformation: false } })
    quiet.client.send({ cmd: 'publish', topic: '$SYS/x', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    const q = await quiet.client.next<mqttPacket.IPubackPacket>('puback')
    expect(q.reasonCode).toBe(0x87)
    expect(q.properties?.reasonString).toBeUndefined()
    const told = await clients.raw(broker.mqtt.port, { clientId: 'told', keepalive: 60 })
    told.client.send({ cmd: 'publish', topic: '$SYS/x', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect((await told.client.next<mqttPacket.IPubackPacket>('puback')).properties?.reasonString).toContain('$SYS')
  })

  it('[MQTT-4.8.2-1] shared subscriptions: each message goes to one member of the group', async () => {
    const members = [await clients.connect(broker.mqttUrl), await clients.connect(broker.mqttUrl)]
    const got = members.map(collect)
    for (const m of members) await m.subscribeAsync('$share/workers/jobs/#', { qos: 1 })
    const pub = await clients.connect(broker.mqttUrl)
    for (let i = 0; i < 10; i++) await pub.publishAsync('jobs/j', String(i), { qos: 1 })
    await waitFor(() => got[0].length + got[1].length === 10, 5000, 'every job once')
    expect([...got[0], ...got[1]].map(p => p.payload.toString()).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
  })
})
