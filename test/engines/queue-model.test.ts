import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { openQueues, type QueueHarness } from './queue-helpers.js'

/**
 * The queue engine against a small reference model: random sequences of push (alone, or several small
 * pushes in one tick), receive, ack, nack, extend, clock moves and restarts must give the same deliveries
 * (order, delivery counts), the same per-receipt answers and the same counts.
 */

const VISIBILITY = 1000
const MAX_DELIVERIES = 2
const BACKOFF = { baseMs: 100, maxMs: 400 }

type Cmd =
  | { kind: 'push', count: number, priority: number, delay: number }
  /** Small pushes issued in one tick: they share a group commit and so one open segment. */
  | { kind: 'pushTogether', pushes: Array<{ count: number, priority: number, delay: number }> }
  | { kind: 'receive', max: number }
  | { kind: 'ack', pick: number }
  | { kind: 'nack', pick: number, delay: number | undefined, dead: boolean }
  | { kind: 'extend', pick: number, visibility: number }
  | { kind: 'advance', ms: number }
  | { kind: 'restart' }

type Where = 'ready' | 'delayed' | 'leased' | 'dead'

interface ModelMessage { n: number, priority: number, seq: number, where: Where, deliveries: number, due: number, until: number, token: number }

class Model {
  now = 0
  private seq = 0
  private token = 0
  readonly messages = new Map<number, ModelMessage>()

  private backoff (deliveries: number): number {
    return Math.min(BACKOFF.baseMs * 2 ** (deliveries - 1), BACKOFF.maxMs)
  }

  push (n: number, priority: number, delay: number): void {
    this.messages.set(n, { n, priority, seq: this.seq++, where: delay > 0 ? 'delayed' : 'ready', deliveries: 0, due: this.now + delay, until: 0, token: -1 })
  }

  /** A failed delivery at time t: dead-lettered, delayed or ready. */
  private fail (m: ModelMessage, t: number, delay: number | undefined, dead: boolean): Where {
    if (dead || m.deliveries >= MAX_DELIVERIES) m.where = 'dead'
    else {
      const d = delay ?? this.backoff(m.deliveries)
      if (d > 0) {
        m.where = 'delayed'
        m.due = t + d
      } else m.where = 'ready'
    }
    return m.where
  }

  /** Applies every due event in time order, each at its own time (as the engine's timer does). */
  advanceTo (now: number): void {
    for (let guard = 0; guard < 10_000; guard++) {
      let t = Infinity
      for (const m of this.messages.values()) {
        if (m.where === 'delayed' && m.due < t) t = m.due
        if (m.where === 'leased' && m.until < t) t = m.until
      }
      if (t > now) break
      for (const m of this.messages.values()) if (m.where === 'delayed' && m.due <= t) m.where = 'ready'
      const expired = [...this.messages.values()].filter(m => m.where === 'leased' && m.until <= t).sort((a, b) => a.until - b.until || a.seq - b.seq)
      for (const m of expired) this.fail(m, t, undefined, false)
    }
    this.now = now
  }

  receive (max: number): Array<{ n: number, deliveries: number, token: number }> {
    const ready = [...this.messages.values()].filter(m => m.where === 'ready').sort((a, b) => b.priority - a.priority || a.seq - b.seq)
    const out: Array<{ n: number, deliveries: number, token: number }> = []
    for (const m of ready) {
      if (out.length >= max) break
      if (m.deliveries >= MAX_DELIVERIES) {
        m.where = 'dead'
        continue
      }
      m.where = 'leased'
      m.deliveries++
      m.until = this.now + VISIBILITY
      m.token = this.token++
      out.push({ n: m.n, deliveries: m.deliveries, token: m.token })
    }
    return out
  }

  private current (n: number, token: number): ModelMessage | undefined {
    const m = this.messages.get(n)
    return m !== undefined && m.where === 'leased' && m.token === token ? m : undefined
  }

  private missing (n: number): string {
    return this.messages.has(n) ? 'stale' : 'not_found'
  }

  ack (n: number, token: number): string {
    if (this.current(n, token) === undefined) return this.missing(n)
    this.messages.delete(n)
    return 'acked'
  }

  nack (n: number, token: number, delay: number | undefined, dead: boolean): string {
    const m = this.current(n, token)
    return m === undefined ? this.missing(n) : this.fail(m, this.now, delay, dead)
  }

  extend (n: number, token: number, visibility: number): string {
    const m = this.current(n, token)
    if (m === undefined) return this.missing(n)
    m.until = this.now + visibility
    return 'extended'
  }

  restart (): void {
    for (const m of this.messages.values()) if (m.where === 'leased') m.where = 'ready'
  }

  counts (): Record<Where, number> {
    const c: Record<Where, number> = { ready: 0, delayed: 0, leased: 0, dead: 0 }
    for (const m of this.messages.values()) c[m.where]++
    return c
  }
}

