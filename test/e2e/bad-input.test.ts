import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { pino } from 'pino'
import { loadConfig } from '../../src/config.js'
import { startBroker, type Broker } from '../../src/server.js'
import { startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'

let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker({ httpBodyLimit: 64 * 1024 }) })
afterAll(async () => { await broker.stop() })

/** Sends raw bytes on a fresh MQTT connection and resolves when the broker closes it. */
async function sendRaw (bytes: Buffer, end = false): Promise<'closed'> {
  const socket = net.connect(broker.mqtt.port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => { /* the broker may reset it */ })
  socket.on('data', () => { /* a CONNACK refusal may arrive before the close */ })
  const closed = new Promise<'closed'>(resolve => socket.once('close', () => { resolve('closed') }))
  socket.write(bytes)
  if (end) socket.end()
  return await closed
}

function connectPacket (protocolName: string, level = 4): Buffer {
  const name = Buffer.from(protocolName)
  const clientId = Buffer.from('raw')
  const variable = Buffer.concat([Buffer.from([0, name.length]), name, Buffer.from([level, 0x02, 0, 60]), Buffer.from([0, clientId.length]), clientId])
  return Buffer.concat([Buffer.from([0x10, variable.length]), variable])
}

async function ordinaryRoundTrip (): Promise<void> {
  const sub = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0 })
  const pub = await mqtt.connectAsync(broker.wsUrl, { reconnectPeriod: 0 })
  const got: string[] = []
  sub.on('message', (_t, p) => got.push(p.toString()))
  await sub.subscribeAsync('still/alive', { qos: 1 })
  await pub.publishAsync('still/alive', 'yes', { qos: 1 })
  const res = await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic":"still/alive","payload":"http","encoding":"utf8"}' })
  expect(res.status).toBe(200)
  await waitFor(() => got.length === 2)
  expect(got.sort()).toEqual(['http', 'yes'])
  await sub.endAsync()
  await pub.endAsync()
}

describe('bad input on the MQTT port closes only that connection', () => {
  it('survives garbage, truncation, a bad protocol name and an oversized length header', async () => {
    // an ordinary client connected the whole time must not notice
    const bystander = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0 })
    let bystanderClosed = false
    bystander.on('close', () => { bystanderClosed = true })

    expect(await sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toBe('closed')
    expect(await sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37]))).toBe('closed')
    // a CONNECT cut short, then the sender hangs up
    expect(await sendRaw(connectPacket('MQTT').subarray(0, 7), true)).toBe('closed')
    expect(await sendRaw(connectPacket('MQXX'))).toBe('closed')
    expect(await sendRaw(connectPacket('MQTT', 9))).toBe('closed')
    // remaining length of 300 MB: more than the 4-byte encoding allows
    expect(await sendRaw(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBe('closed')
    // a PUBLISH before CONNECT
    expect(await sendRaw(Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x62, 0x63]))).toBe('closed')

    expect(bystanderClosed).toBe(false)
    await bystander.endAsync()
    await ordinaryRoundTrip()
  })

  it('forgets a client that hangs up while its CONNECT (with a will) is still being handled', async () => {
    // found by test/e2e/hostile-mqtt.test.ts: such clients stayed registered for good (memory, count)
    const will = { topic: 'will/x', payload: Buffer.from('gone'), qos: 2 as const, retain: false }
    for (let i = 0; i < 20; i++) {
      const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `hangup-${i}`, keepalive: 60000, will })
      // a PUBREL header announcing more bytes than ever come, then the hang-up
      expect(await sendRaw(Buffer.concat([connect, Buffer.from([0x62, 0xdf, 0x11, 0x2d])]), true)).toBe('closed')
    }
    await waitFor(() => broker.engines.pubsub.connectedClients === 0, 5000, 'no registered clients')
    await ordinaryRoundTrip()
    expect(broker.engines.pubsub.connectedClients).toBe(0)
  })

  it('refuses a publish to a wildcard topic from a connected client by closing it', async () => {
    const bad = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0 })
    const closed = new Promise<void>(resolve => bad.once('close', () => { resolve() }))
    // MQTT.js validates topics itself, so write the packet under it
    bad.stream.write(Buffer.from([0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x23]))
    await closed
    bad.end(true)
    await ordinaryRoundTrip()
  })
})

