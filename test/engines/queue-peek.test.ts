import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidArgument } from '../../engines/errors.js'
import { openQueues, text, type QueueHarness } from './queue-helpers.js'

let h: QueueHarness
beforeEach(async () => { h = await openQueues() })
afterEach(async () => { await h.remove() })

describe('queue engine: peek', () => {
  it('shows the next ready messages in the order receive hands them out, and leases nothing', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ priority: fc.integer({ min: 0, max: 3 }), batch: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.boolean(), { maxLength: 10 }),
      fc.integer({ min: 1, max: 30 }),
      async (pushes, nacks, limit) => {
        const name = `p${Math.random().toString(36).slice(2)}`
        await h.queues.put(name)
        let n = 0
        for (const p of pushes) await h.queues.push(name, Array.from({ length: p.batch }, () => ({ payload: text(`m${n++}`), priority: p.priority })))
        // some messages come back out of order (a nack puts them behind newer ones in seq order)
        const taken = nacks.length === 0 ? [] : await h.queues.receive(name, { max: nacks.length })
        const back = taken.filter((_d, i) => nacks[i]).map(d => d.receipt)
        const done = taken.filter((_d, i) => !nacks[i]).map(d => d.receipt)
        if (back.length > 0) await h.queues.nack(name, back, { delayMs: 0 })
        if (done.length > 0) await h.queues.ack(name, done)
        const before = h.queues.info(name).stats
        const peeked = await h.queues.peek(name, limit)
        expect(h.queues.info(name).stats).toEqual(before)
        const received = await h.queues.receive(name, { max: limit })
        expect(peeked.map(m => m.id)).toEqual(received.map(d => d.id))
        expect(peeked.map(m => m.payload.toString())).toEqual(received.map(d => d.payload.toString()))
        // a peek counts no delivery: the receive after it is the message's next delivery
        expect(peeked.map(m => m.deliveries + 1)).toEqual(received.map(d => d.deliveries))
        await h.queues.delete(name)
      }
    ), { numRuns: 25 })
  })

  it('reads bodies back from storage after a restart (segments and single records)', async () => {
    await h.queues.put('jobs')
    await h.queues.push('jobs', Array.from({ length: 10 }, (_, i) => ({ payload: text(`batch-${i}`), headers: { i: String(i) } })))
    await h.queues.push('jobs', [{ payload: text('single'), topic: 'a/b' }])
    h = await h.restart()
    const peeked = await h.queues.peek('jobs', 100)
    expect(peeked.map(m => m.payload.toString())).toEqual([...Array.from({ length: 10 }, (_, i) => `batch-${i}`), 'single'])
    expect(peeked[3].headers).toEqual({ i: '3' })
    expect(peeked[10].topic).toBe('a/b')
    expect(h.queues.info('jobs').stats).toMatchObject({ ready: 11, leased: 0 })
  })

  it('refuses a limit outside 1..100 and a queue that does not exist', async () => {
    await h.queues.put('jobs')
    await expect(h.queues.peek('jobs', 0)).rejects.toThrow(InvalidArgument)
    await expect(h.queues.peek('jobs', 101)).rejects.toThrow(InvalidArgument)
    await expect(h.queues.peek('nope', 1)).rejects.toThrow(/nope/)
  })
})
