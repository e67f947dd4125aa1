import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../engines/clock.js'
import { Conflict, InsufficientStorage, InvalidArgument, NotFound, PreconditionFailed, TooLarge, Unavailable } from '../../engines/errors.js'
import { entryCost, Store, type StoreEvent, type StoreOptions } from '../../engines/store/store.js'

function makeStore (overrides: Partial<StoreOptions> = {}): { store: Store, clock: ManualClock } {
  const clock = new ManualClock()
  const store = new Store({ clock, maxMemory: 0, eviction: 'lru', maxValueBytes: 1024 * 1024, watchBacklog: 10_000, ...overrides })
  return { store, clock }
}

const b = (text: string): Buffer => Buffer.from(text)
const text = (store: Store, key: string): string | undefined => store.get(key)?.value.toString()

describe('store: values, revisions, conditions', () => {
  it('stores bytes with their content type and gives each write a new revision', () => {
    const { store } = makeStore()
    const bytes = Buffer.from([0, 255, 1, 128])
    const r1 = store.set('bin', bytes, { contentType: 'application/octet-stream' }).revision
    const r2 = store.set('doc', b('{"a":1}'), { contentType: 'application/json' }).revision
    expect(r2).toBe(r1 + 1)
    const got = store.get('bin')!
    expect(got.value.equals(bytes)).toBe(true)
    expect(got.contentType).toBe('application/octet-stream')
    expect(got.revision).toBe(r1)
    expect(store.get('doc')!.contentType).toBe('application/json')
    expect(store.set('bin', b('x')).revision).toBeGreaterThan(r2)
    expect(store.get('missing')).toBeUndefined()
    expect(store.stats).toMatchObject({ keys: 2, hits: 2, misses: 1 })
  })

  it('returns a copy: a later write does not change a value already read', () => {
    const { store } = makeStore()
    store.set('k', b('first value'))
    const before = store.get('k')!.value
    store.set('k', b('other value'))
    expect(before.toString()).toBe('first value')
    expect(text(store, 'k')).toBe('other value')
  })

  it('keeps values of every size, empty and over the slab size included', () => {
    const { store } = makeStore()
    for (const size of [0, 1, 15, 16, 17, 64, 1000, 16 * 1024, 16 * 1024 + 1, 300_000]) {
      const value = Buffer.alloc(size, size % 251)
      store.set(`s${size}`, value)
      expect(store.get(`s${size}`)!.value.equals(value)).toBe(true)
    }
    // overwrite across size classes, both directions
    store.set('s64', Buffer.alloc(300_000, 7))
    store.set('s300000', Buffer.alloc(3, 9))
    expect(store.get('s64')!.value.equals(Buffer.alloc(300_000, 7))).toBe(true)
    expect(store.get('s300000')!.value.equals(Buffer.alloc(3, 9))).toBe(true)
  })

  it('set-if-absent, set-if-present and compare-and-set fail with 412 and change nothing', () => {
    const { store } = makeStore()
    const { revision } = store.set('k', b('v1'), { ifAbsent: true })
    expect(() => store.set('k', b('v2'), { ifAbsent: true })).toThrow(PreconditionFailed)
    expect(() => store.set('nope', b('v'), { ifPresent: true })).toThrow(PreconditionFailed)
    expect(store.info('nope')).toBeUndefined()
    expect(() => store.set('k', b('v3'), { ifRevision: revision + 100 })).toThrow(PreconditionFailed)
    expect(() => store.set('nope', b('v'), { ifRevision: revision })).toThrow(PreconditionFailed)
    expect(text(store, 'k')).toBe('v1')
    const next = store.set('k', b('v4'), { ifRevision: revision }).revision
    expect(text(store, 'k')).toBe('v4')
    expect(() => store.set('k', b('v5'), { ifRevision: revision })).toThrow(PreconditionFailed)
    store.set('k', b('v6'), { ifPresent: true, ifRevision: next })
    expect(text(store, 'k')).toBe('v6')
  })

  it('delete: 404 when missing, 412 on a revision mismatch', () => {
    const { store } = makeStore()
    const { revision } = store.set('k', b('v'))
    expect(() => store.delete('k', { ifRevision: revision + 1 })).toThrow(PreconditionFailed)
    store.delete('k', { ifRevision: revision })
    expect(store.get('k')).toBeUndefined()
    expect(() => store.delete('k')).toThrow(NotFound)
  })

  it('enforces the limits: key 1..1024 UTF-8 bytes, value size, TTL > 0', () => {
    const { store } = makeStore({ maxValueBytes: 100 })
    expect(() => store.set('', b('v'))).toThrow(InvalidArgument)
    store.set('k'.repeat(1024), b('v'))
    expect(() => store.set('k'.repeat(1025), b('v'))).toThrow(InvalidArgument)
    store.set('é'.repeat(512), b('v'))
    expect(() => store.set('é'.repeat(513), b('v'))).toThrow(InvalidArgument)
    expect(() => store.set('bad\ud800', b('v'))).toThrow(InvalidArgument)
    store.set('v', Buffer.alloc(100))
    expect(() => store.set('v', Buffer.alloc(101))).toThrow(TooLarge)
    expect(store.get('v')!.value.length).toBe(100)
    expect(() => store.set('t', b('v'), { ttlMs: 0 })).toThrow(InvalidArgument)
    expect(() => store.set('t', b('v'), { ttlMs: -5 })).toThrow(InvalidArgument)
    expect(() => store.set('t', b('v'), { ttlMs: Number.NaN })).toThrow(InvalidArgument)
    expect(store.info('t')).toBeUndefined()
  })
})

