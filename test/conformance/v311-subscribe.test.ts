import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrelPacket, ISubackPacket, IUnsubackPacket } from 'mqtt-packet'
import { packet, rawPublish, rawSubscribe, rawUnsubscribe, u16 } from './raw-client.js'
import { atLeast, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 3.1.1 SUBSCRIBE / SUBACK (§3.8, §3.9) and UNSUBSCRIBE / UNSUBACK (§3.10, §3.11), as a server is
 * held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-3.8.3-1], [MQTT-3.10.3-1] (filters are UTF-8): tested in v311-topics with the other UTF-8 rules.
 * - [MQTT-3.8.3-2] allows a server without wildcards to refuse them; Tetra supports them, which is checked.
 * - [MQTT-3.8.4-6] (delivery QoS = min(published, granted)): tested in v311-publish.
 */

const s = useBroker()

describe('MQTT 3.1.1 SUBSCRIBE', () => {
  it('[MQTT-3.8.1-1] a SUBSCRIBE with fixed header flags other than 0010 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawSubscribe(1, [{ filter: 'a/b', options: 0 }], { flags: 0 }))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  it('[MQTT-2.3.1-1] a SUBSCRIBE with packet identifier 0 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawSubscribe(0, [{ filter: 'a/b', options: 0 }]))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  it('[MQTT-3.8.3-3] a SUBSCRIBE without any filter closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(packet(0x82, u16(3)))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  for (const [what, options] of [['requested QoS 3', 3], ['a reserved bit of the options set', 0x41]] as const) {
    it(`[MQTT-3.8.3-4] ${what} closes the connection`, async () => {
      const c = await s.raw(4)
      c.sendBytes(rawSubscribe(2, [{ filter: 'a/b', options }]))
      await c.awaitClose()
      expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
    })
  }

  it('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-2.3.1-7] SUBSCRIBE is answered by a SUBACK of the same packet identifier', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 31337, subscriptions: [{ topic: fresh('sa/'), qos: 1 }] })
    const ack = await c.next('suback') as ISubackPacket
    expect(ack.messageId).toBe(31337)
    expect(ack.granted).toEqual([1])
  })

  it('[MQTT-3.8.3-2] [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] several filters: one SUBACK, a return code each, in order', async () => {
    const base = fresh('multi/')
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: `${base}/q2`, qos: 2 }, { topic: `${base}/+/q0`, qos: 0 }, { topic: `${base}/#`, qos: 1 }] })
    const ack = await c.next('suback') as ISubackPacket
    expect(ack.granted).toEqual([2, 0, 1])
    await c.ping()
    expect(c.received.filter(p => p.cmd === 'suback')).toHaveLength(1)
    const pub = await s.client()
    await pub.publishAsync(`${base}/x/q0`, 'x', { qos: 2 })
    const p = await c.next('publish') as IPublishPacket
    expect(p.topic).toBe(`${base}/x/q0`)
  })

  it('[MQTT-3.9.3-2] SUBACK return codes are only 0x00, 0x01, 0x02 or 0x80, also for a filter refused', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 6, subscriptions: [{ topic: fresh('rc/'), qos: 0 }, { topic: 'rc/#/bad', qos: 1 }] })
    const ack = await c.nextOrClose('suback') as ISubackPacket | undefined
    if (ack === undefined) return // a server may close the connection for an invalid filter instead
    expect((ack.granted as number[]).every(g => [0, 1, 2, 0x80].includes(g))).toBe(true)
    expect(ack.granted[1]).toBe(0x80)
  })

  it('[MQTT-3.8.4-3] a SUBSCRIBE of an existing filter replaces it: one copy per message, at the new QoS, retained re-sent', async () => {
    const topic = fresh('replace/')
    const pub = await s.client()
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
    await c.next('suback')
    expect((await c.next('publish') as IPublishPacket).retain).toBe(true)
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic, qos: 1 }] })
    await c.next('suback')
    const again = await c.next('publish') as IPublishPacket
    expect(again.retain).toBe(true)
    expect(again.payload.toString()).toBe('kept')
    c.send({ cmd: 'puback', messageId: again.messageId! })
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    const live = c.pending('publish') as IPublishPacket[]
    expect(live.map(p => [p.payload.toString(), p.qos])).toEqual([['live', 1]])
  })
})

describe('MQTT 3.1.1 UNSUBSCRIBE', () => {
  it('[MQTT-3.10.1-1] an UNSUBSCRIBE with fixed header flags other than 0010 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawUnsubscribe(1, ['a/b'], { flags: 0 }))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
  })

  it('[MQTT-3.10.3-2] an UNSUBSCRIBE without any filter closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawUnsubscribe(4, []))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
  })

  it('[MQTT-2.3.1-1] an UNSUBSCRIBE with packet identifier 0 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawUnsubscribe(0, ['a/b']))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
  })

  it('[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-2.3.1-7] UNSUBACK has the packet identifier, also when nothing was subscribed', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'unsubscribe', messageId: 4711, unsubscriptions: [fresh('never/')] })
    expect((await c.next('unsuback') as IUnsubackPacket).messageId).toBe(4711)
  })

  it('[MQTT-3.10.4-1] filters are compared character by character: a/+ is not removed by a/b, and is by a/+', async () => {
    const base = fresh('cmp/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(`${base}/+`)
    await watcher.unsubscribeAsync(`${base}/b`)
    const pub = await s.client()
    await pub.publishAsync(`${base}/b`, 'still')
    await atLeast(got, 1)
    await watcher.unsubscribeAsync(`${base}/+`)
    await watcher.subscribeAsync(`${base}-marker`)
    await pub.publishAsync(`${base}/b`, 'gone')
    await pub.publishAsync(`${base}-marker`, 'm')
    expect((await untilMarker(got, `${base}-marker`)).map(m => m.payload.toString())).toEqual(['still'])
  })

  it('[MQTT-3.10.4-2] [MQTT-3.10.4-6] after UNSUBACK no new message matching the removed filters is sent (several in one UNSUBSCRIBE)', async () => {
    const base = fresh('stop/')
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/a`, qos: 1 }, { topic: `${base}/b`, qos: 0 }, { topic: `${base}/marker`, qos: 0 }] })
    await c.next('suback')
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${base}/a`, `${base}/b`] })
    await c.next('unsuback')
    await c.ping()
    expect(c.received.filter(p => p.cmd === 'unsuback')).toHaveLength(1)
    const pub = await s.client()
    await pub.publishAsync(`${base}/a`, 'x', { qos: 1 })
    await pub.publishAsync(`${base}/b`, 'x', { qos: 1 })
    await pub.publishAsync(`${base}/marker`, 'm', { qos: 1 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${base}/marker`)
    expect(c.pending('publish')).toEqual([])
  })

  it('[MQTT-3.10.4-3] a QoS 2 delivery begun before UNSUBSCRIBE is completed after it (PUBREC still answered by PUBREL)', async () => {
    const topic = fresh('complete/')
    const c = await s.raw(4)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] })
    await c.next('suback')
    const pub = await s.client()
    await pub.publishAsync(topic, 'x', { qos: 2 })
    const p = await c.next('publish') as IPublishPacket
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] })
    await c.next('unsuback')
    c.send({ cmd: 'pubrec', messageId: p.messageId! })
    expect((await c.next('pubrel') as IPubrelPacket).messageId).toBe(p.messageId)
    c.send({ cmd: 'pubcomp', messageId: p.messageId! })
    c.sendBytes(rawPublish(`${topic}/after`, 'y', { qos: 1, id: 99 }))
    await c.next('puback')
  })
})
