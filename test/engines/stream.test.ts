import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManualClock } from '../../engines/clock.js'
import { Conflict, InvalidArgument, NotFound, TooLarge } from '../../engines/errors.js'
import { engineOpener, waitFor } from '../helpers.js'

const open = engineOpener()

const msg = (s: string): { payload: Buffer } => ({ payload: Buffer.from(s) })
const texts = (ms: Array<{ payload: Buffer }>): string[] => ms.map(m => m.payload.toString())

describe('stream offsets and reads', () => {
  it('assigns dense offsets from 0 across batches and concurrent appends', async () => {
    const { engines } = await open()
    const s = engines.streams
    const a = s.append('orders', [msg('a'), msg('b')])
    const b = s.append('orders', [msg('c')])
    const c = s.append('orders', [msg('d'), msg('e'), msg('f')])
    expect(await a).toEqual([0, 1])
    expect(await b).toEqual([2])
    expect(await c).toEqual([3, 4, 5])
    const r = await s.read('orders', { from: 0, limit: 100 })
    expect(r.messages.map(m => m.offset)).toEqual([0, 1, 2, 3, 4, 5])
    expect(texts(r.messages)).toEqual(['a', 'b', 'c', 'd', 'e', 'f'])
    expect(r.next).toBe(6)
    const info = s.info('orders')
    expect(info).toMatchObject({ firstOffset: 0, lastOffset: 5, nextOffset: 6, count: 6 })
    expect(info.bytes).toBeGreaterThan(6)
  })

  it('pages with next, reads from end and start, keeps key, headers and bytes', async () => {
    const { engines } = await open()
    const s = engines.streams
    const bin = Buffer.from([0, 255, 1, 2])
    await s.append('x', [{ payload: bin, key: 'k1', headers: { h: 'v' } }, msg('2'), msg('3')])
    const p1 = await s.read('x', { from: 'start', limit: 2 })
    expect(p1.messages).toHaveLength(2)
    expect(p1.messages[0]).toMatchObject({ offset: 0, key: 'k1', headers: { h: 'v' } })
    expect(p1.messages[0].payload.equals(bin)).toBe(true)
    const p2 = await s.read('x', { from: p1.next, limit: 2 })
    expect(p2.messages.map(m => m.offset)).toEqual([2])
    expect(p2.next).toBe(3)
    const end = await s.read('x', { from: 'end', limit: 10 })
    expect(end.messages).toHaveLength(0)
    expect(end.next).toBe(3)
  })

  it('reads any offset of a batch stored as several chunks, and from the middle of a chunk', async () => {
    const { engines } = await open()
    const s = engines.streams
    const big = (i: number): { payload: Buffer } => ({ payload: Buffer.alloc(10_000, i) })
    await s.append('chunks', Array.from({ length: 10 }, (_, i) => big(i)))
    await s.append('chunks', [msg('small-a'), msg('small-b')])
    for (let from = 0; from < 12; from++) {
      const r = await s.read('chunks', { from, limit: 3 })
      expect(r.messages.map(m => m.offset)).toEqual([from, from + 1, from + 2].filter(o => o < 12))
      if (from < 10) expect(r.messages[0].payload[0]).toBe(from)
    }
    expect(texts((await s.read('chunks', { from: 10, limit: 5 })).messages)).toEqual(['small-a', 'small-b'])
    await s.put('chunks', { maxCount: 3 })
    await s.enforceRetention('chunks')
    expect(s.info('chunks')).toMatchObject({ firstOffset: 9, count: 3 })
    expect((await s.read('chunks', { from: 0, limit: 10 })).messages.map(m => m.offset)).toEqual([9, 10, 11])
  })

  it('rejects bad input and unknown streams with typed errors', async () => {
    const { engines } = await open(undefined, new ManualClock(), { streamMaxMessageBytes: 10 })
    const s = engines.streams
    await expect(s.read('nope', { limit: 1 })).rejects.toBeInstanceOf(NotFound)
    await expect(s.append('bad name!', [msg('a')])).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.append('big', [{ payload: Buffer.alloc(11) }])).rejects.toBeInstanceOf(TooLarge)
    await s.append('ok', [msg('a')])
    await expect(s.read('ok', { from: 5, limit: 1 })).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.read('ok', { from: 0, time: 1, limit: 1 })).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.append('ok', Array.from({ length: 1001 }, () => msg('a')))).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.put('ok', { maxCount: -1 })).rejects.toBeInstanceOf(InvalidArgument)
    await expect(s.put('ok', { capture: ['a/#/b'] })).rejects.toBeInstanceOf(InvalidArgument)
  })

  it('does not create on append when autocreate is off', async () => {
    const { engines } = await open(undefined, new ManualClock(), { streamAutocreate: false })
    await expect(engines.streams.append('missing', [msg('a')])).rejects.toBeInstanceOf(NotFound)
    await engines.streams.put('missing', {})
    expect(await engines.streams.append('missing', [msg('a')])).toEqual([0])
  })

  it('checks expectedLastOffset (optimistic concurrency)', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.put('es', {})
    expect(await s.append('es', [msg('a')], -1)).toEqual([0])
    expect(await s.append('es', [msg('b')], 0)).toEqual([1])
    const err = await s.append('es', [msg('c')], 0).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Conflict)
    expect((err as Conflict).details).toEqual({ lastOffset: 1 })
    expect(s.info('es').nextOffset).toBe(2)
  })

  it('deduplicates within the window and forgets after it', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    await s.put('d', { dedupWindowMs: 60_000 })
    expect(await s.append('d', [{ ...msg('a'), dedupId: 'x' }, { ...msg('b'), dedupId: 'y' }])).toEqual([0, 1])
    // a retried batch gets its offsets back, even with an expectedLastOffset that no longer holds
    expect(await s.append('d', [{ ...msg('a'), dedupId: 'x' }, { ...msg('b'), dedupId: 'y' }], -1)).toEqual([0, 1])
    expect(await s.append('d', [{ ...msg('c'), dedupId: 'x' }, { ...msg('z'), dedupId: 'z' }])).toEqual([0, 2])
    clock.advance(60_001)
    expect(await s.append('d', [{ ...msg('a'), dedupId: 'x' }])).toEqual([3])
    expect(s.info('d').count).toBe(4)
  })
})

