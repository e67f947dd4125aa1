import { afterAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManualClock } from '../../engines/clock.js'
import { Storage } from '../../engines/storage/storage.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import { BusRecords, clientKey, decodePacket, encodePacket, type MqttPacket } from '../../engines/pubsub/persistence.js'
import type { BusMessage } from '../../engines/pubsub/types.js'
import { tempDir } from '../helpers.js'
import { connect, msg, request } from './pubsub-fakes.js'

/**
 * The bus's durable state (engines/pubsub/persistence.ts) across a close and reopen of the data directory:
 * retained messages, sessions that outlive their connection (subscriptions, QoS 1/2 queue with the QoS 2
 * packet ids, QoS 2 ids received, expiry), wills; and a data directory written by the previous release.
 */

const cleanups: Array<() => Promise<void> | void> = []
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function openStorage (dir?: string): Promise<{ storage: Storage, dir: string }> {
  const tmp = dir === undefined ? tempDir('tetra-bus-') : undefined
  const storage = await Storage.open({ dir: dir ?? tmp!.dir, fsync: 'interval', fsyncIntervalMs: 20 })
  cleanups.push(async () => { await storage.close() })
  if (tmp !== undefined) cleanups.unshift(tmp.remove)
  return { storage, dir: dir ?? tmp!.dir }
}

const NEVER = 0xFFFFFFFF

describe('bus records: encoding', () => {
  it('encodes packets with binary and text payloads and Buffers in other fields', () => {
    const binary: MqttPacket = { cmd: 'publish', topic: 'a/b', payload: Buffer.from([0, 255, 10]), qos: 1, messageId: 7, properties: { correlationData: Buffer.from('xy') } }
    expect(decodePacket(encodePacket(binary))).toEqual(binary)
    const text: MqttPacket = { cmd: 'publish', topic: 'a/b', payload: 'plain text', qos: 0 }
    expect(decodePacket(encodePacket(text))).toEqual(text)
    const noUndefined = decodePacket(encodePacket({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, messageId: undefined }))
    expect(Object.prototype.hasOwnProperty.call(noUndefined, 'messageId')).toBe(false)
  })
})

