import { describe, expect, it } from 'vitest'
import type { IConnackPacket } from 'mqtt-packet'
import { WebSocket } from 'ws'
import { RawClient, field, packet, rawConnect, rawPublish, rawSubscribe, BAD_UTF8 } from './raw-client.js'
import { atLeast, collect, fresh, untilMarker, useBroker } from './support.js'

/**
 * MQTT 3.1.1 chapter 3.1/3.2 (CONNECT, CONNACK), 3.12 (PINGREQ), 3.14 (DISCONNECT), 2.2.2 (flags), 4.8
 * (protocol violations) and chapter 6 (WebSocket), as a server is held to them.
 *
 * Server statements of these chapters not tested here, and why:
 * - [MQTT-3.1.2-18], [MQTT-3.1.2-20] (no user name / password when the flag is 0): a field that is not
 *   flagged cannot be told from trailing garbage; the broker is only held to [MQTT-3.1.4-1] for it.
 * - [MQTT-3.1.2-23], [MQTT-3.1.3-7], [MQTT-3.14.4-1], [MQTT-3.14.4-2], [MQTT-6.0.0-3]: bind the client.
 * - [MQTT-3.1.3-1], [MQTT-3.1.3-3] (field order, client id first): a client rule; a CONNECT that breaks
 *   it is malformed, which [MQTT-3.1.4-1] covers (a CONNECT cut short after the keep alive).
 * - [MQTT-3.1.3-2] (the client id names the state), [MQTT-3.1.4-3] (clean session processing): tested in
 *   v311-session.
 * - [MQTT-3.1.3-9] (any client id refused gets 0x02): Tetra refuses only the zero-length one with clean
 *   session 0, tested as [MQTT-3.1.3-8].
 * - [MQTT-3.2.2-6] (no return code fits: close without CONNACK): every such case here is a malformed
 *   CONNECT, tested under [MQTT-3.1.4-1].
 * - [MQTT-3.1.2-12] (no will flag, nothing published): there is no will topic to watch; wills are tested
 *   where the flag is set.
 * - [MQTT-4.8.0-2] (transient errors): cannot be caused from outside.
 * - [MQTT-7.*]: conformance clauses, not behaviour.
 */

const s = useBroker()

async function refused (bytes: Buffer): Promise<RawClient> {
  const c = await s.rawOpen(4)
  c.sendBytes(bytes)
  await c.awaitClose()
  return c
}

function connacks (c: RawClient): IConnackPacket[] {
  return c.received.filter((p): p is IConnackPacket => p.cmd === 'connack')
}

