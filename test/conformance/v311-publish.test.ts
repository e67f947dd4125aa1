import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrecPacket, IPubcompPacket, IPubackPacket, IPubrelPacket } from 'mqtt-packet'
import { packet, rawPublish, u16, type RawClient } from './raw-client.js'
import { atLeast, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 3.1.1 PUBLISH and its acknowledgements (§3.3-3.7), packet identifiers (§2.3.1), the QoS protocols
 * (§4.3), message ordering (§4.6), as a server is held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-2.3.1-2], [MQTT-2.3.1-3], [MQTT-4.3.x] sender rules as client, [MQTT-4.5.0-2], [MQTT-4.6.0-1..4]:
 *   bind the client (as sender of a PUBLISH, or its acknowledgements).
 * - [MQTT-4.3.3-1] "MUST NOT re-send the PUBLISH once it has sent the PUBREL": a resend could only come at a
 *   reconnect; [MQTT-4.4.0-1] there (v311-session) checks that a PUBREL, not the PUBLISH, is resent.
 * - [MQTT-3.3.5-2] (a publish the server does not authorize): needs an auth file; tested in v5-auth.
 * - [MQTT-3.3.1-1] (DUP on a resend), [MQTT-4.4.0-1], [MQTT-4.5.0-1]: resends and queued messages happen
 *   across connections; tested in v311-session.
 * - [MQTT-3.3.2-1], [MQTT-3.3.2-2] (topic name UTF-8, no wildcards): tested in v311-topics.
 * - [MQTT-4.6.0-5] (an "Unordered Topic" mechanism) is a MAY; the ordering itself is [MQTT-4.6.0-6] here.
 */

const s = useBroker()

async function subscriber (filter: string, qos: 0 | 1 | 2): Promise<RawClient> {
  const c = await s.raw(4)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })
  await c.next('suback')
  return c
}

describe('MQTT 3.1.1 PUBLISH flags and packet identifiers', () => {
  it('[MQTT-2.3.1-1] a QoS 1 PUBLISH with packet identifier 0 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawPublish(fresh('id0/'), 'x', { qos: 1, id: 0 }))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'puback')).toEqual([])
  })

  it('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set closes the connection, and nothing is delivered', async () => {
    const topic = fresh('qos3/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 2 })
    const c = await s.raw(4)
    c.sendBytes(rawPublish(topic, 'x', { flags: 0x06, id: 7 }))
    await c.awaitClose()
    await watcher.publishAsync(`${topic}/marker`, 'm')
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })

  it('[MQTT-2.3.1-5] [MQTT-3.3.1-2] [MQTT-4.3.1-1] a QoS 0 delivery has no packet identifier and DUP 0', async () => {
    const topic = fresh('q0/')
    const sub = await subscriber(topic, 2)
    const pub = await s.raw(4)
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('a'), qos: 0, retain: false, dup: false })
    const p = await sub.next('publish') as IPublishPacket
    expect(p.qos).toBe(0)
    expect(p.dup).toBe(false)
    expect(p.messageId).toBeUndefined()
  })

  it('[MQTT-2.3.1-4] [MQTT-4.3.2-1] QoS 1 deliveries in flight carry distinct non-zero packet identifiers, QoS 1, DUP 0', async () => {
    const topic = fresh('ids/')
    const sub = await subscriber(topic, 1)
    const pub = await s.client()
    for (let i = 0; i < 20; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
    const ids: number[] = []
    for (let i = 0; i < 20; i++) {
      const p = await sub.next('publish') as IPublishPacket
      expect(p.qos).toBe(1)
      expect(p.dup).toBe(false)
      ids.push(p.messageId!)
    }
    expect(ids.every(id => id > 0 && id <= 0xffff)).toBe(true)
    expect(new Set(ids).size).toBe(20)
  })

  it('[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not passed on', async () => {
    const topic = fresh('dup/')
    const sub = await subscriber(topic, 1)
    const pub = await s.raw(4)
    pub.sendBytes(rawPublish(topic, 'again', { qos: 1, id: 9, dup: true }))
    await pub.next('puback')
    const p = await sub.next('publish') as IPublishPacket
    expect(p.dup).toBe(false)
  })
})

