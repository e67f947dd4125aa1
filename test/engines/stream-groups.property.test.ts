import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManualClock } from '../../engines/clock.js'
import { createEngines, type Engines } from '../../engines/index.js'
import { tempDir } from '../helpers.js'

/**
 * A consumer group against a model: appends, receives by several readers, acks, commits, time passing
 * (lease expiry, redelivery, dead letters) and restarts, in any interleaving. The model says which
 * offsets each receive must hand out (redeliveries first, then new ones, in offset order) with which
 * delivery count, and where the committed offset must be.
 */
type Op =
  | { kind: 'append', n: number }
  | { kind: 'receive', consumer: number, max: number }
  | { kind: 'ack', pick: number[] }
  | { kind: 'commit', pick: number }
  | { kind: 'advance', ms: number }
  | { kind: 'restart' }

type State =
  | { s: 'leased', deliveries: number, until: number }
  | { s: 'ready', deliveries: number }
  | { s: 'acked' }
  | { s: 'dead' }

const ACK_WAIT = 1000
const MAX_DELIVERIES = 3

class Model {
  next = 0
  cursor = 0
  committed = 0
  dead = 0
  readonly states = new Map<number, State>()

  expire (now: number): void {
    for (const [o, st] of [...this.states].sort((a, b) => a[0] - b[0])) {
      if (st.s === 'leased' && st.until <= now) {
        if (st.deliveries >= MAX_DELIVERIES) { this.states.set(o, { s: 'dead' }); this.dead++ } else this.states.set(o, { s: 'ready', deliveries: st.deliveries })
      }
    }
    this.advanceCommitted()
  }

  advanceCommitted (): void {
    while (this.committed < this.cursor) {
      const st = this.states.get(this.committed)
      if (st !== undefined && (st.s === 'leased' || st.s === 'ready')) break
      this.committed++
    }
  }

  receive (max: number, now: number): Array<[number, number]> {
    this.expire(now)
    const out: Array<[number, number]> = []
    const ready = [...this.states].filter(([, st]) => st.s === 'ready').map(([o]) => o).sort((a, b) => a - b)
    for (const o of ready) {
      if (out.length >= max) break
      const st = this.states.get(o) as { deliveries: number }
      this.states.set(o, { s: 'leased', deliveries: st.deliveries + 1, until: now + ACK_WAIT })
      out.push([o, st.deliveries + 1])
    }
    while (out.length < max && this.cursor < this.next) {
      const o = this.cursor++
      this.states.set(o, { s: 'leased', deliveries: 1, until: now + ACK_WAIT })
      out.push([o, 1])
    }
    this.advanceCommitted()
    return out.sort((a, b) => a[0] - b[0])
  }

  ack (offsets: number[], now: number): number {
    this.expire(now)
    let acked = 0
    for (const o of offsets) {
      const st = this.states.get(o)
      if (st !== undefined && (st.s === 'leased' || st.s === 'ready')) { this.states.set(o, { s: 'acked' }); acked++ }
    }
    this.advanceCommitted()
    return acked
  }

  commit (offset: number, now: number): void {
    this.expire(now)
    if (offset < this.committed) return
    for (let o = this.committed; o <= offset; o++) {
      const st = this.states.get(o)
      if (st === undefined || st.s === 'leased' || st.s === 'ready') this.states.set(o, { s: 'acked' })
    }
    if (offset + 1 > this.cursor) this.cursor = offset + 1
    this.committed = Math.max(this.committed, offset + 1)
    this.advanceCommitted()
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('append' as const), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('receive' as const), consumer: fc.integer({ min: 0, max: 2 }), max: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.array(fc.nat(20), { maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('commit' as const), pick: fc.nat(20) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(300, 600, 1000, 2500) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) }
)

describe('consumer group property', () => {
  it('hands out, redelivers, dead-letters and commits exactly as the model says', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 60, size: 'max' }), async ops => {
      const tmp = tempDir()
      const clock = new ManualClock()
      const start = async (): Promise<Engines> => await createEngines({ dataDir: tmp.dir, fsync: 'never', fsyncIntervalMs: 100, clock })
      let engines = await start()
      try {
        const s = () => engines.streams
        await s().put('p', {})
        await s().putGroup('p', 'g', { ackWaitMs: ACK_WAIT, maxDeliveries: MAX_DELIVERIES })
        const model = new Model()
        /** Who holds each offset's current lease: no two readers may hold one at once. */
        const holder = new Map<number, { consumer: number, until: number }>()
        for (const op of ops) {
          switch (op.kind) {
            case 'append':
              await s().append('p', Array.from({ length: op.n }, (_, i) => ({ payload: Buffer.from(`m${model.next + i}`) })))
              model.next += op.n
              break
            case 'receive': {
              const got = await s().receive('p', 'g', { max: op.max, waitMs: 0, consumer: `c${op.consumer}` })
              const expected = model.receive(op.max, clock.now())
              expect(got.map(d => [d.entry.offset, d.deliveries])).toEqual(expected)
              for (const d of got) {
                expect(d.entry.payload.toString()).toBe(`m${d.entry.offset}`)
                const h = holder.get(d.entry.offset)
                if (h !== undefined) expect(h.until <= clock.now()).toBe(true)
                holder.set(d.entry.offset, { consumer: op.consumer, until: clock.now() + ACK_WAIT })
              }
              break
            }
            case 'ack': {
              const offsets = op.pick.filter(o => o < model.next)
              const r = await s().ack('p', 'g', offsets)
              expect(r.acked).toBe(model.ack([...new Set(offsets)], clock.now()))
              for (const o of offsets) holder.delete(o)
              break
            }
            case 'commit': {
              if (model.next === 0) break
              const offset = op.pick % model.next
              await s().commit('p', 'g', offset)
              model.commit(offset, clock.now())
              break
            }
            case 'advance':
              clock.advance(op.ms)
              break
            case 'restart':
              await engines.close()
              engines = await start()
              break
          }
          model.expire(clock.now())
          const info = s().listGroups('p')[0]
          expect(info.committed).toBe(model.committed)
          expect(info.dead).toBe(model.dead)
        }
      } finally {
        await engines.close()
        tmp.remove()
      }
    }), { numRuns: 100 })
  })
})
