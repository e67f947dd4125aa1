import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IConnectPacket, IPubcompPacket, IPublishPacket } from 'mqtt-packet'
import { RawClient } from './raw-client.js'
import { atLeast, collect, fresh, untilMarker, useBroker, type Received } from './support.js'

/**
 * MQTT 5.0 sessions and their expiry (§3.1.2.11.2, §4.1), message expiry (§3.3.2.3.3), wills and the will
 * delay (§3.1.2.5, §3.1.3.2), DISCONNECT's reason codes and session expiry (§3.14), retransmission (§4.4),
 * as a server is held to them.
 *
 * Waiting for the broker's clock without sleeping: `elapse(n)` drops a client whose session expires after
 * n seconds and whose will is delayed past that, so its will is published when its session ends; when the
 * will arrives, n seconds have passed on the broker's clock for everything started before it.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-4.1.0-1] (state not discarded while connected) is what every test here relies on.
 */

const s = useBroker()

async function watch (topic: string): Promise<Received[]> {
  const w = await s.client({ protocolVersion: 5 })
  const got = collect(w)
  await w.subscribeAsync([topic, `${topic}/marker`], { qos: 1 })
  return got
}

/** Resolves once `seconds` have passed on the broker (see the file comment). */
async function elapse (seconds: number): Promise<void> {
  const topic = fresh('clock/')
  const got = await watch(topic)
  const c = await s.raw(5, {
    clientId: fresh('clock'),
    clean: true,
    properties: { sessionExpiryInterval: seconds },
    will: { topic, payload: Buffer.from('tick'), qos: 1, retain: false, properties: { willDelayInterval: 3600 } }
  })
  c.destroy()
  await atLeast(got, 1, seconds * 1000 + 5000)
}

async function connect (clientId: string, clean: boolean, properties: IConnectPacket['properties'] = {}, extra: Partial<IConnectPacket> = {}): Promise<{ c: RawClient, ack: IConnackPacket }> {
  const { client, connack } = await RawClient.connect(s.port, 5, { clientId, clean, properties, ...extra })
  expect(connack.reasonCode).toBe(0)
  return { c: client, ack: connack }
}

async function leaveWith (clientId: string, filter: string, sessionExpiryInterval: number): Promise<void> {
  const { c } = await connect(clientId, true, { sessionExpiryInterval })
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
  await c.next('suback')
  c.disconnect()
  await c.closed
}

describe('MQTT 5 session expiry', () => {
  it('[MQTT-3.1.2-23] Session Expiry Interval 0 (absent): the session ends with the connection', async () => {
    const id = fresh('se0')
    await leaveWith(id, fresh('se0/'), 0)
    const { ack } = await connect(id, false)
    expect(ack.sessionPresent).toBe(false)
  })

  it('[MQTT-3.1.2-23] [MQTT-4.5.0-1] Session Expiry Interval > 0: the session is kept with the QoS 1 messages that arrived meanwhile', async () => {
    const id = fresh('se60')
    const topic = fresh('se60/')
    await leaveWith(id, topic, 60)
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos: 1 })
    const { c, ack } = await connect(id, false, { sessionExpiryInterval: 0 })
    expect(ack.sessionPresent).toBe(true)
    expect((await c.next('publish') as IPublishPacket).payload.toString()).toBe('kept')
  })

  it('[MQTT-4.1.0-2] the session is discarded once the connection is closed and its expiry has passed', async () => {
    const id = fresh('se1')
    await leaveWith(id, fresh('se1/'), 1)
    await elapse(1)
    const { ack } = await connect(id, false)
    expect(ack.sessionPresent).toBe(false)
  })

  it('§3.14.2.2.2 DISCONNECT may shorten the Session Expiry Interval: set to 0, the session ends with the connection', async () => {
    const id = fresh('dse0')
    const { c } = await connect(id, true, { sessionExpiryInterval: 60 })
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
    await c.closed
    const { ack } = await connect(id, false)
    expect(ack.sessionPresent).toBe(false)
  })

  it('§3.14.2.2.2 a non-zero Session Expiry Interval on DISCONNECT after 0 at CONNECT is a protocol error: not a normal DISCONNECT (will published, no session kept)', async () => {
    const id = fresh('dse-bad')
    const willTopic = fresh('dse-will/')
    const got = await watch(willTopic)
    const { c } = await connect(id, true, { sessionExpiryInterval: 0 }, { will: { topic: willTopic, payload: Buffer.from('will'), qos: 1, retain: false } })
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    await c.awaitClose()
    await atLeast(got, 1)
    expect(got[0].payload.toString()).toBe('will')
    const { ack } = await connect(id, false)
    expect(ack.sessionPresent).toBe(false)
  })
})