describe('MQTT 3.1.1 CONNECT / CONNACK', () => {
  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection, unanswered', async () => {
    const c = await refused(packet(0xc0))
    expect(c.received).toEqual([])
  })

  it('[MQTT-3.1.0-2] [MQTT-4.8.0-1] a second CONNECT is a protocol violation: the connection is closed', async () => {
    const c = await s.raw(4)
    c.sendBytes(rawConnect({ clientId: fresh('second') }))
    await c.awaitClose()
    expect(connacks(c)).toHaveLength(1)
  })

  it('[MQTT-3.1.2-1] an unknown protocol name is refused: CONNACK 0x01, then the connection is closed', async () => {
    const c = await refused(rawConnect({ protocolName: 'MQXX', clientId: fresh('pn') }))
    expect(connacks(c).map(p => p.returnCode)).toEqual([1])
  })

  for (const level of [131, 2, 0]) {
    it(`[MQTT-3.1.2-2] protocol level ${level} is refused with CONNACK 0x01, then the connection is closed`, async () => {
      const c = await refused(rawConnect({ level, clientId: fresh('lvl') }))
      expect(connacks(c).map(p => p.returnCode)).toEqual([1])
    })
  }

  it('[MQTT-3.1.2-2] protocol level 6 (above 5) is refused with CONNACK 0x01 or MQTT 5\'s 0x84, then the connection is closed', async () => {
    // a level above 5 is neither 3.1.1 nor 5.0: 3.1.1 asks 0x01, 5.0 ([MQTT-3.1.2-2] of 5.0) allows 0x84
    const c = await refused(rawConnect({ level: 6, clientId: fresh('lvl') }))
    expect(connacks(c)).toHaveLength(1)
    expect([1, 0x84]).toContain(connacks(c)[0].returnCode)
  })

  it('[MQTT-3.1.2-3] a CONNECT with the reserved flag set closes the connection without accepting it', async () => {
    const c = await refused(rawConnect({ flags: 0x03, clientId: fresh('rsv') }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-9] will flag 1 without the will topic and message: the connection is closed unaccepted', async () => {
    const c = await refused(packet(0x10, field('MQTT'), Buffer.from([4, 0x06, 0, 0]), field(fresh('nowill'))))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-13] [MQTT-3.1.2-11] will flag 0 with a will QoS: the connection is closed unaccepted', async () => {
    const c = await refused(rawConnect({ flags: 0x02 | 0x08, clientId: fresh('wq') }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-15] will flag 0 with will retain 1: the connection is closed unaccepted', async () => {
    const c = await refused(rawConnect({ flags: 0x02 | 0x20, clientId: fresh('wr') }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-14] a will QoS of 3 is refused: the connection is closed unaccepted', async () => {
    const c = await refused(rawConnect({ clientId: fresh('wq3'), will: { topic: 'w/q3', payload: 'x', qos: 3 } }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-19] user name flag 1 without a user name: the connection is closed unaccepted', async () => {
    const c = await refused(packet(0x10, field('MQTT'), Buffer.from([4, 0x82, 0, 0]), field(fresh('nouser'))))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-21] password flag 1 without a password: the connection is closed unaccepted', async () => {
    const c = await refused(packet(0x10, field('MQTT'), Buffer.from([4, 0xc2, 0, 0]), field(fresh('nopw')), field('user')))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-22] a password without a user name is refused: the connection is closed unaccepted', async () => {
    const c = await refused(rawConnect({ clientId: fresh('pwonly'), password: 'secret' }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.2-24] keep alive 1 s and silence: the server closes the connection (within the bound)', async () => {
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('ka'), keepalive: 1 }))
    expect((await c.next('connack') as IConnackPacket).returnCode).toBe(0)
    await c.awaitClose(8000)
  })

  it('[MQTT-3.1.2-24] keep alive 1 s kept by PINGREQs: the connection stays open', async () => {
    const c = await s.raw(4, { keepalive: 1 })
    for (let i = 0; i < 4; i++) {
      await new Promise(resolve => setTimeout(resolve, 500)) // the client's own pacing, not an assertion
      await c.ping()
    }
    expect(c.isOpen).toBe(true)
  })

  it('[MQTT-3.1.3-3] [MQTT-3.1.4-1] a CONNECT cut short before the client id closes the connection without CONNACK', async () => {
    const c = await refused(packet(0x10, field('MQTT'), Buffer.from([4, 0x02, 0, 0])))
    expect(connacks(c)).toEqual([])
  })

  for (const bad of BAD_UTF8) {
    it(`[MQTT-3.1.3-4] [MQTT-1.5.3-1] a client id with ${bad.name} closes the connection unaccepted`, async () => {
      const c = await refused(rawConnect({ clientId: bad.bytes }))
      expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
    })
  }

  it('[MQTT-3.1.3-4] [MQTT-1.5.3-2] a client id with U+0000 closes the connection unaccepted', async () => {
    const c = await refused(rawConnect({ clientId: Buffer.from([0x61, 0x00, 0x62]) }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.3-5] a 23-byte client id of letters and digits is accepted', async () => {
    const id = ('Z9' + Math.random().toString(36).slice(2) + '0123456789abcdefghijk').slice(0, 23)
    expect(id).toHaveLength(23)
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: id }))
    const ack = await c.next('connack') as IConnackPacket
    expect(ack.returnCode).toBe(0)
  })

  it('[MQTT-3.1.3-6] zero-length client ids with clean session 1 get distinct sessions: two such clients stay connected side by side', async () => {
    const a = await s.raw(4, { clientId: '' })
    const b = await s.raw(4, { clientId: '' })
    const topic = fresh('anon/')
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
    await a.next('suback')
    b.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
    await b.next('suback')
    b.send({ cmd: 'publish', topic, payload: Buffer.from('hi'), qos: 0, retain: false, dup: false })
    await a.next('publish')
    await b.next('publish')
    expect(a.isOpen && b.isOpen).toBe(true)
  })

  it('[MQTT-3.1.3-8] a zero-length client id with clean session 0 is refused: CONNACK 0x02, then close', async () => {
    const c = await refused(rawConnect({ clientId: '', clean: false }))
    expect(connacks(c).map(p => p.returnCode)).toEqual([2])
    expect(connacks(c)[0].sessionPresent).toBe(false)
  })

  it('[MQTT-3.1.3-10] [MQTT-1.5.3-1] a will topic of ill-formed UTF-8 closes the connection unaccepted', async () => {
    const c = await refused(rawConnect({ clientId: fresh('wt'), will: { topic: BAD_UTF8[1].bytes, payload: 'x', qos: 0 } }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.3-11] [MQTT-1.5.3-1] a user name of ill-formed UTF-8 closes the connection unaccepted', async () => {
    const c = await refused(rawConnect({ clientId: fresh('un'), username: BAD_UTF8[0].bytes }))
    expect(connacks(c).filter(p => p.returnCode === 0)).toEqual([])
  })

  it('[MQTT-3.1.4-2] a second connection with the same client id disconnects the first', async () => {
    const id = fresh('takeover')
    const first = await s.raw(4, { clientId: id })
    const second = await s.raw(4, { clientId: id })
    await first.awaitClose()
    await second.ping()
  })

  it('[MQTT-3.1.4-4] a valid CONNECT is acknowledged with CONNACK return code 0', async () => {
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('ok') }))
    expect((await c.next('connack') as IConnackPacket).returnCode).toBe(0)
  })

  it('[MQTT-3.1.4-5] after a refused CONNECT nothing the client sent is processed (a retained PUBLISH sent with it is not kept)', async () => {
    const topic = fresh('refused/')
    await refused(Buffer.concat([rawConnect({ clientId: '', clean: false }), rawPublish(topic, 'must not exist', { qos: 0, retain: true })]))
    const watcher = await s.client()
    const got = collect(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`])
    await watcher.publishAsync(`${topic}/marker`, 'm')
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })

  it('[MQTT-3.2.0-1] the first packet from the server is the CONNACK, even when packets follow the CONNECT at once', async () => {
    const c = await s.rawOpen(4)
    c.sendBytes(Buffer.concat([rawConnect({ clientId: fresh('first') }), rawSubscribe(1, [{ filter: 'first/x', options: 0 }]), packet(0xc0)]))
    await c.next('suback')
    await c.next('pingresp')
    expect(c.received[0].cmd).toBe('connack')
    expect(c.received.filter(p => p.cmd === 'connack')).toHaveLength(1)
  })

  it('[MQTT-3.2.2-4] [MQTT-3.2.2-5] a refusing CONNACK has session present 0 (even with a stored session) and the connection is closed', async () => {
    const id = fresh('sp')
    const keep = await s.raw(4, { clientId: id, clean: false })
    keep.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sp/x', qos: 1 }] })
    await keep.next('suback')
    keep.disconnect()
    await keep.closed
    const c = await refused(rawConnect({ level: 131, clientId: id, clean: false }))
    expect(connacks(c).map(p => [p.returnCode, p.sessionPresent])).toEqual([[1, false]])
  })
})

describe('MQTT 3.1.1 PINGREQ, DISCONNECT, fixed header flags', () => {
  it('[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP', async () => {
    const c = await s.raw(4)
    c.sendBytes(packet(0xc0))
    await c.next('pingresp')
  })

  it('[MQTT-2.2.2-2] [MQTT-2.2.2-1] a PINGREQ with a reserved flag set closes the connection', async () => {
    const c = await s.raw(4)
    c.sendBytes(packet(0xc1))
    await c.awaitClose()
    expect(c.received.filter(p => p.cmd === 'pingresp')).toEqual([])
  })

  it('[MQTT-3.14.1-1] a DISCONNECT with a reserved flag set closes the connection, and the will is published', async () => {
    const watcher = await s.client()
    const got = collect(watcher)
    const topic = fresh('will14/')
    await watcher.subscribeAsync(topic)
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('d'), will: { topic, payload: 'gone', qos: 0 } }))
    await c.next('connack')
    c.sendBytes(packet(0xe1))
    await c.awaitClose()
    await atLeast(got, 1)
    expect(got.map(m => m.payload.toString())).toEqual(['gone'])
  })

  it('[MQTT-3.14.4-3] [MQTT-3.1.2-10] after DISCONNECT the will is discarded, not published', async () => {
    const watcher = await s.client()
    const got = collect(watcher)
    const topic = fresh('will-dc/')
    await watcher.subscribeAsync([topic, `${topic}/marker`])
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('d'), will: { topic, payload: 'must not', qos: 1 } }))
    await c.next('connack')
    c.disconnect()
    await c.awaitClose()
    await watcher.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    expect(await untilMarker(got, `${topic}/marker`)).toEqual([])
  })
})

describe('MQTT 3.1.1 wills', () => {
  it('[MQTT-3.1.2-8] [MQTT-3.1.2-16] the will is published, not retained, when the network connection is lost', async () => {
    const watcher = await s.client()
    const got = collect(watcher)
    const topic = fresh('will/')
    await watcher.subscribeAsync(topic, { qos: 1 })
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('w'), will: { topic, payload: 'lost', qos: 1, retain: false } }))
    await c.next('connack')
    c.destroy()
    await untilMarker(got, topic)
    expect(got[0].payload.toString()).toBe('lost')
    const late = await s.client()
    const lateGot = collect(late)
    await late.subscribeAsync([topic, `${topic}/marker`])
    await late.publishAsync(`${topic}/marker`, 'm')
    expect(await untilMarker(lateGot, `${topic}/marker`)).toEqual([])
  })

  it('[MQTT-3.1.2-10] a will published once is removed: the next connection of that client id does not publish it again', async () => {
    const watcher = await s.client()
    const got = collect(watcher)
    const topic = fresh('will-once/')
    await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 1 })
    const id = fresh('wonce')
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: id, clean: false, will: { topic, payload: 'once', qos: 1 } }))
    await c.next('connack')
    c.destroy()
    await atLeast(got, 1)
    const again = await s.rawOpen(4)
    again.sendBytes(rawConnect({ clientId: id, clean: false }))
    await again.next('connack')
    again.destroy()
    await again.closed
    await watcher.publishAsync(`${topic}/marker`, 'm', { qos: 1 })
    expect((await untilMarker(got, `${topic}/marker`)).map(m => m.payload.toString())).toEqual(['once'])
  })

  it('[MQTT-3.1.2-17] a will with will retain 1 is published as a retained message', async () => {
    const topic = fresh('willr/')
    const c = await s.rawOpen(4)
    c.sendBytes(rawConnect({ clientId: fresh('w'), will: { topic, payload: 'kept', qos: 1, retain: true } }))
    await c.next('connack')
    const watcher = await s.client()
    const live = collect(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    c.destroy()
    await untilMarker(live, topic)
    const late = await s.client()
    const got = collect(late)
    await late.subscribeAsync(topic, { qos: 1 })
    await untilMarker(got, topic)
    expect(got[0].packet.retain).toBe(true)
    expect(got[0].payload.toString()).toBe('kept')
    await late.publishAsync(topic, '', { retain: true, qos: 1 })
  })
})

describe('MQTT 3.1.1 over WebSocket (chapter 6)', () => {
  async function ws (): Promise<WebSocket> {
    const sock = new WebSocket(s.broker.wsUrl, ['mqtt'])
    await new Promise<void>((resolve, reject) => { sock.once('open', () => { resolve() }); sock.once('error', reject) })
    return sock
  }

  it('[MQTT-6.0.0-4] the server selects the "mqtt" subprotocol', async () => {
    const sock = await ws()
    expect(sock.protocol).toBe('mqtt')
    sock.close()
  })

  it('[MQTT-6.0.0-2] packets split across frames and several packets in one frame are both read', async () => {
    const sock = await ws()
    const frames: Buffer[] = []
    const three = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`got ${frames.length} frames`)) }, 5000)
      sock.on('message', (d: Buffer) => { frames.push(d); if (Buffer.concat(frames).length >= 4 + 2 + 2) { clearTimeout(timer); resolve() } })
    })
    const connect = rawConnect({ clientId: fresh('wsplit') })
    sock.send(connect.subarray(0, 5))
    sock.send(Buffer.concat([connect.subarray(5), packet(0xc0), packet(0xc0)]))
    await three
    // CONNACK (4 bytes) then two PINGRESPs (2 bytes each)
    expect([...Buffer.concat(frames)]).toEqual([0x20, 2, 0, 0, 0xd0, 0, 0xd0, 0])
    sock.close()
  })

  it('[MQTT-6.0.0-1] a text frame closes the connection', async () => {
    const sock = await ws()
    sock.send(rawConnect({ clientId: fresh('wsok') }))
    await new Promise<void>(resolve => sock.once('message', () => { resolve() }))
    const closed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('the WebSocket stayed open')) }, 5000)
      sock.once('close', () => { clearTimeout(timer); resolve() })
    })
    sock.send(packet(0xc0).toString('latin1'))
    await closed
  })
})