describe('bus state across a restart', () => {
  it('gives back retained messages, subscriptions, the queue in order with QoS 2 ids and PUBRELs, inbound QoS 2 ids', async () => {
    const { storage, dir } = await openStorage()
    let bus = await PubSub.create(storage)
    await bus.publish({ topic: 'state/a', payload: Buffer.from('on'), retain: true, properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2]) } })
    await bus.publish({ topic: 'state/b', payload: Buffer.from('off'), retain: true })
    await bus.publish({ topic: 'state/b', payload: Buffer.alloc(0), retain: true })
    const device = await connect(bus, request('device-1', { cleanStart: false, expiryInterval: NEVER, receiveMaximum: 2 }))
    await device.handle.subscribe([{ filter: 'cmd/#', options: { qos: 2, subscriptionId: 5 } }, { filter: 'info/+', options: { qos: 0, noLocal: true } }, { filter: 'gone', options: { qos: 1 } }])
    await device.handle.unsubscribe(['gone'])
    const clean = await connect(bus, request('clean-1'))
    await clean.handle.subscribe([{ filter: 'cmd/#', options: { qos: 1 } }])
    expect(await device.handle.receiveQos2(9)).toBe(true)
    expect(await device.handle.receiveQos2(9)).toBe(false)
    expect(await device.handle.receiveQos2(10)).toBe(true)
    expect(device.handle.releaseQos2(10)).toBe(true)
    // m1 and m2 in flight (QoS 2, ids 1 and 2), m3 and m4 queued; m1 released, then m2 completes... no: m2 acknowledged by PUBREC + PUBCOMP
    for (let i = 1; i <= 4; i++) await bus.route(msg('cmd/go', `m${i}`, i === 4 ? 1 : 2), 'mqtt')
    expect(device.handle.received(1)).toBe(true)
    expect(device.handle.received(2)).toBe(true)
    expect(device.handle.acknowledged(2)).toBe(true) // m3 goes out with id 3 now
    expect(device.outlet.deliveries.map(d => [d.message.payload.toString(), d.packetId])).toEqual([['m1', 1], ['m2', 2], ['m3', 3]])
    await bus.close()
    await storage.close()

    const second = (await openStorage(dir)).storage
    bus = await PubSub.create(second)
    expect((await bus.retained(['#'])).map(r => [r.topic, r.payload.toString(), r.properties])).toEqual([['state/a', 'on', { contentType: 'text/plain', correlationData: Buffer.from([1, 2]) }]])
    expect(bus.clients()).toEqual([{ clientId: 'device-1', connected: false, subscriptions: 2, inflight: 0, queued: 3, expiryInterval: NEVER }])
    const back = await connect(bus, request('device-1', { cleanStart: false, expiryInterval: NEVER, receiveMaximum: 10 }))
    expect(back.handle.present).toBe(true)
    expect(back.handle.subscriptions()).toEqual([
      { filter: 'cmd/#', options: { qos: 2, subscriptionId: 5 } },
      { filter: 'info/+', options: { qos: 0, noLocal: true } }
    ])
    // in order: m1's PUBREL, m3 again with its id and DUP, then m4 (QoS 1: a new id)
    expect(back.outlet.releases).toEqual([1])
    expect(back.outlet.deliveries.map(d => [d.message.payload.toString(), d.qos, d.packetId, d.dup, d.subscriptionIds])).toEqual([['m3', 2, 3, true, [5]], ['m4', 1, 2, false, [5]]])
    expect(await back.handle.receiveQos2(9)).toBe(false) // still awaiting its PUBREL
    expect(back.handle.releaseQos2(9)).toBe(true)
    expect(back.handle.acknowledged(1)).toBe(true)
    expect(back.handle.acknowledged(2)).toBe(true)
    await bus.close()
    await second.close()

    const third = await PubSub.create((await openStorage(dir)).storage)
    const last = await connect(third, request('device-1', { cleanStart: false, expiryInterval: NEVER }))
    expect(last.outlet.deliveries.map(d => d.message.payload.toString())).toEqual(['m3'])
    expect(await last.handle.receiveQos2(9)).toBe(true)
    await third.close()
  })

  it('route() resolves once a message queued for an offline session is written, and rejects when storage fails', async () => {
    const { storage, dir } = await openStorage()
    const bus = await PubSub.create(storage)
    const s = await connect(bus, request('off', { cleanStart: false, expiryInterval: 60 }))
    await s.handle.subscribe([{ filter: 'q', options: { qos: 1 } }])
    s.handle.detach({ publishWill: false })
    let writes = 0
    const write = storage.write.bind(storage)
    storage.write = async ops => { writes++; await write(ops) }
    // QoS 0 to an offline session: dropped, nothing written
    expect(bus.route(msg('q', 'zero'), 'mqtt')).toBeUndefined()
    // retained and queued in one write
    const routed = bus.route({ ...msg('q', 'one', 1), retain: true }, 'mqtt')
    expect(routed).toBeInstanceOf(Promise)
    await routed
    expect(writes).toBe(1)
    await bus.close()
    await storage.close()
    const reopened = await openStorage(dir)
    const again = await PubSub.create(reopened.storage)
    const back = await connect(again, request('off', { cleanStart: false, expiryInterval: 60 }))
    expect(back.outlet.payloads()).toEqual(['one'])
    const failing = reopened.storage.write.bind(reopened.storage)
    reopened.storage.write = async () => { await failing([]); throw new Error('disk full') }
    back.handle.detach({ publishWill: false })
    await expect(again.route(msg('q', 'two', 1), 'mqtt')!).rejects.toThrow('disk full')
    await expect(again.publish({ topic: 'q', payload: Buffer.from('three'), qos: 1 })).rejects.toThrow(/could not be stored/)
    await again.close()
  })

  it('session expiry counts across restarts: a session that expired while the broker was down is gone, its will published', async () => {
    const clock = new ManualClock()
    const { storage, dir } = await openStorage()
    let bus = await PubSub.create(storage, { clock })
    const short = await connect(bus, request('short', { cleanStart: false, expiryInterval: 10, will: { message: msg('will/short', 'expired'), delay: 100 } }))
    const long = await connect(bus, request('long', { cleanStart: false, expiryInterval: 1000 }))
    for (const s of [short, long]) await s.handle.subscribe([{ filter: 'x', options: { qos: 1 } }])
    short.handle.detach({ publishWill: true })
    long.handle.detach({ publishWill: false })
    await bus.route(msg('x', 'kept', 1), 'mqtt')
    await bus.close()
    await storage.close()

    // down for 20 s
    const later = new ManualClock(clock.now() + 20_000)
    bus = await PubSub.create((await openStorage(dir)).storage, { clock: later })
    const got: BusMessage[] = []
    await bus.subscribe(['will/#'], m => { got.push(m) })
    later.advance(0)
    expect(bus.clients().map(c => c.clientId)).toEqual(['long'])
    expect(got.map(m => m.payload.toString())).toEqual(['expired'])
    // 'long' went offline 20 s before the start: 980 s left
    later.advance(979_000)
    expect(bus.clients().map(c => c.clientId)).toEqual(['long'])
    later.advance(1000)
    expect(bus.clients()).toEqual([])
    await bus.close()
  })

  it('wills of connections the previous process had are published at start; a delayed will of a lasting session after its delay unless the client is back', async () => {
    const clock = new ManualClock()
    const { storage, dir } = await openStorage()
    let bus = await PubSub.create(storage, { clock })
    await connect(bus, request('crashed', { will: { message: msg('will/crashed', 'c', 1), delay: 0 } }))
    await connect(bus, request('delayed', { cleanStart: false, expiryInterval: 3600, will: { message: msg('will/delayed', 'd'), delay: 30, expiryInterval: 60 } }))
    await connect(bus, request('returns', { cleanStart: false, expiryInterval: 3600, will: { message: msg('will/returns', 'r'), delay: 30 } }))
    const normal = await connect(bus, request('normal', { will: { message: msg('will/normal', 'n'), delay: 0 } }))
    normal.handle.detach({ publishWill: false })
    // the process dies: no detach for the others
    await storage.close()

    for (let round = 0; round < 2; round++) {
      const start = new ManualClock(clock.now() + 1000)
      const t0 = start.now()
      const reopened = (await openStorage(dir)).storage
      bus = await PubSub.create(reopened, { clock: start })
      const got: BusMessage[] = []
      await bus.subscribe(['will/#'], m => { got.push(m) })
      start.advance(0)
      if (round === 1) {
        // each will is published once: the first start deleted them
        expect(got).toEqual([])
        await bus.close()
        await reopened.close()
        break
      }
      expect(got.map(m => [m.topic, m.from])).toEqual([['will/crashed', 'crashed']])
      start.advance(10_000)
      await connect(bus, request('returns', { cleanStart: false, expiryInterval: 3600 }))
      start.advance(20_000)
      expect(got.map(m => m.topic)).toEqual(['will/crashed', 'will/delayed'])
      // its message expiry (kept in the will's record) counts from its publication, 30 s after the start
      expect(got[1].expiresAt).toBe(t0 + 30_000 + 60_000)
      start.advance(60_000)
      expect(got.map(m => m.topic)).toEqual(['will/crashed', 'will/delayed'])
      await bus.close()
      await reopened.flush()
      await reopened.close()
    }
  })

  it('opens a data directory of the previous release: retained messages, sessions, queued messages, QoS 2 in flight, wills', async () => {
    const { storage, dir } = await openStorage()
    // records as the previous release's aedes persistence wrote them (its key kinds, aedes' packet fields)
    const partition = storage.partition('mqtt')
    const old = (packet: Partial<MqttPacket>): Buffer => encodePacket({ cmd: 'publish', topic: '', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, brokerId: 'old-broker', brokerCounter: 1, ...packet })
    const seq = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }
    const id = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
    await storage.write([
      partition.put(Buffer.concat([Buffer.from('r'), Buffer.from('home/lamp')]), old({ topic: 'home/lamp', payload: Buffer.from('on'), retain: true, qos: 1 })),
      partition.put(clientKey(0x73, 'legacy', 'home/#'), Buffer.from(JSON.stringify({ qos: 1 }))),
      partition.put(clientKey(0x73, 'legacy', 'alerts'), Buffer.from(JSON.stringify({ qos: 2, rh: 0, rap: 1, nl: false }))),
      partition.put(clientKey(0x6f, 'legacy', seq(7)), old({ topic: 'alerts', payload: Buffer.from('a1'), qos: 2, messageId: 300, brokerCounter: 7 })),
      partition.put(clientKey(0x6f, 'legacy', seq(8)), encodePacket({ cmd: 'pubrel', topic: '', payload: Buffer.alloc(0), qos: 0, messageId: 301 } as unknown as MqttPacket)),
      partition.put(clientKey(0x6f, 'legacy', seq(9)), old({ topic: 'home/door', payload: 'text payload', qos: 1, brokerCounter: 9 })),
      partition.put(clientKey(0x69, 'legacy', id(44)), old({ topic: 'up', payload: Buffer.from('q2'), qos: 2, messageId: 44 })),
      partition.put(clientKey(0x77, 'gone-device', ''), old({ topic: 'status/gone', payload: Buffer.from('offline'), qos: 1, clientId: 'gone-device' }))
    ])
    await storage.close()

    const bus = await PubSub.create((await openStorage(dir)).storage)
    const wills: BusMessage[] = []
    await bus.subscribe(['status/#'], m => { wills.push(m) })
    expect((await bus.retained(['home/+'])).map(m => [m.topic, m.payload.toString(), m.qos])).toEqual([['home/lamp', 'on', 1]])
    expect(bus.clients()).toEqual([{ clientId: 'legacy', connected: false, subscriptions: 2, inflight: 0, queued: 3, expiryInterval: NEVER }])
    // an offline session of the previous release still gets new messages queued
    await bus.route(msg('home/window', 'new', 1), 'mqtt')
    const back = await connect(bus, request('legacy', { cleanStart: false, expiryInterval: NEVER }))
    expect(back.handle.present).toBe(true)
    expect(back.handle.subscriptions()).toEqual([{ filter: 'alerts', options: { qos: 2, retainHandling: 0, retainAsPublished: true } }, { filter: 'home/#', options: { qos: 1 } }])
    expect(back.outlet.deliveries.map(d => [d.message.payload.toString(), d.qos, d.packetId, d.dup])).toEqual([['a1', 2, 300, true], ['text payload', 1, 1, false], ['new', 1, 2, false]])
    expect(back.outlet.releases).toEqual([301])
    expect(await back.handle.receiveQos2(44)).toBe(false)
    await new Promise(resolve => setTimeout(resolve, 5))
    expect(wills.map(m => [m.topic, m.payload.toString(), m.from])).toEqual([['status/gone', 'offline', 'gone-device']])
    await bus.close()
  })
})

