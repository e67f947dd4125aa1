import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SubscriptionTrie } from '../../engines/pubsub/trie.js'
import { Router, LocalSubscriber } from '../../engines/pubsub/router.js'
import { topicMatches } from '../../engines/pubsub/topics.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import type { BusMessage } from '../../engines/pubsub/types.js'
import { connect, FakeOutlet, msg, request } from './pubsub-fakes.js'

const level = fc.constantFrom('a', 'b', 'c', '', '$SYS', '$x', 'sensors')
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map(l => l.join('/'))
const filter = fc.tuple(
  fc.array(fc.oneof(level, fc.constant('+')), { minLength: 0, maxLength: 5 }),
  fc.boolean()
).map(([levels, hash]) => hash ? [...levels, '#'].join('/') : levels.join('/')).filter(f => f.length > 0)

describe('subscription index', () => {
  it('matches as topicMatches does, $ topics not matched by wildcards at the first level [MQTT-4.7.2-1]', () => {
    fc.assert(fc.property(fc.uniqueArray(filter, { maxLength: 12 }), fc.array(topic, { minLength: 1, maxLength: 10 }), fc.array(fc.nat(20)), (filters, topics, removals) => {
      const trie = new SubscriptionTrie<string, null>()
      const live = new Set(filters)
      for (const f of filters) expect(trie.add(f, f, null)).toBe(true)
      for (const r of removals) {
        const f = filters[r % Math.max(1, filters.length)]
        if (f === undefined) continue
        expect(trie.remove(f, f)).toBe(live.delete(f))
      }
      expect(trie.size).toBe(live.size)
      for (const t of topics) {
        const got: string[] = []
        trie.match(t, owner => { got.push(owner) })
        expect(got.sort()).toEqual([...live].filter(f => topicMatches(f, t)).sort())
      }
    }), { numRuns: 300 })
  })

  it('spells out the $ rule and # matching its parent level', () => {
    const trie = new SubscriptionTrie<string, null>()
    for (const f of ['#', '+/broker/uptime', '$SYS/#', 'a/#', 'a/+', '+']) trie.add(f, f, null)
    const of = (t: string): string[] => { const got: string[] = []; trie.match(t, o => { got.push(o) }); return got.sort() }
    expect(of('$SYS/broker/uptime')).toEqual(['$SYS/#'])
    expect(of('a')).toEqual(['#', '+', 'a/#'])
    expect(of('a/b')).toEqual(['#', 'a/#', 'a/+'])
    expect(of('x/broker/uptime')).toEqual(['#', '+/broker/uptime'])
  })

  it('caches a topic\'s match and sees every subscription change (generation)', () => {
    const router = new Router(2)
    const a = new LocalSubscriber(() => {}, false)
    const b = new LocalSubscriber(() => {}, true)
    router.add('x/#', a, null)
    const first = router.match('x/y')
    expect(router.match('x/y')).toBe(first)
    expect(first.locals).toEqual([a])
    router.add('x/+', b, null)
    const second = router.match('x/y')
    expect(second).not.toBe(first)
    expect(second.locals).toEqual([a, b])
    expect(second.durableLocals).toBe(true)
    // bounded: older topics leave the cache
    router.match('p')
    router.match('q')
    expect(router.match('x/y')).not.toBe(second)
    router.remove('x/#', a)
    expect(router.match('x/y').locals).toEqual([b])
  })
})

