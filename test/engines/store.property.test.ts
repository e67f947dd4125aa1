import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManualClock } from '../../engines/clock.js'
import { TetraError } from '../../engines/errors.js'
import { Store } from '../../engines/store/store.js'

/** The naive model: a plain map of live values with their expiry, checked after every step. */
interface ModelEntry { value: string, expiresAt: number | null }

type Command =
  | { op: 'set', key: string, value: string, ttl?: number, keepTtl: boolean, ifAbsent: boolean }
  | { op: 'delete', key: string }
  | { op: 'advance', ms: number }
  | { op: 'incr', key: string, by: number }
  | { op: 'ttl', key: string, ttl: number | null }
  | { op: 'mset', entries: Array<{ key: string, value: string }> }
  | { op: 'mget', keys: string[] }

const keyArb = fc.constantFrom('u/a', 'u/b', 'u/c', 'u/d', 'u/e/f', 'v/a', 'v/b', 'w')
const fieldArb = fc.constantFrom<unknown>('x', 'y', 1, 2, true, null, { deep: 1 }, [1])
const valueArb = fc.oneof(
  fieldArb.map(c => JSON.stringify({ c })),
  fc.constant('{"other":1}'),
  fc.constant('not json'),
  fc.integer({ min: -5, max: 5 }).map(String)
)
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb, ttl: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }), keepTtl: fc.boolean(), ifAbsent: fc.boolean() })
    .map(c => c.ttl === undefined ? { op: c.op, key: c.key, value: c.value, keepTtl: c.keepTtl, ifAbsent: c.ifAbsent } : { ...c, keepTtl: false }),
  fc.record({ op: fc.constant('delete' as const), key: keyArb }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ op: fc.constant('incr' as const), key: keyArb, by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ op: fc.constant('ttl' as const), key: keyArb, ttl: fc.option(fc.integer({ min: 1, max: 40 }), { nil: null }) }),
  fc.record({ op: fc.constant('mset' as const), entries: fc.array(fc.record({ key: keyArb, value: valueArb }), { minLength: 1, maxLength: 3 }) }),
  // batches long enough for the batched lookup, with repeated keys
  fc.record({ op: fc.constant('mget' as const), keys: fc.array(keyArb, { maxLength: 12 }) })
)

function indexText (value: string): string | undefined {
  try {
    const doc: unknown = JSON.parse(value)
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined
    const c = (doc as Record<string, unknown>).c
    if (c === null) return 'null'
    if (typeof c === 'string' || typeof c === 'number' || typeof c === 'boolean') return String(c)
    return undefined
  } catch {
    return undefined
  }
}

describe('store: property test against a naive model', () => {
  it('get/set/ttl/incr semantics, scans and the index match the model after every step', async () => {
    await fc.assert(fc.asyncProperty(fc.array(commandArb, { maxLength: 60 }), async commands => {
      const clock = new ManualClock()
      const store = new Store({ clock, maxMemory: 0, eviction: 'none', maxValueBytes: 1024, watchBacklog: 100, sweepIntervalMs: 7 })
      await store.createIndex('c', { prefix: 'u/', field: 'c' })
      const model = new Map<string, ModelEntry>()
      const live = (key: string): ModelEntry | undefined => {
        const e = model.get(key)
        if (e !== undefined && e.expiresAt !== null && e.expiresAt <= clock.now()) {
          model.delete(key)
          return undefined
        }
        return e
      }
      for (const c of commands) {
        switch (c.op) {
          case 'set': {
            const existing = live(c.key)
            let failed = false
            try {
              store.set(c.key, Buffer.from(c.value), { ...(c.ttl !== undefined ? { ttlMs: c.ttl } : {}), keepTtl: c.keepTtl, ifAbsent: c.ifAbsent })
            } catch (err) {
              failed = true
              expect((err as TetraError).kind).toBe('precondition_failed')
            }
            expect(failed).toBe(c.ifAbsent && existing !== undefined)
            if (!failed) {
              const expiresAt = c.ttl !== undefined ? clock.now() + c.ttl : c.keepTtl ? existing?.expiresAt ?? null : null
              model.set(c.key, { value: c.value, expiresAt })
            }
            break
          }
          case 'delete': {
            const existing = live(c.key)
            if (existing === undefined) expect(() => { store.delete(c.key) }).toThrow()
            else {
              store.delete(c.key)
              model.delete(c.key)
            }
            break
          }
          case 'advance':
            clock.advance(c.ms)
            break
          case 'incr': {
            const existing = live(c.key)
            const isInt = existing === undefined || /^-?\d+$/.test(existing.value)
            if (!isInt) expect(() => store.incr(c.key, c.by)).toThrow()
            else {
              const next = (existing === undefined ? 0 : Number(existing.value)) + c.by
              expect(store.incr(c.key, c.by).value).toBe(next)
              model.set(c.key, { value: String(next), expiresAt: existing?.expiresAt ?? null })
            }
            break
          }
          case 'ttl': {
            const existing = live(c.key)
            if (existing === undefined) expect(() => store.setTtl(c.key, c.ttl)).toThrow()
            else {
              store.setTtl(c.key, c.ttl)
              existing.expiresAt = c.ttl === null ? null : clock.now() + c.ttl
            }
            break
          }
          case 'mset':
            store.mset(c.entries.map(e => ({ key: e.key, value: Buffer.from(e.value) })))
            for (const e of c.entries) model.set(e.key, { value: e.value, expiresAt: null })
            break
          case 'mget': {
            // read first: mget expires keys past their time, as the model's live() does
            const got = store.mget(c.keys)
            expect(got.map(v => v?.value.toString() ?? null)).toEqual(c.keys.map(k => live(k)?.value ?? null))
            expect(got.map(v => v?.expiresAt ?? null)).toEqual(c.keys.map(k => live(k)?.expiresAt ?? null))
            break
          }
        }
        // every key reads back as the model says
        for (const key of ['u/a', 'u/b', 'u/c', 'u/d', 'u/e/f', 'v/a', 'v/b', 'w']) {
          const expected = live(key)
          const got = store.get(key)
          expect(got?.value.toString(), key).toBe(expected?.value)
          if (got !== undefined) expect(got.expiresAt).toBe(expected!.expiresAt)
        }
        const liveKeys = [...model.keys()].filter(k => live(k) !== undefined).sort()
        expect(store.scan({ limit: 3 }).items.map(i => i.key)).toEqual(liveKeys.slice(0, 3))
        expect(store.scan({ prefix: 'u/' }).items.map(i => i.key)).toEqual(liveKeys.filter(k => k.startsWith('u/')))
        for (const v of ['x', 'y', '1', '2', 'true', 'null']) {
          const expected = liveKeys.filter(k => k.startsWith('u/') && indexText(model.get(k)!.value) === v)
          expect(store.findByIndex('c', v).items.map(i => i.key), `index value ${v}`).toEqual(expected)
        }
        // the reads above expired every key past its time, so the index holds exactly the live matches
        expect(store.getIndex('c').indexedKeys).toBe(liveKeys.filter(k => k.startsWith('u/') && indexText(model.get(k)!.value) !== undefined).length)
        expect(store.size).toBe(liveKeys.length)
      }
      store.close()
    }), { numRuns: 300 })
  })
})
