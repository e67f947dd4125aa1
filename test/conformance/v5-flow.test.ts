import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet'
import { P, RawClient, prop, rawPublish } from './raw-client.js'
import { waitFor } from '../helpers.js'
import { closedWith, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 5.0 flow control (§4.9, Receive Maximum), Maximum Packet Size (§3.1.2.11.4, §3.2.2.3.6) and Topic
 * Aliases (§3.3.2.3.4), both directions, as a server is held to them. The broker of this file runs with
 * --mqtt-receive-maximum 5, --mqtt-topic-alias-max 3 and --mqtt-max-packet-size 2048.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-3.2.2-15], [MQTT-3.2.2-17], [MQTT-3.2.2-18], [MQTT-3.3.2-8], [MQTT-3.3.2-9], [MQTT-3.3.2-10],
 *   [MQTT-3.3.4-7], [MQTT-3.3.4-8]: bind the client (the server's answers to a client that breaks them
 *   are tested: 0x93, 0x94, 0x95).
 */

const s = useBroker({ mqttReceiveMaximum: 5, mqttTopicAliasMax: 3, mqttMaxPacketSize: 2048 })
const none = Buffer.alloc(0)

describe('MQTT 5 CONNACK limits', () => {
  it('§3.2.2.3 CONNACK tells the broker\'s Receive Maximum, Topic Alias Maximum and Maximum Packet Size', async () => {
    const { connack } = await RawClient.connect(s.port, 5, { clientId: fresh('lim') })
    expect(connack.properties?.receiveMaximum).toBe(5)
    expect(connack.properties?.topicAliasMaximum).toBe(3)
    expect(connack.properties?.maximumPacketSize).toBe(2048)
    // supported features: absent means available; when present, they must say so
    for (const flag of ['wildcardSubscriptionAvailable', 'sharedSubscriptionAvailable', 'subscriptionIdentifiersAvailable', 'retainAvailable'] as const) {
      expect(connack.properties?.[flag] ?? true, flag).toBe(true)
    }
    expect(connack.properties?.maximumQoS ?? 2).toBe(2)
  })
})

