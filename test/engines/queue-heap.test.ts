import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { IndexedHeap, ReadyQueue, TupleHeap } from '../../engines/queue/heap.js'

describe('queue heaps', () => {
  it('TupleHeap pops rows in (col0, col1) order and keeps the other columns with their row', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 1e6 })), { maxLength: 3000 }), rows => {
      const heap = new TupleHeap(4, 2)
      rows.forEach(([a, b], i) => { heap.push(a, b, i, a + b) })
      expect(heap.size).toBe(rows.length)
      const expected = rows.map(([a, b], i) => [a, b, i, a + b]).sort((x, y) => x[0] - y[0] || x[1] - y[1])
      const out: number[] = [0, 0, 0, 0]
      const got: number[][] = []
      while (heap.pop(out)) got.push([...out])
      // rows equal in (col0, col1) may come in any order among themselves
      expect(got.map(r => [r[0], r[1]])).toEqual(expected.map(r => [r[0], r[1]]))
      expect(got.every(r => r[3] === r[0] + r[1] && rows[r[2]][0] === r[0] && rows[r[2]][1] === r[1])).toBe(true)
      expect(heap.size).toBe(0)
    }))
  })

  it('TupleHeap interleaves pushes and pops correctly across growth and shrinking', () => {
    const heap = new TupleHeap(2)
    const reference: number[] = []
    const out = [0, 0]
    for (let i = 0; i < 20_000; i++) {
      const v = (i * 7919) % 10_007
      heap.push(v, i)
      reference.push(v)
    }
    reference.sort((a, b) => a - b)
    for (let i = 0; i < 15_000; i++) {
      heap.pop(out)
      expect(out[0]).toBe(reference[i])
    }
    expect(heap.size).toBe(5000)
  })

  it('IndexedHeap removes and re-keys any item', () => {
    interface Item { key: number, id: number, heapIndex: number }
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 300 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 100 }), fc.boolean()), { maxLength: 200 }),
      (keys, changes) => {
        const heap = new IndexedHeap<Item>((a, b) => a.key < b.key || (a.key === b.key && a.id < b.id))
        const live = new Map<number, Item>()
        keys.forEach((key, id) => {
          const item = { key, id, heapIndex: -1 }
          live.set(id, item)
          heap.push(item)
        })
        for (const [pick, key, remove] of changes) {
          const items = [...live.values()]
          if (items.length === 0) break
          const item = items[pick % items.length]
          if (remove) {
            heap.remove(item)
            live.delete(item.id)
          } else {
            item.key = key
            heap.update(item)
          }
        }
        const expected = [...live.values()].sort((a, b) => a.key - b.key || a.id - b.id).map(i => i.id)
        const got: number[] = []
        for (let item = heap.pop(); item !== undefined; item = heap.pop()) got.push(item.id)
        expect(got).toEqual(expected)
      }
    ))
  })

  it('ReadyQueue takes the smallest seq first, whether it came in order (ring) or not (heap), across growth and shrinking', () => {
    fc.assert(fc.property(
      // each step: push the next seq in order, push a returned (earlier) seq, or take one
      fc.array(fc.tuple(fc.constantFrom('next', 'back', 'take'), fc.nat()), { maxLength: 1000 }),
      fc.integer({ min: 0, max: 10_000 }),
      (steps, bulk) => {
        const queue = new ReadyQueue(2)
        const waiting = new Set<number>()
        const taken: number[] = []
        let next = 0
        const out = [0, 0]
        const take = (): void => {
          expect(queue.pop(out)).toBe(waiting.size > 0)
          if (waiting.size === 0) return
          const smallest = Math.min(...waiting)
          expect(out).toEqual([smallest, smallest * 10])
          waiting.delete(smallest)
          taken.push(smallest)
        }
        // a backlog first, so the ring grows past its shrinking threshold and drains below it
        for (; next < bulk; next++) queue.push(next, next * 10)
        for (let i = 0; i < bulk; i++) {
          expect(queue.pop(out)).toBe(true)
          expect(out).toEqual([i, i * 10])
          taken.push(i)
        }
        for (const [kind, pick] of steps) {
          if (kind === 'next') { queue.push(next, next * 10); waiting.add(next++) } else if (kind === 'back' && taken.length > 0) {
            const seq = taken.splice(pick % taken.length, 1)[0]
            queue.push(seq, seq * 10)
            waiting.add(seq)
          } else take()
          expect(queue.size).toBe(waiting.size)
          expect(queue.peek(0)).toBe(waiting.size === 0 ? undefined : Math.min(...waiting))
        }
        expect([...queue.rows()].map(r => r[0]).sort((a, b) => a - b)).toEqual([...waiting].sort((a, b) => a - b))
        while (waiting.size > 0) take()
      }
    ), { numRuns: 40 })
  })
})