describe('MQTT 5 message expiry', () => {
  it('[MQTT-3.3.2-5] a queued message whose Message Expiry Interval passed is not delivered', async () => {
    const id = fresh('me')
    const topic = fresh('me/')
    await leaveWith(id, topic, 60)
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 600 } })
    await elapse(2)
    const { c } = await connect(id, false, { sessionExpiryInterval: 0 })
    const p = await c.next('publish') as IPublishPacket
    expect(p.payload.toString()).toBe('long')
    c.send({ cmd: 'puback', messageId: p.messageId! })
    c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: `${topic}/marker`, qos: 0 }] })
    await c.next('suback')
    await pub.publishAsync(`${topic}/marker`, 'm')
    await c.next('publish', 4000, q => (q as IPublishPacket).topic === `${topic}/marker`)
    expect(c.pending('publish')).toEqual([])
  })

  it('[MQTT-3.3.2-6] a delivered message carries the Message Expiry Interval less the time it waited', async () => {
    const id = fresh('mer')
    const topic = fresh('mer/')
    await leaveWith(id, topic, 60)
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'x', { qos: 1, properties: { messageExpiryInterval: 60 } })
    await elapse(2)
    const { c } = await connect(id, false, { sessionExpiryInterval: 0 })
    const p = await c.next('publish') as IPublishPacket
    const left = p.properties?.messageExpiryInterval
    expect(left).toBeDefined()
    expect(left!).toBeGreaterThan(0)
    expect(left!).toBeLessThanOrEqual(59)
  })

  it('[MQTT-3.3.2-6] a live delivery carries the Message Expiry Interval (not more than sent)', async () => {
    const topic = fresh('mel/')
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await c.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'x', { qos: 1, properties: { messageExpiryInterval: 30 } })
    const p = await c.next('publish') as IPublishPacket
    expect(p.properties?.messageExpiryInterval).toBeGreaterThan(0)
    expect(p.properties?.messageExpiryInterval).toBeLessThanOrEqual(30)
  })

  it('§3.3.2.3.3 a retained message expires: not sent to a subscriber after its interval; an unexpired one carries what is left', async () => {
    const topic = fresh('mer-ret/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${topic}/short`, 'gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync(`${topic}/long`, 'kept', { qos: 1, retain: true, properties: { messageExpiryInterval: 600 } })
    await elapse(2)
    const late = await s.client({ protocolVersion: 5 })
    const got = collect(late)
    await late.subscribeAsync([`${topic}/+`, `${topic}-marker`], { qos: 1 })
    await late.publishAsync(`${topic}-marker`, 'm')
    const before = await untilMarker(got, `${topic}-marker`)
    expect(before.map(m => m.payload.toString())).toEqual(['kept'])
    expect(before[0].packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(599)
    await pub.publishAsync(`${topic}/long`, '', { qos: 1, retain: true })
  })
})

