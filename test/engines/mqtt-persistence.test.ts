import { afterAll, describe, expect, it, test } from 'vitest'
import fc from 'fast-check'
import assert from 'node:assert'
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Storage } from '../../engines/storage/storage.js'
import { DurableMqttPersistence, decodePacket, encodePacket, type MqttPacket } from '../../engines/pubsub/persistence.js'
import { tempDir } from '../helpers.js'

const cleanups: Array<() => Promise<void> | void> = []
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function openStorage (dir?: string): Promise<{ storage: Storage, dir: string }> {
  const tmp = dir === undefined ? tempDir('tetra-mqtt-') : undefined
  const storage = await Storage.open({ dir: dir ?? tmp!.dir, fsync: 'interval', fsyncIntervalMs: 20 })
  cleanups.push(async () => { await storage.close() })
  if (tmp !== undefined) cleanups.unshift(tmp.remove)
  return { storage, dir: dir ?? tmp!.dir }
}

/*
 * aedes-persistence's abstract suite, written for node:test, run under vitest: its `t` gets the assertions
 * it uses (node:assert's, as node:test's t.assert gives them) and a plan that is checked when the test ends.
 */
interface NodeTestContext {
  assert: Pick<typeof assert, 'equal' | 'deepEqual' | 'notEqual' | 'ok'>
  plan: (count: number) => void
  diagnostic: (message: string) => void
}
type AbstractSuite = (options: { test: (name: string, fn: (t: NodeTestContext) => Promise<void>) => void, persistence: () => Promise<unknown>, testAsync: boolean }) => void

function nodeTest (name: string, fn: (t: NodeTestContext) => Promise<void>): void {
  test(name, async () => {
    let planned: number | undefined
    let count = 0
    const t: NodeTestContext = {
      assert: {
        equal: (...args: Parameters<typeof assert.equal>) => { count++; assert.equal(...args) },
        deepEqual: (...args: Parameters<typeof assert.deepEqual>) => { count++; assert.deepEqual(...args) },
        notEqual: (...args: Parameters<typeof assert.notEqual>) => { count++; assert.notEqual(...args) },
        ok: (...args: Parameters<typeof assert.ok>) => { count++; assert.ok(...args) }
      },
      plan: n => { planned = n },
      diagnostic: () => {}
    }
    await fn(t)
    if (planned !== undefined) expect(count, 'assertions run against the plan').toBe(planned)
  })
}

describe('MQTT persistence: aedes-persistence abstract suite', () => {
  const abstractSuite = createRequire(import.meta.url)('aedes-persistence/abstract.js') as AbstractSuite
  abstractSuite({
    test: nodeTest,
    persistence: async () => await DurableMqttPersistence.open((await openStorage()).storage),
    testAsync: true
  })
})

async function all<T> (stream: Readable): Promise<T[]> {
  const out: T[] = []
  for await (const item of stream) out.push(item as T)
  return out
}

function publish (topic: string, payload: string, fields: Partial<MqttPacket> = {}): MqttPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false, brokerId: 'b1', ...fields }
}