const command: fc.Arbitrary<Cmd> = fc.oneof(
  // pushes of 4 or more messages are stored as one segment, smaller ones as a body record per message
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('push' as const), count: fc.integer({ min: 1, max: 6 }), priority: fc.integer({ min: 0, max: 2 }), delay: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1500 })) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pushTogether' as const), pushes: fc.array(fc.record({ count: fc.integer({ min: 1, max: 3 }), priority: fc.integer({ min: 0, max: 2 }), delay: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 1500 })) }), { minLength: 2, maxLength: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('receive' as const), max: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('nack' as const), pick: fc.nat(), delay: fc.option(fc.integer({ min: 0, max: 800 }), { nil: undefined }), dead: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extend' as const), pick: fc.nat(), visibility: fc.integer({ min: 1, max: 2000 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 900, max: 1100 })) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) }
)

/** How much of the interesting ground the runs covered (checked at the end, so a vacuous run fails). */
const coverage = { steps: 0, deliveries: 0, redeliveries: 0, stale: 0 }

async function check (cmds: Cmd[]): Promise<void> {
  const first = await openQueues()
  let h: QueueHarness = first
  const start = h.clock.now()
  const model = new Model()
  // receipts handed out so far, with the model's token of the same delivery
  const issued: Array<{ receipt: string, n: number, token: number }> = []
  let nextPayload = 0
  try {
    await h.queues.put('m', { visibilityTimeoutMs: VISIBILITY, maxDeliveries: MAX_DELIVERIES, backoff: { type: 'exponential', ...BACKOFF } })
    for (const [step, cmd] of cmds.entries()) {
      const where = `step ${step} ${JSON.stringify(cmd)}`
      switch (cmd.kind) {
        case 'push': {
          const ns = Array.from({ length: cmd.count }, () => nextPayload++)
          await h.queues.push('m', ns.map(n => ({ payload: Buffer.from(String(n)), priority: cmd.priority, delayMs: cmd.delay })))
          for (const n of ns) model.push(n, cmd.priority, cmd.delay)
          break
        }
        case 'pushTogether': {
          const batches = cmd.pushes.map(p => ({ ...p, ns: Array.from({ length: p.count }, () => nextPayload++) }))
          // issued before any is awaited: sequence numbers follow the order of the calls
          await Promise.all(batches.map(async b => await h.queues.push('m', b.ns.map(n => ({ payload: Buffer.from(String(n)), priority: b.priority, delayMs: b.delay })))))
          for (const b of batches) for (const n of b.ns) model.push(n, b.priority, b.delay)
          break
        }
        case 'receive': {
          const got = await h.queues.receive('m', { max: cmd.max })
          const expected = model.receive(cmd.max)
          expect(got.map(d => [Number(d.payload.toString()), d.deliveries]), where).toEqual(expected.map(e => [e.n, e.deliveries]))
          got.forEach((d, i) => issued.push({ receipt: d.receipt, n: expected[i].n, token: expected[i].token }))
          coverage.deliveries += got.length
          coverage.redeliveries += got.filter(d => d.deliveries > 1).length
          break
        }
        case 'ack':
        case 'nack':
        case 'extend': {
          if (issued.length === 0) break
          // mostly one of the latest receipts (those are the live ones), sometimes any earlier one
          const r = cmd.pick % 4 === 0 ? issued[cmd.pick % issued.length] : issued[issued.length - 1 - (cmd.pick % Math.min(3, issued.length))]
          let status: string
          let expected: string
          if (cmd.kind === 'ack') {
            status = (await h.queues.ack('m', [r.receipt]))[0].status
            expected = model.ack(r.n, r.token)
          } else if (cmd.kind === 'nack') {
            status = (await h.queues.nack('m', [r.receipt], { delayMs: cmd.delay, dead: cmd.dead }))[0].status
            expected = model.nack(r.n, r.token, cmd.delay, cmd.dead)
          } else {
            status = (await h.queues.extend('m', [r.receipt], cmd.visibility))[0].status
            expected = model.extend(r.n, r.token, cmd.visibility)
          }
          expect(status, where).toBe(expected)
          if (status === 'stale') coverage.stale++
          break
        }
        case 'advance':
          h.clock.advance(cmd.ms)
          model.advanceTo(h.clock.now() - start)
          break
        case 'restart':
          h = await h.restart()
          model.restart()
          break
      }
      expect(h.queues.info('m').stats, where).toMatchObject(model.counts())
      coverage.steps++
    }
  } finally {
    await h.close()
    await first.remove()
  }
}

describe('queue engine against a model', () => {
  it('agrees on deliveries, receipts and counts for random histories', async () => {
    await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 60, size: 'max' }), check), { numRuns: 100 })
    console.log(`model check coverage: ${JSON.stringify(coverage)}`)
    expect(coverage.steps).toBeGreaterThan(1000)
    expect(coverage.redeliveries).toBeGreaterThan(50)
    expect(coverage.stale).toBeGreaterThan(10)
  }, 120_000)
})
