import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Keyspace } from '../../engines/store/keyspace.js'

describe('store keyspace (hash table + key order)', () => {
  it('finds, orders and forgets keys like a Map and a sorted array would, wide characters included', () => {
    const keyArb = fc.oneof(
      fc.string({ minLength: 1, maxLength: 6 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }).filter(s => (s as unknown as { isWellFormed: () => boolean }).isWellFormed()),
      fc.constantFrom('a', 'ab', 'é', 'éa', '日本', '😀', 'a😀', 'z')
    )
    const opArb = fc.tuple(fc.boolean(), keyArb)
    fc.assert(fc.property(fc.array(opArb, { maxLength: 400 }), ops => {
      const ks = new Keyspace()
      const model = new Map<string, number>()
      const freeSlots: number[] = []
      let nextSlot = 0
      for (const [add, key] of ops) {
        const slot = ks.find(key)
        expect(slot).toBe(model.get(key) ?? -1)
        if (add && slot < 0) {
          const s = freeSlots.pop() ?? nextSlot++
          ks.add(key, s)
          model.set(key, s)
        } else if (!add && slot >= 0) {
          expect(ks.remove(slot)).toBe(key)
          model.delete(key)
          freeSlots.push(slot)
        }
      }
      expect(ks.size).toBe(model.size)
      // the batched lookup answers as find() does, for present, absent and repeated keys
      const probe = ops.map(([, key]) => key)
      const found = new Int32Array(probe.length)
      ks.findMany(probe, found)
      expect([...found]).toEqual(probe.map(key => model.get(key) ?? -1))
      for (const [key, slot] of model) {
        expect(ks.find(key)).toBe(slot)
        expect(ks.keyOf(slot)).toBe(key)
      }
      const sorted = [...model.keys()].sort()
      expect([...ks.iterate('')].map(s => ks.keyOf(s))).toEqual(sorted)
      if (sorted.length > 2) {
        const after = sorted[1]
        expect([...ks.iterate('', after)].map(s => ks.keyOf(s))).toEqual(sorted.slice(2))
      }
    }), { numRuns: 200 })
  })

  it('keeps working through table growth and mass deletion', () => {
    const ks = new Keyspace()
    const n = 50_000
    for (let i = 0; i < n; i++) ks.add(`key:${i}`, i)
    for (let i = 0; i < n; i += 2) ks.remove(i)
    for (let i = 0; i < n; i++) expect(ks.find(`key:${i}`)).toBe(i % 2 === 0 ? -1 : i)
    const batch = Array.from({ length: 500 }, (_, i) => `key:${i * 97 % n}`)
    const found = new Int32Array(batch.length)
    ks.findMany(batch, found)
    expect([...found]).toEqual(batch.map((_, i) => (i * 97 % n) % 2 === 0 ? -1 : i * 97 % n))
    const ordered = [...ks.iterate('key:1')].map(s => ks.keyOf(s))
    expect(ordered).toEqual([...Array(n).keys()].filter(i => i % 2 === 1).map(i => `key:${i}`).sort())
    // thin out to a few percent (chunks merge and disappear), then grow again in the gaps
    const kept = new Set<number>()
    for (let i = 1; i < n; i += 2) {
      if (i % 37 === 1) kept.add(i)
      else ks.remove(i)
    }
    for (let i = 0; i < n; i += 10) {
      ks.add(`key:${i}`, i)
      kept.add(i)
    }
    expect(ks.size).toBe(kept.size)
    expect([...ks.iterate('')].map(s => ks.keyOf(s))).toEqual([...kept].map(i => `key:${i}`).sort())
    for (const i of kept) expect(ks.find(`key:${i}`)).toBe(i)
  })

  it('finds keys whose items move (tails changing size class) while the table grows and shrinks chains', () => {
    const ks = new Keyspace()
    const n = 20_000
    const tailOf = (i: number, round: number): Buffer => Buffer.alloc((i * 7 + round * 13) % 300, (i + round) % 251)
    const tail = (slot: number): Buffer => {
      const at = ks.tailOffset(slot)
      return ks.tailBuffer(slot).subarray(at, at + ks.tailLength(slot))
    }
    for (let i = 0; i < n; i++) {
      ks.add(`k${i}`, i)
      ks.setTail(i, tailOf(i, 0))
      // move earlier items while resizes are under way: every bucket must keep its head's address right
      const j = (i * 7919) % (i + 1)
      ks.setTail(j, tailOf(j, 1))
    }
    for (let i = 0; i < n; i += 3) ks.remove(i)
    for (let i = 0; i < n; i++) {
      const slot = ks.find(`k${i}`)
      if (i % 3 === 0) expect(slot).toBe(-1)
      else {
        expect(slot).toBe(i)
        ks.setTail(i, tailOf(i, 2))
      }
    }
    for (let i = 1; i < n; i++) {
      if (i % 3 === 0) continue
      expect(ks.find(`k${i}`)).toBe(i)
      expect(tail(i).equals(tailOf(i, 2))).toBe(true)
      expect(ks.keyOf(i)).toBe(`k${i}`)
    }
  })
})