describe('MQTT 3.1.1 QoS protocols (server as receiver and as sender)', () => {
  it('[MQTT-3.3.4-1] [MQTT-2.3.1-6] [MQTT-4.3.2-2] QoS 1: PUBACK with the PUBLISH\'s packet identifier', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'publish', topic: fresh('ack1/'), payload: Buffer.from('x'), qos: 1, messageId: 4242, retain: false, dup: false })
    expect((await c.next('puback') as IPubackPacket).messageId).toBe(4242)
  })

  it('[MQTT-3.3.4-1] [MQTT-4.3.3-2] QoS 2: PUBREC with the packet identifier, PUBCOMP for the PUBREL', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'publish', topic: fresh('ack2/'), payload: Buffer.from('x'), qos: 2, messageId: 777, retain: false, dup: false })
    expect((await c.next('pubrec') as IPubrecPacket).messageId).toBe(777)
    c.send({ cmd: 'pubrel', messageId: 777 })
    expect((await c.next('pubcomp') as IPubcompPacket).messageId).toBe(777)
  })

  it('[MQTT-3.3.4-1] QoS 0: no acknowledgement at all', async () => {
    const c = await s.raw(4)
    c.send({ cmd: 'publish', topic: fresh('ack0/'), payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    await c.ping()
    expect(c.received.map(p => p.cmd)).toEqual(['connack', 'pingresp'])
  })

  it('[MQTT-4.3.2-2] after its PUBACK, a PUBLISH reusing the packet identifier is a new message (delivered again)', async () => {
    const topic = fresh('reuse1/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    const c = await s.raw(4)
    for (const payload of ['first', 'second']) {
      c.sendBytes(rawPublish(topic, payload, { qos: 1, id: 5, dup: payload === 'second' }))
      await c.next('puback')
    }
    await atLeast(got, 2)
    expect(got.map(m => m.payload.toString())).toEqual(['first', 'second'])
  })

  it('[MQTT-4.3.3-2] a QoS 2 PUBLISH resent before PUBREL is acknowledged again and delivered once', async () => {
    const topic = fresh('exactly/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 2 })
    const c = await s.raw(4)
    c.sendBytes(rawPublish(topic, 'once', { qos: 2, id: 11 }))
    await c.next('pubrec')
    c.sendBytes(rawPublish(topic, 'once', { qos: 2, id: 11, dup: true }))
    expect((await c.next('pubrec') as IPubrecPacket).messageId).toBe(11)
    c.send({ cmd: 'pubrel', messageId: 11 })
    await c.next('pubcomp')
    await watcher.publishAsync(`${topic}/marker`, 'm', { qos: 2 })
    expect((await untilMarker(got, `${topic}/marker`)).map(m => m.payload.toString())).toEqual(['once'])
  })

  it('[MQTT-4.3.3-2] after its PUBCOMP, a QoS 2 PUBLISH reusing the packet identifier is a new message', async () => {
    const topic = fresh('reuse2/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 2 })
    const c = await s.raw(4)
    for (const payload of ['one', 'two']) {
      c.sendBytes(rawPublish(topic, payload, { qos: 2, id: 12 }))
      await c.next('pubrec')
      c.send({ cmd: 'pubrel', messageId: 12 })
      await c.next('pubcomp')
    }
    await atLeast(got, 2)
    expect(got.map(m => m.payload.toString())).toEqual(['one', 'two'])
  })

  it('[MQTT-4.3.3-1] [MQTT-2.3.1-6] as QoS 2 sender the server answers PUBREC with a PUBREL of the same packet identifier', async () => {
    const topic = fresh('send2/')
    const sub = await subscriber(topic, 2)
    const pub = await s.client()
    await pub.publishAsync(topic, 'x', { qos: 2 })
    const p = await sub.next('publish') as IPublishPacket
    expect(p.qos).toBe(2)
    expect(p.dup).toBe(false)
    sub.send({ cmd: 'pubrec', messageId: p.messageId! })
    expect((await sub.next('pubrel') as IPubrelPacket).messageId).toBe(p.messageId)
    sub.send({ cmd: 'pubcomp', messageId: p.messageId! })
    await sub.ping()
  })

  it('[MQTT-3.6.1-1] a PUBREL with reserved flags other than 0010 closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawPublish(fresh('rel/'), 'x', { qos: 2, id: 3 }))
    await c.next('pubrec')
    c.sendBytes(packet(0x60, u16(3)))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'pubcomp')).toEqual([])
  })

  it('[MQTT-3.3.5-1] overlapping subscriptions: the message goes out at the highest granted QoS', async () => {
    const base = fresh('overlap/')
    const sub = await s.raw(4)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/+`, qos: 0 }, { topic: `${base}/#`, qos: 2 }] })
    await sub.next('suback')
    const pub = await s.client()
    await pub.publishAsync(`${base}/x`, 'x', { qos: 2 })
    const p = await sub.next('publish') as IPublishPacket
    const all = [p, ...sub.pending('publish') as IPublishPacket[]]
    expect(Math.max(...all.map(x => x.qos))).toBe(2)
  })

  it('[MQTT-3.8.4-6] the delivery QoS is the lower of the published QoS and the granted QoS', async () => {
    for (const [pubQos, subQos, want] of [[2, 1, 1], [1, 2, 1], [2, 0, 0], [0, 2, 0]] as const) {
      const topic = fresh('minqos/')
      const sub = await subscriber(topic, subQos)
      const pub = await s.client()
      await pub.publishAsync(topic, 'x', { qos: pubQos })
      expect((await sub.next('publish') as IPublishPacket).qos).toBe(want)
    }
  })

  it('[MQTT-3.3.2-3] the topic name sent to a subscriber is the published one, matching its filter', async () => {
    const base = fresh('tn/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(`${base}/+/c`)
    const pub = await s.client()
    await pub.publishAsync(`${base}/b/c`, 'x')
    await atLeast(got, 1)
    expect(got[0].topic).toBe(`${base}/b/c`)
  })
})

describe('MQTT 3.1.1 framing', () => {
  it('[MQTT-7.1.1-1] packets split at every byte, and many in one write, are all read (remaining lengths of 1, 2 and 3 bytes)', async () => {
    const topic = fresh('frame/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    const c = await s.raw(4)
    const frames = [Buffer.from('a'), Buffer.alloc(200, 0x62), Buffer.alloc(20_000, 0x63)].map((p, i) => rawPublish(topic, p, { qos: 1, id: i + 1 }))
    for (const b of frames[0]) await new Promise<void>(resolve => { c.socket.write(Buffer.from([b]), () => { resolve() }) })
    c.sendBytes(Buffer.concat([frames[1], frames[2].subarray(0, 3)]))
    await new Promise<void>(resolve => { c.socket.write(frames[2].subarray(3, 10_000), () => { resolve() }) })
    c.sendBytes(Buffer.concat([frames[2].subarray(10_000), packet(0xc0)]))
    for (let i = 0; i < 3; i++) await c.next('puback')
    await c.next('pingresp')
    await atLeast(got, 3)
    expect(got.map(m => m.payload.length)).toEqual([1, 200, 20_000])
  })
})

describe('MQTT 3.1.1 ordering', () => {
  for (const qos of [0, 1, 2] as const) {
    it(`[MQTT-4.6.0-6] QoS ${qos} messages of one publisher on one topic arrive in the order sent`, async () => {
      const topic = fresh(`order${qos}/`)
      const watcher = await s.client()
      const got = collect(watcher)
      await watcher.subscribeAsync(topic, { qos: 2 })
      const pub = await s.client()
      const sent = Array.from({ length: 50 }, (_, i) => `m${i}`)
      await Promise.all(sent.map(async m => { await pub.publishAsync(topic, m, { qos }) }))
      await atLeast(got, 50)
      expect(got.map(m => m.payload.toString())).toEqual(sent)
    })
  }
})

describe('MQTT 3.1.1 retained messages', () => {
  async function retainedOf (topic: string): Promise<Array<{ payload: string, qos: number, retain: boolean }>> {
    const late = await s.client()
    const got = collect(late)
    await late.subscribeAsync([topic, `${topic}/marker`], { qos: 2 })
    await late.publishAsync(`${topic}/marker`, 'm')
    const before = await untilMarker(got, `${topic}/marker`)
    await late.endAsync()
    return before.map(m => ({ payload: m.payload.toString(), qos: m.packet.qos, retain: m.packet.retain }))
  }

  it('[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] a retained message is stored with its QoS and sent, RETAIN 1, to a new subscription', async () => {
    const topic = fresh('ret/')
    const pub = await s.client()
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    expect(await retainedOf(topic)).toEqual([{ payload: 'kept', qos: 1, retain: true }])
  })

  it('[MQTT-3.3.1-7] a QoS 0 retained message replaces the one before', async () => {
    const topic = fresh('ret0/')
    const pub = await s.client()
    await pub.publishAsync(topic, 'old', { qos: 1, retain: true })
    const live = await s.client()
    const got = collect(live)
    await live.subscribeAsync(topic, { qos: 0 })
    await atLeast(got, 1) // the retained 'old'
    await pub.publishAsync(topic, 'new', { qos: 0, retain: true })
    await atLeast(got, 2) // routed: the retained message has been replaced by now
    expect(await retainedOf(topic)).toEqual([{ payload: 'new', qos: 0, retain: true }])
  })

  it('[MQTT-3.3.1-9] a message matching an established subscription goes out with RETAIN 0, however it was published', async () => {
    const topic = fresh('ret-live/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    const pub = await s.client()
    await pub.publishAsync(topic, 'live', { qos: 1, retain: true })
    await atLeast(got, 1)
    expect(got[0].packet.retain).toBe(false)
  })

  it('[MQTT-3.3.1-10] [MQTT-3.3.1-11] a retained PUBLISH with an empty payload is delivered to subscribers and clears the topic', async () => {
    const topic = fresh('ret-clear/')
    const pub = await s.client()
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    await atLeast(got, 1)
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
    await atLeast(got, 2)
    expect(got[1].payload.length).toBe(0)
    expect(await retainedOf(topic)).toEqual([])
  })

  it('[MQTT-3.3.1-12] a PUBLISH with RETAIN 0 neither stores nor replaces the retained message', async () => {
    const topic = fresh('ret-keep/')
    const pub = await s.client()
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    await pub.publishAsync(topic, 'passing', { qos: 1, retain: false })
    expect(await retainedOf(topic)).toEqual([{ payload: 'kept', qos: 1, retain: true }])
    const other = fresh('ret-none/')
    await pub.publishAsync(other, 'passing', { qos: 1, retain: false })
    expect(await retainedOf(other)).toEqual([])
  })
})
