import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../engines/clock.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import type { BusMessage } from '../../engines/pubsub/types.js'
import { connect, FakeOutlet, msg, request, settle } from './pubsub-fakes.js'

const NEVER = 0xFFFFFFFF

describe('session queue and flow control', () => {
  it('sends at most receiveMaximum QoS 1/2 messages in flight; the rest go as acknowledgements come, in order', async () => {
    const bus = await PubSub.create()
    const { handle, outlet } = await connect(bus, request('c', { receiveMaximum: 2 }))
    await handle.subscribe([{ filter: 'q/#', options: { qos: 2 } }])
    for (let i = 0; i < 5; i++) bus.route(msg('q/x', `m${i}`, (1 + (i % 2)) as 1 | 2), 'mqtt')
    expect(outlet.payloads()).toEqual(['m0', 'm1'])
    expect(outlet.deliveries.map(d => [d.qos, d.packetId])).toEqual([[1, 1], [2, 2]])
    expect(bus.clients()).toEqual([{ clientId: 'c', connected: true, subscriptions: 1, inflight: 2, queued: 3, expiryInterval: 0 }])
    // PUBACK of the QoS 1 message frees a slot
    expect(handle.acknowledged(1)).toBe(true)
    expect(handle.acknowledged(1)).toBe(false)
    expect(outlet.payloads()).toEqual(['m0', 'm1', 'm2'])
    // PUBREC does not free it (a QoS 2 message is in flight until PUBCOMP) [MQTT 5 §4.9]
    expect(handle.acknowledged(2)).toBe(false) // PUBCOMP before PUBREC
    expect(handle.received(2)).toBe(true)
    expect(outlet.payloads()).toHaveLength(3)
    expect(handle.acknowledged(2)).toBe(true)
    expect(outlet.payloads()).toEqual(['m0', 'm1', 'm2', 'm3'])
    // packet ids are not reused while in use
    expect(outlet.deliveries.map(d => d.packetId)).toEqual([1, 2, 3, 4])
    expect(handle.received(3)).toBe(false) // a QoS 1 message
    await bus.close()
  })

  it('a message the outlet refuses is dropped (completed unsent) and the next one goes', async () => {
    const bus = await PubSub.create()
    const { handle, outlet } = await connect(bus, request('c', { receiveMaximum: 1 }))
    await handle.subscribe([{ filter: 't', options: { qos: 1 } }])
    outlet.accept = false
    bus.route(msg('t', 'big', 1), 'mqtt')
    outlet.accept = true
    bus.route(msg('t', 'ok', 1), 'mqtt')
    expect(outlet.payloads()).toEqual(['ok'])
    expect(bus.clients()[0]).toMatchObject({ inflight: 1, queued: 0 })
    await bus.close()
  })

  it('skips packet ids still in use when they wrap at 65535', async () => {
    const bus = await PubSub.create()
    const { handle, outlet } = await connect(bus, request('c', { receiveMaximum: 65535 }))
    await handle.subscribe([{ filter: 't', options: { qos: 1 } }])
    for (let i = 0; i < 65535; i++) bus.route(msg('t', 'x', 1), 'mqtt')
    // all but ids 5 and 6 acknowledged
    for (let id = 1; id <= 65535; id++) if (id !== 5 && id !== 6) handle.acknowledged(id)
    bus.route(msg('t', 'y', 1), 'mqtt')
    bus.route(msg('t', 'z', 1), 'mqtt')
    bus.route(msg('t', 'w', 1), 'mqtt')
    expect(outlet.deliveries.slice(-3).map(d => d.packetId)).toEqual([1, 2, 3])
    for (let i = 0; i < 3; i++) bus.route(msg('t', 'v', 1), 'mqtt')
    expect(outlet.deliveries.slice(-3).map(d => d.packetId)).toEqual([4, 7, 8])
    await bus.close()
  })

  it('resends on reconnect, in order: publishes in flight with DUP and their ids, PUBRELs, then the queue; QoS 0 offline is dropped', async () => {
    const bus = await PubSub.create()
    const first = await connect(bus, request('p', { cleanStart: false, expiryInterval: 60, receiveMaximum: 3 }))
    expect(first.handle.present).toBe(false)
    await first.handle.subscribe([{ filter: 'r/#', options: { qos: 2 } }])
    for (let i = 0; i < 5; i++) bus.route(msg('r/1', `m${i}`, 2), 'mqtt')
    expect(first.handle.received(2)).toBe(true) // m1 released
    first.handle.detach({ publishWill: false })
    expect(bus.connectedClients).toBe(0)
    bus.route(msg('r/1', 'qos0'), 'mqtt')
    bus.route(msg('r/1', 'm5', 1), 'mqtt')
    const outlet = new FakeOutlet()
    const handle = await bus.connect(request('p', { cleanStart: false, expiryInterval: 60, receiveMaximum: 3 }), outlet)
    expect(handle.present).toBe(true)
    // nothing before the CONNACK is written
    expect(outlet.deliveries).toHaveLength(0)
    await settle()
    expect(outlet.deliveries.map(d => [d.message.payload.toString(), d.packetId, d.dup])).toEqual([['m0', 1, true], ['m2', 3, true]])
    expect(outlet.releases).toEqual([2])
    handle.acknowledged(2)
    expect(outlet.deliveries.map(d => [d.message.payload.toString(), d.dup])).toEqual([['m0', true], ['m2', true], ['m3', false]])
    handle.received(1)
    handle.acknowledged(1)
    handle.received(3)
    handle.acknowledged(3)
    handle.received(4)
    handle.acknowledged(4)
    expect(outlet.payloads()).toEqual(['m0', 'm2', 'm3', 'm4', 'm5'])
    await bus.close()
  })

  it('drops the oldest queued publish of an offline session at maxQueued, and counts it', async () => {
    const limits: string[] = []
    const bus = await PubSub.create(undefined, { maxQueued: 3, onLimit: name => { limits.push(name) } })
    const first = await connect(bus, request('o', { cleanStart: false, expiryInterval: NEVER }))
    await first.handle.subscribe([{ filter: 'o', options: { qos: 1 } }])
    first.handle.detach({ publishWill: false })
    for (let i = 0; i < 5; i++) bus.route(msg('o', `m${i}`, 1), 'mqtt')
    expect(limits).toEqual(['queued', 'queued'])
    const { outlet } = await connect(bus, request('o', { cleanStart: false, expiryInterval: NEVER }))
    expect(outlet.payloads()).toEqual(['m2', 'm3', 'm4'])
    await bus.close()
  })

  it('message expiry: a queued message whose time passed is not sent; a retained one is not served', async () => {
    const clock = new ManualClock()
    const bus = await PubSub.create(undefined, { clock })
    const first = await connect(bus, request('e', { cleanStart: false, expiryInterval: 600 }))
    await first.handle.subscribe([{ filter: 'e/#', options: { qos: 1 } }])
    first.handle.detach({ publishWill: false })
    bus.route(msg('e/1', 'short', 1, { expiresAt: clock.now() + 5000 }), 'mqtt')
    bus.route(msg('e/1', 'long', 1, { expiresAt: clock.now() + 50_000 }), 'mqtt')
    await bus.publish({ topic: 'e/r', payload: Buffer.from('kept'), retain: true, qos: 1, messageExpiry: 5 })
    expect((await bus.retained(['e/#'])).map(m => m.payload.toString())).toEqual(['kept'])
    clock.advance(6000)
    expect(await bus.retained(['e/#'])).toEqual([])
    const { outlet } = await connect(bus, request('e', { cleanStart: false, expiryInterval: 600 }))
    expect(outlet.deliveries.map(d => [d.message.payload.toString(), d.message.expiresAt])).toEqual([['long', clock.now() - 6000 + 50_000]])
    await bus.close()
  })
})

