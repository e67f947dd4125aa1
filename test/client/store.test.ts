import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers.js'
import { Tetra, NotFoundError, BadRequestError, type StoreEvent } from '../../src/client/node.js'

let broker: TestBroker
let tetra: Tetra

beforeAll(async () => {
  broker = await startTestBroker()
  tetra = new Tetra({ url: broker.url })
})
afterAll(async () => { await broker?.stop() })

describe('client: store', () => {
  it('get/set a JSON value, text, bytes; undefined when missing', async () => {
    const etag = await tetra.store.set('user/1', { name: 'Ada' })
    expect(etag).toMatch(/^"\d+"$/)
    expect(await tetra.store.get('user/1')).toEqual({ name: 'Ada' })
    await tetra.store.set('t/text', 'hello')
    expect(await tetra.store.get('t/text')).toBe('hello')
    await tetra.store.set('t/bytes', new Uint8Array([0, 255, 1]))
    expect(await tetra.store.get('t/bytes')).toEqual(new Uint8Array([0, 255, 1]))
    expect(await tetra.store.get('t/missing')).toBeUndefined()
    const entry = await tetra.store.getEntry('user/1')
    expect(entry).toMatchObject({ key: 'user/1', value: { name: 'Ada' }, etag, ttl: null })
  })

  it('ttl, ifAbsent, ifMatch (compare-and-set), expire, delete', async () => {
    await tetra.store.set('s/ttl', 1, { ttl: 100 })
    const ttl = await tetra.store.ttl('s/ttl')
    expect(ttl).toBeGreaterThan(90)
    expect(await tetra.store.ttl('s/none')).toBeUndefined()
    expect((await tetra.store.expire('s/ttl', null)).ttl).toBeNull()
    expect(await tetra.store.ttl('s/ttl')).toBeNull()
    expect(await tetra.store.set('s/ttl', 2, { ifAbsent: true })).toBeNull()
    expect(await tetra.store.set('s/new', 2, { ifAbsent: true })).not.toBeNull()
    const etag = (await tetra.store.getEntry('s/new'))!.etag
    const next = await tetra.store.set('s/new', 3, { ifMatch: etag })
    expect(next).not.toBeNull()
    expect(await tetra.store.set('s/new', 4, { ifMatch: etag })).toBeNull()
    expect(await tetra.store.get('s/new')).toBe(3)
    expect(await tetra.store.delete('s/new', { ifMatch: etag })).toBe(false)
    expect(await tetra.store.delete('s/new')).toBe(true)
    expect(await tetra.store.delete('s/new')).toBe(false)
    await expect(tetra.store.expire('s/absent', 5)).rejects.toBeInstanceOf(NotFoundError)
  })

  it('incr, mget/mset, scan over the cursor, keys', async () => {
    expect(await tetra.store.incr('c/n')).toBe(1)
    expect(await tetra.store.incr('c/n', 41)).toBe(42)
    const etags = await tetra.store.mset({ 'm/a': 1, 'm/b': 'two', 'm/c': new Uint8Array([7]) })
    expect(etags).toHaveLength(3)
    expect(await tetra.store.mget(['m/a', 'm/b', 'm/c', 'm/zz'])).toEqual([1, 'two', new Uint8Array([7]), undefined])
    expect(await tetra.store.mset([{ key: 'm/a', value: 9 }], { ifAbsent: true })).toBeNull()
    const many: Record<string, number> = {}
    for (let i = 0; i < 25; i++) many[`scan/${String(i).padStart(2, '0')}`] = i
    await tetra.store.mset(many)
    const seen: string[] = []
    for await (const info of tetra.store.scan({ prefix: 'scan/', pageSize: 4 })) seen.push(info.key)
    expect(seen).toEqual(Object.keys(many))
    expect(await tetra.store.keys('m/')).toEqual(['m/a', 'm/b', 'm/c'])
  })

  it('a typed error carries the problem fields', async () => {
    const err = await tetra.store.set('x', 1, { ttl: -1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BadRequestError)
    expect((err as BadRequestError).status).toBe(400)
    expect((err as BadRequestError).detail).toMatch(/ttl/)
    expect((err as BadRequestError).problem.type).toMatch(/^https:\/\/tetra.dev\/problems\//)
  })

  it('watch: events as an async iterator, with values; stopped by the signal', async () => {
    const controller = new AbortController()
    const events: StoreEvent[] = []
    const done = (async () => {
      try {
        for await (const e of tetra.store.watch({ prefix: 'w/', values: true, signal: controller.signal })) {
          events.push(e)
          if (e.type === 'delete') controller.abort()
        }
      } catch (err) { if (!controller.signal.aborted) throw err }
    })()
    // the watch is open once a set shows up; keep setting until it does (bounded)
    for (let i = 0; i < 100 && events.length === 0; i++) {
      await tetra.store.set('w/a', { i })
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    expect(events.length).toBeGreaterThan(0)
    await tetra.store.delete('w/a')
    await done
    expect(events[0]).toMatchObject({ type: 'set', key: 'w/a' })
    expect(events[0].value).toHaveProperty('i')
    expect(events.at(-1)).toMatchObject({ type: 'delete', key: 'w/a' })
  })
})
