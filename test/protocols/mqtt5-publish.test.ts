import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type mqttPacket from 'mqtt-packet'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { Clients, collect } from './mqtt5-fixture.js'

/** MQTT 5 PUBLISH on the front-end of our own: properties, expiry, aliases, flow control, sizes, refusals. */

let broker: TestBroker
const clients = new Clients()
beforeAll(async () => { broker = await startTestBroker({ mqttSysIntervalMs: 0, mqttTopicAliasMax: 2, mqttReceiveMaximum: 3, mqttMaxPacketSize: 4096 }) })
afterAll(async () => {
  await clients.close()
  await broker.stop()
})

describe('MQTT 5 PUBLISH', () => {
  it('[MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20] user properties, content type, payload format, response topic and correlation data reach the subscriber unchanged', async () => {
    const sub = await clients.connect(broker.mqttUrl)
    const got = collect(sub)
    await sub.subscribeAsync('props/#', { qos: 1 })
    const pub = await clients.connect(broker.mqttUrl)
    const properties = {
      userProperties: { a: '1', b: ['x', 'y'] },
      contentType: 'application/json',
      payloadFormatIndicator: true,
      responseTopic: 'replies/42',
      correlationData: Buffer.from([1, 2, 3])
    }
    await pub.publishAsync('props/t', '{"v":1}', { qos: 1, properties })
    await waitFor(() => got.length === 1, 5000, 'the message')
    expect(got[0].properties).toMatchObject(properties)
  })

  it('[MQTT-3.3.2-18] user properties keep the order they were sent in, a name recurring between others included', async () => {
    const { client: sub } = await clients.raw(broker.mqtt.port, { clientId: 'order-sub', keepalive: 60 })
    let bytes = Buffer.alloc(0)
    sub.socket.on('data', (chunk: Buffer) => { bytes = Buffer.concat([bytes, chunk]) })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'order/#', qos: 0, nl: false, rap: false, rh: 0 }] })
    await sub.next('suback')
    // b, a, b: mqtt-packet's record would group them as b, b, a; the bytes are written by hand and read back as bytes
    const pair = (k: string, v: string): Buffer => Buffer.concat([Buffer.from([0x26, 0, k.length]), Buffer.from(k), Buffer.from([0, v.length]), Buffer.from(v)])
    const props = Buffer.concat([pair('b', '1'), pair('a', '2'), pair('b', '3')])
    const topic = Buffer.from('order/t')
    const body = Buffer.concat([Buffer.from([0, topic.length]), topic, Buffer.from([props.length]), props, Buffer.from('x')])
    const { client: pub } = await clients.raw(broker.mqtt.port, { clientId: 'order-pub', keepalive: 60 })
    pub.socket.write(Buffer.concat([Buffer.from([0x30, body.length]), body]))
    await sub.next('publish')
    expect(bytes.includes(props)).toBe(true)
  })

  it('request/response end to end: the responder answers on the response topic with the correlation data', async () => {
    const responder = await clients.connect(broker.mqttUrl)
    await responder.subscribeAsync('svc/echo', { qos: 1 })
    responder.on('message', (_t, payload, packet) => {
      const p = packet.properties ?? {}
      if (p.responseTopic !== undefined) responder.publish(p.responseTopic, payload, { qos: 1, properties: { correlationData: p.correlationData } })
    })
    const requester = await clients.connect(broker.mqttUrl, { properties: { requestResponseInformation: true } })
    const replies = collect(requester)
    await requester.subscribeAsync('replies/me', { qos: 1 })
    await requester.publishAsync('svc/echo', 'ping', { qos: 1, properties: { responseTopic: 'replies/me', correlationData: Buffer.from('c-1') } })
    await waitFor(() => replies.length === 1, 5000, 'the reply')
    expect(replies[0].payload.toString()).toBe('ping')
    expect(replies[0].properties?.correlationData?.toString()).toBe('c-1')
  })

  it('a 3.1.1 subscriber gets a v5 publisher\'s message without properties, and a v5 subscriber a 3.1.1 publisher\'s', async () => {
    const v3 = await clients.connect(broker.mqttUrl, { protocolVersion: 4 })
    const v3got = collect(v3)
    await v3.subscribeAsync('mixed/#', { qos: 1 })
    const v5 = await clients.connect(broker.mqttUrl)
    const v5got = collect(v5)
    await v5.subscribeAsync('mixed/#', { qos: 1 })
    await v5.publishAsync('mixed/from5', 'five', { qos: 1, properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } })
    await v3.publishAsync('mixed/from3', 'three', { qos: 1 })
    // QoS 0 without properties: each version's subscribers get the bytes of their own version
    await v5.publishAsync('mixed/zero5', 'z5', { qos: 0 })
    await v3.publishAsync('mixed/zero3', 'z3', { qos: 0 })
    await waitFor(() => v3got.length === 4 && v5got.length === 4, 5000, 'every message on both')
    expect(v3got.map(p => `${p.topic} ${p.payload.toString()}`).sort()).toEqual(['mixed/from3 three', 'mixed/from5 five', 'mixed/zero3 z3', 'mixed/zero5 z5'])
    expect(v5got.map(p => `${p.topic} ${p.payload.toString()}`).sort()).toEqual(['mixed/from3 three', 'mixed/from5 five', 'mixed/zero3 z3', 'mixed/zero5 z5'])
    expect(v3got.every(p => p.properties === undefined)).toBe(true)
    expect(v5got.find(p => p.topic === 'mixed/from5')?.properties).toMatchObject({ userProperties: { k: 'v' }, contentType: 'text/plain' })
  })

  it('[MQTT-3.3.2-5] [MQTT-3.3.2-6] message expiry: a queued message past its expiry is not delivered; one within it comes with the remaining seconds', async () => {
    const first = await clients.raw(broker.mqtt.port, { clientId: 'expiry-sub', clean: true, keepalive: 60, properties: { sessionExpiryInterval: 300 } })
    first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'expiry/#', qos: 1 }] })
    await first.client.next('suback')
    first.client.send({ cmd: 'disconnect', reasonCode: 0 })
    await first.client.closed
    const pub = await clients.connect(broker.mqttUrl)
    await pub.publishAsync('expiry/short', 'gone', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('expiry/long', 'kept', { qos: 1, properties: { messageExpiryInterval: 100 } })
    await new Promise(resolve => setTimeout(resolve, 1100))
    const back = await clients.raw(broker.mqtt.port, { clientId: 'expiry-sub', clean: false, keepalive: 60, properties: { sessionExpiryInterval: 300 } })
    const publish = await back.client.next<mqttPacket.IPublishPacket>('publish')
    expect(publish.topic).toBe('expiry/long')
    expect(publish.properties?.messageExpiryInterval).toBeGreaterThan(90)
    expect(publish.properties?.messageExpiryInterval).toBeLessThan(100)
    back.client.send({ cmd: 'puback', messageId: publish.messageId })
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(back.client.packets.filter(p => p.cmd === 'publish')).toHaveLength(1)
  })

  it('[MQTT-3.3.2-12] topic aliases from the client: set with a topic, used with an empty one; 0 or over the maximum: DISCONNECT 0x94', async () => {
    const sub = await clients.connect(broker.mqttUrl)
    const got = collect(sub)
    await sub.subscribeAsync('alias/#')
    const { client, connack } = await clients.raw(broker.mqtt.port, { clientId: 'aliaser', keepalive: 60 })
    expect(connack.properties?.topicAliasMaximum).toBe(2)
    client.send({ cmd: 'publish', topic: 'alias/long/topic/name', payload: Buffer.from('1'), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } })
    client.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } })
    await waitFor(() => got.length === 2, 5000, 'both messages')
    expect(got.map(p => `${p.topic} ${p.payload.toString()}`)).toEqual(['alias/long/topic/name 1', 'alias/long/topic/name 2'])
    client.send({ cmd: 'publish', topic: 'alias/x', payload: Buffer.from('3'), qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } })
    expect((await client.disconnected())?.reasonCode).toBe(0x94)
  })

  it('[MQTT-3.3.2-8] an alias never set: DISCONNECT 0x82', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'alias-unset', keepalive: 60 })
    client.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 2 } })
    expect((await client.disconnected())?.reasonCode).toBe(0x82)
  })

  it('[MQTT-3.3.2-10] topic aliases to the client, when it allows them: the second message on a topic comes with the alias and an empty topic', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'alias-receiver', keepalive: 60, properties: { topicAliasMaximum: 1 } })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'out/#', qos: 0 }] })
    await client.next('suback')
    const pub = await clients.connect(broker.mqttUrl)
    for (const [topic, payload] of [['out/a', '1'], ['out/a', '2'], ['out/b', '3'], ['out/b', '4'], ['out/a', '5']]) await pub.publishAsync(topic, payload, { qos: 1 })
    const publishes: mqttPacket.IPublishPacket[] = []
    for (let i = 0; i < 5; i++) publishes.push(await client.next<mqttPacket.IPublishPacket>('publish'))
    expect(publishes.map(p => [p.topic, p.properties?.topicAlias, p.payload.toString()])).toEqual([
      ['out/a', 1, '1'], ['', 1, '2'], ['out/b', 1, '3'], ['', 1, '4'], ['out/a', 1, '5']
    ])
  })

  it('[MQTT-3.3.4-9] receive maximum from the client: never more unacknowledged QoS 1 messages to it than it allows', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'small-window', keepalive: 60, properties: { receiveMaximum: 2 } })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'window5/#', qos: 1 }] })
    await client.next('suback')
    const pub = await clients.connect(broker.mqttUrl)
    for (let i = 0; i < 5; i++) await pub.publishAsync('window5/t', String(i), { qos: 1 })
    const first = await client.next<mqttPacket.IPublishPacket>('publish')
    await client.next('publish')
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(client.packets.filter(p => p.cmd === 'publish')).toHaveLength(2)
    client.send({ cmd: 'puback', messageId: first.messageId })
    await client.next('publish')
    expect(client.packets.filter(p => p.cmd === 'publish')).toHaveLength(3)
  })

  it('[MQTT-3.3.4-8] receive maximum of the broker: one more unacknowledged QoS 2 publish than --mqtt-receive-maximum: DISCONNECT 0x93', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'flooder', keepalive: 60 })
    for (let id = 1; id <= 3; id++) client.send({ cmd: 'publish', topic: 'flood/t', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
    for (let i = 0; i < 3; i++) await client.next('pubrec')
    client.send({ cmd: 'publish', topic: 'flood/t', payload: Buffer.from('x'), qos: 2, messageId: 4, retain: false, dup: false })
    expect((await client.disconnected())?.reasonCode).toBe(0x93)
  })

  it('[MQTT-3.1.2-24] maximum packet size of the client: a message larger than it is not sent to it, later ones are', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'small-packets', keepalive: 60, properties: { maximumPacketSize: 100 } })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sizes/#', qos: 1 }] })
    await client.next('suback')
    const pub = await clients.connect(broker.mqttUrl)
    await pub.publishAsync('sizes/t', Buffer.alloc(200), { qos: 1 })
    await pub.publishAsync('sizes/t', 'small', { qos: 1 })
    const publish = await client.next<mqttPacket.IPublishPacket>('publish')
    expect(publish.payload.toString()).toBe('small')
    const metrics = await (await fetch(`${broker.url}/metrics`)).text()
    expect(metrics).toMatch(/^tetra_mqtt_dropped_total\{reason="packet_size"\} [1-9]/m)
  })

  it('[MQTT-3.2.2-15] maximum packet size of the broker: a larger packet gets DISCONNECT 0x95', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'too-big', keepalive: 60 })
    client.send({ cmd: 'publish', topic: 'big/t', payload: Buffer.alloc(5000), qos: 0, retain: false, dup: false })
    expect((await client.disconnected())?.reasonCode).toBe(0x95)
  })

  it('[MQTT-3.3.2-4] payload format indicator 1 and a payload that is not UTF-8: PUBACK 0x99, not routed', async () => {
    const sub = await clients.connect(broker.mqttUrl)
    const got = collect(sub)
    await sub.subscribeAsync('format/#', { qos: 1 })
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'bad-format', keepalive: 60 })
    client.send({ cmd: 'publish', topic: 'format/t', payload: Buffer.from([0xff, 0xfe]), qos: 1, messageId: 7, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    const puback = await client.next<mqttPacket.IPubackPacket>('puback')
    expect(puback.reasonCode).toBe(0x99)
    client.send({ cmd: 'publish', topic: 'format/t', payload: Buffer.from('fine'), qos: 1, messageId: 8, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    expect((await client.next<mqttPacket.IPubackPacket>('puback')).reasonCode).toBe(0)
    await waitFor(() => got.length === 1, 5000, 'the valid message')
    expect(got[0].payload.toString()).toBe('fine')
  })

  it('[MQTT-3.3.2-2] a topic name with a wildcard: DISCONNECT 0x90; $SYS/: PUBACK 0x87', async () => {
    const sys = await clients.raw(broker.mqtt.port, { clientId: 'sys-pub', keepalive: 60 })
    sys.client.send({ cmd: 'publish', topic: '$SYS/fake', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect((await sys.client.next<mqttPacket.IPubackPacket>('puback')).reasonCode).toBe(0x87)
    const wild = await clients.raw(broker.mqtt.port, { clientId: 'wild-pub', keepalive: 60 })
    wild.client.send({ cmd: 'publish', topic: 'a/+/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    expect((await wild.client.disconnected())?.reasonCode).toBe(0x90)
  })
})

describe('a QoS 0 subscriber that does not read', () => {
  it('loses QoS 0 messages past its send buffer (counted), holds publishers back only briefly, and the broker stays up', async () => {
    const own = await startTestBroker({ mqttSysIntervalMs: 0 })
    try {
      const { client: stalled } = await clients.raw(own.mqtt.port, { clientId: 'stalled', keepalive: 0 }, 4)
      stalled.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] })
      await stalled.next('suback')
      stalled.socket.pause()
      const pub = await clients.connect(own.mqttUrl, { protocolVersion: 4 })
      const chunk = Buffer.alloc(256 * 1024, 1)
      // 48 MB to a reader that takes nothing: more than the kernel's buffers and the 16 MB send buffer
      for (let i = 0; i < 192; i++) await pub.publishAsync('flood/t', chunk, { qos: 0 })
      await waitFor(async () => /^tetra_mqtt_dropped_total\{reason="send_buffer"\} [1-9]/m.test(await (await fetch(`${own.url}/metrics`)).text()), 10_000, 'dropped messages counted')
      // the publisher was not held for good: a QoS 1 round trip on another topic still works
      const other = await clients.connect(own.mqttUrl)
      const got = collect(other)
      await other.subscribeAsync('after/flood', { qos: 1 })
      await pub.publishAsync('after/flood', 'ok', { qos: 1 })
      await waitFor(() => got.length === 1, 5000, 'a message after the flood')
    } finally {
      await own.stop()
    }
  }, 30_000)
})

describe('MQTT 5 PUBLISH under --mqtt-max-qos 1 and --mqtt-retain-available false', () => {
  let limited: TestBroker
  beforeAll(async () => { limited = await startTestBroker({ mqttSysIntervalMs: 0, mqttMaxQos: 1, mqttRetainAvailable: false }) })
  afterAll(async () => { await limited.stop() })

  it('[MQTT-3.2.2-9] [MQTT-3.2.2-13] CONNACK says Maximum QoS 1 and Retain Available 0; QoS 2 is granted as 1', async () => {
    const { client, connack } = await clients.raw(limited.mqtt.port, { clientId: 'limited', keepalive: 60 })
    expect(connack.properties).toMatchObject({ maximumQoS: 1, retainAvailable: false })
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q/#', qos: 2 }] })
    expect((await client.next<mqttPacket.ISubackPacket>('suback')).granted).toEqual([1])
  })

  it('[MQTT-3.2.2-11] a QoS 2 PUBLISH over the maximum: DISCONNECT 0x9B', async () => {
    const { client } = await clients.raw(limited.mqtt.port, { clientId: 'qos2', keepalive: 60 })
    client.send({ cmd: 'publish', topic: 'q/t', payload: Buffer.from('x'), qos: 2, messageId: 1, retain: false, dup: false })
    expect((await client.disconnected())?.reasonCode).toBe(0x9b)
  })

  it('[MQTT-3.2.2-14] a retained PUBLISH: DISCONNECT 0x9A; a will with retain: CONNACK 0x9A', async () => {
    const { client } = await clients.raw(limited.mqtt.port, { clientId: 'retainer', keepalive: 60 })
    client.send({ cmd: 'publish', topic: 'r/t', payload: Buffer.from('x'), qos: 0, retain: true, dup: false })
    expect((await client.disconnected())?.reasonCode).toBe(0x9a)
    const will = await clients.raw(limited.mqtt.port, { clientId: 'will-retainer', keepalive: 60, will: { topic: 'w/t', payload: Buffer.from('x'), qos: 0, retain: true } })
    expect(will.connack.reasonCode).toBe(0x9a)
  })
})