describe('connect, takeover, clean start, session expiry', () => {
  it('a second connection with the same client id takes the session over: the first is kicked first [MQTT-3.1.4-2]', async () => {
    const bus = await PubSub.create()
    const a = await connect(bus, request('same', { cleanStart: false, expiryInterval: 100 }))
    await a.handle.subscribe([{ filter: 'k', options: { qos: 1 } }])
    bus.route(msg('k', 'one', 1), 'mqtt')
    const b = await connect(bus, request('same', { cleanStart: false, expiryInterval: 100 }))
    expect(a.outlet.kicks).toEqual(['takeover'])
    expect(b.handle.present).toBe(true)
    expect(bus.connectedClients).toBe(1)
    // the unacknowledged message goes again to the new connection
    expect(b.outlet.deliveries.map(d => [d.message.payload.toString(), d.dup])).toEqual([['one', true]])
    // the old handle is dead: its detach and acknowledgements change nothing
    a.handle.detach({ publishWill: true })
    expect(a.handle.acknowledged(1)).toBe(false)
    expect(bus.connectedClients).toBe(1)
    bus.route(msg('k', 'two', 1), 'mqtt')
    expect(b.outlet.payloads()).toEqual(['one', 'two'])
    expect(a.outlet.payloads()).toEqual(['one'])
    await bus.close()
    expect(b.outlet.kicks).toEqual(['shutdown'])
  })

  it('clean start discards the session; expiry 0 ends it with the connection', async () => {
    const bus = await PubSub.create()
    const a = await connect(bus, request('cs', { cleanStart: false, expiryInterval: 100 }))
    await a.handle.subscribe([{ filter: 'x', options: { qos: 1 } }])
    a.handle.detach({ publishWill: false })
    const b = await connect(bus, request('cs', { cleanStart: true }))
    expect(b.handle.present).toBe(false)
    expect(b.handle.subscriptions()).toEqual([])
    await b.handle.subscribe([{ filter: 'x', options: { qos: 1 } }])
    b.handle.detach({ publishWill: false })
    expect(bus.clients()).toEqual([])
    const c = await connect(bus, request('cs', { cleanStart: false, expiryInterval: 100 }))
    expect(c.handle.present).toBe(false)
    await bus.close()
  })

  it('an offline session ends when its expiry interval passes; reconnecting in time keeps it', async () => {
    const clock = new ManualClock()
    const bus = await PubSub.create(undefined, { clock })
    const a = await connect(bus, request('ex', { cleanStart: false, expiryInterval: 10 }))
    await a.handle.subscribe([{ filter: 'x', options: { qos: 1 } }])
    a.handle.detach({ publishWill: false })
    clock.advance(9000)
    const b = await connect(bus, request('ex', { cleanStart: false, expiryInterval: 10 }))
    expect(b.handle.present).toBe(true)
    b.handle.detach({ publishWill: false, expiryInterval: 20 })
    clock.advance(19_000)
    expect(bus.clients()).toHaveLength(1)
    clock.advance(1000)
    expect(bus.clients()).toEqual([])
    // close() stops the timers of offline sessions and delayed wills
    const c = await connect(bus, request('ex2', { cleanStart: false, expiryInterval: 10, will: { message: msg('w', 'x'), delay: 5 } }))
    c.handle.detach({ publishWill: true })
    expect(clock.pendingTimers()).toBe(2)
    await bus.close()
    expect(clock.pendingTimers()).toBe(0)
  })
})

