import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type mqttPacket from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers.js'
import { Clients } from './mqtt5-fixture.js'

/** MQTT 5 CONNECT and CONNACK on the front-end of our own: the broker's limits told, ids assigned, refusals. */

let broker: TestBroker
const clients = new Clients()
beforeAll(async () => { broker = await startTestBroker({ mqttSysIntervalMs: 0, mqttKeepAliveMax: 120, mqttKeepAliveMin: 5, mqttMaxPacketSize: 64 * 1024 }) })
afterAll(async () => {
  await clients.close()
  await broker.stop()
})

describe('MQTT 5 CONNECT / CONNACK', () => {
  it('[MQTT-3.2.2-3] CONNACK tells the broker\'s limits: maximum packet size, topic alias maximum, receive maximum, wildcard, shared and subscription identifier availability', async () => {
    const { connack } = await clients.raw(broker.mqtt.port, { clientId: 'limits-told', keepalive: 60 })
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties).toMatchObject({
      maximumPacketSize: 64 * 1024,
      topicAliasMaximum: 10,
      receiveMaximum: 1000,
      wildcardSubscriptionAvailable: true,
      sharedSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true
    })
    // QoS 2 and retain are available: the properties are left out (their defaults, MQTT 5 §3.2.2.3.4/5)
    expect(connack.properties?.maximumQoS).toBeUndefined()
    expect(connack.properties?.retainAvailable).toBeUndefined()
  })

  it('[MQTT-3.2.2-16] a zero-length client id gets an Assigned Client Identifier, which the session uses', async () => {
    const { client, connack } = await clients.raw(broker.mqtt.port, { clientId: '', keepalive: 60 })
    const assigned = connack.properties?.assignedClientIdentifier
    expect(assigned).toMatch(/^auto-/)
    expect(broker.engines.pubsub.clients().some(c => c.clientId === assigned && c.connected)).toBe(true)
    client.socket.destroy()
  })

  it('[MQTT-3.2.2-21] Server Keep Alive: a keep alive over --mqtt-keepalive-max, or 0, is replaced; one under --mqtt-keepalive-min too', async () => {
    const over = await clients.raw(broker.mqtt.port, { clientId: 'ka-over', keepalive: 600 })
    expect(over.connack.properties?.serverKeepAlive).toBe(120)
    const zero = await clients.raw(broker.mqtt.port, { clientId: 'ka-zero', keepalive: 0 })
    expect(zero.connack.properties?.serverKeepAlive).toBe(120)
    const under = await clients.raw(broker.mqtt.port, { clientId: 'ka-under', keepalive: 1 })
    expect(under.connack.properties?.serverKeepAlive).toBe(5)
    const within = await clients.raw(broker.mqtt.port, { clientId: 'ka-ok', keepalive: 60 })
    expect(within.connack.properties?.serverKeepAlive).toBeUndefined()
  })

  it('[MQTT-3.1.2-24] a 3.1.1 client asking for more than --mqtt-keepalive-max is refused (CONNACK 0x02: it cannot be told another)', async () => {
    const { client, connack } = await clients.raw(broker.mqtt.port, { clientId: 'ka-v3', keepalive: 600 }, 4)
    expect(connack.returnCode).toBe(2)
    await client.disconnected()
  })

  it('§3.1.2.11.7 Request Response Information: CONNACK carries the response information, the documented prefix and the client id', async () => {
    const asked = await clients.raw(broker.mqtt.port, { clientId: 'rr-1', keepalive: 60, properties: { requestResponseInformation: true } })
    expect(asked.connack.properties?.responseInformation).toBe('response/rr-1')
    const notAsked = await clients.raw(broker.mqtt.port, { clientId: 'rr-2', keepalive: 60 })
    expect(notAsked.connack.properties?.responseInformation).toBeUndefined()
  })

  it('[MQTT-4.12.0-1] an authentication method the broker does not support: CONNACK 0x8C, then closed', async () => {
    const { client, connack } = await clients.raw(broker.mqtt.port, { clientId: 'enh-auth', keepalive: 60, properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('x') } })
    expect(connack.reasonCode).toBe(0x8c)
    expect(connack.properties?.reasonString).toContain('SCRAM-SHA-1')
    await client.disconnected()
  })

  it('[MQTT-4.12.0-2] an AUTH packet outside an authentication exchange (the broker offers none): DISCONNECT 0x82', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'auth-pkt', keepalive: 60 })
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-1' } })
    expect((await client.disconnected())?.reasonCode).toBe(0x82)
  })

  it('[MQTT-3.1.4-3] a second connection with the same client id takes the session over: DISCONNECT 0x8E to the first', async () => {
    const first = await clients.raw(broker.mqtt.port, { clientId: 'taken-over', keepalive: 60 })
    await clients.raw(broker.mqtt.port, { clientId: 'taken-over', keepalive: 60 })
    const disconnect = await first.client.disconnected()
    expect(disconnect?.reasonCode).toBe(0x8e)
  })

  it('[MQTT-3.1.2-23] session expiry: a session with an expiry outlives its connection and is present when the client comes back; 0 ends it', async () => {
    const a = await clients.raw(broker.mqtt.port, { clientId: 'expiring', clean: true, keepalive: 60, properties: { sessionExpiryInterval: 300 } })
    a.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'exp/#', qos: 1 }] })
    await a.client.next('suback')
    a.client.send({ cmd: 'disconnect', reasonCode: 0 })
    await a.client.closed
    const b = await clients.raw(broker.mqtt.port, { clientId: 'expiring', clean: false, keepalive: 60, properties: { sessionExpiryInterval: 0 } })
    expect(b.connack.sessionPresent).toBe(true)
    b.client.send({ cmd: 'disconnect', reasonCode: 0 })
    await b.client.closed
    const c = await clients.raw(broker.mqtt.port, { clientId: 'expiring', clean: false, keepalive: 60 })
    expect(c.connack.sessionPresent).toBe(false)
  })

  it('[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 (disconnect with will) publishes it', async () => {
    const watcher = await clients.connect(broker.mqttUrl)
    const got: string[] = []
    watcher.on('message', (_t, payload) => { got.push(payload.toString()) })
    await watcher.subscribeAsync('wills5/#', { qos: 1 })
    for (const [reasonCode, name] of [[0x00, 'normal'], [0x04, 'with-will']] as const) {
      const { client } = await clients.raw(broker.mqtt.port, { clientId: `will-${name}`, keepalive: 60, will: { topic: `wills5/${name}`, payload: Buffer.from(name), qos: 1, retain: false } })
      client.send({ cmd: 'disconnect', reasonCode })
      await client.closed
    }
    const { waitFor } = await import('../helpers.js')
    await waitFor(() => got.length >= 1, 5000, 'the will')
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(got).toEqual(['with-will'])
  })

  it('[MQTT-3.14.2-2] a DISCONNECT raising the session expiry from 0: DISCONNECT 0x82 from the server', async () => {
    const { client } = await clients.raw(broker.mqtt.port, { clientId: 'raise-expiry', keepalive: 60 })
    client.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    expect((await client.disconnected())?.reasonCode).toBe(0x82)
  })

  it('[MQTT-3.1.2-2] an unsupported level is refused (CONNACK 0x01 in the 3.1.1 form), a wrong name at level 5 with 0x84', async () => {
    const net = await import('node:net')
    const answer = async (bytes: Buffer): Promise<Buffer> => await new Promise(resolve => {
      const s = net.connect(broker.mqtt.port, '127.0.0.1')
      let got = Buffer.alloc(0)
      s.on('data', (c: Buffer) => { got = Buffer.concat([got, c]) })
      s.on('close', () => { resolve(got) })
      s.on('error', () => {})
      s.write(bytes)
    })
    const connect = (name: string, level: number): Buffer => {
      const body = Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([level, 0x02, 0, 60]), ...(level === 5 ? [Buffer.from([0])] : []), Buffer.from([0, 1, 0x78])])
      return Buffer.concat([Buffer.from([0x10, body.length]), body])
    }
    expect([...await answer(connect('MQTT', 6))]).toEqual([0x20, 0x02, 0x00, 0x01])
    expect([...await answer(connect('MQTT', 131))]).toEqual([0x20, 0x02, 0x00, 0x01])
    expect([...await answer(connect('MQTX', 4))]).toEqual([0x20, 0x02, 0x00, 0x01])
    expect([...await answer(connect('MQTX', 5))]).toEqual([0x20, 0x03, 0x00, 0x84, 0x00])
  })

  it('[MQTT-3.1.2-22] nothing from the client for 1.5 times its keep alive: DISCONNECT 0x8D (keep alive timeout)', async () => {
    const own = await startTestBroker({ mqttSysIntervalMs: 0 })
    try {
      const { client } = await clients.raw(own.mqtt.port, { clientId: 'silent', keepalive: 1 })
      expect((await client.disconnected())?.reasonCode).toBe(0x8d)
      // one that pings stays
      const { client: pinging } = await clients.raw(own.mqtt.port, { clientId: 'pinging', keepalive: 1 })
      for (let i = 0; i < 6; i++) {
        pinging.send({ cmd: 'pingreq' })
        await pinging.next('pingresp')
        await new Promise(resolve => setTimeout(resolve, 500))
      }
      expect(pinging.isClosed()).toBe(false)
    } finally {
      await own.stop()
    }
  })

  it('shutdown: a connected v5 client gets DISCONNECT 0x8B (server shutting down)', async () => {
    const own = await startTestBroker({ mqttSysIntervalMs: 0 })
    const { client } = await clients.raw(own.mqtt.port, { clientId: 'shut', keepalive: 60 })
    await own.stop()
    const disconnect: mqttPacket.IDisconnectPacket | undefined = await client.disconnected()
    expect(disconnect?.reasonCode).toBe(0x8b)
  })
})