describe('store: TTL and expiry', () => {
  it('never serves an expired key, even before any sweep runs', () => {
    const { store, clock } = makeStore({ sweepIntervalMs: 3_600_000 })
    store.set('k', b('v'), { ttlMs: 1000 })
    clock.advance(999)
    expect(text(store, 'k')).toBe('v')
    expect(store.info('k')!.expiresAt).toBe(clock.now() + 1)
    clock.advance(1)
    expect(store.get('k')).toBeUndefined()
    expect(store.stats.expirations).toBe(1)
    expect(store.size).toBe(0)
  })

  it('a set without ttl clears the TTL unless keepTtl; setTtl changes or removes it', () => {
    const { store, clock } = makeStore()
    store.set('a', b('1'), { ttlMs: 1000 })
    store.set('a', b('2'))
    expect(store.info('a')!.expiresAt).toBeNull()
    store.set('b', b('1'), { ttlMs: 1000 })
    store.set('b', b('2'), { keepTtl: true })
    expect(store.info('b')!.expiresAt).toBe(clock.now() + 1000)
    const rev = store.info('b')!.revision
    store.setTtl('b', 5000)
    expect(store.info('b')).toMatchObject({ expiresAt: clock.now() + 5000, revision: rev })
    clock.advance(2000)
    expect(text(store, 'b')).toBe('2')
    store.setTtl('b', null)
    clock.advance(10_000)
    expect(text(store, 'b')).toBe('2')
    expect(() => store.setTtl('missing', 10)).toThrow(NotFound)
    expect(() => store.setTtl('b', 0)).toThrow(InvalidArgument)
  })

  it('the active sweep removes expired keys nobody reads, with expire events', () => {
    const { store, clock } = makeStore({ sweepIntervalMs: 100 })
    const events: StoreEvent[] = []
    store.watch(e => { events.push(e) })
    for (let i = 0; i < 5000; i++) store.set(`t${i}`, b('v'), { ttlMs: 1000 + (i % 10) })
    for (let i = 0; i < 100; i++) store.set(`p${i}`, b('v'))
    events.length = 0
    clock.advance(1100)
    // sampling stops once few expired keys remain in a sample; repeated ticks converge to none
    for (let i = 0; i < 50 && store.size > 100; i++) clock.advance(100)
    expect(store.size).toBe(100)
    expect(store.stats.expirations).toBe(5000)
    expect(events.length).toBe(5000)
    expect(events.every(e => e.type === 'expire')).toBe(true)
    expect(store.stats.bytes).toBe([...Array(100).keys()].reduce((sum, i) => sum + entryCost(`p${i}`, 1), 0))
  })

  it('stops sweeping when no key has a TTL', () => {
    const { store, clock } = makeStore()
    store.set('k', b('v'), { ttlMs: 50 })
    expect(clock.pendingTimers()).toBe(1)
    clock.advance(1000)
    expect(store.size).toBe(0)
    expect(clock.pendingTimers()).toBe(0)
  })
})

