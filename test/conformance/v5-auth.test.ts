import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { IConnackPacket, IPubackPacket, ISubackPacket } from 'mqtt-packet'
import type { Config } from '../../src/config.js'
import { tempDir } from '../helpers.js'
import { writeAuthFile } from '../protocols/http-auth-fixture.js'
import { P, RawClient, packet, prop, rawConnect } from './raw-client.js'
import { closedWith, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 5.0 enhanced authentication (§4.12, AUTH §3.15), CONNECT refusals by authentication (§3.1.4,
 * §3.2.2.2) and authorization of PUBLISH and SUBSCRIBE, with 3.1.1's counterparts ([MQTT-3.3.5-2]), on a
 * broker with an auth file (user "dev" may publish and subscribe under open/; nobody may use closed/).
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-4.12.0-2], [MQTT-4.12.0-4], [MQTT-4.12.0-5], [MQTT-4.12.1-1], [MQTT-4.12.1-2], [MQTT-3.15.2-1..3]:
 *   Tetra supports no authentication method, so there is no AUTH exchange to hold them to: a CONNECT
 *   naming a method is refused ([MQTT-4.12.0-1], tested).
 * - [MQTT-4.12.0-3], [MQTT-4.12.0-7], [MQTT-3.1.2-30]: bind the client; the server's answer to an AUTH it
 *   did not ask for is tested (protocol error).
 */

const tmp = tempDir('tetra-conformance-auth-')
const overrides: Partial<Config> = { mqttSysIntervalMs: 0 }
beforeAll(async () => {
  const { file } = await writeAuthFile(tmp.dir, {
    users: [{ name: 'dev', password: 'pw-dev', roles: ['dev'] }],
    roles: { dev: [{ resource: 'topic', pattern: 'open/#', actions: ['publish', 'subscribe'] }] }
  })
  overrides.authFile = file
})
const s = useBroker(overrides)
afterAll(() => { tmp.remove() })

const DEV = { username: 'dev', password: Buffer.from('pw-dev') }

describe('MQTT 5 enhanced authentication', () => {
  it('[MQTT-4.12.0-1] an Authentication Method the server does not support: CONNACK 0x8C (or 0x87), then close', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(rawConnect({ level: 5, clientId: fresh('am'), username: 'dev', password: 'pw-dev', properties: prop.str(P.authMethod, 'SCRAM-SHA-256') }))
    const ack = await c.next('connack') as IConnackPacket
    expect([0x8c, 0x87]).toContain(ack.reasonCode)
    await c.awaitClose()
  })

  it('[MQTT-4.12.0-6] without an Authentication Method: no AUTH packet and no Authentication Method in CONNACK', async () => {
    const { client, connack } = await RawClient.connect(s.port, 5, { clientId: fresh('noam'), ...DEV })
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.authenticationMethod).toBeUndefined()
    await client.ping()
    expect(client.received.filter(p => p.cmd === 'auth')).toEqual([])
    client.disconnect()
  })

  it('§4.12 an AUTH packet on a connection that named no Authentication Method is a protocol error: close', async () => {
    const { client } = await RawClient.connect(s.port, 5, { clientId: fresh('auth'), ...DEV })
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256' } })
    await closedWith(client, [0x82])
  })

  it('[MQTT-3.15.1-1] an AUTH packet with reserved flags set is malformed: close', async () => {
    const { client } = await RawClient.connect(s.port, 5, { clientId: fresh('authf'), ...DEV })
    client.sendBytes(packet(0xf1, Buffer.from([0x19, 0])))
    await closedWith(client, [0x81, 0x82])
  })

  it('[MQTT-3.1.0-1] an AUTH packet before CONNECT closes the connection', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(packet(0xf0, Buffer.from([0x18, 0])))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'connack' && (p as IConnackPacket).reasonCode === 0)).toEqual([])
  })
})

describe('CONNECT refused by authentication', () => {
  it('[MQTT-3.1.4-2] [MQTT-3.2.2-7] MQTT 5, a wrong password: CONNACK 0x86 (or 0x87), session present 0, then close', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(rawConnect({ level: 5, clientId: fresh('bad'), username: 'dev', password: 'wrong' }))
    const ack = await c.next('connack') as IConnackPacket
    expect([0x86, 0x87]).toContain(ack.reasonCode)
    expect(ack.sessionPresent).toBe(false)
    await c.awaitClose()
  })

  it('[MQTT-3.1.4-2] MQTT 5, no credentials where anonymous access is off: CONNACK 0x87 (or 0x86), then close', async () => {
    const c = await s.rawOpen(5)
    c.sendBytes(rawConnect({ level: 5, clientId: fresh('anon') }))
    const ack = await c.next('connack') as IConnackPacket
    expect([0x86, 0x87]).toContain(ack.reasonCode)
    await c.awaitClose()
  })

  it('[MQTT-3.2.2-5] MQTT 3.1.1, a wrong password: CONNACK 0x04 (or 0x05), then close', async () => {
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('bad4'), username: 'dev', password: 'wrong' }))
    const ack = await c.next('connack') as IConnackPacket
    expect([4, 5]).toContain(ack.returnCode)
    expect(ack.sessionPresent).toBe(false)
    await c.awaitClose()
  })
})

describe('authorization of PUBLISH and SUBSCRIBE', () => {
  async function watcher (): Promise<{ got: ReturnType<typeof collect>, marker: string }> {
    const w = await s.client({ protocolVersion: 5, ...DEV })
    const got = collect(w)
    const marker = fresh('open/marker-')
    await w.subscribeAsync(['open/#'])
    return { got, marker }
  }

  it('[MQTT-3.3.5-2] MQTT 3.1.1, a PUBLISH the server does not authorize: a positive PUBACK or a close, and not delivered', async () => {
    const { got, marker } = await watcher()
    const topic = fresh('closed/')
    const c = await s.raw(4, DEV)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'open/#', qos: 0 }] })
    await c.next('suback')
    c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false })
    const ack = await c.nextOrClose('puback') as IPubackPacket | undefined
    if (ack !== undefined) expect(ack.messageId).toBe(2)
    const pub = await s.client({ protocolVersion: 5, ...DEV })
    await pub.publishAsync(marker, 'm')
    expect((await untilMarker(got, marker)).filter(m => m.topic === topic)).toEqual([])
  })

  it('§3.4.2.1 MQTT 5, a PUBLISH the server does not authorize: PUBACK 0x87 (or a positive PUBACK, or DISCONNECT 0x87), not delivered', async () => {
    const topic = fresh('closed/')
    const spy = await s.client({ protocolVersion: 5, ...DEV })
    const got = collect(spy)
    await spy.subscribeAsync('open/#')
    const c = await s.raw(5, DEV)
    c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false })
    const ack = await c.nextOrClose('puback') as IPubackPacket | undefined
    if (ack !== undefined) expect([0x00, 0x10, 0x87]).toContain(ack.reasonCode ?? 0)
    else await closedWith(c, [0x87])
    const marker = fresh('open/marker-')
    await spy.publishAsync(marker, 'm')
    expect((await untilMarker(got, marker)).filter(m => m.topic === topic)).toEqual([])
  })

  it('§3.9.3 a SUBSCRIBE the server does not authorize: SUBACK 0x87 (MQTT 5) / 0x80 (3.1.1) for that filter only', async () => {
    for (const version of [5, 4] as const) {
      const c = await s.raw(version, DEV)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'open/a', qos: 1 }, { topic: 'closed/a', qos: 1 }] })
      const ack = await c.next('suback') as ISubackPacket
      expect(ack.granted).toEqual([1, version === 5 ? 0x87 : 0x80])
    }
  })
})