describe('MQTT persistence: durable', () => {
  it('encodes packets with binary and text payloads and Buffers in other fields', () => {
    const binary = publish('a/b', '', { payload: Buffer.from([0, 255, 10]), messageId: 7, properties: { correlationData: Buffer.from('xy') } })
    expect(decodePacket(encodePacket(binary))).toEqual(binary)
    const text = publish('a/b', '', { payload: 'plain text', brokerCounter: 3 })
    expect(decodePacket(encodePacket(text))).toEqual(text)
    const noUndefined = decodePacket(encodePacket(publish('t', 'x', { messageId: undefined })))
    expect(Object.prototype.hasOwnProperty.call(noUndefined, 'messageId')).toBe(false)
  })

  it('gives back after a restart what a previous run left: retained, sessions, queues in order, QoS 2 in flight, wills', async () => {
    const { storage, dir } = await openStorage()
    const p = await DurableMqttPersistence.open(storage)
    await p.setup({ id: 'broker-1' })
    const device = { id: 'device-1', clean: false }
    const cleanClient = { id: 'clean-1', clean: true }

    await p.storeRetained(publish('state/a', 'on', { retain: true, qos: 0 }))
    await p.storeRetained(publish('state/b', 'off', { retain: true, qos: 0 }))
    await p.storeRetained(publish('state/b', '', { retain: true, qos: 0 })) // cleared
    await p.addSubscriptions(device, [{ topic: 'cmd/#', qos: 1 }, { topic: 'info/+', qos: 0 }, { topic: 'gone', qos: 2 }])
    await p.removeSubscriptions(device, ['gone'])
    await p.addSubscriptions(cleanClient, [{ topic: 'x', qos: 1 }])
    // m1 at QoS 2, m2 and m3 at QoS 1
    for (let i = 1; i <= 3; i++) await p.outgoingEnqueueCombi([{ clientId: device.id }], publish('cmd/go', `m${i}`, { brokerCounter: i, qos: i === 1 ? 2 : 1 }))
    // the first one was sent with a message id, the second acknowledged
    await p.outgoingUpdate(device, { ...publish('cmd/go', 'm1', { brokerCounter: 1, qos: 2 }), messageId: 41 })
    await p.outgoingUpdate(device, { ...publish('cmd/go', 'm2', { brokerCounter: 2 }), messageId: 42 })
    await p.outgoingClearMessageId(device, { ...publish('cmd/go', 'm2'), messageId: 42 })
    await p.incomingStorePacket(device, publish('up/1', 'q2', { qos: 2, messageId: 9 }))
    await p.incomingStorePacket(cleanClient, publish('up/2', 'q2', { qos: 2, messageId: 10 }))
    await p.putWill(device, publish('status/device-1', 'offline', { qos: 1, retain: true }))
    await storage.close()

    const second = (await openStorage(dir)).storage
    const reopened = await DurableMqttPersistence.open(second)
    await reopened.setup({ id: 'broker-2' })
    expect((await all<MqttPacket>(reopened.createRetainedStream('#'))).map(r => [r.topic, String(r.payload)])).toEqual([['state/a', 'on']])
    expect(await reopened.subscriptionsByClient(device)).toEqual([{ topic: 'cmd/#', qos: 1 }, { topic: 'info/+', qos: 0 }])
    expect(await reopened.subscriptionsByClient(cleanClient)).toEqual([]) // a clean session keeps nothing
    expect((await reopened.subscriptionsByTopic('cmd/go')).map(s => s.clientId)).toEqual(['device-1'])
    expect(await reopened.countOffline()).toEqual({ subsCount: 1, clientsCount: 1 })
    const queued = await all<MqttPacket>(reopened.outgoingStream(device))
    expect(queued.map(q => [String(q.payload), q.messageId, q.brokerCounter])).toEqual([['m1', 41, 1], ['m3', undefined, 3]])
    // updates after the restart find the packets restored
    await reopened.outgoingUpdate(device, { ...publish('cmd/go', 'm3', { brokerCounter: 3 }), messageId: 43 })
    expect(await reopened.outgoingClearMessageId(device, { ...publish('cmd/go', 'm1'), messageId: 41 })).toMatchObject({ topic: 'cmd/go' })
    expect(String((await reopened.incomingGetPacket(device, publish('', '', { messageId: 9 }))).payload)).toBe('q2')
    await expect(reopened.incomingGetPacket(cleanClient, publish('', '', { messageId: 10 }))).rejects.toThrow()
    // the will of a client the old broker had: a live broker list without broker-1 streams it
    const wills = await all<MqttPacket>(reopened.streamWill({ 'broker-2': Date.now() }))
    expect(wills.map(w => [w.clientId, w.topic, String(w.payload), w.brokerId])).toEqual([['device-1', 'status/device-1', 'offline', 'broker-1']])
    await reopened.delWill(device)
    await reopened.cleanSubscriptions(device)
    await reopened.storeRetained(publish('state/c', 'new', { retain: true, qos: 0 }))
    await second.close()

    // and what the second run changed is what a third run finds
    const third = await DurableMqttPersistence.open((await openStorage(dir)).storage)
    await third.setup({ id: 'broker-3' })
    expect((await all<MqttPacket>(third.createRetainedStream('state/+'))).map(r => r.topic)).toEqual(['state/a', 'state/c'])
    expect(await third.subscriptionsByClient(device)).toEqual([])
    // a QoS 1 message's id is not kept (it may be sent again under another); a QoS 2 message's is
    expect((await all<MqttPacket>(third.outgoingStream(device))).map(q => [String(q.payload), q.messageId])).toEqual([['m3', undefined]])
    expect(await all(third.streamWill({}))).toEqual([])
  })

  it('tells whether a publish would be queued for a persistent session ($SYS/ topics not for wildcard filters)', async () => {
    const p = await DurableMqttPersistence.open((await openStorage()).storage)
    await p.setup({ id: 'b1' })
    await p.addSubscriptions({ id: 'a', clean: false }, [{ topic: 'plant/+/temp', qos: 1 }, { topic: '#', qos: 0 }])
    expect(p.hasQueuingSubscribers('plant/1/temp')).toBe(true)
    expect(p.hasQueuingSubscribers('plant/1/hum')).toBe(false) // '#' is QoS 0: nothing is queued for it
    await p.addSubscriptions({ id: 'b', clean: false }, [{ topic: '#', qos: 1 }])
    expect(p.hasQueuingSubscribers('plant/1/hum')).toBe(true)
    expect(p.hasQueuingSubscribers('$SYS/broker/uptime')).toBe(false)
    await p.addSubscriptions({ id: 'c', clean: false }, [{ topic: '$SYS/broker/#', qos: 1 }])
    expect(p.hasQueuingSubscribers('$SYS/broker/uptime')).toBe(true)
  })

  it('keeps two QoS 2 messages apart once both are at PUBREL', async () => {
    const p = await DurableMqttPersistence.open((await openStorage()).storage)
    await p.setup({ id: 'b1' })
    const c = { id: 'c', clean: false }
    for (let i = 1; i <= 2; i++) {
      await p.outgoingEnqueue({ clientId: 'c' }, publish('t', `m${i}`, { qos: 2, brokerCounter: i }))
      await p.outgoingUpdate(c, publish('t', `m${i}`, { qos: 2, brokerCounter: i, messageId: 100 + i }))
    }
    const first = { cmd: 'pubrel', messageId: 101 } as unknown as MqttPacket
    const second = { cmd: 'pubrel', messageId: 102 } as unknown as MqttPacket
    await p.outgoingUpdate(c, first)
    await p.outgoingUpdate(c, second)
    expect(first.messageId).toBe(101)
    expect((await all<MqttPacket>(p.outgoingStream(c))).map(q => [q.cmd, q.messageId])).toEqual([['pubrel', 101], ['pubrel', 102]])
    await p.outgoingClearMessageId(c, first)
    await p.outgoingClearMessageId(c, second)
    expect(await all(p.outgoingStream(c))).toEqual([])
  })

  it('continues queue order after a restart: new messages go after the restored ones', async () => {
    const { storage, dir } = await openStorage()
    const p = await DurableMqttPersistence.open(storage)
    await p.setup({ id: 'b1' })
    const c = { id: 'c', clean: false }
    for (let i = 0; i < 300; i++) await p.outgoingEnqueue({ clientId: 'c' }, publish('t', `a${i}`, { brokerCounter: i + 1 }))
    await storage.close()
    const again = await DurableMqttPersistence.open((await openStorage(dir)).storage)
    await again.setup({ id: 'b2' })
    await again.outgoingEnqueue({ clientId: 'c' }, publish('t', 'after', { brokerId: 'b2', brokerCounter: 1 }))
    const payloads = (await all<MqttPacket>(again.outgoingStream(c))).map(q => String(q.payload))
    expect(payloads).toEqual([...Array.from({ length: 300 }, (_, i) => `a${i}`), 'after'])
  })
})