describe('wills', () => {
  async function watch (bus: PubSub): Promise<BusMessage[]> {
    const got: BusMessage[] = []
    await bus.subscribe(['will/#'], m => { got.push(m) })
    return got
  }

  it('published on detach with publishWill; deleted by a normal DISCONNECT', async () => {
    const bus = await PubSub.create()
    const got = await watch(bus)
    const will = { message: msg('will/a', 'gone', 1), delay: 0 }
    const a = await connect(bus, request('a', { will }))
    a.handle.detach({ publishWill: false })
    expect(got).toEqual([])
    const b = await connect(bus, request('a', { will }))
    b.handle.detach({ publishWill: true })
    expect(got.map(m => [m.topic, m.payload.toString(), m.from])).toEqual([['will/a', 'gone', 'a']])
    await bus.close()
  })

  it('a delayed will waits; a reconnect before the delay cancels it [MQTT-3.1.3-9]', async () => {
    const clock = new ManualClock()
    const bus = await PubSub.create(undefined, { clock })
    const got = await watch(bus)
    const will = { message: msg('will/d', 'late', 0), delay: 30 }
    const a = await connect(bus, request('d', { cleanStart: false, expiryInterval: 3600, will }))
    a.handle.detach({ publishWill: true })
    clock.advance(20_000)
    await connect(bus, request('d', { cleanStart: false, expiryInterval: 3600 }))
    clock.advance(60_000)
    expect(got).toEqual([])
    await bus.close()
  })

  it('a delayed will goes after its delay, or at the session\'s end if that is earlier, or at a clean start that ends it', async () => {
    const clock = new ManualClock()
    const bus = await PubSub.create(undefined, { clock })
    const got = await watch(bus)
    const a = await connect(bus, request('w1', { cleanStart: false, expiryInterval: 3600, will: { message: msg('will/1', 'after delay'), delay: 30 } }))
    const b = await connect(bus, request('w2', { cleanStart: false, expiryInterval: 10, will: { message: msg('will/2', 'at expiry'), delay: 30 } }))
    const c = await connect(bus, request('w3', { cleanStart: false, expiryInterval: 3600, will: { message: msg('will/3', 'at clean start'), delay: 30 } }))
    for (const s of [a, b, c]) s.handle.detach({ publishWill: true })
    clock.advance(1000)
    await connect(bus, request('w3', { cleanStart: true }))
    expect(got.map(m => m.payload.toString())).toEqual(['at clean start'])
    clock.advance(10_000)
    expect(got.map(m => m.payload.toString())).toEqual(['at clean start', 'at expiry'])
    clock.advance(20_000)
    expect(got.map(m => m.payload.toString())).toEqual(['at clean start', 'at expiry', 'after delay'])
    await bus.close()
  })

  it('takeover publishes the old connection\'s will unless the new one resumes the session within a will delay', async () => {
    const clock = new ManualClock()
    const bus = await PubSub.create(undefined, { clock })
    const got = await watch(bus)
    const connectKicked = async (req: ReturnType<typeof request>): Promise<void> => {
      const { handle, outlet } = await connect(bus, req)
      // as the MQTT front-end does: the kicked connection closes and detaches at once, asking for its will
      outlet.onKick = () => { handle.detach({ publishWill: true }) }
    }
    await connectKicked(request('t', { will: { message: msg('will/t', 'taken'), delay: 0 } }))
    await connectKicked(request('t', { cleanStart: false, expiryInterval: 60, will: { message: msg('will/t', 'delayed'), delay: 5 } }))
    expect(got.map(m => m.payload.toString())).toEqual(['taken'])
    await connectKicked(request('t', { cleanStart: false, expiryInterval: 60 }))
    clock.advance(10_000)
    expect(got.map(m => m.payload.toString())).toEqual(['taken'])
    expect(bus.connectedClients).toBe(1)
    await bus.close()
  })
})