describe('seek by time', () => {
  it('finds the first message at or after a time, also between and after batches', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    const t0 = clock.now()
    await s.append('t', [msg('a'), msg('b')]) // t0
    clock.advance(1000)
    await s.append('t', [msg('c')]) // t0+1000
    await s.append('t', [msg('d')]) // t0+1000, same time: no new index point
    clock.advance(1000)
    await s.append('t', [msg('e')]) // t0+2000
    const at = async (time: number): Promise<number[]> => (await s.read('t', { time, limit: 10 })).messages.map(m => m.offset)
    expect(await at(0)).toEqual([0, 1, 2, 3, 4])
    expect(await at(t0)).toEqual([0, 1, 2, 3, 4])
    expect(await at(t0 + 1)).toEqual([2, 3, 4])
    expect(await at(t0 + 1000)).toEqual([2, 3, 4])
    expect(await at(t0 + 1500)).toEqual([4])
    expect(await at(t0 + 2001)).toEqual([])
    expect((await s.read('t', { time: t0 + 2001, limit: 10 })).next).toBe(5)
  })

  it('agrees with a linear scan for any history of batches, times and retention (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ n: fc.integer({ min: 1, max: 300 }), advance: fc.constantFrom(0, 0, 1, 7, 400, 1500) }), { minLength: 1, maxLength: 25 }),
      fc.integer({ min: 0, max: 3000 }),
      async (batches, keep) => {
        const { engines, clock, dispose } = await open()
        const s = engines.streams
        const times: number[] = []
        for (const b of batches) {
          clock.advance(b.advance)
          await s.append('pt', Array.from({ length: b.n }, () => msg('x')))
          for (let i = 0; i < b.n; i++) times.push(clock.now())
        }
        const check = async (): Promise<void> => {
          const first = s.info('pt').firstOffset
          const probes = [...new Set(times.flatMap(t => [t - 1, t, t + 1]))]
          for (const t of probes) {
            let expected = times.length
            for (let o = first; o < times.length; o++) if (times[o] >= t) { expected = o; break }
            const r = await s.read('pt', { time: t, limit: 1 })
            expect({ t, offset: r.messages[0]?.offset ?? r.next }).toEqual({ t, offset: expected })
          }
        }
        await check()
        await s.put('pt', { maxCount: Math.max(1, keep) })
        await s.enforceRetention('pt')
        await check()
        await dispose()
      }), { numRuns: 25 })
  })

  it('keeps timestamps monotonic when the clock goes back', async () => {
    const clock = new ManualClock(2_000_000_000_000)
    const { engines } = await open(undefined, clock)
    await engines.streams.append('m', [msg('a')])
    const back = new ManualClock(1_000_000_000_000)
    // a second engine on the same dir with an earlier clock
    const dir = (engines.storage.options.dir)
    await engines.close()
    const again = await open(dir, back)
    await again.engines.streams.append('m', [msg('b')])
    const r = await again.engines.streams.read('m', { limit: 10 })
    expect(r.messages[1].timestamp).toBeGreaterThanOrEqual(r.messages[0].timestamp)
  })
})

