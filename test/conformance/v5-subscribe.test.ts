import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrelPacket, ISubackPacket, IUnsubackPacket } from 'mqtt-packet'
import { BAD_UTF8, NUL_TOPIC, P, packet, prop, rawSubscribe, rawUnsubscribe, u16, props, type RawClient } from './raw-client.js'
import { waitFor } from '../helpers.js'
import { closedWith, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 5.0 SUBSCRIBE / SUBACK (§3.8, §3.9), UNSUBSCRIBE / UNSUBACK (§3.10, §3.11), subscription options
 * (retain handling, retain as published, no local), subscription identifiers (§3.3.4), topic filters
 * (§4.7) and shared subscriptions (§4.8.2), as a server is held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-3.9.2-1], [MQTT-3.11.2-1], [MQTT-3.11.2-2] (no Reason String / User Property past the client's
 *   maximum packet size): see v5-connect's [MQTT-3.1.2-29] for when they may be sent at all.
 * - [MQTT-4.8.2-4], [MQTT-4.8.2-5] (a shared message owed to a client that went away): need the client's
 *   session to end at a chosen moment mid-delivery; the bus's own tests hold the shared-group queueing.
 */

const s = useBroker()

const SUBACK_CODES = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2]
const UNSUBACK_CODES = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91]
const none = Buffer.alloc(0)

async function subscribed (subscriptions: Array<{ topic: string, qos: 0 | 1 | 2, nl?: boolean, rap?: boolean, rh?: number }>, properties?: { subscriptionIdentifier?: number }): Promise<{ c: RawClient, ack: ISubackPacket }> {
  const c = await s.raw(5, { clientId: fresh('sub') })
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions, ...(properties !== undefined ? { properties } : {}) })
  const ack = await c.next('suback') as ISubackPacket
  return { c, ack }
}

