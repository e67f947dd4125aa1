import net, { type AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'
import type { Config } from '../../src/config.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import { Auth } from '../../engines/auth/auth.js'
import type { MqttSecuritySettings } from '../../protocols/mqtt/gate.js'
import { MqttFrontEnd } from '../../protocols/mqtt/front-end.js'
import { createMqttServer } from '../../protocols/mqtt/tcp.js'
import { SecurityCounters } from '../../protocols/security-metrics.js'
import { hashPassword } from '../../engines/auth/hash.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Delivery, Outlet } from '../../engines/pubsub/types.js'
import { WaitingWindow } from '../../protocols/mqtt/inflight.js'

/**
 * Each MQTT limit of issue 11 triggered once, with its refusal and its counter
 * (tetra_limit_refusals_total{limit=...}).
 */

const brokers: TestBroker[] = []
const clients: MqttClient[] = []
afterAll(async () => {
  await Promise.all(clients.map(async c => await c.endAsync(true)))
  for (const b of brokers) await b.stop()
})

async function broker (overrides: Partial<Config>): Promise<TestBroker> {
  const b = await startTestBroker({ mqttSysIntervalMs: 0, ...overrides })
  brokers.push(b)
  return b
}

async function connect (url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  clients.push(client)
  return client
}

/** The CONNACK return code a connection gets (0: accepted; the client stays connected then). */
async function connackCode (url: string, options: IClientOptions = {}): Promise<number> {
  try {
    await connect(url, options)
    return 0
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'number') return code
    throw err
  }
}

async function limitCount (b: TestBroker, limit: string): Promise<number> {
  const text = await (await fetch(`${b.url}/metrics`)).text()
  const m = new RegExp(`tetra_limit_refusals_total\\{limit="${limit}"\\} (\\d+)`).exec(text)
  return m === null ? 0 : Number(m[1])
}

/** A raw MQTT connection: packets in, bytes out, nothing acknowledged unless asked. */
interface Raw { socket: net.Socket, packets: mqttPacket.Packet[], closed: Promise<void>, send: (packet: object) => void }
async function raw (port: number, clientId: string, clean = true): Promise<Raw> {
  const socket = net.connect(port, '127.0.0.1')
  const packets: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser()
  parser.on('packet', (p: mqttPacket.Packet) => { packets.push(p) })
  socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => { socket.once('close', () => { resolve() }) })
  const send = (packet: object): void => { socket.write(mqttPacket.generate(packet as mqttPacket.Packet)) }
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 0 })
  await waitFor(() => packets.some(p => p.cmd === 'connack'), 5000, 'CONNACK')
  return { socket, packets, closed, send }
}