describe('retained messages', () => {
  it('stores, replaces and clears (empty payload); served per retain handling, QoS min(message, subscription), retain flag set', async () => {
    const bus = await PubSub.create()
    await bus.publish({ topic: 'rt/a', payload: Buffer.from('1'), retain: true, qos: 2 })
    await bus.publish({ topic: 'rt/b', payload: Buffer.from('2'), retain: true })
    await bus.publish({ topic: 'rt/b', payload: Buffer.from('3'), retain: true })
    await bus.publish({ topic: 'rt/c', payload: Buffer.from('4'), retain: true })
    await bus.publish({ topic: 'rt/c', payload: Buffer.alloc(0), retain: true })
    expect((await bus.retained(['rt/#'])).map(m => [m.topic, m.payload.toString()])).toEqual([['rt/a', '1'], ['rt/b', '3']])
    const { handle, outlet } = await connect(bus, request('r'))
    const subs = [{ filter: 'rt/+', options: { qos: 1 as const, subscriptionId: 4 } }]
    const existed = await handle.subscribe(subs)
    expect(existed).toEqual([false])
    handle.deliverRetained(subs, existed)
    expect(outlet.deliveries.map(d => [d.message.topic, d.qos, d.retain, d.subscriptionIds])).toEqual([['rt/a', 1, true, [4]], ['rt/b', 0, true, [4]]])
    // retain handling 1: only for a new subscription; 2: never; never for a shared one
    const again = [{ filter: 'rt/+', options: { qos: 1 as const, retainHandling: 1 as const } }]
    handle.deliverRetained(again, await handle.subscribe(again))
    handle.deliverRetained([{ filter: 'rt/#', options: { qos: 0, retainHandling: 2 } }], [false])
    handle.deliverRetained([{ filter: '$share/g/rt/#', options: { qos: 0 } }], [false])
    expect(outlet.deliveries).toHaveLength(2)
    // $ topics: not for a filter starting with a wildcard
    bus.route({ ...msg('$SYS/broker/x', 's'), retain: true }, 'internal')
    expect((await bus.retained(['#'])).map(m => m.topic)).toEqual(['rt/a', 'rt/b'])
    await bus.close()
  })
})