describe('routing', () => {
  it('gives an in-process subscriber one call per message however many of its filters match', async () => {
    const bus = await PubSub.create()
    const got: BusMessage[] = []
    const off = await bus.subscribe(['a/#', 'a/+', 'a/b'], m => { got.push(m) })
    expect(bus.activeSubscriptions).toBe(3)
    await bus.publish({ topic: 'a/b', payload: Buffer.from('1') })
    expect(got).toHaveLength(1)
    await off()
    expect(bus.activeSubscriptions).toBe(0)
    await bus.publish({ topic: 'a/b', payload: Buffer.from('2') })
    expect(got).toHaveLength(1)
    await bus.close()
  })

  it('QoS 0: route() writes nothing and returns undefined; the same packet is one Delivery object for every session', async () => {
    const bus = await PubSub.create()
    const outlets: FakeOutlet[] = []
    for (let i = 0; i < 3; i++) {
      const { handle, outlet } = await connect(bus, request(`s${i}`))
      await handle.subscribe([{ filter: 'fan/#', options: { qos: 1 } }])
      outlets.push(outlet)
    }
    expect(bus.route(msg('fan/out', 'x'), 'mqtt')).toBeUndefined()
    expect(outlets.map(o => o.payloads())).toEqual([['x'], ['x'], ['x']])
    expect(outlets[1].deliveries[0]).toBe(outlets[0].deliveries[0])
    expect(outlets[0].deliveries[0]).toMatchObject({ qos: 0, retain: false })
    expect(bus.stats.deliveredMqtt).toBe(3)
    expect(bus.stats.published.mqtt).toBe(1)
    await bus.close()
  })

  it('one delivery per session over overlapping subscriptions: highest QoS, every subscription id, retain as published', async () => {
    const bus = await PubSub.create()
    const { handle, outlet } = await connect(bus, request('s'))
    await handle.subscribe([
      { filter: 'h/#', options: { qos: 0, subscriptionId: 7 } },
      { filter: 'h/+', options: { qos: 2, subscriptionId: 9, retainAsPublished: true } },
      { filter: 'h/x', options: { qos: 1 } }
    ])
    void bus.route({ ...msg('h/x', 'p', 2), retain: true }, 'mqtt')
    expect(outlet.deliveries).toHaveLength(1)
    expect(outlet.deliveries[0]).toMatchObject({ qos: 2, retain: true, subscriptionIds: [7, 9], packetId: 1 })
    // without retain as published the flag is 0 on live delivery [MQTT-3.3.1-9]
    const other = await connect(bus, request('t'))
    await other.handle.subscribe([{ filter: 'h/x', options: { qos: 0 } }])
    void bus.route({ ...msg('h/x', 'q', 0), retain: true }, 'mqtt')
    expect(other.outlet.deliveries[0]).toMatchObject({ retain: false, subscriptionIds: undefined })
    await bus.close()
  })

  it('no local: not to the session that published it, unless another subscription of it matches [MQTT-3.8.3-3]', async () => {
    const bus = await PubSub.create()
    const me = await connect(bus, request('me'))
    const you = await connect(bus, request('you'))
    await me.handle.subscribe([{ filter: 'chat/#', options: { qos: 0, noLocal: true } }])
    await you.handle.subscribe([{ filter: 'chat/#', options: { qos: 0, noLocal: true } }])
    bus.route({ ...msg('chat/1', 'hi'), from: 'me' }, 'mqtt')
    expect(me.outlet.deliveries).toHaveLength(0)
    expect(you.outlet.payloads()).toEqual(['hi'])
    await me.handle.subscribe([{ filter: 'chat/+', options: { qos: 0, subscriptionId: 3 } }])
    bus.route({ ...msg('chat/1', 'again'), from: 'me' }, 'mqtt')
    expect(me.outlet.deliveries.map(d => [d.message.payload.toString(), d.subscriptionIds])).toEqual([['again', [3]]])
    await bus.close()
  })

  it('$SYS/ topics are the bus\'s: refused from front-ends, not counted', async () => {
    const bus = await PubSub.create()
    expect(() => bus.route(msg('$SYS/broker/x', '1'), 'mqtt')).toThrow(/reserved/)
    await expect(bus.publish({ topic: '$SYS/x', payload: Buffer.from('') })).rejects.toThrow(/reserved/)
    expect(bus.route(msg('$SYS/broker/x', '1'), 'internal')).toBeUndefined()
    expect(bus.stats.published).toEqual({ mqtt: 0, http: 0, internal: 0 })
    await bus.close()
  })
})

describe('retained messages by filter', () => {
  it('serves what topicMatches says, each message once over several filters, $ rule included', async () => {
    await fc.assert(fc.asyncProperty(fc.uniqueArray(topic, { maxLength: 12 }), fc.array(topic, { maxLength: 4 }), fc.array(filter, { minLength: 1, maxLength: 3 }), async (topics, cleared, filters) => {
      const bus = await PubSub.create()
      for (const t of topics) bus.route({ ...msg(t, `v:${t}`), retain: true }, 'internal')
      for (const t of cleared) bus.route({ ...msg(t, ''), retain: true }, 'internal')
      const kept = topics.filter(t => !cleared.includes(t))
      const got = (await bus.retained(filters)).map(m => m.topic)
      expect(got.length).toBe(new Set(got).size)
      expect(got.sort()).toEqual(kept.filter(t => filters.some(f => topicMatches(f, t))).sort())
      await bus.close()
    }), { numRuns: 200 })
  })
})