describe('bus records: queued entries', () => {
  it('a queued entry\'s hand-written header is the JSON encodePacket writes', async () => {
    const { storage } = await openStorage()
    const records = new BusRecords(storage)
    const text = fc.string({ unit: 'binary', maxLength: 20 })
    fc.assert(fc.property(text, fc.uint8Array({ maxLength: 30 }), fc.constantFrom(1 as const, 2 as const), fc.boolean(), fc.option(fc.record({ contentType: text, correlationData: fc.uint8Array({ maxLength: 5 }).map(b => Buffer.from(b)) }), { nil: undefined }), fc.option(fc.nat(), { nil: undefined }), fc.option(text, { nil: undefined }), fc.option(fc.array(fc.integer({ min: 1, max: 268435455 }), { minLength: 1, maxLength: 3 }), { nil: undefined }), fc.nat(65535), (topic, payload, qos, retain, properties, expiresAt, from, subscriptionIds, packetId) => {
      const message = { topic, payload: Buffer.from(payload), qos, retain, ...(properties !== undefined ? { properties } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}), ...(from !== undefined ? { from } : {}) }
      const op = records.outgoingPut('c', { seq: 1, released: false, message, qos, retain, subscriptionIds, packetId })
      const value = (op as { value: Buffer }).value
      const expected = encodePacket({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, properties, expiresAt, from, subscriptionIds, messageId: packetId !== 0 ? packetId : undefined })
      expect(decodePacket(value)).toEqual(decodePacket(expected))
    }), { numRuns: 300 })
  })
})
