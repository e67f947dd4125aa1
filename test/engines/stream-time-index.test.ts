import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManualClock } from '../../engines/clock.js'
import { TimeIndex } from '../../engines/stream/time-index.js'
import { streamEngineOpener, tempDir, waitFor } from '../helpers.js'

describe('in-memory time index', () => {
  it('finds the first point at or after a time and forgets points below the first offset', () => {
    const index = new TimeIndex(100)
    index.add(10, 0)
    index.add(20, 5)
    index.add(20, 7) // same time: not a new point
    index.add(15, 9) // earlier time: ignored
    index.add(30, 9)
    expect(index.size).toBe(3)
    expect(index.find(5)).toMatchObject({ i: 0, offset: 0 })
    expect(index.find(11)).toMatchObject({ i: 1, timestamp: 20, offset: 5 })
    expect(index.find(30)).toMatchObject({ i: 2, offset: 9 })
    expect(index.find(31)).toEqual({ i: 3 })
    index.dropBelow(6)
    expect(index.size).toBe(1)
    expect(index.find(0)).toMatchObject({ offset: 9 })
    expect(index.exact).toBe(true)
  })

  it('stays within its bound by keeping every second point, spanning the whole range (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 1999 }), (max, n, drop) => {
      const index = new TimeIndex(max)
      for (let i = 0; i < n; i++) index.add(1000 + i * 10, i * 3)
      expect(index.size).toBeLessThanOrEqual(max)
      expect(index.exact).toBe(n <= max)
      // the held points are added points, in order, the first one always kept
      expect(index.find(0)).toMatchObject({ i: 0, timestamp: 1000, offset: 0 })
      let previous = -1
      for (let i = 0; i < index.size; i++) {
        const p = index.find(previous + 1)
        expect(p.offset! % 3).toBe(0)
        expect(p.timestamp).toBe(1000 + (p.offset! / 3) * 10)
        previous = p.timestamp!
      }
      index.dropBelow(drop * 3)
      const p = index.find(0)
      if (p.offset !== undefined) expect(p.offset).toBeGreaterThanOrEqual(drop * 3)
    }), { numRuns: 200 })
  })
})

describe('seek by time with the index in memory', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
  })

  /** An engine with a small time index bound, so a few dozen batches already thin it. */
  const openStreams = streamEngineOpener()
  const openEngine = async (dir: string, clock: ManualClock, indexPoints: number): ReturnType<typeof openStreams> => await openStreams(dir, { indexPoints }, clock)

  it('agrees with a linear scan: thinned, while loading after a restart, once loaded, after retention (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ n: fc.integer({ min: 1, max: 40 }), advance: fc.constantFrom(0, 1, 1, 3, 250) }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 2, max: 12 }),
      fc.integer({ min: 1, max: 600 }),
      async (batches, points, keep) => {
        const tmp = tempDir()
        cleanup.push(async () => { tmp.remove() })
        const clock = new ManualClock(1_000_000)
        let engine = await openEngine(tmp.dir, clock, points)
        const times: number[] = []
        for (const b of batches) {
          clock.advance(b.advance)
          await engine.streams.append('s', Array.from({ length: b.n }, () => ({ payload: Buffer.from('x') })))
          for (let i = 0; i < b.n; i++) times.push(clock.now())
        }
        const check = async (label: string): Promise<void> => {
          const first = engine.streams.info('s').firstOffset
          const probes = [...new Set(times.flatMap(t => [t - 1, t, t + 1]))]
          for (const t of probes) {
            let expected = times.length
            for (let o = first; o < times.length; o++) if (times[o] >= t) { expected = o; break }
            const r = await engine.streams.read('s', { time: t, limit: 1 })
            expect({ label, t, offset: r.messages[0]?.offset ?? r.next }).toEqual({ label, t, offset: expected })
          }
        }
        await check('live')
        await engine.close()
        engine = await openEngine(tmp.dir, clock, points)
        // right after the restart the index may still be loading: the stored one answers meanwhile
        await check('after restart')
        await waitFor(() => engine.streams.get('s').timeIndexLoaded, 5000, 'time index loaded')
        await check('loaded')
        await engine.streams.put('s', { maxCount: keep })
        await engine.streams.enforceRetention('s')
        await check('after retention')
        clock.advance(5)
        await engine.streams.append('s', [{ payload: Buffer.from('y') }])
        times.push(clock.now())
        // an append over maxCount starts a retention pass in the background: let it finish, so the first
        // offset the check reads is the one the seek sees
        await engine.streams.enforceRetention('s')
        await check('appended after retention')
      }), { numRuns: 30 })
  })
})
