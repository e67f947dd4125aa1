import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import type { IConnackPacket, IDisconnectPacket, ISubackPacket, Packet } from 'mqtt-packet'
import { BAD_UTF8, P, RawClient, field, packet, prop, props, rawConnect, rawPublish } from './raw-client.js'
import { startTestBroker } from '../helpers.js'
import { tlsFixtures } from '../fixtures/tls.js'
import { closedWith, collect, fresh, refusedConnect, untilMarker, useBroker } from './support.js'

/**
 * MQTT 5.0 CONNECT / CONNACK (§3.1, §3.2), PINGREQ (§3.12), DISCONNECT (§3.14) and the handling of errors
 * (§4.13), as a server is held to them. The broker of this file runs with --mqtt-max-qos 1 and
 * --mqtt-retain-available false, to check what CONNACK says about those limits and how they are kept.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-3.1.2-7], [MQTT-3.1.2-8], [MQTT-3.1.2-10], [MQTT-3.1.2-14], [MQTT-3.1.2-15], [MQTT-3.1.3-9],
 *   [MQTT-3.1.2-23], [MQTT-4.1.0-2]: wills and session expiry, in v5-session.
 * - [MQTT-3.1.2-24..27]: maximum packet size and topic aliases, in v5-flow.
 * - [MQTT-3.1.3-10]: will user properties, in v5-properties. [MQTT-3.1.4-2], [MQTT-3.1.2-30], AUTH: v5-auth.
 * - [MQTT-3.1.2-16], [MQTT-3.1.2-18] (no user name / password when the flag is 0), [MQTT-3.1.3-1] (field
 *   order): a field not flagged cannot be told from trailing bytes; a CONNECT cut short is tested instead.
 * - [MQTT-3.1.2-20], [MQTT-3.1.2-21], [MQTT-3.2.2-4], [MQTT-3.2.2-5], [MQTT-3.2.2-11], [MQTT-3.2.2-14],
 *   [MQTT-3.2.2-15], [MQTT-3.2.2-17], [MQTT-3.2.2-18], [MQTT-3.2.2-21], [MQTT-3.14.4-1] as sender client:
 *   bind the client.
 * - [MQTT-3.2.2-19], [MQTT-3.2.2-20] (no Reason String / User Property that would make the CONNACK
 *   larger than the client's maximum packet size): a CONNACK with these needs a refusal with a long
 *   reason; the packet-size rule itself is tested in v5-flow.
 * - [MQTT-4.2.0-1] (an ordered, lossless transport): TCP and WebSocket are; [MQTT-6.0.0-1] (text frames
 *   refused) is tested in v311-connect, the transport being the same for both versions.
 * - [MQTT-1.5.5-1] (Variable Byte Integers in the fewest bytes) binds the sender; nothing says how a
 *   receiver treats a longer encoding.
 * [MQTT-3.14.0-1] is checked on every refused CONNECT (refusedConnect()), [MQTT-3.14.2-1] and
 * [MQTT-3.14.2-2] on every DISCONNECT the server sends (closedWith()).
 */

const s = useBroker({ mqttMaxQos: 1, mqttRetainAvailable: false })

const CONNACK_CODES = [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f]

function v5Connect (c: Parameters<typeof rawConnect>[0] = {}): Buffer {
  return rawConnect({ level: 5, clientId: fresh('v5c'), ...c })
}

async function refused (bytes: Buffer, allowed?: number[]): Promise<RawClient> {
  return await refusedConnect(s, bytes, allowed)
}

