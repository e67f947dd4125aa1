import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ChunkIndex } from '../../engines/stream/chunk-index.js'
import { engineOpener, streamEngineOpener, tempDir } from '../helpers.js'

const open = engineOpener()

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

/** A stream engine with small in-memory indexes (a few chunks already overflow them). */
const openStreams = streamEngineOpener()
const openSmall = async (dir: string, indexPoints: number): ReturnType<typeof openStreams> => await openStreams(dir, { indexPoints })

type Op =
  | { kind: 'append', sizes: number[], wait: boolean }
  | { kind: 'page', reader: number, limit: number }
  | { kind: 'seek', at: number, limit: number }
  | { kind: 'retain', keep: number }
  | { kind: 'restart' }

const op: fc.Arbitrary<Op> = fc.oneof(
  // payloads from a few bytes to 12 KiB: batches span several chunks
  fc.record({ kind: fc.constant('append' as const), sizes: fc.array(fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 2000, max: 12_000 })), { minLength: 1, maxLength: 60 }), wait: fc.boolean() }),
  fc.record({ kind: fc.constant('page' as const), reader: fc.integer({ min: 0, max: 2 }), limit: fc.integer({ min: 1, max: 90 }) }),
  fc.record({ kind: fc.constant('seek' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), limit: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant('retain' as const), keep: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('restart' as const) })
)

/** The payload of offset o, of the given size: recognisable bytes. */
const payloadOf = (o: number, size: number): Buffer => {
  const b = Buffer.alloc(size, o % 251)
  b.write(`#${o}#`, 0, 'latin1')
  return b
}

describe('chunk index', () => {
  it('finds the chunk of any offset at or above what it covers, within its bound (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 300 }), fc.integer({ min: 2, max: 64 }), fc.nat(), (counts, max, dropAt) => {
      const from = 7
      const index = new ChunkIndex(from, max)
      const starts: number[] = []
      let next = from
      for (const n of counts) {
        starts.push(next)
        index.add(next)
        next += n
      }
      expect(index.size).toBeLessThanOrEqual(max)
      const chunkOf = (o: number): number => starts.filter(s => s <= o).at(-1)!
      const check = (): void => {
        expect(index.coveredFrom).toBeGreaterThanOrEqual(from)
        for (let o = 0; o < next + 5; o++) {
          const found = index.chunkOf(o)
          if (o < index.coveredFrom) expect(found).toBeUndefined()
          else expect(found).toBe(chunkOf(o))
        }
      }
      check()
      index.dropBelow(from + (dropAt % (next - from)))
      check()
    }), { numRuns: 300 })
  })
})

describe('stream reads', () => {
  it('pages and seeks return exactly the retained entries, with readers interleaved, appends in flight and retention (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), fc.integer({ min: 2, max: 40 }), async (ops, indexPoints) => {
      const tmp = tempDir()
      cleanup.push(() => { tmp.remove() })
      let engine = await openSmall(tmp.dir, indexPoints)
      let s = engine.streams
      await s.put('r', {})
      const sizes: number[] = []
      const cursors = [0, 0, 0]
      const inFlight: Array<Promise<unknown>> = []
      // the range a read sees is the one written when it starts (retention only runs inside 'retain')
      const check = (info: { firstOffset: number, nextOffset: number }, from: number, limit: number, got: Array<{ offset: number, payload: Buffer }>, next: number): void => {
        const start = Math.max(from, info.firstOffset)
        const count = Math.max(0, Math.min(limit, info.nextOffset - start))
        expect(got.map(m => m.offset)).toEqual(Array.from({ length: count }, (_, i) => start + i))
        for (const m of got) expect(m.payload.equals(payloadOf(m.offset, sizes[m.offset]))).toBe(true)
        expect(next).toBe(count > 0 ? start + count : Math.max(start, Math.min(from, info.nextOffset)))
      }
      for (const o of ops) {
        if (o.kind === 'append') {
          const first = sizes.length
          const batch = o.sizes.map((size, i) => ({ payload: payloadOf(first + i, size) }))
          sizes.push(...o.sizes)
          const done = s.append('r', batch)
          if (o.wait) await done
          else inFlight.push(done)
        } else if (o.kind === 'page') {
          const info = s.info('r')
          const from = Math.min(cursors[o.reader], info.nextOffset)
          const r = await s.read('r', { from, limit: o.limit })
          check(info, from, o.limit, r.messages, r.next)
          cursors[o.reader] = r.next
        } else if (o.kind === 'seek') {
          const info = s.info('r')
          const from = Math.floor(o.at * info.nextOffset)
          const r = await s.read('r', { from, limit: o.limit })
          check(info, from, o.limit, r.messages, r.next)
        } else if (o.kind === 'retain') {
          await Promise.all(inFlight.splice(0))
          await s.put('r', { maxCount: o.keep })
          await s.enforceRetention('r')
          await s.put('r', {})
        } else {
          // chunks written before a restart are found by a seek in storage, later ones by the index
          await Promise.all(inFlight.splice(0))
          await engine.close()
          engine = await openSmall(tmp.dir, indexPoints)
          s = engine.streams
        }
      }
      await Promise.all(inFlight)
      // every reader can finish the stream from where it is
      for (let reader = 0; reader < cursors.length; reader++) {
        for (let round = 0; round < 10_000; round++) {
          const info = s.info('r')
          const from = cursors[reader]
          const r = await s.read('r', { from, limit: 77 })
          check(info, from, 77, r.messages, r.next)
          cursors[reader] = r.next
          if (r.messages.length === 0) break
        }
        expect(cursors[reader]).toBe(sizes.length)
      }
      await engine.close()
    }), { numRuns: 60 })
  })

  it('a reader paging forward gets every entry once, in order, while appends go on', async () => {
    const { engines } = await open()
    const s = engines.streams
    // 300 batches of 10 entries of 3 KiB: about 3 entries per chunk, so pages cross many chunks
    for (let b = 0; b < 300; b++) await s.append('seq', Array.from({ length: 10 }, (_, i) => ({ payload: payloadOf(b * 10 + i, 3000) })))
    let from = 0
    let appended = 3000
    for (let round = 0; round < 10_000 && from < appended; round++) {
      const r = await s.read('seq', { from, limit: 25 })
      expect(r.messages.map(m => m.offset)).toEqual(Array.from({ length: Math.min(25, appended - from) }, (_, i) => from + i))
      for (const m of r.messages) expect(m.payload.equals(payloadOf(m.offset, 3000))).toBe(true)
      from = r.next
      // every few pages the stream grows behind the reader (the read-ahead was sent before)
      if (round % 7 === 3 && appended < 4000) {
        await s.append('seq', Array.from({ length: 10 }, (_, i) => ({ payload: payloadOf(appended + i, 3000) })))
        appended += 10
      }
    }
    expect(from).toBe(appended)
  })
})