describe('MQTT limits', () => {
  it('--mqtt-max-packet-size: a larger packet closes the connection, refused from its fixed header before its body arrives', async () => {
    const b = await broker({ mqttMaxPacketSize: 1024 })
    const small = await connect(b.mqttUrl)
    await small.publishAsync('size/ok', Buffer.alloc(900), { qos: 1 })
    const big = await connect(b.mqttUrl)
    const closed = new Promise<void>(resolve => { big.once('close', () => { resolve() }) })
    big.publish('size/big', Buffer.alloc(2048), { qos: 0 })
    await closed
    // a header announcing 200 MB and no body: closed at once, nothing buffered
    const r = await raw(b.mqtt.port, 'announcer')
    r.socket.write(Buffer.from([0x30, 0x80, 0x80, 0xe4, 0x5f]))
    await r.closed
    expect(await limitCount(b, 'mqtt_max_packet_size')).toBe(2)
    // over WebSocket: the frame is refused by its size too (ws' maxPayload follows the cap), the connection closed
    const overWs = await connect(b.wsUrl)
    await overWs.publishAsync('size/ok', Buffer.alloc(900), { qos: 1 })
    const wsClosed = new Promise<void>(resolve => { overWs.once('close', () => { resolve() }) })
    overWs.publish('size/big', Buffer.alloc(4096), { qos: 0 })
    await wsClosed
    // a WebSocket frame header announcing 100 MB: refused from the header with close code 1009 (message too big,
    // RFC 6455 7.4.1), not buffered until the body comes
    const upgraded = net.connect(b.httpAddress.port, '127.0.0.1')
    upgraded.on('error', () => {})
    let received = Buffer.alloc(0)
    upgraded.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]) })
    const closeFrame = Buffer.from([0x88, 0x02, 0x03, 0xf1])
    upgraded.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n')
    const length = Buffer.alloc(8)
    length.writeBigUInt64BE(100n * 1024n * 1024n)
    upgraded.write(Buffer.concat([Buffer.from([0x82, 0xff]), length, Buffer.from([1, 2, 3, 4])]))
    await waitFor(() => received.includes(closeFrame), 5000, 'a close frame with code 1009')
    upgraded.destroy()
  })

  it('--mqtt-max-connections: CONNACK 0x03 (server unavailable) past the cap; a place that frees up is taken again', async () => {
    const b = await broker({ mqttMaxConnections: 2 })
    const first = await connect(b.mqttUrl)
    await connect(b.mqttUrl)
    expect(await connackCode(b.mqttUrl)).toBe(3)
    await first.endAsync()
    await waitFor(async () => await connackCode(b.mqttUrl) === 0, 5000, 'a free place')
    expect(await limitCount(b, 'mqtt_max_connections')).toBeGreaterThanOrEqual(1)
  })

  it('--mqtt-max-connections-per-user: CONNACK 0x05 for one more connection of the same user; other users, anonymous clients and a session takeover are not refused', async () => {
    const tmp = tempDir()
    const hash = await hashPassword('pw', { ln: 4, r: 8, p: 1 })
    const file = join(tmp.dir, 'auth.json')
    writeFileSync(file, JSON.stringify({
      users: [{ name: 'dev-a', password: hash, roles: ['all'] }, { name: 'dev-b', password: hash, roles: ['all'] }],
      roles: { all: [{ resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] }, { resource: 'system', pattern: '*', actions: ['metrics'] }] },
      anonymous: ['all']
    }))
    const b = await broker({ authFile: file, mqttMaxConnectionsPerUser: 1 })
    await connect(b.mqttUrl, { username: 'dev-a', password: 'pw', clientId: 'a-1' })
    expect(await connackCode(b.mqttUrl, { username: 'dev-a', password: 'pw', clientId: 'a-2' })).toBe(5)
    expect(await connackCode(b.mqttUrl, { username: 'dev-b', password: 'pw' })).toBe(0)
    expect(await connackCode(b.mqttUrl)).toBe(0)
    expect(await connackCode(b.mqttUrl)).toBe(0)
    // the same client id again replaces the first connection (MQTT-3.1.4-2)
    expect(await connackCode(b.mqttUrl, { username: 'dev-a', password: 'pw', clientId: 'a-1' })).toBe(0)
    const text = await (await fetch(`${b.url}/metrics`, { headers: { authorization: `Basic ${Buffer.from('dev-b:pw').toString('base64')}` } })).text()
    expect(text).toMatch(/tetra_limit_refusals_total\{limit="mqtt_max_connections_per_user"\} 1/)
    tmp.remove()
  })

  it('--mqtt-connect-rate: CONNACK 0x03 once an address has used its burst', async () => {
    // loopback is exempt in the broker; this gate counts it, on a listener of its own
    const pubsub = await PubSub.create()
    const auth = await Auth.open({})
    const security = new SecurityCounters()
    const settings: MqttSecuritySettings = { denyDisconnect: false, maxPacketSize: 1 << 20, maxConnections: 0, maxConnectionsPerUser: 0, connectRate: 3, maxInflight: 10, maxWaiting: 0, rateLimitLoopback: true }
    const front = new MqttFrontEnd(pubsub, auth, settings, security)
    const server = createMqttServer(front)
    await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const codes: number[] = []
      for (let i = 0; i < 5; i++) codes.push(await connackCode(url))
      // a burst of 3 (the rate); the bucket may have refilled by one meanwhile on a slow machine
      expect(codes.slice(0, 3)).toEqual([0, 0, 0])
      expect(codes.filter(c => c === 3).length).toBeGreaterThanOrEqual(1)
      expect(security.limits.get('mqtt_connect_rate')).toBeGreaterThanOrEqual(1)
    } finally {
      front.close()
      server.close()
      await pubsub.close()
      auth.close()
    }
  })

  it('--mqtt-max-inflight: at most that many unacknowledged QoS 1 messages to a client, the next ones sent as acks come back', async () => {
    const b = await broker({ mqttMaxInflight: 5, mqttMaxWaiting: 10 })
    const r = await raw(b.mqtt.port, 'slow-reader')
    r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'window/#', qos: 1 }] })
    await waitFor(() => r.packets.some(p => p.cmd === 'suback'), 5000, 'SUBACK')
    const publisher = await connect(b.mqttUrl)
    for (let i = 0; i < 20; i++) await publisher.publishAsync('window/t', String(i), { qos: 1 })
    const publishes = (): mqttPacket.IPublishPacket[] => r.packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish')
    await waitFor(() => publishes().length === 5, 5000, 'a full window')
    // 15 wait for a slot, the list holds 10: the 5 oldest waiting ones were dropped and counted
    expect(await limitCount(b, 'mqtt_max_inflight')).toBe(5)
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(publishes().length).toBe(5)
    r.send({ cmd: 'puback', messageId: publishes()[0].messageId })
    await waitFor(() => publishes().length === 6, 5000, 'the next message after an ack')
    // acknowledge everything from now on, as it comes
    let acked = 1
    await waitFor(() => {
      for (const p of publishes().slice(acked)) r.send({ cmd: 'puback', messageId: p.messageId })
      acked = publishes().length
      return acked === 15
    }, 5000, 'the rest')
    expect(publishes().map(p => p.payload.toString())).toEqual(['0', '1', '2', '3', '4', '10', '11', '12', '13', '14', '15', '16', '17', '18', '19'])
  })

  it('--mqtt-max-inflight: a persistent session\'s messages past the window wait in its stored queue, none dropped, and come when it reconnects', async () => {
    const b = await broker({ mqttMaxInflight: 3, mqttMaxWaiting: 2 })
    const r = await raw(b.mqtt.port, 'slow-session', false)
    r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'session/#', qos: 1 }] })
    await waitFor(() => r.packets.some(p => p.cmd === 'suback'), 5000, 'SUBACK')
    const publisher = await connect(b.mqttUrl)
    for (let i = 0; i < 8; i++) await publisher.publishAsync('session/t', String(i), { qos: 1 })
    await waitFor(() => r.packets.filter(p => p.cmd === 'publish').length === 3, 5000, 'a full window')
    r.socket.destroy()
    await r.closed
    const got: string[] = []
    const back = await connect(b.mqttUrl, { clientId: 'slow-session', clean: false })
    back.on('message', (_t, payload) => { got.push(payload.toString()) })
    await waitFor(() => got.length >= 8, 5000, 'every message')
    expect(got).toEqual(['0', '1', '2', '3', '4', '5', '6', '7'])
    expect(await limitCount(b, 'mqtt_max_inflight')).toBe(0)
  })

  it('--mqtt-max-inflight: one more inbound QoS 2 publish awaiting PUBREL than the cap closes the connection', async () => {
    const b = await broker({ mqttMaxInflight: 3 })
    const r = await raw(b.mqtt.port, 'qos2-hoarder')
    const qos2 = (messageId: number): object => ({ cmd: 'publish', topic: 'hoard/t', payload: Buffer.from('x'), qos: 2, messageId, retain: false, dup: false })
    for (let i = 1; i <= 3; i++) r.send(qos2(i))
    await waitFor(() => r.packets.filter(p => p.cmd === 'pubrec').length === 3, 5000, 'three PUBRECs')
    r.send(qos2(4))
    await r.closed
    expect(await limitCount(b, 'mqtt_max_inflight')).toBe(1)
  })

  it('--mqtt-max-queued: an offline session keeps the newest messages, the oldest are dropped, counted and gone from storage too', async () => {
    const tmp = tempDir()
    const first = await startTestBroker({ mqttSysIntervalMs: 0, mqttMaxQueued: 3 }, tmp.dir)
    try {
      const device = await mqtt.connectAsync(first.mqttUrl, { clientId: 'queued-device', clean: false, reconnectPeriod: 0 })
      await device.subscribeAsync('queue/#', { qos: 1 })
      await device.endAsync()
      const publisher = await mqtt.connectAsync(first.mqttUrl, { reconnectPeriod: 0 })
      for (let i = 0; i < 5; i++) await publisher.publishAsync('queue/t', String(i), { qos: 1 })
      await publisher.endAsync()
      expect(await limitCount(first as TestBroker, 'mqtt_max_queued')).toBe(2)
    } finally {
      await first.close()
    }
    // after a restart: the dropped ones do not come back
    const second = await startTestBroker({ mqttSysIntervalMs: 0, mqttMaxQueued: 3 }, tmp.dir)
    try {
      const got: string[] = []
      const device = await mqtt.connectAsync(second.mqttUrl, { clientId: 'queued-device', clean: false, reconnectPeriod: 0 })
      device.on('message', (_t, payload) => { got.push(payload.toString()) })
      await waitFor(() => got.length >= 3, 5000, 'the queued messages')
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(got).toEqual(['2', '3', '4'])
      await device.endAsync()
    } finally {
      await second.close()
      tmp.remove()
    }
  })

  it('--mqtt-max-topic-length and --mqtt-max-topic-levels: SUBSCRIBE 0x80 for that filter, PUBLISH closes the connection, HTTP 400 naming the limit', async () => {
    const b = await broker({ mqttMaxTopicLength: 32, mqttMaxTopicLevels: 4 })
    const client = await connect(b.mqttUrl)
    let granted: number[]
    try {
      granted = (await client.subscribeAsync({ 'a/b/c/d/e': { qos: 0 }, 'a/b': { qos: 0 }, ['x'.repeat(40)]: { qos: 0 } })).map(g => g.qos)
    } catch (err) {
      granted = (err as { packet: { granted: number[] } }).packet.granted
    }
    expect(granted).toEqual([128, 0, 128])
    const closed = new Promise<void>(resolve => { client.once('close', () => { resolve() }) })
    client.publish('a/b/c/d/e', 'too deep')
    await closed
    const deep = await fetch(`${b.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'a/b/c/d/e', payload: 'x' }) })
    expect(deep.status).toBe(400)
    expect(((await deep.json()) as { detail: string }).detail).toContain('--mqtt-max-topic-levels')
    const long = await fetch(`${b.url}/v1/pubsub/retained?filter=${'y'.repeat(40)}`)
    expect(long.status).toBe(400)
    expect(((await long.json()) as { detail: string }).detail).toContain('--mqtt-max-topic-length')
    expect(await limitCount(b, 'mqtt_max_topic_levels')).toBe(2)
    expect(await limitCount(b, 'mqtt_max_topic_length')).toBe(1)
    // an SSE subscription is refused before its stream starts: a 400, not a 200 stream that never delivers
    const sse = await fetch(`${b.url}/v1/pubsub/subscribe?filter=a/b/c/d/%2B`)
    expect(sse.status).toBe(400)
    expect(sse.headers.get('content-type')).toContain('application/problem+json')
    expect(((await sse.json()) as { detail: string }).detail).toContain('--mqtt-max-topic-levels')
  })

  it('the in-flight window, as a property: never more than the cap unacknowledged, order kept, a persistent session loses nothing', async () => {
    type Step = 'deliver' | number
    /** Runs the steps: deliveries of QoS 1 messages numbered from 1, acknowledgements of one unacknowledged id. */
    const run = async (maxInflight: number, deliver: (n: number) => Promise<void>, ack: (id: number) => void, sent: Array<{ id: number, n: number }>, steps: Step[]): Promise<void> => {
      const unacked = new Set<number>()
      let counter = 0
      let seen = 0
      const note = (): void => {
        for (const w of sent.slice(seen)) unacked.add(w.id)
        seen = sent.length
        expect(unacked.size).toBeLessThanOrEqual(maxInflight)
      }
      for (const step of steps) {
        if (step === 'deliver') await deliver(++counter)
        else if (unacked.size > 0) {
          const id = [...unacked][step % unacked.size]
          unacked.delete(id)
          ack(id)
        }
        note()
      }
      // everything acknowledged: what is left waiting goes out
      for (let guard = 0; unacked.size > 0 && guard < 10_000; guard++) {
        const [id] = unacked
        unacked.delete(id)
        ack(id)
        await new Promise(resolve => setImmediate(resolve))
        note()
      }
    }
    const steps = fc.array(fc.oneof(fc.constant<'deliver'>('deliver'), fc.nat({ max: 9 })), { maxLength: 80 })
    // a session that ends with its connection, under --mqtt-max-waiting (0: no cap)
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 4 }), steps, async (maxInflight, maxWaiting, plan) => {
      const sent: Array<{ id: number, n: number }> = []
      let nextId = 1
      let dropped = 0
      const window = new WaitingWindow(maxInflight, maxWaiting === 0 ? Number.POSITIVE_INFINITY : maxWaiting, d => {
        sent.push({ id: d.packetId ?? 0, n: Number(d.message.payload.toString()) })
        return true
      }, () => { dropped++ })
      let offered = 0
      await run(maxInflight, async n => {
        offered++
        window.offer({ message: { topic: 't', payload: Buffer.from(String(n)), qos: 1, retain: false }, qos: 1, retain: false, packetId: nextId++ })
      }, id => { window.acknowledged(id) }, sent, plan)
      const order = sent.map(w => w.n)
      expect(order).toEqual([...order].sort((a, b) => a - b))
      expect(order.length + dropped).toBe(offered)
      if (maxWaiting === 0) expect(dropped).toBe(0)
    }), { numRuns: 200 })
    // a session that outlives its connection: the bus's window over its queue, nothing dropped
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 5 }), steps, async (maxInflight, plan) => {
      const bus = await PubSub.create()
      try {
        const sent: Array<{ id: number, n: number }> = []
        const outlet: Outlet = {
          deliver: (d: Delivery) => { sent.push({ id: d.packetId ?? 0, n: Number(d.message.payload.toString()) }); return true },
          release: () => {},
          kick: () => {}
        }
        const handle = await bus.connect({ clientId: 'window', cleanStart: true, expiryInterval: 0xffffffff, receiveMaximum: maxInflight }, outlet)
        // the bus starts sending once the CONNACK would be out
        await new Promise(resolve => setImmediate(resolve))
        await handle.subscribe([{ filter: 't', options: { qos: 1 } }])
        let published = 0
        await run(maxInflight, async n => {
          published++
          await bus.route({ topic: 't', payload: Buffer.from(String(n)), qos: 1, retain: false }, 'mqtt')
        }, id => { handle.acknowledged(id) }, sent, plan)
        expect(sent.map(w => w.n)).toEqual(Array.from({ length: published }, (_v, i) => i + 1))
      } finally {
        await bus.close()
      }
    }), { numRuns: 100 })
  })
})