describe('bad input on HTTP gets problem+json 4xx', () => {
  const cases: Array<[string, RequestInit & { path?: string }, number]> = [
    ['malformed JSON', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic": "a", ' }, 400],
    ['wrong types', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic": 5, "payload": 1}' }, 400],
    ['unknown fields', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic": "a", "payload": 1, "extra": true}' }, 400],
    ['an empty body', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' }, 400],
    ['a body over the limit', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'a', payload: 'x'.repeat(100 * 1024) }) }, 413],
    ['an unsupported content type', { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' }, 415],
    ['an unknown route', { method: 'GET', path: '/v1/nothing-here' }, 404],
    ['a wrong method', { method: 'DELETE' }, 404]
  ]
  for (const [why, init, status] of cases) {
    it(`answers ${status} to ${why}`, async () => {
      const res = await fetch(`${broker.url}${init.path ?? '/v1/pubsub/publish'}`, init)
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      const body = await res.json() as Record<string, unknown>
      expect(body).toMatchObject({ status, title: expect.any(String), type: expect.any(String), detail: expect.any(String) })
    })
  }

  it('still serves ordinary clients afterwards', async () => {
    await ordinaryRoundTrip()
  })
})

describe('invalid WebSocket frames on /mqtt are the client\'s bad input, not an operator alarm', () => {
  /** A broker whose log lines are kept, at debug level, to see what an operator would see. */
  async function brokerWithLog (): Promise<{ broker: Broker, lines: Array<{ level: number, msg?: string }>, remove: () => void }> {
    const tmp = tempDir()
    const lines: Array<{ level: number, msg?: string }> = []
    const destination = new Writable({
      write (chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as { level: number, msg?: string })
        callback()
      }
    })
    const { config } = loadConfig([], {})
    const broker = await startBroker({ ...config, mqttPort: 0, httpPort: 0, dataDir: tmp.dir, logLevel: 'debug' }, pino({ level: 'debug' }, destination))
    return { broker, lines, remove: tmp.remove }
  }

  /** A raw socket upgraded to WebSocket on /mqtt (RFC 6455 4.1), the 101 answer read. */
  async function upgraded (port: number): Promise<net.Socket> {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => { /* the broker may reset it */ })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    socket.write('GET /mqtt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`)
    let head = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1')
        if (!head.includes('\r\n\r\n')) return
        socket.off('data', onData)
        if (head.startsWith('HTTP/1.1 101')) resolve()
        else reject(new Error(`no upgrade: ${head}`))
      }
      socket.on('data', onData)
    })
    return socket
  }

  const masked = (first: number, payload: Buffer): Buffer => {
    const mask = randomBytes(4)
    return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))])
  }

  it('RFC 6455 5.2/5.1: a reserved opcode and an unmasked client frame close that socket, are counted, and log no error', async () => {
    const { broker, lines, remove } = await brokerWithLog()
    try {
      const frames: Array<[string, Buffer]> = [
        ['reserved opcode 0x3', masked(0x83, Buffer.from('hi'))],
        ['unmasked binary frame', Buffer.from([0x82, 0x02, 0x10, 0x00])],
        ['reserved bit RSV2 set', masked(0xa2, Buffer.from([0x10, 0x00]))],
        ['close frame with an invalid code', masked(0x88, Buffer.from([0x03, 0xe7]))]
      ]
      for (const [what, frame] of frames) {
        const socket = await upgraded(broker.httpAddress.port)
        const closed = new Promise<void>(resolve => socket.once('close', () => { resolve() }))
        socket.write(frame)
        await closed
        expect(socket.destroyed, what).toBe(true)
      }
      const metrics = await (await fetch(`http://127.0.0.1:${broker.httpAddress.port}/metrics`)).text()
      expect(metrics).toMatch(new RegExp(`tetra_bad_input_total\\{transport="mqtt_ws"\\} ${frames.length}\\b`))
      expect(lines.filter(l => l.level >= 50)).toEqual([])
      expect(lines.some(l => l.level === 20 && /WebSocket/.test(l.msg ?? ''))).toBe(true)
      // and MQTT over WebSocket still works
      const client = await mqtt.connectAsync(`ws://127.0.0.1:${broker.httpAddress.port}/mqtt`, { reconnectPeriod: 0 })
      await client.endAsync()
    } finally {
      await broker.close()
      remove()
    }
  })
})
