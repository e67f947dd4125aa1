import { connect as netConnect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'
import type { StreamEntry } from '../../engines/stream/index.js'
import { decodeEntryAt, encodeChunk, forEachInChunk, prepareEntry } from '../../engines/stream/codec.js'
import { entryJson } from '../../protocols/http/routes/streams.js'
import { JsonWriter, pageJson, writeSseEvent } from '../../protocols/http/routes/stream-json.js'
import { openSse, startTestBroker, waitFor, type TestBroker } from '../helpers.js'

/**
 * MQTT 5 publish properties (§3.3.2.3: payload format indicator, message expiry interval, content type,
 * response topic, correlation data, user properties) over HTTP publish, SSE subscribe, retained reads and
 * stream captures, both ways with MQTT 5 clients.
 */

let broker: TestBroker
const clients: MqttClient[] = []
beforeAll(async () => { broker = await startTestBroker({ sseHeartbeatMs: 200 }) })
afterAll(async () => {
  await Promise.all(clients.map(async c => await c.endAsync(true)))
  await broker.stop()
})

async function connect (protocolVersion: 4 | 5): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0, protocolVersion })
  clients.push(client)
  return client
}

async function publishHttp (body: unknown): Promise<Response> {
  return await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

/** Opens an SSE subscription and waits until the bus has it (its ': connected' comment). */
async function sseSubscribe (filter: string): Promise<ReturnType<typeof openSse>> {
  const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=${encodeURIComponent(filter)}&retained=false`)
  expect((await sse.opened).status).toBe(200)
  await waitFor(() => sse.comments.includes('connected'), 5000, 'the SSE stream to open')
  return sse
}

const FULL = {
  contentType: 'application/json',
  payloadFormat: 1,
  responseTopic: 'props/reply/7',
  correlationData: 'req-7f3a',
  userProperties: { origin: 'console', trace: ['a1', 'b2'], 'ünï cødé': 'välüe' }
} as const

describe('POST /v1/pubsub/publish with MQTT 5 properties', () => {
  it('carries them to an SSE reader, only on messages that have them', async () => {
    const sse = await sseSubscribe('props/sse/#')
    try {
      expect((await publishHttp({ topic: 'props/sse/plain', payload: { a: 1 } })).status).toBe(200)
      expect((await publishHttp({ topic: 'props/sse/full', payload: { a: 2 }, qos: 1, ...FULL, messageExpiry: 120 })).status).toBe(200)
      expect((await publishHttp({ topic: 'props/sse/bytes', payload: 'AAE=', encoding: 'base64', correlationData: '3q2+7w==', correlationEncoding: 'base64' })).status).toBe(200)
      await waitFor(() => sse.events.length === 3, 5000, 'three events')
      const [plain, full, bytes] = sse.events.map(e => JSON.parse(e.data) as Record<string, unknown>)
      // a message without properties reads exactly as before
      expect(plain).toEqual({ topic: 'props/sse/plain', payload: { a: 1 }, qos: 0, retain: false })
      const { messageExpiry, ...rest } = full
      expect(rest).toEqual({ topic: 'props/sse/full', payload: { a: 2 }, qos: 1, retain: false, ...FULL })
      // the time left, in whole seconds (MQTT 5 forwards the remaining interval)
      expect(messageExpiry).toBeGreaterThanOrEqual(119)
      expect(messageExpiry).toBeLessThanOrEqual(120)
      // correlation data that is not UTF-8 comes back as base64, byte for byte
      expect(bytes).toEqual({ topic: 'props/sse/bytes', payload: 'AAE=', encoding: 'base64', qos: 0, retain: false, correlationData: '3q2+7w==', correlationEncoding: 'base64' })
    } finally {
      sse.close()
    }
  })

  it('keeps them on a retained message (GET /v1/pubsub/retained and the SSE retained replay)', async () => {
    expect((await publishHttp({ topic: 'props/kept/1', payload: 'on', encoding: 'utf8', retain: true, qos: 1, contentType: 'text/plain', userProperties: { unit: 'none' } })).status).toBe(200)
    const res = await fetch(`${broker.url}/v1/pubsub/retained?filter=props%2Fkept%2F%23`)
    expect(res.status).toBe(200)
    expect((await res.json() as { messages: unknown[] }).messages).toEqual([
      { topic: 'props/kept/1', payload: 'on', encoding: 'utf8', qos: 1, retain: true, contentType: 'text/plain', userProperties: { unit: 'none' } }
    ])
    const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=props%2Fkept%2F%23`)
    try {
      await waitFor(() => sse.events.length === 1, 5000, 'the retained message')
      expect(JSON.parse(sse.events[0].data)).toEqual({ topic: 'props/kept/1', payload: 'on', encoding: 'utf8', qos: 1, retain: true, contentType: 'text/plain', userProperties: { unit: 'none' } })
    } finally {
      sse.close()
    }
  })

  it('[MQTT-3.3.2-4] [MQTT-3.3.2-6] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] reaches an MQTT 5 subscriber with every property unaltered (expiry: the time left) and a 3.1.1 one without', async () => {
    const v5 = await connect(5)
    const v4 = await connect(4)
    const got5: IPublishPacket[] = []
    const got4: IPublishPacket[] = []
    v5.on('message', (_t, _p, packet) => { got5.push(packet) })
    v4.on('message', (_t, _p, packet) => { got4.push(packet) })
    await v5.subscribeAsync('props/mqtt/#', { qos: 1 })
    await v4.subscribeAsync('props/mqtt/#', { qos: 1 })
    expect((await publishHttp({ topic: 'props/mqtt/cmd', payload: { action: 'reboot' }, qos: 1, ...FULL, messageExpiry: 3600 })).status).toBe(200)
    expect((await publishHttp({ topic: 'props/mqtt/bin', payload: 'AA==', encoding: 'base64', correlationData: '/wA=', correlationEncoding: 'base64' })).status).toBe(200)
    await waitFor(() => got5.length === 2 && got4.length === 2, 5000, 'both messages at both subscribers')
    const p = got5[0].properties!
    expect(got5[0].payload.toString()).toBe('{"action":"reboot"}')
    expect(p.payloadFormatIndicator).toBe(true)
    expect(p.contentType).toBe(FULL.contentType)
    expect(p.responseTopic).toBe(FULL.responseTopic)
    expect(Buffer.from(p.correlationData!).toString()).toBe(FULL.correlationData)
    expect(p.userProperties).toEqual(FULL.userProperties)
    expect(p.messageExpiryInterval).toBeGreaterThanOrEqual(3599)
    expect(p.messageExpiryInterval).toBeLessThanOrEqual(3600)
    expect(Buffer.from(got5[1].properties!.correlationData!)).toEqual(Buffer.from([0xff, 0x00]))
    expect(got5[1].properties?.contentType).toBeUndefined()
    // a 3.1.1 subscriber has no properties to receive: the same messages, payloads unchanged
    expect(got4.map(m => m.payload.toString('base64'))).toEqual([Buffer.from('{"action":"reboot"}').toString('base64'), 'AA=='])
  })

  it('hands an MQTT 5 publisher\'s properties to SSE readers (bytes of correlation data as base64)', async () => {
    const sse = await sseSubscribe('props/from-mqtt/#')
    try {
      const pub = await connect(5)
      const options: IClientPublishOptions = {
        qos: 1,
        properties: {
          payloadFormatIndicator: true,
          contentType: 'application/cbor',
          responseTopic: 'props/from-mqtt/reply',
          correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
          userProperties: { a: '1', b: ['x', 'y'] },
          messageExpiryInterval: 30
        }
      }
      await pub.publishAsync('props/from-mqtt/q', 'hello', options)
      await waitFor(() => sse.events.length === 1, 5000, 'the event')
      const { messageExpiry, ...rest } = JSON.parse(sse.events[0].data) as Record<string, unknown>
      expect(rest).toEqual({
        topic: 'props/from-mqtt/q',
        payload: 'hello',
        encoding: 'utf8',
        qos: 1,
        retain: false,
        payloadFormat: 1,
        contentType: 'application/cbor',
        responseTopic: 'props/from-mqtt/reply',
        correlationData: '3q2+7w==',
        correlationEncoding: 'base64',
        userProperties: { a: '1', b: ['x', 'y'] }
      })
      expect(messageExpiry).toBeGreaterThanOrEqual(29)
      expect(messageExpiry).toBeLessThanOrEqual(30)
    } finally {
      sse.close()
    }
  })

  it('[MQTT-3.3.2-18] sends user properties given as [name, value] pairs in that order, also when a name recurs between others', async () => {
    const pairs = [['b', '1'], ['a', '2'], ['b', '3'], ['é', 'ü']]
    // an MQTT 5 subscriber on a bare socket: the order is read from the PUBLISH bytes (client libraries give a record)
    const socket = netConnect({ host: '127.0.0.1', port: broker.mqtt.port })
    let bytes = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => { bytes = Buffer.concat([bytes, d]) })
    await new Promise<void>((resolve, reject) => { socket.once('connect', () => { resolve() }); socket.once('error', reject) })
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 5, clientId: 'order-reader', clean: true, keepalive: 0 }, { protocolVersion: 5 }))
    socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'props/order', qos: 0 }] }, { protocolVersion: 5 }))
    // CONNACK (0x20) and SUBACK (0x90) read: the subscription is in place
    await waitFor(() => bytes.includes(0x90) && bytes[0] === 0x20, 5000, 'CONNACK and SUBACK')
    const sse = await sseSubscribe('props/order')
    try {
      expect((await publishHttp({ topic: 'props/order', payload: 'ordered', encoding: 'utf8', userProperties: pairs })).status).toBe(200)
      await waitFor(() => bytes.includes('ordered') && sse.events.length === 1, 5000, 'the message on both')
      const encoded = (name: string, value: string): Buffer => {
        const n = Buffer.from(name)
        const v = Buffer.from(value)
        const out = Buffer.alloc(5 + n.length + v.length)
        out[0] = 0x26
        out.writeUInt16BE(n.length, 1)
        n.copy(out, 3)
        out.writeUInt16BE(v.length, 3 + n.length)
        v.copy(out, 5 + n.length)
        return out
      }
      const at = pairs.map(([n, v]) => bytes.indexOf(encoded(n, v)))
      expect(at.every(i => i > 0)).toBe(true)
      expect([...at].sort((x, y) => x - y)).toEqual(at)
      const event = JSON.parse(sse.events[0].data) as Record<string, unknown>
      expect(event.userProperties).toEqual({ b: ['1', '3'], a: '2', é: 'ü' })
      expect(event.userPropertyList).toEqual(pairs)
    } finally {
      sse.close()
      socket.destroy()
    }
    // pairs whose names do not recur between others need no list: the record says it all
    const grouped = await sseSubscribe('props/order2')
    try {
      expect((await publishHttp({ topic: 'props/order2', payload: 1, userProperties: [['a', '1'], ['a', '2'], ['b', '3']] })).status).toBe(200)
      await waitFor(() => grouped.events.length === 1, 5000, 'the event')
      expect(JSON.parse(grouped.events[0].data)).toEqual({ topic: 'props/order2', payload: 1, qos: 0, retain: false, userProperties: { a: ['1', '2'], b: '3' } })
    } finally {
      grouped.close()
    }
  })

  it('refuses bad properties with a 400 problem naming the field', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ messageExpiry: 0 }, /messageExpiry/],
      [{ messageExpiry: 4_294_967_296 }, /messageExpiry/],
      [{ messageExpiry: 1.5 }, /messageExpiry/],
      [{ messageExpiry: '60' }, /messageExpiry/],
      [{ payloadFormat: 2 }, /payloadFormat/],
      [{ payloadFormat: 1, payload: '/w==', encoding: 'base64' }, /payloadFormat/],
      [{ userProperties: { a: 1 } }, /userProperties/],
      [{ userProperties: { a: [1] } }, /userProperties/],
      [{ userProperties: ['a'] }, /userProperties/],
      [{ userProperties: [['a']] }, /userProperties/],
      [{ userProperties: [['a', 'b', 'c']] }, /userProperties/],
      [{ userProperties: [['a', 1]] }, /userProperties/],
      [{ userProperties: [['ok', 'x'], ['a\u0000', 'x']] }, /userProperties\[1\]\[0\].*NUL/],
      [{ userProperties: [['a', '\udc00']] }, /userProperties\[0\]\[1\].*surrogate/],
      [{ userProperties: { a: 'x\u0000y' } }, /userProperties\["a"\].*NUL/],
      [{ userProperties: { 'a\u0000': 'x' } }, /userProperties.*name.*NUL/],
      [{ userProperties: { a: ['ok', '\ud800'] } }, /userProperties\["a"\]\[1\].*surrogate/],
      [{ contentType: 'text/\u0000' }, /contentType.*NUL/],
      [{ contentType: 'x'.repeat(65_536) }, /contentType.*65535/],
      [{ contentType: 5 }, /contentType/],
      [{ responseTopic: 'replies/+' }, /responseTopic.*wildcard/],
      [{ responseTopic: '' }, /responseTopic/],
      [{ correlationData: '%%%', correlationEncoding: 'base64' }, /correlationData.*base64/],
      [{ correlationData: 'x', correlationEncoding: 'hex' }, /correlationEncoding/],
      [{ correlationEncoding: 'base64' }, /correlationEncoding.*correlationData/],
      [{ correlationData: 'a'.repeat(65_536) }, /correlationData.*65535/],
      [{ properties: { contentType: 'x' } }, /properties/]
    ]
    for (const [fields, detail] of cases) {
      const res = await publishHttp({ topic: 'props/bad', payload: 'x', encoding: 'utf8', ...fields })
      const where = JSON.stringify(fields).slice(0, 80)
      expect(res.status, where).toBe(400)
      expect(res.headers.get('content-type'), where).toMatch(/^application\/problem\+json/)
      const body = await res.json() as { detail: string }
      expect(body.detail, where).toMatch(detail)
    }
  })

  it('accepts the bounds: messageExpiry 1 and 4294967295, payloadFormat 1 with UTF-8 text, 0 with bytes', async () => {
    for (const fields of [{ messageExpiry: 1 }, { messageExpiry: 4_294_967_295 }, { payloadFormat: 1, payload: 'żółw', encoding: 'utf8' }, { payloadFormat: 0, payload: '/w==', encoding: 'base64' }]) {
      const res = await publishHttp({ topic: 'props/ok', payload: 'x', encoding: 'utf8', ...fields })
      expect(res.status, JSON.stringify(fields)).toBe(200)
    }
  })

  it('documents the fields with examples in the OpenAPI document', async () => {
    const doc = await (await fetch(`${broker.url}/openapi.json`)).json() as { paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> }, examples?: Record<string, { value: Record<string, unknown> }> }> } }>> }
    const body = doc.paths['/v1/pubsub/publish'].post.requestBody.content['application/json']
    for (const field of ['userProperties', 'contentType', 'responseTopic', 'correlationData', 'correlationEncoding', 'payloadFormat', 'messageExpiry']) {
      expect(body.schema.properties[field], field).toBeDefined()
    }
    const examples = Object.values(body.examples ?? {}).map(e => e.value)
    expect(examples.some(e => e.userProperties !== undefined && e.messageExpiry !== undefined && e.correlationData !== undefined)).toBe(true)
    // every example is a valid request
    for (const example of examples) expect((await publishHttp(example)).status, JSON.stringify(example)).toBe(200)
  })
})