describe('retention', () => {
  it('removes by count, bytes and age in the background; offsets stay monotonic', async () => {
    const { engines, clock } = await open()
    const s = engines.streams
    await s.put('r', { maxCount: 5 })
    for (let i = 0; i < 4; i++) await s.append('r', Array.from({ length: 5 }, (_, j) => msg(`m${i * 5 + j}`)))
    await s.enforceRetention('r')
    expect(s.info('r')).toMatchObject({ firstOffset: 15, lastOffset: 19, count: 5 })
    const below = await s.read('r', { from: 3, limit: 2 })
    expect(below.truncated).toBe(true)
    expect(below.firstOffset).toBe(15)
    expect(below.messages.map(m => m.offset)).toEqual([15, 16])
    expect(await s.append('r', [msg('next')])).toEqual([20])

    await s.put('b', { maxBytes: 100 })
    for (let i = 0; i < 10; i++) await s.append('b', [{ payload: Buffer.alloc(20) }])
    await s.enforceRetention('b')
    const info = s.info('b')
    expect(info.bytes).toBeLessThanOrEqual(100)
    expect(info.lastOffset).toBe(9)
    expect(info.bytes).toBe(info.count * 29)

    await s.put('a', { maxAgeMs: 10_000 })
    await s.append('a', [msg('old1'), msg('old2')])
    clock.advance(6000)
    await s.append('a', [msg('new')])
    clock.advance(5000)
    await waitFor(() => s.info('a').firstOffset === 2, 5000, 'age retention from the background timer')
    expect(texts((await s.read('a', { limit: 10 })).messages)).toEqual(['new'])
    // seek by a time before the retained range answers the first retained message
    expect((await s.read('a', { time: 0, limit: 10 })).messages.map(m => m.offset)).toEqual([2])
    clock.advance(6000)
    await waitFor(() => s.info('a').count === 0, 5000, 'everything aged out')
    expect(s.info('a')).toMatchObject({ firstOffset: 3, nextOffset: 3, lastOffset: 2 })
    expect(await s.append('a', [msg('after')])).toEqual([3])
  })

  it('removes in chunks without holding appends back', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.put('c', {})
    for (let i = 0; i < 5; i++) await s.append('c', Array.from({ length: 1000 }, () => msg('x')))
    await s.put('c', { maxCount: 10 })
    // appends go on while retention works through 5000 entries
    const appends = Promise.all(Array.from({ length: 20 }, async () => await s.append('c', [msg('y')])))
    await appends
    await s.enforceRetention('c')
    expect(s.info('c')).toMatchObject({ count: 10, lastOffset: 5019 })
  })
})

describe('restart', () => {
  it('keeps entries, offsets, settings, dedup ids and the time index across a reopen', async () => {
    const { engines, dir, clock } = await open()
    const s = engines.streams
    await s.put('p', { maxCount: 100, dedupWindowMs: 60_000 })
    await s.append('p', [{ ...msg('a'), dedupId: 'one' }, msg('b')])
    clock.advance(1000)
    await s.append('p', [msg('c')])
    await engines.close()
    const again = await open(dir, clock)
    const s2 = again.engines.streams
    expect(s2.info('p')).toMatchObject({ firstOffset: 0, lastOffset: 2, settings: { maxCount: 100 } })
    expect(await s2.append('p', [{ ...msg('a'), dedupId: 'one' }])).toEqual([0])
    expect(await s2.append('p', [msg('d')])).toEqual([3])
    expect((await s2.read('p', { time: clock.now(), limit: 10 })).messages.map(m => m.offset)).toEqual([2, 3])
  })

  it('deletes a stream and its data; a new stream of the same name starts from 0', async () => {
    const { engines, dir, clock } = await open()
    const s = engines.streams
    await s.append('z', [msg('a'), msg('b')])
    await s.delete('z')
    await expect(s.read('z', { limit: 1 })).rejects.toBeInstanceOf(NotFound)
    expect(await s.append('z', [msg('new')])).toEqual([0])
    await engines.close()
    const again = await open(dir, clock)
    expect(texts((await again.engines.streams.read('z', { limit: 10 })).messages)).toEqual(['new'])
  })
})

describe('capture', () => {
  it('appends matching publishes with topic, qos and retain', async () => {
    const { engines } = await open()
    const s = engines.streams
    await s.put('telemetry', { capture: ['sensors/#'] })
    await s.get('telemetry').captureReady
    await engines.pubsub.publish({ topic: 'sensors/a/temp', payload: Buffer.from('21'), qos: 1 })
    await engines.pubsub.publish({ topic: 'other/x', payload: Buffer.from('no') })
    await engines.pubsub.publish({ topic: 'sensors/b', payload: Buffer.from('r'), retain: true })
    await waitFor(() => s.info('telemetry').count === 2, 5000, 'captured')
    const r = await s.read('telemetry', { limit: 10 })
    expect(r.messages.map(m => [m.topic, m.qos, m.retain, m.payload.toString()])).toEqual([['sensors/a/temp', 1, false, '21'], ['sensors/b', 0, true, 'r']])
    expect(s.stats.captured).toBe(2)
    // dropping the capture filters stops capturing
    await s.put('telemetry', {})
    await engines.pubsub.publish({ topic: 'sensors/c', payload: Buffer.from('x') })
    expect(engines.pubsub.activeSubscriptions).toBe(0)
  })
})
