import { describe, expect, it } from 'vitest'
import { Conflict, InvalidArgument, NotFound } from '../../engines/errors.js'
import { engineOpener, waitFor } from '../helpers.js'

const open = engineOpener()

const msgs = (n: number, from = 0): Array<{ payload: Buffer }> => Array.from({ length: n }, (_, i) => ({ payload: Buffer.from(`m${from + i}`) }))

describe('consumer groups', () => {
  it('gives each message to one reader within a lease; together the readers see every message in order', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.append('jobs', msgs(50))
    await s.putGroup('jobs', 'workers', { ackWaitMs: 10_000 })
    const seen = new Map<number, string>()
    const readers = ['r1', 'r2']
    for (let round = 0; round < 30; round++) {
      const consumer = readers[round % 2]
      const got = await s.receive('jobs', 'workers', { max: 3, waitMs: 0, consumer })
      const offsets = got.map(d => d.entry.offset)
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets)
      for (const d of got) {
        expect(seen.has(d.entry.offset)).toBe(false)
        expect(d.deliveries).toBe(1)
        seen.set(d.entry.offset, consumer)
      }
      if (got.length === 0) break
    }
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(new Set(seen.values()).size).toBe(2)
    const [info] = s.listGroups('jobs')
    expect(info).toMatchObject({ name: 'workers', committed: 0, pending: 50, lag: 50 })
    expect(info.readers.map(r => r.consumer).sort()).toEqual(['r1', 'r2'])
    expect(await s.ack('jobs', 'workers', [...seen.keys()])).toEqual({ acked: 50, committed: 50 })
    expect(s.listGroups('jobs')[0]).toMatchObject({ committed: 50, pending: 0, lag: 0 })
  })

  it('never hands one message to two concurrent readers within a lease', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.put('conc', {})
    await s.putGroup('conc', 'g', {})
    const appending = (async () => { for (let i = 0; i < 20; i++) await s.append('conc', msgs(25, i * 25)) })()
    const got = new Map<number, string>()
    const reader = async (name: string): Promise<void> => {
      for (let i = 0; i < 1000 && got.size < 500; i++) {
        const batch = await s.receive('conc', 'g', { max: 1 + (i % 7), waitMs: 0, consumer: name })
        for (const d of batch) {
          expect(got.get(d.entry.offset)).toBeUndefined()
          got.set(d.entry.offset, name)
        }
        if (batch.length > 0 && i % 2 === 0) await s.ack('conc', 'g', batch.map(d => d.entry.offset))
        await new Promise(resolve => setImmediate(resolve))
      }
    }
    await Promise.all([appending, reader('a'), reader('b'), reader('c'), reader('d')])
    expect([...got.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(new Set(got.values()).size).toBeGreaterThan(1)
  })

  it('redelivers after ackWait with the delivery count, then sets aside as dead letters; redrive brings them back', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    await s.append('q', msgs(3))
    await s.putGroup('q', 'g', { ackWaitMs: 1000, maxDeliveries: 2 })
    const first = await s.receive('q', 'g', { max: 10, waitMs: 0, consumer: 'a' })
    expect(first.map(d => [d.entry.offset, d.deliveries])).toEqual([[0, 1], [1, 1], [2, 1]])
    await s.ack('q', 'g', [1])
    expect(await s.receive('q', 'g', { max: 10, waitMs: 0, consumer: 'b' })).toEqual([])
    clock.advance(1000)
    const second = await s.receive('q', 'g', { max: 10, waitMs: 0, consumer: 'b' })
    expect(second.map(d => [d.entry.offset, d.deliveries])).toEqual([[0, 2], [2, 2]])
    expect(s.listGroups('q')[0].committed).toBe(0)
    clock.advance(1000)
    await waitFor(() => s.listGroups('q')[0].dead === 2, 2000, 'dead letters')
    // dead letters no longer hold the group back
    expect(s.listGroups('q')[0]).toMatchObject({ committed: 3, pending: 0, dead: 2 })
    const dead = await s.dead('q', 'g', 0, 10)
    expect(dead.messages.map(d => [d.offset, d.deliveries, d.consumer, d.entry?.payload.toString()])).toEqual([[0, 2, 'b', 'm0'], [2, 2, 'b', 'm2']])
    expect(await s.redrive('q', 'g', [2])).toEqual({ redriven: 1 })
    const again = await s.receive('q', 'g', { max: 10, waitMs: 0, consumer: 'c' })
    expect(again.map(d => [d.entry.offset, d.deliveries])).toEqual([[2, 1]])
    await s.ack('q', 'g', [2])
    expect(s.listGroups('q')[0]).toMatchObject({ committed: 3, pending: 0, dead: 1 })
    expect((await s.dead('q', 'g', 0, 10)).messages.map(d => d.offset)).toEqual([0])
  })

  it('commit acknowledges everything up to an offset and never moves backwards', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.append('c', msgs(10))
    const got = await s.receive('c', 'g', { max: 4, waitMs: 0, consumer: 'a' })
    expect(got.map(d => d.entry.offset)).toEqual([0, 1, 2, 3])
    expect(await s.commit('c', 'g', 2)).toEqual({ committed: 3 })
    expect(await s.commit('c', 'g', 1)).toEqual({ committed: 3 })
    expect(s.listGroups('c')[0]).toMatchObject({ committed: 3, pending: 1 })
    // committing past what was delivered skips ahead
    expect(await s.commit('c', 'g', 6)).toEqual({ committed: 7 })
    expect((await s.receive('c', 'g', { max: 10, waitMs: 0, consumer: 'a' })).map(d => d.entry.offset)).toEqual([7, 8, 9])
    await expect(s.commit('c', 'g', 10)).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.putGroup('c', 'g', { start: { from: 'start' } })).rejects.toBeInstanceOf(Conflict)
  })

  it('creates groups from start, end, an offset or a time; several groups read independently', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    await s.append('multi', msgs(3))
    clock.advance(5000)
    const t = clock.now()
    await s.append('multi', msgs(2, 3))
    await s.putGroup('multi', 'fromEnd', { start: { from: 'end' } })
    await s.putGroup('multi', 'fromOffset', { start: { from: 'offset', offset: 4 } })
    await s.putGroup('multi', 'fromTime', { start: { from: 'time', time: t } })
    const offsets = async (g: string): Promise<number[]> => (await s.receive('multi', g, { max: 100, waitMs: 0, consumer: 'x' })).map(d => d.entry.offset)
    expect(await offsets('implicit')).toEqual([0, 1, 2, 3, 4])
    expect(await offsets('fromEnd')).toEqual([])
    expect(await offsets('fromOffset')).toEqual([4])
    expect(await offsets('fromTime')).toEqual([3, 4])
    await s.append('multi', msgs(1, 5))
    expect(await offsets('fromEnd')).toEqual([5])
    expect(await offsets('implicit')).toEqual([5])
    expect(s.listGroups('multi').map(g => g.name)).toEqual(['fromEnd', 'fromOffset', 'fromTime', 'implicit'])
    await s.deleteGroup('multi', 'fromEnd')
    await expect(s.ack('multi', 'fromEnd', [0])).rejects.toBeInstanceOf(NotFound)
    await expect(s.putGroup('multi', 'bad', { start: { from: 'offset', offset: 99 } })).rejects.toBeInstanceOf(InvalidArgument)
  })

  it('long-polls until an append, and returns empty at the deadline', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    await s.put('lp', {})
    const waiting = s.receive('lp', 'g', { max: 5, waitMs: 10_000, consumer: 'a' })
    await new Promise(resolve => setImmediate(resolve))
    await s.append('lp', msgs(2))
    expect((await waiting).map(d => d.entry.offset)).toEqual([0, 1])
    const empty = s.receive('lp', 'g', { max: 5, waitMs: 10_000, consumer: 'a' })
    await new Promise(resolve => setImmediate(resolve))
    clock.advance(10_000)
    expect(await empty).toEqual([])
    // a lease running out wakes a waiting reader
    const redelivered = s.receive('lp', 'g', { max: 5, waitMs: 20_000, consumer: 'b' })
    await new Promise(resolve => setImmediate(resolve))
    clock.advance(30_000)
    expect((await redelivered).map(d => [d.entry.offset, d.deliveries])).toEqual([[0, 2], [1, 2]])
    await expect(s.receive('lp', 'g', { max: 5, waitMs: 21_000, consumer: 'b' })).rejects.toBeInstanceOf(InvalidArgument)
  })

  it('holds at most maxPending in flight', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.append('mp', msgs(10))
    await s.putGroup('mp', 'g', { maxPending: 3 })
    expect((await s.receive('mp', 'g', { max: 10, waitMs: 0, consumer: 'a' })).length).toBe(3)
    expect((await s.receive('mp', 'g', { max: 10, waitMs: 0, consumer: 'a' })).length).toBe(0)
    await s.ack('mp', 'g', [1])
    expect((await s.receive('mp', 'g', { max: 10, waitMs: 0, consumer: 'a' })).map(d => d.entry.offset)).toEqual([3])
  })

  it('keeps committed offsets, pending delivery counts and dead letters across a restart', async () => {
    const { engines, dir, clock } = await open()
    const s = engines.streams
    await s.append('durable', msgs(6))
    await s.putGroup('durable', 'g', { ackWaitMs: 1000, maxDeliveries: 3 })
    await s.receive('durable', 'g', { max: 4, waitMs: 0, consumer: 'a' })
    await s.ack('durable', 'g', [0, 2])
    clock.advance(1000)
    await s.receive('durable', 'g', { max: 1, waitMs: 0, consumer: 'a' }) // offset 1, second delivery
    await engines.close()
    const again = await open(dir, clock)
    const s2 = again.engines.streams
    expect(s2.listGroups('durable')[0]).toMatchObject({ committed: 1, pending: 2, settings: { ackWaitMs: 1000, maxDeliveries: 3 } })
    clock.advance(1000)
    const got = await s2.receive('durable', 'g', { max: 10, waitMs: 0, consumer: 'b' })
    expect(got.map(d => [d.entry.offset, d.deliveries])).toEqual([[1, 3], [3, 2], [4, 1], [5, 1]])
    await s2.commit('durable', 'g', 5)
    await again.engines.close()
    const third = await open(dir, clock)
    expect(third.engines.streams.listGroups('durable')[0]).toMatchObject({ committed: 6, pending: 0, lag: 0 })
  })

  it('skips entries that retention removed before they were delivered', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.put('ret', { maxCount: 3 })
    await s.putGroup('ret', 'g', {})
    await s.append('ret', msgs(10))
    await s.enforceRetention('ret')
    expect((await s.receive('ret', 'g', { max: 10, waitMs: 0, consumer: 'a' })).map(d => d.entry.offset)).toEqual([7, 8, 9])
    expect(s.listGroups('ret')[0].committed).toBe(7)
  })
})