describe('MQTT 5 CONNECT / CONNACK', () => {
  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async () => {
    const c = await refused(packet(0xc0))
    expect(c.received.filter(p => p.cmd === 'pingresp')).toEqual([])
  })

  it('[MQTT-3.1.0-2] [MQTT-3.2.0-2] [MQTT-4.13.1-1] a second CONNECT is a protocol error: DISCONNECT 0x82 if any, close, one CONNACK only', async () => {
    const c = await s.raw(5)
    c.sendBytes(v5Connect())
    await closedWith(c, [0x82])
    expect(c.received.filter(p => p.cmd === 'connack')).toHaveLength(1)
  })

  it('[MQTT-3.1.2-1] a protocol name other than "MQTT" is refused: the connection is closed (CONNACK 0x84 if any)', async () => {
    await refused(v5Connect({ protocolName: 'MQTX' }), [0x84])
  })

  it('[MQTT-3.1.2-2] protocol version 6 is refused with a CONNACK (0x84, or 3.1.1\'s 0x01), then the connection is closed', async () => {
    // 5.0 allows 0x84 here; a level above 5 is not 5.0 either, and 3.1.1 asks 0x01: either is a refusal
    const c = await refused(v5Connect({ level: 6 }), [0x84, 0x01])
    expect(c.received.map(p => p.cmd)).toEqual(['connack'])
  })

  it('[MQTT-3.1.2-3] the reserved connect flag set is a malformed packet: closed unaccepted', async () => {
    await refused(v5Connect({ flags: 0x03 }))
  })

  it('[MQTT-3.1.2-9] will flag 1 without will properties, topic and message: closed unaccepted', async () => {
    await refused(packet(0x10, field('MQTT'), Buffer.from([5, 0x06, 0, 0]), props(Buffer.alloc(0)), field(fresh('w'))))
  })

  it('[MQTT-3.1.2-11] will flag 0 with a will QoS: closed unaccepted', async () => {
    await refused(v5Connect({ flags: 0x02 | 0x10 }))
  })

  it('[MQTT-3.1.2-12] a will QoS of 3: closed unaccepted', async () => {
    await refused(v5Connect({ will: { topic: 'w/q3', payload: 'x', qos: 3 } }))
  })

  it('[MQTT-3.1.2-13] will flag 0 with will retain 1: closed unaccepted', async () => {
    await refused(v5Connect({ flags: 0x02 | 0x20 }))
  })

  it('[MQTT-3.1.2-17] user name flag 1 without a user name: closed unaccepted', async () => {
    await refused(packet(0x10, field('MQTT'), Buffer.from([5, 0x82, 0, 0]), props(Buffer.alloc(0)), field(fresh('nouser'))))
  })

  it('[MQTT-3.1.2-19] password flag 1 without a password: closed unaccepted', async () => {
    await refused(packet(0x10, field('MQTT'), Buffer.from([5, 0xc2, 0, 0]), props(Buffer.alloc(0)), field(fresh('nopw')), field('user')))
  })

  it('§3.1.2.9 MQTT 5 allows a password without a user name (accepted when no auth is configured)', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(v5Connect({ password: 'only' }))
    expect((await c.next('connack') as IConnackPacket).reasonCode).toBe(0)
  })

  it('[MQTT-3.1.2-22] [MQTT-3.2.2-22] keep alive 1 s and silence: the server closes the connection (within the bound)', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(v5Connect({ keepalive: 1 }))
    const ack = await c.next('connack') as IConnackPacket
    const keepAlive = ack.properties?.serverKeepAlive ?? 1
    await closedWith(c, [0x8d], 8000)
    expect(keepAlive).toBeGreaterThan(0)
  }, 15_000)

  it('[MQTT-3.1.2-22] [MQTT-3.2.2-21] a Server Keep Alive in CONNACK is the keep alive the server enforces (--mqtt-keepalive-max 1)', async () => {
    // a broker of its own: a keep alive maximum of 1 s would close the idle clients of the other tests
    const own = await startTestBroker({ mqttConnectRate: 0, mqttSysIntervalMs: 0, mqttKeepAliveMax: 1 })
    try {
      const { client, connack } = await RawClient.connect(own.mqtt.port, 5, { clientId: fresh('ska'), keepalive: 60 })
      expect(connack.properties?.serverKeepAlive).toBe(1)
      await closedWith(client, [0x8d], 8000)
    } finally {
      await own.stop()
    }
  })

  it('[MQTT-3.1.2-28] Request Response Information 0 (and absent): no Response Information in CONNACK', async () => {
    for (const properties of [prop.byte(P.requestResponseInfo, 0), Buffer.alloc(0)]) {
      const c = await s.rawOpen(5)
      c.sendBytes(v5Connect({ properties }))
      const ack = await c.next('connack') as IConnackPacket
      expect(ack.properties?.responseInformation).toBeUndefined()
    }
  })

  it('[MQTT-3.1.2-29] Request Problem Information 0: no Reason String or User Property on SUBACK, UNSUBACK, PUBACK', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(v5Connect({ properties: prop.byte(P.requestProblemInfo, 0) }))
    await c.next('connack')
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [fresh('never/')] })
    c.send({ cmd: 'publish', topic: fresh('nobody/'), payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false })
    const answers: Packet[] = [await c.next('unsuback'), await c.next('puback')]
    // a refused filter last: the server may answer SUBACK 0x8F or close the connection
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bad/#/filter', qos: 0 }] })
    const suback = await c.nextOrClose('suback')
    if (suback !== undefined) answers.push(suback)
    for (const p of answers) {
      const properties = (p as { properties?: { reasonString?: string, userProperties?: unknown } }).properties
      expect(properties?.reasonString, p.cmd).toBeUndefined()
      expect(properties?.userProperties, p.cmd).toBeUndefined()
    }
  })

  it('[MQTT-3.1.3-3] [MQTT-3.1.4-1] a CONNECT cut short before the client id: closed without a successful CONNACK', async () => {
    await refused(packet(0x10, field('MQTT'), Buffer.from([5, 0x02, 0, 0]), props(Buffer.alloc(0))))
  })

  for (const bad of [...BAD_UTF8, { name: 'U+0000', bytes: Buffer.from([0x61, 0, 0x62]) }]) {
    it(`[MQTT-3.1.3-4] [MQTT-3.1.3-8] [MQTT-1.5.4-1] [MQTT-1.5.4-2] a client id with ${bad.name}: closed unaccepted (CONNACK 0x81/0x85 if any)`, async () => {
      await refused(v5Connect({ clientId: bad.bytes }), [0x81, 0x85])
    })
  }

  it('[MQTT-3.1.3-11] a will topic of ill-formed UTF-8: closed unaccepted', async () => {
    await refused(v5Connect({ will: { topic: BAD_UTF8[1].bytes, payload: 'x', qos: 0 } }), [0x81, 0x90])
  })

  it('[MQTT-3.1.3-12] a user name of ill-formed UTF-8: closed unaccepted', async () => {
    await refused(v5Connect({ username: BAD_UTF8[0].bytes }), [0x81, 0x86])
  })

  it('[MQTT-3.1.3-5] [MQTT-3.1.4-5] a 23-byte client id of letters and digits is accepted with CONNACK 0x00', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(v5Connect({ clientId: ('A1' + Math.random().toString(36).slice(2) + 'abcdefghijklmnopqrstu').slice(0, 23) }))
    expect((await c.next('connack') as IConnackPacket).reasonCode).toBe(0)
  })

  it('[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] a zero-length client id gets a new Assigned Client Identifier in CONNACK, distinct per connection', async () => {
    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      const c = await s.rawOpen(5)
      c.sendBytes(v5Connect({ clientId: '' }))
      const ack = await c.next('connack') as IConnackPacket
      expect(ack.reasonCode).toBe(0)
      ids.push(ack.properties?.assignedClientIdentifier ?? '')
    }
    expect(ids.every(id => id.length > 0)).toBe(true)
    expect(ids[0]).not.toBe(ids[1])
  })

  it('[MQTT-3.1.4-3] a second connection with the same client id: the first gets DISCONNECT 0x8E and is closed', async () => {
    const id = fresh('take')
    const first = await s.raw(5, { clientId: id })
    await s.raw(5, { clientId: id })
    await first.awaitClose()
    const d = first.received.filter((p): p is IDisconnectPacket => p.cmd === 'disconnect')
    expect(d.map(p => p.reasonCode)).toEqual([0x8e])
    // [MQTT-3.14.2-2] no Session Expiry Interval on a server's DISCONNECT; [MQTT-3.14.4-1] nothing after it
    expect(d[0].properties?.sessionExpiryInterval).toBeUndefined()
    expect(first.received[first.received.length - 1].cmd).toBe('disconnect')
  })

  it('[MQTT-3.1.4-6] after a refused CONNECT nothing the client sent is processed', async () => {
    const topic = fresh('after-refusal/')
    await refused(Buffer.concat([v5Connect({ level: 6 }), rawPublish(topic, 'must not exist', { qos: 0, retain: false, properties: Buffer.alloc(0) })]), [0x84, 0x01])
    const c = await refused(Buffer.concat([v5Connect({ flags: 0x03 }), rawPublish(topic, 'must not exist', { properties: Buffer.alloc(0) })]))
    expect(c.isOpen).toBe(false)
    const watcher = await s.client({ protocolVersion: 5 })
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`])
    await watcher.publishAsync(`${topic}/marker`, 'm')
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })

  it('[MQTT-3.2.0-1] the CONNACK comes before any other packet, even when packets follow the CONNECT at once', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(Buffer.concat([v5Connect(), packet(0xc0)]))
    await c.next('pingresp')
    expect(c.received.map(p => p.cmd)).toEqual(['connack', 'pingresp'])
  })

  it('[MQTT-3.2.2-1] [MQTT-3.2.2-8] the CONNACK flags have bits 7-1 zero and its reason code is one of §3.2.2.2', async () => {
    const sock = await s.rawOpen(5)
    const raw: Buffer[] = []
    sock.socket.on('data', (d: Buffer) => { raw.push(d) })
    sock.sendBytes(v5Connect())
    await sock.next('connack')
    const bytes = Buffer.concat(raw)
    expect(bytes[0]).toBe(0x20)
    const lenBytes = bytes[1] & 0x80 ? 2 : 1
    expect(bytes[1 + lenBytes] & 0xfe).toBe(0)
    expect(CONNACK_CODES).toContain(bytes[2 + lenBytes])
    expect(sock.parseError).toBeUndefined()
  })

  it('[MQTT-3.2.2-2] [MQTT-3.1.2-4] clean start 1 discards the session: session present 0', async () => {
    const id = fresh('cs')
    const first = await s.raw(5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cs/x', qos: 1 }] })
    await first.next('suback')
    first.disconnect()
    await first.closed
    const { client, connack } = await RawClient.connect(s.port, 5, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } })
    expect(connack.sessionPresent).toBe(false)
    client.disconnect()
    await client.closed
  })

  it('[MQTT-3.2.2-3] [MQTT-3.1.2-5] [MQTT-3.1.2-6] clean start 0: session present 1 with a stored session, 0 without', async () => {
    const id = fresh('cs0')
    const first = await RawClient.connect(s.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(first.connack.sessionPresent).toBe(false)
    first.client.disconnect()
    await first.client.closed
    const again = await RawClient.connect(s.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } })
    expect(again.connack.sessionPresent).toBe(true)
    again.client.disconnect()
  })

  it('[MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-4.13.2-1] a refusing CONNACK has session present 0 and the connection is closed, even with a stored session', async () => {
    const id = fresh('refuse-sp')
    const first = await RawClient.connect(s.port, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    first.client.disconnect()
    await first.client.closed
    const c = await refused(v5Connect({ clientId: id, clean: false, will: { topic: 'w/q2', payload: 'x', qos: 2 } }), [0x9b])
    for (const a of c.received.filter((p): p is IConnackPacket => p.cmd === 'connack')) expect(a.sessionPresent).toBe(false)
  })

  it('[MQTT-3.2.2-9] a server without QoS 2 says so: CONNACK Maximum QoS 1 (--mqtt-max-qos 1)', async () => {
    const { connack } = await RawClient.connect(s.port, 5, { clientId: fresh('mq') })
    expect(connack.properties?.maximumQoS).toBe(1)
  })

  it('[MQTT-3.2.2-10] a server without QoS 2 still accepts SUBSCRIBE at QoS 0, 1 and 2 (granting at most 1)', async () => {
    const c = await s.raw(5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: fresh('g0/'), qos: 0 }, { topic: fresh('g1/'), qos: 1 }, { topic: fresh('g2/'), qos: 2 }] })
    const ack = await c.next('suback') as ISubackPacket
    expect(ack.granted).toEqual([0, 1, 1])
  })

  it('[MQTT-3.2.2-12] a will QoS above the server\'s Maximum QoS is refused (CONNACK 0x9B) and the connection closed', async () => {
    const c = await refused(v5Connect({ will: { topic: 'w/q2', payload: 'x', qos: 2 } }), [0x9b])
    expect(c.received.map(p => p.cmd)).toEqual(['connack'])
  })

  it('[MQTT-3.2.2-13] a will with retain 1 when retain is not available is refused (CONNACK 0x9A) and the connection closed', async () => {
    const { connack } = await RawClient.connect(s.port, 5, { clientId: fresh('ra') })
    expect(connack.properties?.retainAvailable).toBe(false)
    const c = await refused(v5Connect({ will: { topic: 'w/r', payload: 'x', qos: 0, retain: true } }), [0x9a])
    expect(c.received.map(p => p.cmd)).toEqual(['connack'])
  })

  it('§3.3.1.3 a retained PUBLISH when retain is not available: DISCONNECT 0x9A and close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('ret/'), 'x', { qos: 1, id: 1, retain: true, properties: Buffer.alloc(0) }))
    await closedWith(c, [0x9a])
    expect(c.received.filter(p => p.cmd === 'puback' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
  })

  it('§3.3.1.2 a PUBLISH above the Maximum QoS: DISCONNECT 0x9B and close', async () => {
    const c = await s.raw(5)
    c.sendBytes(rawPublish(fresh('q2/'), 'x', { qos: 2, id: 1, properties: Buffer.alloc(0) }))
    await closedWith(c, [0x9b])
    expect(c.received.filter(p => p.cmd === 'pubrec' && (p.reasonCode ?? 0) < 0x80)).toEqual([])
  })

  it('§2.2.2.2 a property given twice (Session Expiry Interval) is a protocol error: closed unaccepted', async () => {
    await refused(v5Connect({ properties: Buffer.concat([prop.u32(P.sessionExpiry, 10), prop.u32(P.sessionExpiry, 20)]) }))
  })

  it('§3.1.2.11.3 Receive Maximum 0 is a protocol error: closed unaccepted', async () => {
    await refused(v5Connect({ properties: prop.u16(P.receiveMaximum, 0) }))
  })

  it('§3.1.2.11.4 Maximum Packet Size 0 is a protocol error: closed unaccepted', async () => {
    await refused(v5Connect({ properties: prop.u32(P.maximumPacketSize, 0) }))
  })
})

describe('MQTT 5 over WebSocket (chapter 6)', () => {
  it('[MQTT-6.0.0-2] [MQTT-6.0.0-4] an MQTT 5 client over WebSocket connects, subscribes and receives', async () => {
    const ws = await mqtt.connectAsync(s.broker.wsUrl, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 })
    const topic = fresh('ws5/')
    const got = collect(ws)
    await ws.subscribeAsync(topic, { qos: 1 })
    await ws.publishAsync(topic, 'over ws', { qos: 1, properties: { userProperties: { via: 'ws' } } })
    await untilMarker(got, topic)
    expect(got[0].packet.properties?.userProperties).toEqual({ via: 'ws' })
    await ws.endAsync()
  })
})

describe('MQTT 3.1.1 and 5 over TLS', () => {
  it('[MQTT-4.2.0-1] both versions side by side over TLS: a 5.0 publisher\'s message reaches a 3.1.1 and a 5.0 subscriber', async () => {
    const fx = tlsFixtures()
    const server = fx.ca.server()
    const own = await startTestBroker({ mqttConnectRate: 0, mqttSysIntervalMs: 0, tlsCert: server.cert, tlsKey: server.key, mqttsPort: 0 })
    const opts = { ca: readFileSync(fx.ca.files.cert), rejectUnauthorized: true, servername: 'localhost', reconnectPeriod: 0, connectTimeout: 5000 }
    const url = `mqtts://localhost:${own.mqtts!.port}`
    try {
      const v4 = await mqtt.connectAsync(url, { ...opts, protocolVersion: 4 })
      const v5 = await mqtt.connectAsync(url, { ...opts, protocolVersion: 5 })
      const got4 = collect(v4)
      const got5 = collect(v5)
      const topic = fresh('tls/')
      await v4.subscribeAsync(topic, { qos: 1 })
      await v5.subscribeAsync(topic, { qos: 1 })
      await v5.publishAsync(topic, 'secure', { qos: 1, properties: { contentType: 'text/plain' } })
      await untilMarker(got4, topic)
      await untilMarker(got5, topic)
      expect([got4[0].payload.toString(), got5[0].payload.toString(), got5[0].packet.properties?.contentType]).toEqual(['secure', 'secure', 'text/plain'])
      await v4.endAsync()
      await v5.endAsync()
    } finally {
      await own.stop()
      fx.remove()
    }
  })
})