describe('MQTT 5 SUBSCRIBE', () => {
  it('[MQTT-3.8.1-1] fixed header flags other than 0010 are malformed: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawSubscribe(1, [{ filter: 'a/b', options: 0 }], { flags: 0, properties: none }))
    await closedWith(c, [0x81])
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  it('[MQTT-3.8.3-2] a SUBSCRIBE without any filter is a protocol error: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(packet(0x82, u16(3), props(none)))
    await closedWith(c, [0x81, 0x82])
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  for (const [what, options] of [['a reserved bit (7) of the options', 0x80], ['requested QoS 3', 0x03], ['retain handling 3', 0x30]] as const) {
    it(`[MQTT-3.8.3-5] ${what} is malformed: close`, async () => {
      const c = await s.raw(5)
      c.sendBytes(rawSubscribe(2, [{ filter: 'a/b', options }], { properties: none }))
      await closedWith(c, [0x81, 0x82])
      expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
    })
  }

  for (const bad of [...BAD_UTF8, { name: 'U+0000', bytes: NUL_TOPIC }]) {
    it(`[MQTT-3.8.3-1] [MQTT-1.5.4-1] [MQTT-1.5.4-2] a filter with ${bad.name}: DISCONNECT 0x81 if any, close`, async () => {
      const c = await s.raw(5)
      c.sendBytes(rawSubscribe(1, [{ filter: bad.bytes, options: 0 }], { properties: none }))
      await closedWith(c, [0x81, 0x8f])
      expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
    })

    it(`[MQTT-3.10.3-1] an UNSUBSCRIBE filter with ${bad.name}: DISCONNECT 0x81 if any, close`, async () => {
      const c = await s.raw(5)
      c.sendBytes(rawUnsubscribe(1, [bad.bytes], { properties: none }))
      await closedWith(c, [0x81, 0x8f])
      expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
    })
  }

  it('§3.8.2.1.2 a Subscription Identifier of 0 is a protocol error: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawSubscribe(4, [{ filter: 'a/b', options: 0 }], { properties: prop.varint(P.subscriptionId, 0) }))
    await closedWith(c, [0x81, 0x82])
    expect(c.received.filter(p => p.cmd === 'suback')).toEqual([])
  })

  it('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-2.2.1-6] a SUBACK of the same packet identifier', async () => {
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 31337, subscriptions: [{ topic: fresh('sa/'), qos: 1 }] })
    const ack = await c.next('suback') as ISubackPacket
    expect([ack.messageId, ack.granted]).toEqual([31337, [1]])
  })

  it('[MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.8.4-7] [MQTT-3.9.3-1] [MQTT-3.9.3-2] several filters: one SUBACK, one reason code each, in order, from the SUBACK list', async () => {
    const base = fresh('multi/')
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: `${base}/q2`, qos: 2 }, { topic: `${base}/bad/#/x`, qos: 1 }, { topic: `${base}/+/q0`, qos: 0 }, { topic: `${base}/#`, qos: 1 }] })
    const ack = await c.next('suback') as ISubackPacket
    const codes = ack.granted as number[]
    expect(codes).toHaveLength(4)
    expect(codes.every(g => SUBACK_CODES.includes(g))).toBe(true)
    expect([codes[0], codes[2], codes[3]]).toEqual([2, 0, 1])
    expect(codes[1]).toBeGreaterThanOrEqual(0x80)
    await c.ping()
    expect(c.received.filter(p => p.cmd === 'suback')).toHaveLength(1)
  })

  it('[MQTT-3.8.4-8] [MQTT-3.3.4-2] the delivery QoS is the lower of the published and granted QoS; overlapping subscriptions: the highest', async () => {
    for (const [pubQos, subQos, want] of [[2, 1, 1], [1, 2, 1], [2, 0, 0]] as const) {
      const topic = fresh('minqos/')
      const { c } = await subscribed([{ topic, qos: subQos }])
      const pub = await s.client({ protocolVersion: 5 })
      await pub.publishAsync(topic, 'x', { qos: pubQos })
      expect((await c.next('publish') as IPublishPacket).qos).toBe(want)
    }
    const base = fresh('overlap/')
    const { c } = await subscribed([{ topic: `${base}/+`, qos: 0 }, { topic: `${base}/#`, qos: 2 }])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${base}/x`, 'x', { qos: 2 })
    const first = await c.next('publish') as IPublishPacket
    expect(Math.max(first.qos, ...(c.pending('publish') as IPublishPacket[]).map(p => p.qos))).toBe(2)
  })

  it('[MQTT-3.8.4-3] [MQTT-3.8.4-4] a SUBSCRIBE of an existing filter replaces it (new QoS, one copy) and, retain handling 0, re-sends the retained message', async () => {
    const topic = fresh('replace/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const { c } = await subscribed([{ topic, qos: 0 }, { topic: `${topic}/marker`, qos: 0 }])
    expect((await c.next('publish') as IPublishPacket).retain).toBe(true)
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic, qos: 1, rh: 0 }] })
    await c.next('suback')
    const again = await c.next('publish') as IPublishPacket
    expect([again.retain, again.payload.toString()]).toEqual([true, 'kept'])
    c.send({ cmd: 'puback', messageId: again.messageId! })
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    expect((c.pending('publish') as IPublishPacket[]).map(p => [p.payload.toString(), p.qos])).toEqual([['live', 1]])
  })
})

describe('MQTT 5 subscription options', () => {
  async function withRetained (): Promise<string> {
    const topic = fresh('rh/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    return topic
  }

  /** Subscribes on `c` and returns the retained messages sent for it (a QoS 0 marker follows on the same connection). */
  async function retainedAfter (c: RawClient, topic: string, rh: number, id: number): Promise<IPublishPacket[]> {
    c.send({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic, qos: 1, rh }] })
    await c.next('suback')
    const marker = fresh('rh-marker/')
    c.send({ cmd: 'subscribe', messageId: id + 1, subscriptions: [{ topic: marker, qos: 0 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(marker, 'm')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === marker)
    const got = c.pending('publish') as IPublishPacket[]
    for (const p of got) {
      await c.next('publish', 100, q => q === p)
      if (p.qos > 0) c.send({ cmd: 'puback', messageId: p.messageId! })
    }
    return got
  }

  it('[MQTT-3.3.1-9] retain handling 0: the retained messages are sent at every SUBSCRIBE', async () => {
    const topic = await withRetained()
    const c = await s.raw(5)
    expect((await retainedAfter(c, topic, 0, 1)).map(p => p.payload.toString())).toEqual(['kept'])
    expect((await retainedAfter(c, topic, 0, 3)).map(p => p.payload.toString())).toEqual(['kept'])
  })

  it('[MQTT-3.3.1-10] retain handling 1: sent for a new subscription, not when it existed', async () => {
    const topic = await withRetained()
    const c = await s.raw(5)
    expect((await retainedAfter(c, topic, 1, 1)).map(p => p.payload.toString())).toEqual(['kept'])
    expect(await retainedAfter(c, topic, 1, 3)).toEqual([])
  })

  it('[MQTT-3.3.1-11] retain handling 2: never sent at SUBSCRIBE', async () => {
    const topic = await withRetained()
    const c = await s.raw(5)
    expect(await retainedAfter(c, topic, 2, 1)).toEqual([])
  })

  it('[MQTT-3.3.1-12] retain as published 0: live messages go out with RETAIN 0', async () => {
    const topic = fresh('rap0/')
    const { c } = await subscribed([{ topic, qos: 1, rap: false }])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'r', { qos: 1, retain: true })
    expect((await c.next('publish') as IPublishPacket).retain).toBe(false)
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-3.3.1-13] retain as published 1: live messages keep their RETAIN flag', async () => {
    const topic = fresh('rap1/')
    const { c } = await subscribed([{ topic, qos: 1, rap: true }])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'r', { qos: 1, retain: true })
    await pub.publishAsync(topic, 'n', { qos: 1, retain: false })
    const a = await c.next('publish') as IPublishPacket
    c.send({ cmd: 'puback', messageId: a.messageId! })
    const b = await c.next('publish') as IPublishPacket
    expect([[a.payload.toString(), a.retain], [b.payload.toString(), b.retain]]).toEqual([['r', true], ['n', false]])
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-3.8.3-3] no local: messages the subscriber itself publishes are not sent back to it', async () => {
    const topic = fresh('nl/')
    const id = fresh('nlc')
    const me = await s.client({ protocolVersion: 5, clientId: id })
    const got = collect(me)
    await me.subscribeAsync(topic, { qos: 1, nl: true })
    await me.subscribeAsync(`${topic}/marker`, { qos: 1 })
    await me.publishAsync(topic, 'own', { qos: 1 })
    const other = await s.client({ protocolVersion: 5 })
    await other.publishAsync(topic, 'theirs', { qos: 1 })
    await other.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    expect((await untilMarker(got, `${topic}/marker`)).map(m => m.payload.toString())).toEqual(['theirs'])
  })

  it('[MQTT-3.8.3-4] no local on a shared subscription is a protocol error: close', async () => {
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${fresh('nls/')}`, qos: 0, nl: true }] })
    await closedWith(c, [0x82])
    expect(c.received.filter(p => p.cmd === 'suback' && ((p as ISubackPacket).granted as number[]).some(g => g < 0x80))).toEqual([])
  })
})