describe('stream capture keeps the properties', () => {
  it('stores an MQTT 5 publish\'s and an HTTP publish\'s properties and shows them in reads and the tail', async () => {
    const put = await fetch(`${broker.url}/v1/streams/props-capture`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ capture: ['props/cap/#'] }) })
    expect(put.status).toBeLessThan(300)
    await broker.engines.streams.get('props-capture').captureReady
    const tail = openSse(`${broker.url}/v1/streams/props-capture/tail?from=start`)
    try {
      const pub = await connect(5)
      await pub.publishAsync('props/cap/a', 'one', { qos: 1, properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2, 255]), userProperties: { k: ['v1', 'v2'] }, messageExpiryInterval: 600 } })
      await pub.publishAsync('props/cap/b', 'two', { qos: 1 })
      expect((await publishHttp({ topic: 'props/cap/c', payload: 3, qos: 1, responseTopic: 'props/r', correlationData: 'id-1', payloadFormat: 1, userProperties: [['x', '1'], ['y', '2'], ['x', '3']] })).status).toBe(200)
      const res = await fetch(`${broker.url}/v1/streams/props-capture/messages?from=start`)
      const { messages } = await res.json() as { messages: Array<Record<string, unknown>> }
      const expected = [
        // the message expiry is not kept: the stream's own retention decides how long an entry lives
        { offset: 0, topic: 'props/cap/a', qos: 1, retain: false, contentType: 'text/plain', correlationData: 'AQL/', correlationEncoding: 'base64', userProperties: { k: ['v1', 'v2'] }, payload: 'one', encoding: 'utf8' },
        { offset: 1, topic: 'props/cap/b', qos: 1, retain: false, payload: 'two', encoding: 'utf8' },
        { offset: 2, topic: 'props/cap/c', qos: 1, retain: false, payloadFormat: 1, responseTopic: 'props/r', correlationData: 'id-1', userProperties: { x: ['1', '3'], y: '2' }, userPropertyList: [['x', '1'], ['y', '2'], ['x', '3']], payload: 3 }
      ]
      expect(messages.map(({ timestamp, ...m }) => m)).toEqual(expected)
      await waitFor(() => tail.events.length === 3, 5000, 'three tail events')
      expect(tail.events.map(e => { const { timestamp, ...m } = JSON.parse(e.data) as Record<string, unknown>; return m })).toEqual(expected)
    } finally {
      tail.close()
    }
  })

  it('round-trips properties through the entry codec; entries without them decode as before', () => {
    const withProps = prepareEntry({ payload: 'p', topic: 't', qos: 2, retain: true, key: 'k', headers: { h: '1' }, properties: { payloadFormat: 0, correlationData: Buffer.from([0, 255]), userProperties: { u: ['1', '2'] } } }, 5)
    const without = prepareEntry({ payload: Buffer.from([7]), topic: 't', qos: 1 }, 6)
    const chunk = encodeChunk([withProps, without])
    const got: StreamEntry[] = []
    forEachInChunk(10, chunk, 10, (offset, c, at, len) => { got.push(decodeEntryAt(offset, c, at, len)); return true })
    expect(got[0]).toEqual({ offset: 10, timestamp: 5, payload: Buffer.from('p'), topic: 't', qos: 2, retain: true, key: 'k', headers: { h: '1' }, properties: { payloadFormat: 0, correlationData: Buffer.from([0, 255]), userProperties: { u: ['1', '2'] } } })
    expect(got[1]).toEqual({ offset: 11, timestamp: 6, payload: Buffer.from([7]), topic: 't', qos: 1, retain: false })
    expect('properties' in got[1]).toBe(false)
  })

  it('writes entries with properties exactly as JSON.stringify(entryJson(entry)) (property)', () => {
    const properties = fc.record({
      payloadFormat: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
      contentType: fc.string({ unit: 'binary' }),
      responseTopic: fc.string({ unit: 'binary' }),
      correlationData: fc.uint8Array({ maxLength: 20 }).map(b => Buffer.from(b)),
      userProperties: fc.dictionary(fc.string(), fc.oneof(fc.string({ unit: 'binary' }), fc.array(fc.string(), { maxLength: 3 }))),
      userPropertyList: fc.array(fc.tuple(fc.string(), fc.string({ unit: 'binary' })), { maxLength: 4 })
    }, { requiredKeys: [] })
    const entry = fc.record({
      offset: fc.nat(),
      timestamp: fc.nat(),
      payload: fc.uint8Array({ maxLength: 30 }).map(b => Buffer.from(b)),
      topic: fc.string({ unit: 'binary' }),
      qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
      retain: fc.boolean(),
      properties: fc.option(properties, { nil: undefined }),
      key: fc.option(fc.string(), { nil: undefined })
    }, { requiredKeys: ['offset', 'timestamp', 'payload', 'topic', 'qos', 'retain'] }).map(r => r as StreamEntry)
    fc.assert(fc.property(fc.array(entry, { maxLength: 4 }), entries => {
      expect(pageJson(entries, 0, 0, false).toString('utf8')).toBe(JSON.stringify({ messages: entries.map(entryJson), next: 0, firstOffset: 0, truncated: false }))
      const out = new JsonWriter(16)
      for (const e of entries) writeSseEvent(out, e)
      expect(out.view().toString('utf8')).toBe(entries.map(e => `id: ${e.offset}\ndata: ${JSON.stringify(entryJson(e))}\n\n`).join(''))
    }), { numRuns: 1000 })
  })
})