describe('MQTT 5 wills', () => {
  it('[MQTT-3.1.2-7] [MQTT-3.1.2-8] [MQTT-3.1.2-14] a will (delay 0) is published, not retained, when the network connection is lost', async () => {
    const topic = fresh('will/')
    const got = await watch(topic)
    const { c } = await connect(fresh('w'), true, {}, { will: { topic, payload: Buffer.from('lost'), qos: 1, retain: false } })
    c.destroy()
    await atLeast(got, 1)
    expect([got[0].payload.toString(), got[0].packet.retain]).toEqual(['lost', false])
  })

  it('§3.1.3.2.4 a will\'s Message Expiry Interval counts from its publication: it is forwarded with the time left, after a will delay too', async () => {
    const topic = fresh('will-exp/')
    const got = await watch(topic)
    // delayed 1 s (a delay that counted into the expiry would leave at most 9 s of 10), session expiry 5 s
    const { c } = await connect(fresh('w'), true, { sessionExpiryInterval: 5 }, { will: { topic, payload: Buffer.from('expiring'), qos: 1, retain: false, properties: { willDelayInterval: 1, messageExpiryInterval: 10 } } })
    c.destroy()
    await atLeast(got, 1)
    expect(got[0].payload.toString()).toBe('expiring')
    expect(got[0].packet.properties?.messageExpiryInterval).toBe(10)
  })

  it('[MQTT-3.1.2-15] a will with retain 1 is published as a retained message', async () => {
    const topic = fresh('willr/')
    const live = await watch(topic)
    const { c } = await connect(fresh('w'), true, {}, { will: { topic, payload: Buffer.from('kept'), qos: 1, retain: true } })
    c.destroy()
    await atLeast(live, 1)
    const late = await s.client({ protocolVersion: 5 })
    const got = collect(late)
    await late.subscribeAsync(topic, { qos: 1 })
    await atLeast(got, 1)
    expect([got[0].payload.toString(), got[0].packet.retain]).toEqual(['kept', true])
    await late.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will', async () => {
    const topic = fresh('will-dc/')
    const got = await watch(topic)
    const { c } = await connect(fresh('w'), true, {}, { will: { topic, payload: Buffer.from('must not'), qos: 1, retain: false } })
    c.disconnect(0)
    await c.closed
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })

  it('§3.14.2.1 DISCONNECT 0x04 (with will message) publishes the will', async () => {
    const topic = fresh('will-04/')
    const got = await watch(topic)
    const { c } = await connect(fresh('w'), true, {}, { will: { topic, payload: Buffer.from('asked'), qos: 1, retain: false } })
    c.disconnect(0x04)
    await c.closed
    await atLeast(got, 1)
    expect(got[0].payload.toString()).toBe('asked')
  })

  it('[MQTT-3.1.2-8] a delayed will is published once its delay has passed', async () => {
    const topic = fresh('will-delay/')
    const got = await watch(topic)
    const { c } = await connect(fresh('wd'), true, { sessionExpiryInterval: 60 }, { will: { topic, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } } })
    c.destroy()
    await atLeast(got, 1, 6000)
    expect(got[0].payload.toString()).toBe('late')
  })

  it('[MQTT-3.1.2-8] a will delayed past the session\'s end is published when the session ends', async () => {
    const topic = fresh('will-end/')
    const got = await watch(topic)
    const { c } = await connect(fresh('we'), true, { sessionExpiryInterval: 1 }, { will: { topic, payload: Buffer.from('ended'), qos: 1, retain: false, properties: { willDelayInterval: 3600 } } })
    c.destroy()
    await atLeast(got, 1, 6000)
    expect(got[0].payload.toString()).toBe('ended')
  })

  it('[MQTT-3.1.3-9] a connection to the session before the will delay has passed: the will is not published', async () => {
    const topic = fresh('will-back/')
    const got = await watch(topic)
    const id = fresh('wb')
    const will = { topic, payload: Buffer.from('must not'), qos: 1 as const, retain: false, properties: { willDelayInterval: 1 } }
    const { c } = await connect(id, true, { sessionExpiryInterval: 60 }, { will })
    c.destroy()
    await c.closed
    const { c: back } = await connect(id, false, { sessionExpiryInterval: 60 })
    // the marker: another client's will with the same delay, dropped after the first
    const { c: marker } = await connect(fresh('wm'), true, { sessionExpiryInterval: 60 }, { will: { ...will, topic: `${topic}/marker`, payload: Buffer.from('marker') } })
    marker.destroy()
    expect(await untilMarker(got, `${topic}/marker`, 8000)).toEqual([])
    back.disconnect(0)
  })
})

