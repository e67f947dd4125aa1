import { describe, expect, it } from 'vitest'
import type { IPubackPacket, IPublishPacket } from 'mqtt-packet'
import { BAD_UTF8, P, field, prop, rawConnect, rawPublish, wireUserProperties, type RawClient } from './raw-client.js'
import { atLeast, closedWith, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 5.0 publish properties carried end to end (§3.3.2.3: Payload Format Indicator, Content Type,
 * Response Topic, Correlation Data, User Property), their checks, the will's properties (§3.1.3.2), request
 * and response, and the meeting of versions: a 3.1.1 subscriber of a 5.0 publisher and the other way round,
 * and HTTP publish's properties reaching MQTT 5 subscribers.
 *
 * Server statements of these chapters not tested here, and why: none of the property statements that bind
 * a server is left out; [MQTT-3.3.2-5], [MQTT-3.3.2-6] (Message Expiry) are in v5-session.
 */

const s = useBroker()

/** A raw v5 subscriber that also keeps the bytes it receives (to check the order of properties on the wire). */
async function rawSubscriber (filter: string): Promise<{ c: RawClient, bytes: () => Buffer }> {
  const c = await s.raw(5)
  const chunks: Buffer[] = []
  c.socket.on('data', (d: Buffer) => { chunks.push(d) })
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
  await c.next('suback')
  return { c, bytes: () => Buffer.concat(chunks) }
}

const pairs = (list: Array<[string, string]>): Buffer => Buffer.concat(list.map(([k, v]) => prop.pair(P.userProperty, k, v)))

describe('MQTT 5 publish properties forwarded', () => {
  it('[MQTT-3.3.2-17] [MQTT-3.3.2-18] User Properties are forwarded unaltered and in their order, repeated and interleaved names too', async () => {
    const topic = fresh('up/')
    const sub = await rawSubscriber(topic)
    const list: Array<[string, string]> = [['b', '1'], ['a', '2'], ['b', '3'], ['é', 'ü'], ['', '']]
    const pub = await s.raw(5)
    pub.sendBytes(rawPublish(topic, 'x', { qos: 1, id: 1, properties: pairs(list) }))
    await pub.next('puback')
    await sub.c.next('publish')
    expect(wireUserProperties(sub.bytes())).toEqual([list])
  })

  it('[MQTT-3.3.2-18] the order of interleaved User Properties is kept in a retained message and in a message queued for an offline session', async () => {
    const topic = fresh('up-kept/')
    const list: Array<[string, string]> = [['n', '1'], ['m', '2'], ['n', '3']]
    const id = fresh('upq')
    const away = await s.raw(5, { clientId: id, properties: { sessionExpiryInterval: 60 } })
    away.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await away.next('suback')
    away.disconnect()
    await away.closed
    const pub = await s.raw(5)
    pub.sendBytes(rawPublish(topic, 'kept', { qos: 1, id: 1, retain: true, properties: pairs(list) }))
    await pub.next('puback')
    const retained = await rawSubscriber(topic)
    await retained.c.next('publish')
    const back = await s.rawOpen(5)
    const chunks: Buffer[] = []
    back.socket.on('data', (d: Buffer) => { chunks.push(d) })
    back.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: id, clean: false, keepalive: 0, properties: { sessionExpiryInterval: 0 } })
    await back.next('connack')
    await back.next('publish')
    expect(wireUserProperties(retained.bytes())).toEqual([list])
    expect(wireUserProperties(Buffer.concat(chunks))).toEqual([list])
    pub.sendBytes(rawPublish(topic, '', { qos: 1, id: 2, retain: true, properties: Buffer.alloc(0) }))
    await pub.next('puback')
  })

  it('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-20] Payload Format Indicator, Response Topic, Correlation Data and Content Type are forwarded unaltered', async () => {
    const topic = fresh('props/')
    const sub = await rawSubscriber(topic)
    const pub = await s.client({ protocolVersion: 5 })
    const properties = { payloadFormatIndicator: true, contentType: 'application/json; charset=utf-8', responseTopic: `${topic}/reply`, correlationData: Buffer.from([0, 1, 2, 0xff]), userProperties: { k: 'v' } }
    await pub.publishAsync(topic, '{"a":1}', { qos: 1, properties })
    const p = await sub.c.next('publish') as IPublishPacket
    expect(p.properties).toMatchObject({ payloadFormatIndicator: true, contentType: properties.contentType, responseTopic: properties.responseTopic, userProperties: { k: 'v' } })
    expect(Buffer.compare(p.properties!.correlationData!, properties.correlationData)).toBe(0)
  })

  it('[MQTT-3.3.2-17] a retained message keeps its properties for later subscribers', async () => {
    const topic = fresh('ret-props/')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'r', { qos: 1, retain: true, properties: { contentType: 'text/plain', userProperties: { src: 'retained' } } })
    const sub = await rawSubscriber(topic)
    const p = await sub.c.next('publish') as IPublishPacket
    expect([p.retain, p.properties?.contentType, p.properties?.userProperties]).toEqual([true, 'text/plain', { src: 'retained' }])
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('§3.3.2.3.2 Payload Format Indicator 1 with a payload that is not UTF-8: PUBACK 0x99 (or DISCONNECT 0x99), not delivered', async () => {
    const topic = fresh('pfi/')
    const watcher = await s.client({ protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`])
    const c = await s.raw(5)
    c.sendBytes(rawPublish(topic, Buffer.from([0x61, 0xff, 0xfe]), { qos: 1, id: 1, properties: prop.byte(P.payloadFormat, 1) }))
    const ack = await c.nextOrClose('puback') as IPubackPacket | undefined
    if (ack !== undefined) expect(ack.reasonCode).toBe(0x99)
    else await closedWith(c, [0x99])
    await watcher.publishAsync(`${topic}/marker`, 'm')
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })

  it('[MQTT-3.3.2-14] a Response Topic with a wildcard is a protocol error: close, not delivered', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('rt/'), 'x', { qos: 1, id: 1, properties: prop.str(P.responseTopic, 'reply/+') }))
    await closedWith(c, [0x82, 0x90])
    expect(c.received.filter(p => p.cmd === 'puback' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
  })

  it('[MQTT-3.3.2-13] a Response Topic of ill-formed UTF-8 is malformed: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('rt8/'), 'x', { qos: 1, id: 1, properties: prop.str(P.responseTopic, BAD_UTF8[1].bytes) }))
    await closedWith(c, [0x81])
    expect(c.received.filter(p => p.cmd === 'puback' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
  })

  it('[MQTT-3.3.2-19] a Content Type of ill-formed UTF-8 is malformed: close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('ct8/'), 'x', { qos: 1, id: 1, properties: prop.str(P.contentType, BAD_UTF8[0].bytes) }))
    await closedWith(c, [0x81])
    expect(c.received.filter(p => p.cmd === 'puback' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
  })

  for (const [where, k, v] of [['name', BAD_UTF8[2].bytes, Buffer.from('v')], ['value', Buffer.from('k'), Buffer.from([0x61, 0, 0x62])]] as const) {
    it(`[MQTT-1.5.7-1] a User Property whose ${where} is not well-formed UTF-8: close`, async () => {
      const c = await s.raw(5)
      c.sendBytes(rawPublish(fresh('up8/'), 'x', { qos: 1, id: 1, properties: Buffer.concat([Buffer.from([P.userProperty]), field(k), field(v)]) }))
      await closedWith(c, [0x81])
      expect(c.received.filter(p => p.cmd === 'puback' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
    })
  }
})

describe('MQTT 5 will properties', () => {
  it('[MQTT-3.1.3-10] the will\'s User Properties keep their order; its Content Type, Response Topic and Correlation Data are carried', async () => {
    const topic = fresh('willp/')
    const sub = await rawSubscriber(topic)
    const list: Array<[string, string]> = [['z', '1'], ['y', '2'], ['z', '3']]
    const willProps = Buffer.concat([pairs(list), prop.str(P.contentType, 'text/plain'), prop.str(P.responseTopic, `${topic}/r`), prop.str(P.correlationData, Buffer.from([9, 8]))])
    const c = await s.rawOpen(5)
    c.sendBytes(rawConnect({ level: 5, clientId: fresh('wp'), will: { topic, payload: 'gone', qos: 1, properties: willProps } }))
    await c.next('connack')
    c.destroy()
    const p = await sub.c.next('publish') as IPublishPacket
    expect([p.properties?.contentType, p.properties?.responseTopic, [...(p.properties?.correlationData ?? [])]]).toEqual(['text/plain', `${topic}/r`, [9, 8]])
    expect(wireUserProperties(sub.bytes())).toEqual([list])
  })
})

describe('request / response and versions side by side', () => {
  it('§4.10 request / response: the responder answers on the Response Topic with the Correlation Data, end to end', async () => {
    const base = fresh('rr/')
    const responder = await s.client({ protocolVersion: 5 })
    responder.on('message', (_topic, payload, packet) => {
      const props = packet.properties
      if (props?.responseTopic === undefined) return
      void responder.publishAsync(props.responseTopic, `re:${payload.toString()}`, { qos: 1, properties: { correlationData: props.correlationData } })
    })
    await responder.subscribeAsync(`${base}/req`, { qos: 1 })
    const requester = await s.client({ protocolVersion: 5 })
    const got = collect(requester)
    await requester.subscribeAsync(`${base}/reply`, { qos: 1 })
    await requester.publishAsync(`${base}/req`, 'ping', { qos: 1, properties: { responseTopic: `${base}/reply`, correlationData: Buffer.from('id-42') } })
    await atLeast(got, 1)
    expect(got[0].payload.toString()).toBe('re:ping')
    expect(got[0].packet.properties?.correlationData?.toString()).toBe('id-42')
  })

  it('§3.3.2.3 a 3.1.1 subscriber gets a 5.0 publisher\'s message, without properties', async () => {
    const topic = fresh('v5to4/')
    const sub = await s.raw(4)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await sub.next('suback')
    const pub = await s.client({ protocolVersion: 5 })
    await pub.publishAsync(topic, 'from five', { qos: 1, properties: { userProperties: { a: 'b' }, contentType: 'text/plain', messageExpiryInterval: 60 } })
    const p = await sub.next('publish') as IPublishPacket
    expect([p.topic, p.payload.toString(), p.qos, p.properties]).toEqual([topic, 'from five', 1, undefined])
    expect(sub.parseError).toBeUndefined()
  })

  it('§3.3.2.3 a 5.0 subscriber gets a 3.1.1 publisher\'s message, with no properties added', async () => {
    const topic = fresh('v4to5/')
    const sub = await rawSubscriber(topic)
    const pub = await s.client({ protocolVersion: 4 })
    await pub.publishAsync(topic, 'from four', { qos: 1 })
    const p = await sub.c.next('publish') as IPublishPacket
    expect(p.payload.toString()).toBe('from four')
    const props = p.properties ?? {}
    expect([props.userProperties, props.contentType, props.responseTopic, props.correlationData, props.payloadFormatIndicator, props.messageExpiryInterval]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined])
  })

  it('HTTP publish\'s MQTT 5 properties reach an MQTT 5 subscriber unchanged, and a 3.1.1 subscriber gets the message', async () => {
    const topic = fresh('http-props/')
    const sub5 = await rawSubscriber(topic)
    const sub4 = await s.raw(4)
    sub4.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    await sub4.next('suback')
    const res = await fetch(`${s.broker.url}/v1/pubsub/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic, payload: 'hi', encoding: 'utf8', qos: 1, userProperties: { trace: ['1', '2'] }, contentType: 'text/plain', responseTopic: `${topic}/r`, correlationData: 'c-1', payloadFormat: 1 })
    })
    expect(res.status).toBe(200)
    const p = await sub5.c.next('publish') as IPublishPacket
    expect(p.properties).toMatchObject({ userProperties: { trace: ['1', '2'] }, contentType: 'text/plain', responseTopic: `${topic}/r`, payloadFormatIndicator: true })
    expect(p.properties?.correlationData?.toString()).toBe('c-1')
    const q = await sub4.next('publish') as IPublishPacket
    expect(q.payload.toString()).toBe('hi')
  })
})