describe('store: incr', () => {
  it('creates at 0, adds, keeps the TTL, refuses non-integers and overflow with 409', () => {
    const { store, clock } = makeStore()
    expect(store.incr('n').value).toBe(1)
    expect(store.incr('n', 41).value).toBe(42)
    expect(store.incr('n', -50).value).toBe(-8)
    expect(text(store, 'n')).toBe('-8')
    store.set('t', b('10'), { ttlMs: 1000, contentType: 'text/plain' })
    expect(store.incr('t').value).toBe(11)
    expect(store.info('t')).toMatchObject({ expiresAt: clock.now() + 1000, contentType: 'text/plain' })
    store.set('s', b('abc'))
    expect(() => store.incr('s')).toThrow(Conflict)
    store.set('f', b('1.5'))
    expect(() => store.incr('f')).toThrow(Conflict)
    store.set('big', b(String(Number.MAX_SAFE_INTEGER)))
    expect(() => store.incr('big')).toThrow(Conflict)
    expect(text(store, 'big')).toBe(String(Number.MAX_SAFE_INTEGER))
  })
})

describe('store: memory cap', () => {
  const cost = (key: string, size: number): number => entryCost(key, size)

  it('evicts least recently used keys first, never the key being written, with evict events', () => {
    const one = cost('k0', 64)
    const { store } = makeStore({ maxMemory: one * 3 })
    const events: StoreEvent[] = []
    store.watch(e => { events.push(e) })
    store.set('k0', Buffer.alloc(64))
    store.set('k1', Buffer.alloc(64))
    store.set('k2', Buffer.alloc(64))
    store.get('k0') // k1 is now the least recently used
    store.set('k3', Buffer.alloc(64))
    expect(store.info('k1')).toBeUndefined()
    expect(events.filter(e => e.type === 'evict').map(e => e.key)).toEqual(['k1'])
    store.set('k2', Buffer.alloc(64)) // a write is a use too: k0 is now the oldest
    store.set('k4', Buffer.alloc(64))
    expect(events.filter(e => e.type === 'evict').map(e => e.key)).toEqual(['k1', 'k0'])
    expect([...['k2', 'k3', 'k4']].every(k => store.info(k) !== undefined)).toBe(true)
    expect(store.stats.evictions).toBe(2)
    expect(store.stats.bytes).toBeLessThanOrEqual(one * 3)
    // a value that cannot fit even in an empty store is refused and evicts nothing
    expect(() => store.set('huge', Buffer.alloc(one * 4))).toThrow(InsufficientStorage)
    expect(store.size).toBe(3)
  })

  it('with eviction none refuses writes over the cap (507) and touches nothing', () => {
    const one = cost('k0', 64)
    const { store } = makeStore({ maxMemory: one * 2, eviction: 'none' })
    store.set('k0', Buffer.alloc(64, 1))
    store.set('k1', Buffer.alloc(64, 1))
    expect(() => store.set('k2', Buffer.alloc(64))).toThrow(InsufficientStorage)
    expect(() => store.mset([{ key: 'k0', value: Buffer.alloc(64, 2) }, { key: 'k3', value: Buffer.alloc(64) }])).toThrow(InsufficientStorage)
    expect(store.get('k0')!.value[0]).toBe(1)
    expect(store.info('k3')).toBeUndefined()
    // an overwrite that does not grow still works, and a delete frees room
    store.set('k1', Buffer.alloc(64, 3))
    store.delete('k0')
    store.set('k2', Buffer.alloc(64))
    expect(store.size).toBe(2)
  })
})