describe('MQTT 5 subscription identifiers', () => {
  it('[MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5] a delivery carries the identifiers of the matching subscriptions that have one', async () => {
    const base = fresh('sid/')
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/+`, qos: 1 }], properties: { subscriptionIdentifier: 7 } })
    await c.next('suback')
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${base}/#`, qos: 1 }], properties: { subscriptionIdentifier: 300000 } })
    await c.next('suback')
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `${base}/x`, qos: 1 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${base}/x`, 'x', { qos: 1 })
    await pub.publishAsync(`${base}/y/z`, 'only #', { qos: 1 })
    const ids: number[] = []
    const seen: IPublishPacket[] = []
    while (!seen.some(p => p.topic === `${base}/y/z`)) {
      const p = await c.next('publish') as IPublishPacket
      seen.push(p)
      c.send({ cmd: 'puback', messageId: p.messageId! })
    }
    for (const p of seen.filter(q => q.topic === `${base}/x`)) {
      const sid = p.properties?.subscriptionIdentifier
      ids.push(...(sid === undefined ? [] : Array.isArray(sid) ? sid : [sid]))
    }
    expect(ids.sort((a, b) => a - b)).toEqual([7, 300000])
    const only = seen.find(p => p.topic === `${base}/y/z`)!
    expect(only.properties?.subscriptionIdentifier).toEqual(300000)
  })
})

describe('MQTT 5 subscription identifiers on retained and queued messages', () => {
  it('[MQTT-3.3.4-3] a retained message sent at SUBSCRIBE carries the subscription\'s identifier', async () => {
    const topic = fresh('sid-ret/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const { c } = await subscribed([{ topic, qos: 1 }], { subscriptionIdentifier: 42 })
    const p = await c.next('publish') as IPublishPacket
    expect([p.retain, p.properties?.subscriptionIdentifier]).toEqual([true, 42])
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-3.3.4-3] a message queued for an offline session carries the subscription\'s identifier at reconnect', async () => {
    const topic = fresh('sid-q/')
    const id = fresh('sidq')
    const away = await s.raw(5, { clientId: id, properties: { sessionExpiryInterval: 60 } })
    away.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }], properties: { subscriptionIdentifier: 77 } })
    await away.next('suback')
    away.disconnect()
    await away.closed
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'queued', { qos: 1 })
    const c = await s.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } })
    const p = await c.next('publish') as IPublishPacket
    expect([p.payload.toString(), p.properties?.subscriptionIdentifier]).toEqual(['queued', 77])
  })
})

describe('MQTT 5 UNSUBSCRIBE', () => {
  it('[MQTT-3.10.1-1] fixed header flags other than 0010 are malformed: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawUnsubscribe(1, ['a/b'], { flags: 0, properties: none }))
    await closedWith(c, [0x81])
    expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
  })

  it('[MQTT-3.10.3-2] an UNSUBSCRIBE without any filter is a protocol error: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawUnsubscribe(4, [], { properties: none }))
    await closedWith(c, [0x81, 0x82])
    expect(c.received.filter(p => p.cmd === 'unsuback')).toEqual([])
  })

  it('[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6] [MQTT-3.11.3-1] [MQTT-3.11.3-2] one UNSUBACK, same id, a code per filter in order: 0x00 removed, 0x11 none existed', async () => {
    const base = fresh('uns/')
    const { c } = await subscribed([{ topic: `${base}/a`, qos: 0 }, { topic: `${base}/c`, qos: 0 }])
    c.send({ cmd: 'unsubscribe', messageId: 4711, unsubscriptions: [`${base}/a`, `${base}/b`, `${base}/c`] })
    const ack = await c.next('unsuback') as IUnsubackPacket
    expect(ack.messageId).toBe(4711)
    expect(ack.granted).toEqual([0x00, 0x11, 0x00])
    expect(ack.granted.every(g => UNSUBACK_CODES.includes(g))).toBe(true)
  })

  it('[MQTT-3.10.4-1] [MQTT-3.10.4-2] filters compared character by character; after UNSUBACK nothing new is sent for the removed one', async () => {
    const base = fresh('cmp/')
    const { c } = await subscribed([{ topic: `${base}/+`, qos: 0 }, { topic: `${base}-marker`, qos: 0 }])
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${base}/b`] })
    expect((await c.next('unsuback') as IUnsubackPacket).granted).toEqual([0x11])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${base}/b`, 'still')
    expect((await c.next('publish') as IPublishPacket).payload.toString()).toBe('still')
    c.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: [`${base}/+`] })
    expect((await c.next('unsuback') as IUnsubackPacket).granted).toEqual([0x00])
    await pub.publishAsync(`${base}/b`, 'gone')
    await pub.publishAsync(`${base}-marker`, 'm')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${base}-marker`)
    expect(c.pending('publish')).toEqual([])
  })

  it('[MQTT-3.10.4-3] a QoS 2 delivery begun before UNSUBSCRIBE is completed after it', async () => {
    const topic = fresh('complete/')
    const { c } = await subscribed([{ topic, qos: 2 }])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'x', { qos: 2 })
    const p = await c.next('publish') as IPublishPacket
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] })
    await c.next('unsuback')
    c.send({ cmd: 'pubrec', messageId: p.messageId! })
    expect((await c.next('pubrel') as IPubrelPacket).messageId).toBe(p.messageId)
    c.send({ cmd: 'pubcomp', messageId: p.messageId! })
    await c.ping()
  })
})

