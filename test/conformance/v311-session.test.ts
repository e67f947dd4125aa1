import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IPubcompPacket, IPublishPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet'
import { RawClient, rawConnect, rawPublish } from './raw-client.js'
import { atLeast, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 3.1.1 sessions (§3.1.2.4 Clean Session, §3.2.2.2 Session Present, §4.1 storing state, §4.4
 * retransmission, §4.5 message receipt), as a server is held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-4.1.0-1] (state kept for the whole session) is what every resume test below relies on;
 *   persistence across a broker crash is held by test/e2e/mqtt-session-crash.test.ts.
 */

const s = useBroker()

async function connectRaw (clientId: string, clean: boolean): Promise<{ c: RawClient, ack: IConnackPacket }> {
  const c = await s.rawOpen(4)
  c.sendBytes(rawConnect({ clientId, clean }))
  const ack = await c.next('connack') as IConnackPacket
  expect(ack.returnCode).toBe(0)
  return { c, ack }
}

async function persistentWith (filter: string, qos: 0 | 1 | 2): Promise<string> {
  const id = fresh('sess')
  const { c } = await connectRaw(id, false)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })
  await c.next('suback')
  c.disconnect()
  await c.closed
  return id
}

describe('MQTT 3.1.1 sessions', () => {
  it('[MQTT-3.2.2-3] [MQTT-3.1.2-4] clean session 0 without a stored session: a new session, session present 0', async () => {
    const { ack } = await connectRaw(fresh('new'), false)
    expect(ack.sessionPresent).toBe(false)
  })

  it('[MQTT-3.2.2-2] [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.5.0-1] a stored session resumes: session present 1, its subscriptions kept and the QoS 1/2 messages that arrived meanwhile delivered in order', async () => {
    const topic = fresh('away/')
    const id = await persistentWith(topic, 2)
    const pub = await s.client()
    await pub.publishAsync(topic, 'q1', { qos: 1 })
    await pub.publishAsync(topic, 'q2', { qos: 2 })
    await pub.publishAsync(topic, 'q1b', { qos: 1 })
    const { c, ack } = await connectRaw(id, false)
    expect(ack.sessionPresent).toBe(true)
    const got: IPublishPacket[] = []
    for (let i = 0; i < 3; i++) {
      const p = await c.next('publish') as IPublishPacket
      got.push(p)
      c.send(p.qos === 1 ? { cmd: 'puback', messageId: p.messageId! } : { cmd: 'pubrec', messageId: p.messageId! })
    }
    // order is kept per topic and QoS (§4.6): q1 before q1b; q2 among them
    expect(got.filter(p => p.qos === 1).map(p => p.payload.toString())).toEqual(['q1', 'q1b'])
    expect(got.filter(p => p.qos === 2).map(p => p.payload.toString())).toEqual(['q2'])
    await pub.publishAsync(topic, 'live', { qos: 1 })
    expect((await c.next('publish', 4000, p => (p as IPublishPacket).payload.toString() === 'live') as IPublishPacket).topic).toBe(topic)
  })

  it('[MQTT-3.1.2-6] [MQTT-3.2.2-1] clean session 1 discards the stored session: session present 0, no subscriptions, nothing queued', async () => {
    const topic = fresh('discard/')
    const id = await persistentWith(topic, 1)
    const pub = await s.client()
    await pub.publishAsync(topic, 'queued', { qos: 1 })
    const { c, ack } = await connectRaw(id, true)
    expect(ack.sessionPresent).toBe(false)
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `${topic}/marker`, qos: 1 }] })
    await c.next('suback')
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    expect(c.pending('publish')).toEqual([])
    c.disconnect()
    await c.closed
    const again = await connectRaw(id, false)
    expect(again.ack.sessionPresent).toBe(false)
  })

  it('[MQTT-3.1.3-2] sessions belong to their client id: another id does not get them', async () => {
    const topic = fresh('own/')
    await persistentWith(topic, 1)
    const pub = await s.client()
    await pub.publishAsync(topic, 'for the other', { qos: 1 })
    const { c, ack } = await connectRaw(fresh('other'), false)
    expect(ack.sessionPresent).toBe(false)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(`${topic}/marker`, 'm')
    await c.next('publish')
    expect(c.pending('publish')).toEqual([])
  })

  it('[MQTT-3.1.2-7] retained messages are not part of the session: they outlive a clean session that published them', async () => {
    const topic = fresh('ret-sess/')
    const pub = await s.client({ clean: true })
    await pub.publishAsync(topic, 'stays', { qos: 1, retain: true })
    await pub.endAsync()
    const late = await s.client()
    const got = collect(late)
    await late.subscribeAsync(topic)
    await atLeast(got, 1)
    expect(got[0].payload.toString()).toBe('stays')
    await late.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-4.4.0-1] [MQTT-3.3.1-1] an unacknowledged QoS 1 PUBLISH is resent at reconnect with its packet identifier and DUP 1', async () => {
    const topic = fresh('resend1/')
    const id = await persistentWith(topic, 1)
    const { c: first } = await connectRaw(id, false)
    const pub = await s.client()
    await pub.publishAsync(topic, 'unacked', { qos: 1 })
    const sent = await first.next('publish') as IPublishPacket
    expect(sent.dup).toBe(false)
    first.destroy()
    await first.closed
    const { c, ack } = await connectRaw(id, false)
    expect(ack.sessionPresent).toBe(true)
    const again = await c.next('publish') as IPublishPacket
    expect([again.messageId, again.dup, again.payload.toString()]).toEqual([sent.messageId, true, 'unacked'])
  })

  it('[MQTT-4.4.0-1] a QoS 2 delivery at PUBREC is resumed at reconnect with a PUBREL of the same packet identifier, not the PUBLISH', async () => {
    const topic = fresh('resend2/')
    const id = await persistentWith(topic, 2)
    const { c: first } = await connectRaw(id, false)
    const pub = await s.client()
    await pub.publishAsync(topic, 'half', { qos: 2 })
    const sent = await first.next('publish') as IPublishPacket
    first.send({ cmd: 'pubrec', messageId: sent.messageId! })
    await first.next('pubrel')
    first.destroy()
    await first.closed
    const { c } = await connectRaw(id, false)
    const rel = await c.next('pubrel') as IPubrelPacket
    expect(rel.messageId).toBe(sent.messageId)
    c.send({ cmd: 'pubcomp', messageId: sent.messageId! })
    c.send({ cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(`${topic}/marker`, 'm')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    expect(c.pending('publish')).toEqual([])
  })

  it('[MQTT-3.1.4-2] [MQTT-3.2.2-2] a takeover with clean session 0 keeps the session: the old connection closes, the new one has its subscriptions', async () => {
    const topic = fresh('take/')
    const id = await persistentWith(topic, 1)
    const { c: first } = await connectRaw(id, false)
    const { c: second, ack } = await connectRaw(id, false)
    expect(ack.sessionPresent).toBe(true)
    await first.awaitClose()
    const pub = await s.client()
    await pub.publishAsync(topic, 'after takeover', { qos: 1 })
    expect((await second.next('publish') as IPublishPacket).payload.toString()).toBe('after takeover')
  })

  it('[MQTT-4.3.3-2] [MQTT-4.1.0-1] a QoS 2 PUBLISH received before a reconnect is not delivered twice when resent after it; its PUBREL then completes', async () => {
    const topic = fresh('in2/')
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 2 })
    const id = fresh('in2c')
    const { c: first } = await connectRaw(id, false)
    first.sendBytes(rawPublish(topic, 'once', { qos: 2, id: 17 }))
    await first.next('pubrec')
    first.destroy()
    await first.closed
    const { c, ack } = await connectRaw(id, false)
    expect(ack.sessionPresent).toBe(true)
    c.sendBytes(rawPublish(topic, 'once', { qos: 2, id: 17, dup: true }))
    expect((await c.next('pubrec') as IPubrecPacket).messageId).toBe(17)
    c.send({ cmd: 'pubrel', messageId: 17 })
    expect((await c.next('pubcomp') as IPubcompPacket).messageId).toBe(17)
    await watcher.publishAsync(`${topic}/marker`, 'm', { qos: 2 })
    expect((await untilMarker(got, `${topic}/marker`)).map(m => m.payload.toString())).toEqual(['once'])
  })

  it('[MQTT-4.1.0-2] a session lasts as long as its connection: a clean session keeps its subscriptions while connected', async () => {
    const topic = fresh('lasting/')
    const watcher = await s.client({ clean: true })
    const got = collect(watcher)
    await watcher.subscribeAsync(topic)
    const pub = await s.client()
    for (let i = 0; i < 3; i++) {
      await pub.publishAsync(topic, `m${i}`)
      await atLeast(got, i + 1)
    }
    expect(got.map(m => m.payload.toString())).toEqual(['m0', 'm1', 'm2'])
  })

  it('[MQTT-3.1.2-6] a clean session ends with its connection: nothing of it is found at the next connection', async () => {
    const id = fresh('clean')
    const topic = fresh('clean-end/')
    const first = await s.client({ clientId: id, clean: true })
    await first.subscribeAsync(topic, { qos: 1 })
    await first.endAsync()
    const pub = await s.client()
    await pub.publishAsync(topic, 'while away', { qos: 1 })
    const { c, ack } = await connectRaw(id, false)
    expect(ack.sessionPresent).toBe(false)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(`${topic}/marker`, 'm')
    await c.next('publish')
    expect(c.pending('publish')).toEqual([])
  })
})