describe('store: value placement', () => {
  it('keeps values next to their key up to the item limit and apart beyond it, through every transition', () => {
    const { store } = makeStore()
    const keys = ['k', 'wide-ключ-鍵', 'x'.repeat(1000)]
    // around the largest value that still fits in the key's item (16 KiB minus the key's bytes)
    const sizes = [0, 1, 63, 64, 65, 16 * 1024 - 2000, 16 * 1024 - 1001, 16 * 1024 - 1000, 16 * 1024 - 999, 16 * 1024 - 30, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 40_000, 5, 0, 70]
    const expected = new Map<string, Buffer>()
    for (const size of sizes) {
      for (const [i, key] of keys.entries()) {
        const value = Buffer.alloc(size, (size + i) % 251)
        store.set(key, value)
        expected.set(key, value)
        for (const [k, v] of expected) {
          expect(store.get(k)!.value.equals(v)).toBe(true)
          const handle = store.lookup(k)
          expect(store.valueViewOf(handle).equals(v)).toBe(true)
          const start = store.valueOffsetOf(handle)
          expect(store.valueBufferOf(handle).subarray(start, start + store.valueLengthOf(handle)).equals(v)).toBe(true)
          expect(store.revisionOf(handle)).toBe(store.get(k)!.revision)
        }
      }
    }
    expect(store.scan().items.map(i => [i.key, i.size])).toEqual(keys.map(k => [k, 70]).sort((a, b) => (a[0] < b[0] ? -1 : 1)))
    // freed items and slots are reused without disturbing the keys that stay
    store.delete(keys[1])
    store.set('new', Buffer.alloc(20_000, 3))
    store.set('new2', Buffer.alloc(10, 4))
    expect(store.get(keys[0])!.value.equals(Buffer.alloc(70, (70 + 0) % 251))).toBe(true)
    expect(store.get(keys[2])!.value.equals(Buffer.alloc(70, (70 + 2) % 251))).toBe(true)
    expect(store.get('new')!.value.equals(Buffer.alloc(20_000, 3))).toBe(true)
    expect(store.get('new2')!.value.equals(Buffer.alloc(10, 4))).toBe(true)
    expect(store.lookup(keys[1])).toBe(-1)
  })

  it('mset writes every entry to its own key when keys expire while the batch is checked', () => {
    const { store, clock } = makeStore()
    store.set('a', b('old a'))
    store.set('b', b('old b'), { ttlMs: 10 })
    clock.advance(20)
    // 'b' expires during the batch's checks, freeing a slot that the new keys may take
    store.mset([{ key: 'a', value: b('A') }, { key: 'b', value: b('B') }, { key: 'c', value: b('C') }, { key: 'a', value: b('A2') }])
    expect([text(store, 'a'), text(store, 'b'), text(store, 'c')]).toEqual(['A2', 'B', 'C'])
    expect(store.size).toBe(3)
    expect(store.stats.expirations).toBe(1)
  })
})

describe('store: batches', () => {
  it('mget answers in order with null for missing; mset is all or nothing', () => {
    const { store } = makeStore()
    store.mset([{ key: 'a', value: b('1') }, { key: 'b', value: b('2'), ttlMs: 1000 }])
    expect(store.mget(['b', 'x', 'a']).map(v => v?.value.toString() ?? null)).toEqual(['2', null, '1'])
    expect(() => store.mset([{ key: 'c', value: b('3') }, { key: 'a', value: b('9') }], { ifAbsent: true })).toThrow(PreconditionFailed)
    expect(store.info('c')).toBeUndefined()
    expect(text(store, 'a')).toBe('1')
    expect(() => store.mset([{ key: 'd', value: b('4') }, { key: '', value: b('5') }])).toThrow(InvalidArgument)
    expect(store.info('d')).toBeUndefined()
    expect(() => store.mset([{ key: 'd', value: b('4') }, { key: 'e', value: b('5'), ttlMs: -1 }])).toThrow(InvalidArgument)
    expect(store.info('d')).toBeUndefined()
    const revisions = store.mset([{ key: 'd', value: b('4') }, { key: 'd', value: b('44') }])
    expect(revisions[1]).toBe(revisions[0] + 1)
    expect(text(store, 'd')).toBe('44')
  })
})

describe('store: scan', () => {
  it('pages through keys under a prefix in order', () => {
    const { store } = makeStore()
    for (const k of ['b/2', 'a/1', 'b/1', 'c', 'b/10', 'b']) store.set(k, b('v'))
    const first = store.scan({ prefix: 'b/', limit: 2 })
    expect(first.items.map(i => i.key)).toEqual(['b/1', 'b/10'])
    const second = store.scan({ prefix: 'b/', limit: 2, cursor: first.cursor! })
    expect(second.items.map(i => i.key)).toEqual(['b/2'])
    expect(second.cursor).toBeNull()
    expect(store.scan().items.map(i => i.key)).toEqual(['a/1', 'b', 'b/1', 'b/10', 'b/2', 'c'])
    expect(() => store.scan({ cursor: '!!' })).toThrow(InvalidArgument)
  })

  it('neither skips nor repeats keys that exist for the whole scan while others write', () => {
    const { store, clock } = makeStore()
    const stable = new Set<string>()
    for (let i = 0; i < 3000; i++) {
      const key = `k/${(i * 7919) % 3000}`
      store.set(key, b('v'))
      if (i % 3 === 0) stable.add(key)
    }
    const volatile = [...new Set([...Array(3000).keys()].map(i => `k/${i}`))].filter(k => !stable.has(k))
    for (const k of volatile.filter((_, i) => i % 5 === 0)) store.set(k, b('short'), { ttlMs: 50 + (k.length % 7) * 10 })
    const seen: string[] = []
    let cursor: string | undefined
    let writes = 0
    for (let page = 0; page < 1000; page++) {
      const result = store.scan({ prefix: 'k/', limit: 37, ...(cursor !== undefined ? { cursor } : {}) })
      seen.push(...result.items.map(i => i.key))
      if (result.cursor === null) break
      cursor = result.cursor
      // between pages: new keys before and after the cursor, deletes, overwrites, expiries
      for (let j = 0; j < 20; j++) {
        const n = (page * 31 + j * 17) % 5000
        store.set(`k/new${n}`, b('n'))
        store.set(`k/${n}x`, b('n'))
        const victim = volatile[(page * 13 + j) % volatile.length]
        if (store.info(victim) !== undefined) store.delete(victim)
        writes += 3
      }
      for (const k of [...stable].slice(page * 5, page * 5 + 5)) store.set(k, b('overwritten'))
      clock.advance(5)
    }
    expect(writes).toBeGreaterThan(0)
    const counts = new Map<string, number>()
    for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1)
    for (const k of stable) expect(counts.get(k), k).toBe(1)
    expect([...counts.values()].every(c => c === 1)).toBe(true)
    expect(seen).toEqual([...seen].sort())
  })
})