describe('MQTT 5 topic filters and shared subscriptions', () => {
  for (const filter of ['a/#/b', 'a/b#', 'a/b+', '+a/b', '']) {
    it(`[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] the filter "${filter}" is refused: SUBACK 0x8F (or 0x80), or the connection closed`, async () => {
      const c = await s.raw(5)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
      const ack = await c.nextOrClose('suback') as ISubackPacket | undefined
      if (ack !== undefined) expect([0x8f, 0x80]).toContain(ack.granted[0])
    })
  }

  for (const filter of ['$share/', '$share//a', '$share/g', '$share/g+/a', '$share/g#/a', '$share/g/']) {
    it(`[MQTT-4.8.2-1] [MQTT-4.8.2-2] the shared filter "${filter}" is refused: SUBACK 0x8F (or 0x80), or the connection closed`, async () => {
      const c = await s.raw(5)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
      const ack = await c.nextOrClose('suback') as ISubackPacket | undefined
      if (ack !== undefined) expect([0x8f, 0x80, 0x9e]).toContain(ack.granted[0])
    })
  }

  it('[MQTT-4.7.2-1] filters starting with a wildcard do not match $ topics; a $ filter does', async () => {
    const name = fresh('dollar')
    const watcher = await s.client({ protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync(['#', `+/${name}`, `$${name}/#`])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`$${name}/${name}`, 'dollar')
    await pub.publishAsync(`${name}-marker`, 'm')
    const mine = (await untilMarker(got, `${name}-marker`)).filter(m => m.topic.includes(name))
    expect(mine.map(m => m.topic)).toEqual([`$${name}/${name}`])
  })

  it('[MQTT-4.7.3-4] no normalisation of topic names or filters (case, NFC/NFD, empty levels)', async () => {
    const b = fresh('norm')
    const topics = [`${b}/Caf\u00e9`, `${b}/Cafe\u0301`, `${b}/caf\u00e9`, `${b}//Caf\u00e9`]
    const watcher = await s.client({ protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync([topics[1], `${b}-marker`])
    const pub = await s.client({ protocolVersion: 5 })
    for (const t of topics) await pub.publishAsync(t, t)
    await pub.publishAsync(`${b}-marker`, 'm')
    expect((await untilMarker(got, `${b}-marker`)).map(m => m.topic)).toEqual([topics[1]])
  })

  it('[MQTT-4.8.2-3] a shared group: each message goes to one member, at that member\'s granted QoS', async () => {
    const topic = fresh('shared/')
    const a = await subscribed([{ topic: `$share/grp/${topic}`, qos: 0 }])
    const b = await subscribed([{ topic: `$share/grp/${topic}`, qos: 1 }])
    const pub = await s.client({ protocolVersion: 5 })
    for (let i = 0; i < 10; i++) await pub.publishAsync(topic, `m${i}`, { qos: 2 })
    const got: Array<{ who: string, qos: number, payload: string }> = []
    const drain = async (c: RawClient, who: string): Promise<void> => {
      for (const p of c.pending('publish') as IPublishPacket[]) {
        await c.next('publish', 100, q => q === p)
        got.push({ who, qos: p.qos, payload: p.payload.toString() })
        if (p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId! })
      }
    }
    for (let round = 0; round < 200 && got.length < 10; round++) {
      await Promise.all([a.c.ping(), b.c.ping()])
      await drain(a.c, 'a')
      await drain(b.c, 'b')
    }
    expect(got.map(g => g.payload).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort())
    for (const g of got) expect(g.qos).toBe(g.who === 'a' ? 0 : 1)
  })

  it('§4.8.2 retained messages are not sent when a shared subscription is established; the subscription is removed by UNSUBSCRIBE with its full filter', async () => {
    const topic = fresh('shared-ret/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const { c, ack } = await subscribed([{ topic: `$share/rg/${topic}`, qos: 1 }, { topic: `${topic}-marker`, qos: 0 }])
    expect(ack.granted).toEqual([1, 0])
    await pub.publishAsync(`${topic}-marker`, 'm')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}-marker`)
    expect(c.pending('publish')).toEqual([])
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`$share/rg/${topic}`] })
    expect((await c.next('unsuback') as IUnsubackPacket).granted).toEqual([0x00])
    await pub.publishAsync(topic, 'after', { qos: 1 })
    await pub.publishAsync(`${topic}-marker`, 'm2')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}-marker`)
    expect(c.pending('publish')).toEqual([])
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-4.8.2-6] a shared message refused by its member (PUBACK 0x80) is not sent to another member', async () => {
    const topic = fresh('shared-refuse/')
    const a = await subscribed([{ topic: `$share/r/${topic}`, qos: 1 }, { topic: `${topic}-marker`, qos: 0 }])
    const b = await subscribed([{ topic: `$share/r/${topic}`, qos: 1 }, { topic: `${topic}-marker`, qos: 0 }])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'refused', { qos: 1 })
    await waitFor(() => a.c.pending('publish').length + b.c.pending('publish').length > 0, 4000, 'the shared message')
    const first = a.c.pending('publish').length > 0 ? { c: a.c, other: b.c } : { c: b.c, other: a.c }
    const p = await first.c.next('publish') as IPublishPacket
    first.c.send({ cmd: 'puback', messageId: p.messageId!, reasonCode: 0x80 })
    await pub.publishAsync(`${topic}-marker`, 'm')
    await first.other.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}-marker`)
    expect(first.other.pending('publish')).toEqual([])
  })
})