describe('shared subscriptions', () => {
  it('one member per message, in turn over the connected members; a persistent member offline gets QoS 1/2 when nobody is connected', async () => {
    const bus = await PubSub.create()
    const members = await Promise.all(['m0', 'm1', 'm2'].map(async (id, i) => await connect(bus, request(id, i === 2 ? { cleanStart: false, expiryInterval: 60 } : {}))))
    for (const m of members) await m.handle.subscribe([{ filter: '$share/g/jobs/+', options: { qos: 1 } }])
    for (let i = 0; i < 6; i++) bus.route(msg('jobs/x', `j${i}`), 'mqtt')
    expect(members.map(m => m.outlet.payloads())).toEqual([['j0', 'j3'], ['j1', 'j4'], ['j2', 'j5']])
    members[0].handle.detach({ publishWill: false })
    members[1].handle.detach({ publishWill: false })
    bus.route(msg('jobs/x', 'only m2'), 'mqtt')
    expect(members[2].outlet.payloads()).toEqual(['j2', 'j5', 'only m2'])
    members[2].handle.detach({ publishWill: false })
    bus.route(msg('jobs/x', 'dropped'), 'mqtt')
    expect(bus.route(msg('jobs/x', 'kept', 1), 'mqtt')).toBeUndefined() // in memory: nothing durable
    const back = await connect(bus, request('m2', { cleanStart: false, expiryInterval: 60 }))
    expect(back.outlet.payloads()).toEqual(['kept'])
    await bus.close()
  })

  it('a member gets the lower QoS and its own subscription identifier; a member that unsubscribes or ends leaves the group', async () => {
    const bus = await PubSub.create()
    const a = await connect(bus, request('a'))
    const b = await connect(bus, request('b'))
    await a.handle.subscribe([{ filter: '$share/g/t', options: { qos: 0, subscriptionId: 9 } }])
    await b.handle.subscribe([{ filter: '$share/g/t', options: { qos: 2 } }])
    bus.route(msg('t', '1', 2), 'mqtt')
    bus.route(msg('t', '2', 1), 'mqtt')
    expect(a.outlet.deliveries.map(d => [d.message.payload.toString(), d.qos, d.subscriptionIds])).toEqual([['1', 0, [9]]])
    expect(b.outlet.deliveries.map(d => [d.message.payload.toString(), d.qos, d.subscriptionIds])).toEqual([['2', 1, undefined]])
    expect(await a.handle.unsubscribe(['$share/g/t', 'other'])).toEqual([true, false])
    b.handle.detach({ publishWill: false })
    bus.route(msg('t', '3', 1), 'mqtt')
    expect(a.outlet.deliveries).toHaveLength(1)
    await bus.close()
  })
})