describe('MQTT 5 Receive Maximum', () => {
  it('§3.3.4 one QoS 2 PUBLISH more than the server\'s Receive Maximum, unreleased: DISCONNECT 0x93 and close', async () => {
    const c = await s.raw(5)
    const topic = fresh('rm/')
    for (let id = 1; id <= 5; id++) c.sendBytes(rawPublish(topic, 'x', { qos: 2, id, properties: none }))
    for (let i = 0; i < 5; i++) await c.next('pubrec')
    c.sendBytes(rawPublish(topic, 'x', { qos: 2, id: 6, properties: none }))
    await closedWith(c, [0x93])
    expect(c.received.filter(p => p.cmd === 'disconnect').map(p => p.reasonCode)).toEqual([0x93])
  })

  it('§3.3.4 QoS 2 PUBLISHes released as they go never exceed the Receive Maximum: 20 in a row are accepted', async () => {
    const c = await s.raw(5)
    const topic = fresh('rm-ok/')
    for (let id = 1; id <= 20; id++) {
      c.sendBytes(rawPublish(topic, 'x', { qos: 2, id, properties: none }))
      await c.next('pubrec')
      c.send({ cmd: 'pubrel', messageId: id })
      await c.next('pubcomp')
    }
    expect(c.isOpen).toBe(true)
  })

  it('[MQTT-3.3.4-9] [MQTT-4.9.0-1] [MQTT-4.9.0-2] [MQTT-3.3.4-10] [MQTT-4.9.0-3] the server never has more QoS 1 PUBLISHes in flight than the client\'s Receive Maximum, and keeps answering other packets meanwhile', async () => {
    const topic = fresh('flow/')
    const c = await s.raw(5, { properties: { receiveMaximum: 2 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }, { topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    for (let i = 0; i < 6; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 0 })
    // the QoS 0 marker is not held by the quota; once it is here, the server has sent what it was going to
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    await c.ping()
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${topic}/other`, qos: 0 }] })
    await c.next('suback')
    const got: string[] = []
    for (let round = 0; round < 3; round++) {
      const inFlight = c.pending('publish') as IPublishPacket[]
      expect(inFlight.map(p => p.payload.toString())).toEqual([`m${2 * round}`, `m${2 * round + 1}`])
      for (const p of inFlight) {
        await c.next('publish', 100, q => q === p)
        got.push(p.payload.toString())
      }
      for (const p of inFlight) c.send({ cmd: 'puback', messageId: p.messageId! })
      if (round === 2) break
      // two slots are free: two more come, then (after a QoS 0 marker) no third
      await waitFor(() => c.pending('publish').length >= 2, 4000, 'the next two in flight')
      await pub.publishAsync(`${topic}/marker`, 'm', { qos: 0 })
      await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    }
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
  })
})

describe('MQTT 5 Receive Maximum at QoS 2', () => {
  it('[MQTT-4.9.0-2] a QoS 2 delivery holds its slot until PUBCOMP (not PUBREC): with Receive Maximum 1 the next comes only after it', async () => {
    const topic = fresh('flow2/')
    const c = await s.raw(5, { properties: { receiveMaximum: 1 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }, { topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'one', { qos: 2 })
    await pub.publishAsync(topic, 'two', { qos: 2 })
    const first = await c.next('publish') as IPublishPacket
    expect(first.payload.toString()).toBe('one')
    c.send({ cmd: 'pubrec', messageId: first.messageId! })
    await c.next('pubrel')
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 0 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    expect(c.pending('publish'), 'a second QoS 2 PUBLISH before the first\'s PUBCOMP').toEqual([])
    c.send({ cmd: 'pubcomp', messageId: first.messageId! })
    expect((await c.next('publish') as IPublishPacket).payload.toString()).toBe('two')
  })
})

describe('MQTT 5 Receive Maximum at reconnect', () => {
  it('[MQTT-3.3.4-9] [MQTT-4.9.0-2] messages queued for an offline session go out at reconnect no more than Receive Maximum at a time', async () => {
    const topic = fresh('flowq/')
    const id = fresh('flowq')
    const away = await s.raw(5, { clientId: id, properties: { sessionExpiryInterval: 60 } })
    away.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }, { topic: `${topic}/marker`, qos: 0 }] })
    await away.next('suback')
    away.disconnect()
    await away.closed
    const pub = await s.client({ protocolVersion: 5 })
    for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `q${i}`, { qos: 1 })
    const c = await s.raw(5, { clientId: id, clean: false, properties: { receiveMaximum: 2, sessionExpiryInterval: 0 } })
    await waitFor(() => c.pending('publish').length >= 2, 4000, 'the first two queued messages')
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 0 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    const first = c.pending('publish') as IPublishPacket[]
    expect(first.map(p => p.payload.toString())).toEqual(['q0', 'q1'])
    for (const p of first) {
      await c.next('publish', 100, q => q === p)
      c.send({ cmd: 'puback', messageId: p.messageId! })
    }
    const rest: string[] = []
    for (let i = 0; i < 3; i++) {
      const p = await c.next('publish') as IPublishPacket
      rest.push(p.payload.toString())
      c.send({ cmd: 'puback', messageId: p.messageId! })
    }
    expect(rest).toEqual(['q2', 'q3', 'q4'])
  })
})

describe('MQTT 5 Maximum Packet Size', () => {
  it('[MQTT-3.1.2-24] a retained message larger than the client\'s Maximum Packet Size is not sent at SUBSCRIBE', async () => {
    const topic = fresh('mps-ret/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${topic}/big`, Buffer.alloc(500, 3), { qos: 1, retain: true })
    await pub.publishAsync(`${topic}/small`, 'small', { qos: 1, retain: true })
    const c = await s.raw(5, { properties: { maximumPacketSize: 200 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${topic}/+`, qos: 1 }, { topic: `${topic}-marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(`${topic}-marker`, 'm', { qos: 0 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}-marker`)
    expect((c.pending('publish') as IPublishPacket[]).map(p => p.topic)).toEqual([`${topic}/small`])
    await pub.publishAsync(`${topic}/big`, '', { qos: 1, retain: true })
    await pub.publishAsync(`${topic}/small`, '', { qos: 1, retain: true })
  })

  it('§3.2.2.3.6 a PUBLISH larger than the server\'s Maximum Packet Size: DISCONNECT 0x95 and close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('big/'), Buffer.alloc(3000, 1), { qos: 1, id: 1, properties: none }))
    await closedWith(c, [0x95])
    expect(c.received.filter(p => p.cmd === 'puback')).toEqual([])
  })

  it('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client\'s Maximum Packet Size is not sent to it, and counts as delivered', async () => {
    const topic = fresh('mps/')
    const id = fresh('mpsc')
    const c = await s.raw(5, { clientId: id, clean: false, properties: { maximumPacketSize: 200, sessionExpiryInterval: 60 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, Buffer.alloc(500, 2), { qos: 1 })
    await pub.publishAsync(topic, 'small', { qos: 1 })
    const p = await c.next('publish') as IPublishPacket
    expect(p.payload.toString()).toBe('small')
    c.send({ cmd: 'puback', messageId: p.messageId! })
    c.disconnect()
    await c.closed
    // not kept for a later connection either ("as if it had completed sending")
    const { client: again } = await RawClient.connect(s.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } })
    again.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await again.next('suback')
    await pub.publishAsync(`${topic}/marker`, 'm')
    await again.next('publish', 4000, q => (q as IPublishPacket).topic === `${topic}/marker`)
    expect(again.pending('publish')).toEqual([])
    again.disconnect()
  })
})

describe('MQTT 5 Topic Aliases', () => {
  it('[MQTT-3.3.2-12] the server accepts Topic Aliases 1..Topic Alias Maximum: set with a topic, then used alone', async () => {
    const base = fresh('alias/')
    const watcher = await s.client({ protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync(`${base}/#`)
    const c = await s.raw(5)
    for (let alias = 1; alias <= 3; alias++) c.sendBytes(rawPublish(`${base}/t${alias}`, `set${alias}`, { properties: prop.u16(P.topicAlias, alias) }))
    for (let alias = 3; alias >= 1; alias--) c.sendBytes(rawPublish('', `use${alias}`, { properties: prop.u16(P.topicAlias, alias) }))
    c.sendBytes(rawPublish(`${base}/t9`, 'remap', { properties: prop.u16(P.topicAlias, 1) }))
    c.sendBytes(rawPublish('', 'use-remapped', { properties: prop.u16(P.topicAlias, 1) }))
    c.sendBytes(rawPublish(`${base}/end`, 'end', { properties: none }))
    const before = await untilMarker(got, `${base}/end`)
    expect(before.map(m => [m.topic, m.payload.toString()])).toEqual([
      [`${base}/t1`, 'set1'], [`${base}/t2`, 'set2'], [`${base}/t3`, 'set3'],
      [`${base}/t3`, 'use3'], [`${base}/t2`, 'use2'], [`${base}/t1`, 'use1'],
      [`${base}/t9`, 'remap'], [`${base}/t9`, 'use-remapped']
    ])
    // the alias is not passed on to subscribers that did not ask for aliases
    expect(before.every(m => m.packet.properties?.topicAlias === undefined)).toBe(true)
  })

  for (const alias of [0, 4]) {
    it(`§3.3.2.3.4 a Topic Alias of ${alias} (0, or above the maximum 3): DISCONNECT 0x94 and close`, async () => {
      const c = await s.raw(5)
      c.sendBytes(rawPublish(fresh('alias-bad/'), 'x', { qos: 1, id: 1, properties: prop.u16(P.topicAlias, alias) }))
      await closedWith(c, [0x94])
      expect(c.received.filter(p => p.cmd === 'disconnect').map(p => p.reasonCode)).toEqual([0x94])
    })
  }

  it('§3.3.2.3.4 an empty topic name with an alias never set: protocol error, close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish('', 'x', { qos: 1, id: 1, properties: prop.u16(P.topicAlias, 2) }))
    await closedWith(c, [0x82])
  })

  it('[MQTT-3.3.2-7] Topic Alias mappings do not carry over to the next connection', async () => {
    const id = fresh('alias-conn')
    const first = await s.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    first.sendBytes(rawPublish(fresh('alias-carry/'), 'x', { qos: 1, id: 1, properties: prop.u16(P.topicAlias, 1) }))
    await first.next('puback')
    first.disconnect()
    await first.closed
    const second = await s.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } })
    second.sendBytes(rawPublish('', 'y', { qos: 1, id: 2, properties: prop.u16(P.topicAlias, 1) }))
    await closedWith(second, [0x82])
    expect(second.received.filter(p => p.cmd === 'puback')).toEqual([])
  })

  it('[MQTT-3.1.2-27] a client without Topic Alias Maximum never gets an alias from the server', async () => {
    const base = fresh('noalias/')
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 0 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    for (let i = 0; i < 20; i++) await pub.publishAsync(`${base}/t${i % 2}`, `m${i}`)
    const got: IPublishPacket[] = []
    for (let i = 0; i < 20; i++) got.push(await c.next('publish') as IPublishPacket)
    expect(got.every(p => p.properties?.topicAlias === undefined && p.topic.length > 0)).toBe(true)
  })

  it('[MQTT-3.1.2-26] [MQTT-3.3.2-11] aliases the server sends stay within the client\'s Topic Alias Maximum and resolve to the published topics', async () => {
    const base = fresh('toalias/')
    const c = await s.raw(5, { properties: { topicAliasMaximum: 2 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 0 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    const sent: string[] = []
    for (let i = 0; i < 30; i++) {
      // repeats (an alias alone) and more topics than aliases (an alias given to another topic)
      const t = `${base}/t${[0, 0, 1, 1, 2, 0, 3, 3, 4, 1][i % 10]}`
      sent.push(t)
      await pub.publishAsync(t, `m${i}`)
    }
    const map = new Map<number, string>()
    const resolved: string[] = []
    let aliasOnly = 0
    for (let i = 0; i < 30; i++) {
      const p = await c.next('publish') as IPublishPacket
      const alias = p.properties?.topicAlias
      if (alias !== undefined) {
        expect(alias).toBeGreaterThanOrEqual(1)
        expect(alias).toBeLessThanOrEqual(2)
        if (p.topic.length > 0) map.set(alias, p.topic)
        expect(map.has(alias), `alias ${alias} used before it was set`).toBe(true)
        if (p.topic.length === 0) aliasOnly++
        resolved.push(p.topic.length > 0 ? p.topic : map.get(alias)!)
      } else {
        expect(p.topic.length).toBeGreaterThan(0)
        resolved.push(p.topic)
      }
    }
    expect(resolved).toEqual(sent)
    // Tetra sends aliases when the client allows them (a topic sent again goes out with its alias alone)
    expect(aliasOnly).toBeGreaterThan(0)
  })
})

describe('MQTT 5 CONNACK from a broker with defaults', () => {
  it('[MQTT-3.2.2-9] a broker with QoS 2 (default) need not send Maximum QoS; when sent, it is 0 or 1', async () => {
    const { connack } = await RawClient.connect(s.port, 5, { clientId: fresh('mq') })
    const max = (connack as IConnackPacket).properties?.maximumQoS
    if (max !== undefined) expect([0, 1]).toContain(max)
  })
})