describe('MQTT 5 expiry during a QoS 2 exchange', () => {
  it('[MQTT-4.3.3-13] the server as receiver completes a QoS 2 exchange whose message expired meanwhile: PUBREL gets PUBCOMP 0x00', async () => {
    const c = await s.raw(5)
    c.send({ cmd: 'publish', topic: fresh('exp2in/'), payload: Buffer.from('x'), qos: 2, messageId: 21, retain: false, dup: false, properties: { messageExpiryInterval: 1 } })
    await c.next('pubrec')
    await elapse(2)
    c.send({ cmd: 'pubrel', messageId: 21 })
    const comp = await c.next('pubcomp') as IPubcompPacket
    expect([comp.messageId, comp.reasonCode ?? 0]).toEqual([21, 0])
  })

  it('[MQTT-4.3.3-7] the server as sender does not expire a QoS 2 message it has sent: it is resent at reconnect after its expiry', async () => {
    const id = fresh('exp2out')
    const topic = fresh('exp2out/')
    const { c: first } = await connect(id, true, { sessionExpiryInterval: 60 })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] })
    await first.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'sent', { qos: 2, properties: { messageExpiryInterval: 1 } })
    const sent = await first.next('publish') as IPublishPacket
    first.destroy()
    await first.closed
    await elapse(2)
    const { c } = await connect(id, false, { sessionExpiryInterval: 0 })
    const again = await c.next('publish') as IPublishPacket
    expect([again.messageId, again.dup, again.payload.toString()]).toEqual([sent.messageId, true, 'sent'])
  })
})

describe('MQTT 5 QoS 2 received across a reconnect', () => {
  it('[MQTT-4.3.3-10] [MQTT-4.3.3-11] a QoS 2 PUBLISH received before a reconnect is not delivered twice when resent after it; its PUBREL gets PUBCOMP 0x00', async () => {
    const topic = fresh('in2/')
    const got = await watch(topic)
    const id = fresh('in2c')
    const { c: first } = await connect(id, true, { sessionExpiryInterval: 60 })
    first.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 17, retain: false, dup: false })
    await first.next('pubrec')
    first.destroy()
    await first.closed
    const { c, ack } = await connect(id, false, { sessionExpiryInterval: 0 })
    expect(ack.sessionPresent).toBe(true)
    c.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 17, retain: false, dup: true })
    expect((await c.next('pubrec')).messageId).toBe(17)
    c.send({ cmd: 'pubrel', messageId: 17 })
    const comp = await c.next('pubcomp') as IPubcompPacket
    expect([comp.messageId, comp.reasonCode ?? 0]).toEqual([17, 0])
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    expect((await untilMarker(got, `${topic}/marker`)).map(m => m.payload.toString())).toEqual(['once'])
  })
})

describe('MQTT 5 retransmission', () => {
  it('[MQTT-4.4.0-1] [MQTT-3.3.1-1] an unacknowledged QoS 1 PUBLISH is resent at reconnect with its packet identifier and DUP 1', async () => {
    const id = fresh('rs')
    const topic = fresh('rs/')
    const { c: first } = await connect(id, true, { sessionExpiryInterval: 60 })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await first.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'unacked', { qos: 1 })
    const sent = await first.next('publish') as IPublishPacket
    expect(sent.dup).toBe(false)
    first.destroy()
    await first.closed
    const { c, ack } = await connect(id, false, { sessionExpiryInterval: 0 })
    expect(ack.sessionPresent).toBe(true)
    const again = await c.next('publish') as IPublishPacket
    expect([again.messageId, again.dup, again.payload.toString()]).toEqual([sent.messageId, true, 'unacked'])
  })

  it('[MQTT-4.4.0-2] a PUBLISH the client answered with PUBACK 0x80 is acknowledged: not resent at reconnect', async () => {
    const id = fresh('rs80')
    const topic = fresh('rs80/')
    const { c: first } = await connect(id, true, { sessionExpiryInterval: 60 })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }, { topic: `${topic}/marker`, qos: 0 }] })
    await first.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'refused', { qos: 1 })
    const sent = await first.next('publish') as IPublishPacket
    first.send({ cmd: 'puback', messageId: sent.messageId!, reasonCode: 0x80 })
    await first.ping()
    first.destroy()
    await first.closed
    const { c, ack } = await connect(id, false, { sessionExpiryInterval: 0 })
    expect(ack.sessionPresent).toBe(true)
    await pub.publishAsync(`${topic}/marker`, 'm')
    await c.next('publish', 4000, p => (p as IPublishPacket).topic === `${topic}/marker`)
    expect(c.pending('publish')).toEqual([])
  })
})
