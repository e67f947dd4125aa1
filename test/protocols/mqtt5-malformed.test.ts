import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqttPacket from 'mqtt-packet'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { Clients, collect } from './mqtt5-fixture.js'

/**
 * What the broker refuses, 3.1.1 and 5.0 (the refusals aedes missed): invalid UTF-8 and U+0000 in topics,
 * filters and strings, UNSUBSCRIBE without filters, a will QoS of 3, a password without a user name, a
 * zero-length client id without a clean session. Sent as raw bytes: a client library will not send them.
 */

let broker: TestBroker
const clients = new Clients()
beforeAll(async () => { broker = await startTestBroker({ mqttSysIntervalMs: 0 }) })
afterAll(async () => {
  await clients.close()
  await broker.stop()
})

function str (bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function frame (first: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  if (body.length > 127) throw new Error('test packets stay short')
  return Buffer.concat([Buffer.from([first, body.length]), body])
}

/** The server's bytes until it closes (bounded). */
async function answer (bytes: Buffer[], version: 4 | 5): Promise<mqttPacket.Packet[]> {
  const socket = net.connect(broker.mqtt.port, '127.0.0.1')
  const packets: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: version })
  parser.on('packet', (p: mqttPacket.Packet) => { packets.push(p) })
  socket.on('data', (c: Buffer) => { parser.parse(c) })
  socket.on('error', () => {})
  let closed = false
  socket.on('close', () => { closed = true })
  for (const b of bytes) socket.write(b)
  await waitFor(() => closed, 5000, 'the server to close the connection')
  return packets
}

const connect = (version: 4 | 5, clientId: string): Buffer => version === 5
  ? frame(0x10, str('MQTT'), Buffer.from([5, 0x02, 0, 60, 0]), str(clientId))
  : frame(0x10, str('MQTT'), Buffer.from([4, 0x02, 0, 60]), str(clientId))

const BAD_STRINGS: Array<[string, Buffer]> = [
  ['an overlong encoding', Buffer.from([0x61, 0xc0, 0xaf])],
  ['an encoded surrogate', Buffer.from([0x61, 0xed, 0xa0, 0x80])],
  ['a code point past U+10FFFF', Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80])],
  ['U+0000', Buffer.from([0x61, 0x00, 0x62])]
]

describe('malformed strings and packets', () => {
  for (const [what, topic] of BAD_STRINGS) {
    it(`[MQTT-1.5.3-1] [MQTT-1.5.3-2] a PUBLISH topic with ${what}: 3.1.1 closed, v5 DISCONNECT 0x81`, async () => {
      const publish = (version: 4 | 5): Buffer => frame(0x30, str(topic), ...(version === 5 ? [Buffer.from([0])] : []), Buffer.from('x'))
      const v3 = await answer([connect(4, `bad3-${topic.toString('hex')}`), publish(4)], 4)
      expect(v3.map(p => p.cmd)).toEqual(['connack'])
      const v5 = await answer([connect(5, `bad5-${topic.toString('hex')}`), publish(5)], 5)
      expect(v5.map(p => p.cmd)).toEqual(['connack', 'disconnect'])
      expect((v5[1] as mqttPacket.IDisconnectPacket).reasonCode).toBe(0x81)
    })
  }

  it('[MQTT-1.5.3-1] a SUBSCRIBE filter with an encoded surrogate closes the connection', async () => {
    const subscribe = frame(0x82, Buffer.from([0, 1]), str(Buffer.from([0x61, 0xed, 0xb0, 0x80])), Buffer.from([0]))
    expect((await answer([connect(4, 'bad-filter'), subscribe], 4)).map(p => p.cmd)).toEqual(['connack'])
  })

  it('[MQTT-1.5.3-3] a U+FFFD the client really sent (EF BF BD) is a valid character: the message is routed', async () => {
    const sub = await clients.connect(broker.mqttUrl)
    const got = collect(sub)
    await sub.subscribeAsync('fffd/#')
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'fffd', keepalive: 60 }, 4)
    client.socket.write(frame(0x30, str(Buffer.from('fffd/\uFFFD')), Buffer.from('ok')))
    await waitFor(() => got.length === 1, 5000, 'the message')
    expect(got[0].topic).toBe('fffd/\uFFFD')
  })

  it('[MQTT-3.10.3-2] an UNSUBSCRIBE without filters: 3.1.1 closed, v5 DISCONNECT 0x82', async () => {
    expect((await answer([connect(4, 'unsub-empty-3'), frame(0xa2, Buffer.from([0, 1]))], 4)).map(p => p.cmd)).toEqual(['connack'])
    const v5 = await answer([connect(5, 'unsub-empty-5'), frame(0xa2, Buffer.from([0, 1, 0]))], 5)
    expect(v5.map(p => p.cmd)).toEqual(['connack', 'disconnect'])
    expect((v5[1] as mqttPacket.IDisconnectPacket).reasonCode).toBe(0x82)
  })

  it('[MQTT-3.1.2-14] a will QoS of 3: 3.1.1 closed without CONNACK, v5 CONNACK 0x81', async () => {
    const will = (version: 4 | 5): Buffer => frame(0x10, str('MQTT'), Buffer.from([version, 0x02 | 0x04 | 0x18, 0, 60]), ...(version === 5 ? [Buffer.from([0])] : []), str(`wq3-${version}`), ...(version === 5 ? [Buffer.from([0])] : []), str('w/t'), str('x'))
    expect(await answer([will(4)], 4)).toEqual([])
    const v5 = await answer([will(5)], 5)
    expect(v5.map(p => [p.cmd, (p as mqttPacket.IConnackPacket).reasonCode])).toEqual([['connack', 0x81]])
  })

  it('[MQTT-3.1.2-22] a 3.1.1 password without a user name closes the connection without CONNACK', async () => {
    const bytes = frame(0x10, str('MQTT'), Buffer.from([4, 0x02 | 0x40, 0, 60]), str('pw-only'), str('secret'))
    expect(await answer([bytes], 4)).toEqual([])
  })

  it('[MQTT-3.1.3-8] a zero-length client id with clean session 0: CONNACK 0x02, then closed', async () => {
    const bytes = frame(0x10, str('MQTT'), Buffer.from([4, 0x00, 0, 60]), str(''))
    const packets = await answer([bytes], 4)
    expect(packets.map(p => [p.cmd, (p as mqttPacket.IConnackPacket).returnCode])).toEqual([['connack', 2]])
  })

  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async () => {
    expect(await answer([frame(0xc0)], 4)).toEqual([])
  })

  it('[MQTT-3.1.0-2] a second CONNECT: 3.1.1 closed, v5 DISCONNECT 0x82', async () => {
    expect((await answer([connect(4, 'twice-3'), connect(4, 'twice-3')], 4)).map(p => p.cmd)).toEqual(['connack'])
    const v5 = await answer([connect(5, 'twice-5'), connect(5, 'twice-5')], 5)
    expect(v5.map(p => p.cmd)).toEqual(['connack', 'disconnect'])
    expect((v5[1] as mqttPacket.IDisconnectPacket).reasonCode).toBe(0x82)
  })
})