describe('store: change feed', () => {
  it('replays what was missed from the backlog, and refuses what fell off it', () => {
    const { store } = makeStore({ watchBacklog: 10 })
    const start = store.latestRevision
    store.set('a', b('1'))
    store.set('b', b('2'))
    store.set('a', b('3'))
    store.delete('b')
    const replayed: StoreEvent[] = []
    expect(store.replay(start + 1, e => { replayed.push(e) }, true)).toBe(true)
    expect(replayed.map(e => [e.type, e.key, e.revision])).toEqual([['set', 'b', start + 2], ['set', 'a', start + 3], ['delete', 'b', start + 4]])
    // the set of b was deleted since; the set of a is still current and carries its value
    expect(replayed[0].superseded).toBe(true)
    expect(Buffer.from(replayed[1].value!).toString()).toBe('3')
    expect(store.replay(store.latestRevision, () => { throw new Error('nothing to replay') })).toBe(true)
    expect(store.replay(store.latestRevision + 1, () => {})).toBe(false)
    for (let i = 0; i < 20; i++) store.set(`x${i}`, b('v'))
    expect(store.replay(start + 1, () => {})).toBe(false)
    const recent: number[] = []
    expect(store.replay(store.latestRevision - 10, e => { recent.push(e.revision) })).toBe(true)
    expect(recent).toHaveLength(10)
    expect(store.replay(store.latestRevision - 11, () => {})).toBe(false)
  })

  it('emits set, delete, expire and evict with consecutive revisions', () => {
    const { store, clock } = makeStore({ maxMemory: entryCost('k0', 1) * 2 })
    const events: StoreEvent[] = []
    store.watch(e => { events.push(e) })
    store.set('k0', b('a'), { ttlMs: 10 })
    store.set('k1', b('b'))
    store.delete('k1')
    clock.advance(20)
    store.get('k0')
    store.set('k2', b('c'))
    store.set('k3', b('d'))
    store.set('k4', b('e'))
    expect(events.map(e => `${e.type}:${e.key}`)).toEqual(['set:k0', 'set:k1', 'delete:k1', 'expire:k0', 'set:k2', 'set:k3', 'evict:k2', 'set:k4'])
    for (let i = 1; i < events.length; i++) expect(events[i].revision).toBe(events[i - 1].revision + 1)
    expect(Buffer.from(events[0].value!).toString()).toBe('a')
  })
  it('a TTL set or removed is a ttl event with the expiry, live and replayed, the key\'s revision unchanged', () => {
    const { store, clock } = makeStore()
    const events: StoreEvent[] = []
    store.watch(e => { events.push(e) })
    const { revision } = store.set('k', b('v'))
    store.setTtl('k', 5000)
    const setAt = clock.now()
    clock.advance(1000)
    store.setTtl('k', null)
    store.setTtl('k', 2000)
    expect(events.map(e => [e.type, e.expiresAt])).toEqual([['set', null], ['ttl', setAt + 5000], ['ttl', null], ['ttl', setAt + 3000]])
    for (let i = 1; i < events.length; i++) expect(events[i].revision).toBe(events[i - 1].revision + 1)
    expect(store.info('k')?.revision).toBe(revision)
    // a replay tells each change as it was, not the key's TTL now
    const replayed: StoreEvent[] = []
    expect(store.replay(revision, e => { replayed.push(e) })).toBe(true)
    expect(replayed.map(e => [e.type, e.revision, e.expiresAt])).toEqual(events.slice(1).map(e => [e.type, e.revision, e.expiresAt]))
    // the key then expires: an expire event follows
    clock.advance(2500)
    expect(store.get('k')).toBeUndefined()
    expect(events.at(-1)).toMatchObject({ type: 'expire', key: 'k' })
  })
})