describe('MQTT 5 PINGREQ, DISCONNECT, fixed header flags', () => {
  it('[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP', async () => {
    const c = await s.raw(5)
    await c.ping()
  })

  it('[MQTT-2.1.3-1] [MQTT-4.13.1-1] a PINGREQ with a reserved flag set is malformed: DISCONNECT 0x81 if any, close', async () => {
    const c = await s.raw(5)
    c.sendBytes(packet(0xc2))
    await closedWith(c, [0x81])
    expect(c.received.filter(p => p.cmd === 'pingresp')).toEqual([])
  })

  it('§3.14.2.1 [MQTT-3.14.4-2] at shutdown a connected MQTT 5 client gets DISCONNECT 0x8B (or 0x9C) and the connection is closed', async () => {
    // a broker of its own: this one is shut down
    const own = await startTestBroker({ mqttConnectRate: 0, mqttSysIntervalMs: 0 })
    const { client } = await RawClient.connect(own.mqtt.port, 5, { clientId: fresh('bye') }).catch(async err => {
      await own.stop()
      throw err
    })
    const stopping = own.stop()
    await closedWith(client, [0x8b, 0x9c])
    await stopping
    expect(client.received.filter(p => p.cmd === 'disconnect')).toHaveLength(1)
  })

  it('[MQTT-3.14.1-1] a DISCONNECT with a reserved flag set is malformed: the connection is closed', async () => {
    const c = await s.raw(5)
    c.sendBytes(packet(0xe1, Buffer.from([0])))
    await closedWith(c, [0x81])
  })
})