/*
 * Queued messages and retained messages against a simple model, through random operations and restarts:
 * what a restart gives back is what was acknowledged, less the QoS 1 message ids (not written, see
 * outgoingUpdate).
 */
type Op =
  | { kind: 'enqueue', client: number, qos: 1 | 2 }
  | { kind: 'send', client: number, pick: number }
  | { kind: 'pubrel', client: number, pick: number }
  | { kind: 'ack', client: number, pick: number }
  | { kind: 'retain', topic: number, clear: boolean }
  | { kind: 'restart' }

interface ModelEntry { payload: string, qos: number, cmd: 'publish' | 'pubrel', messageId?: number, brokerId: string, brokerCounter: number }

describe('MQTT persistence: model', () => {
  it('gives back queues and retained messages as a model has them, across restarts', async () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('enqueue' as const), client: fc.nat(1), qos: fc.constantFrom(1 as const, 2 as const) }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant('send' as const), client: fc.nat(1), pick: fc.nat(20) }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant('pubrel' as const), client: fc.nat(1), pick: fc.nat(20) }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('ack' as const), client: fc.nat(1), pick: fc.nat(20) }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('retain' as const), topic: fc.nat(3), clear: fc.boolean() }), weight: 2 },
      { arbitrary: fc.constant({ kind: 'restart' as const }), weight: 1 }
    )
    const check = async (ops: Op[]): Promise<void> => {
      let opened = await openStorage()
      const dir = opened.dir
      let epoch = 0
      let p = await DurableMqttPersistence.open(opened.storage)
      await p.setup({ id: `b${epoch}` })
      const queues: ModelEntry[][] = [[], []]
      const retained = new Map<string, string>()
      let counter = 0
      let nextMessageId = 1
      const client = (i: number): { id: string, clean: boolean } => ({ id: `c${i}`, clean: false })
      for (const o of ops) {
        if (o.kind === 'enqueue') {
          counter++
          const entry: ModelEntry = { payload: `m${counter}`, qos: o.qos, cmd: 'publish', brokerId: `b${epoch}`, brokerCounter: counter }
          await p.outgoingEnqueueCombi([{ clientId: `c${o.client}` }], publish('t', entry.payload, { qos: o.qos, brokerId: entry.brokerId, brokerCounter: counter }))
          queues[o.client].push(entry)
        } else if (o.kind === 'send') {
          // aedes gives a message id to a queued publish when it sends it
          const candidates = queues[o.client].filter(e => e.cmd === 'publish' && e.messageId === undefined)
          if (candidates.length === 0) continue
          const e = candidates[o.pick % candidates.length]
          e.messageId = nextMessageId++
          await p.outgoingUpdate(client(o.client), publish('t', e.payload, { qos: e.qos, brokerId: e.brokerId, brokerCounter: e.brokerCounter, messageId: e.messageId }))
        } else if (o.kind === 'pubrel') {
          const candidates = queues[o.client].filter(e => e.cmd === 'publish' && e.qos === 2 && e.messageId !== undefined)
          if (candidates.length === 0) continue
          const e = candidates[o.pick % candidates.length]
          e.cmd = 'pubrel'
          await p.outgoingUpdate(client(o.client), { cmd: 'pubrel', messageId: e.messageId } as unknown as MqttPacket)
        } else if (o.kind === 'ack') {
          const candidates = queues[o.client].filter(e => e.messageId !== undefined && (e.qos === 1 || e.cmd === 'pubrel'))
          if (candidates.length === 0) continue
          const e = candidates[o.pick % candidates.length]
          queues[o.client].splice(queues[o.client].indexOf(e), 1)
          await p.outgoingClearMessageId(client(o.client), { cmd: 'puback', messageId: e.messageId } as unknown as MqttPacket)
        } else if (o.kind === 'retain') {
          counter++
          const topic = `r/${o.topic}`
          await p.storeRetained(publish(topic, o.clear ? '' : `v${counter}`, { retain: true, qos: 0 }))
          if (o.clear) retained.delete(topic)
          else retained.set(topic, `v${counter}`)
        } else {
          await opened.storage.close()
          opened = await openStorage(dir)
          epoch++
          p = await DurableMqttPersistence.open(opened.storage)
          await p.setup({ id: `b${epoch}` })
          // a QoS 1 message's id is not kept
          for (const q of queues) for (const e of q) if (e.qos === 1) e.messageId = undefined
        }
        for (let i = 0; i < queues.length; i++) {
          const stored = (await all<MqttPacket>(p.outgoingStream(client(i)))).map(q => [q.cmd === 'pubrel' ? 'pubrel' : String(q.payload), q.messageId])
          expect(stored).toEqual(queues[i].map(e => [e.cmd === 'pubrel' ? 'pubrel' : e.payload, e.messageId]))
        }
        const kept = (await all<MqttPacket>(p.createRetainedStream('r/+'))).map(r => [r.topic, String(r.payload)]).sort()
        expect(kept).toEqual([...retained].sort())
      }
      await opened.storage.close()
    }
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 50 }), check), { numRuns: 150 })
  }, 60_000)
})