describe('store: JSON-field indexes', () => {
  it('indexes existing keys on create and follows set, delete, expire and evict', async () => {
    const { store, clock } = makeStore({ maxMemory: entryCost('u/0', 40) * 30 })
    for (let i = 0; i < 10; i++) store.set(`u/${i}`, b(JSON.stringify({ c: i % 2 === 0 ? 'fr' : 'de', n: { v: i } })))
    store.set('other/1', b('{"c":"fr"}'))
    const { index, created } = await store.createIndex('country', { prefix: 'u/', field: 'c' })
    expect(created).toBe(true)
    expect(index).toMatchObject({ ready: true, indexedKeys: 10, distinctValues: 2 })
    const keys = (value: string): string[] => store.findByIndex('country', value).items.map(i => i.key)
    expect(keys('fr')).toEqual(['u/0', 'u/2', 'u/4', 'u/6', 'u/8'])
    store.set('u/1', b('{"c":"fr"}'))
    store.delete('u/0')
    store.set('u/2', b('not json'))
    store.set('u/3', b('{"c":"es"}'), { ttlMs: 10 })
    expect(keys('fr')).toEqual(['u/1', 'u/4', 'u/6', 'u/8'])
    expect(keys('es')).toEqual(['u/3'])
    clock.advance(20)
    expect(keys('es')).toEqual([])
    expect(store.getIndex('country').distinctValues).toBe(2)
    // numbers and booleans are found by their text form; nested paths work
    const nested = await store.createIndex('nested', { prefix: 'u/', field: 'n.v' })
    expect(nested.index.indexedKeys).toBe(6)
    expect(store.findByIndex('nested', '4').items.map(i => i.key)).toEqual(['u/4'])
    // evictions remove entries too
    for (let i = 0; i < 40; i++) store.set(`z/${i}`, b('x'.repeat(40)))
    expect(keys('fr')).toEqual([])
    expect(store.getIndex('country').indexedKeys).toBe(0)
    expect(() => store.findByIndex('missing', 'x')).toThrow(NotFound)
    store.deleteIndex('nested')
    expect(store.listIndexes().map(i => i.name)).toEqual(['country'])
  })

  it('an identical create is a no-op; a different one replaces; bad definitions are 400', async () => {
    const { store } = makeStore()
    store.set('a', b('{"x":1}'))
    expect((await store.createIndex('i', { prefix: '', field: 'x' })).created).toBe(true)
    expect((await store.createIndex('i', { prefix: '', field: 'x' })).created).toBe(false)
    expect((await store.createIndex('i', { prefix: '', field: 'y' })).created).toBe(true)
    expect(store.getIndex('i').indexedKeys).toBe(0)
    await expect(store.createIndex('bad name', { prefix: '', field: 'x' })).rejects.toThrow(InvalidArgument)
    await expect(store.createIndex('j', { prefix: '', field: 'a..b' })).rejects.toThrow(InvalidArgument)
  })

  it('builds over many keys in slices while writes go on, and answers 503 until ready', async () => {
    const { store } = makeStore()
    for (let i = 0; i < 20_000; i++) store.set(`k/${String(i).padStart(5, '0')}`, b(JSON.stringify({ g: i % 10 })))
    const building = store.createIndex('g', { prefix: 'k/', field: 'g' })
    expect(() => store.findByIndex('g', '1')).toThrow(Unavailable)
    // writes during the build, before and after the builder's position
    store.set('k/00000', b('{"g":"moved"}'))
    store.set('k/19999', b('{"g":"moved"}'))
    store.delete('k/10000')
    await building
    expect(store.findByIndex('g', 'moved').items.map(i => i.key)).toEqual(['k/00000', 'k/19999'])
    let total = 0
    for (let g = 0; g < 10; g++) {
      let cursor: string | undefined
      for (let p = 0; p < 100; p++) {
        const page = store.findByIndex('g', String(g), { limit: 1000, ...(cursor !== undefined ? { cursor } : {}) })
        total += page.items.length
        if (page.cursor === null) break
        cursor = page.cursor
      }
    }
    expect(total).toBe(20_000 - 3)
  })
})
