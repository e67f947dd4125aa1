import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { catalogKey, dataPrefix } from '../../engines/queue/codec.js'
import { Segment, SegmentIndex } from '../../engines/queue/segments.js'
import { prefixEnd } from '../../engines/storage/keys.js'
import { openQueues, text, type QueueHarness } from './queue-helpers.js'
import { waitFor } from '../helpers.js'

/**
 * The stored form of pushes: one segment value per push of 4 or more messages, one per group commit for
 * the small pushes in it, a gone bitmap per segment once some of its messages went, the segment deleted
 * with its last message; restarts rebuild exactly the messages the segments and their bitmaps say are
 * still there.
 */

let h: QueueHarness
beforeEach(async () => { h = await openQueues() })
afterEach(async () => { await h.remove() })

const payloads = (ds: Array<{ payload: Buffer }>): string[] => ds.map(d => d.payload.toString())
const batch = (...names: string[]): Array<{ payload: Buffer }> => names.map(n => ({ payload: text(n) }))

/** The kinds of record ('g' segment, 'a' gone bitmap, 'b' body, 's' state, ...) a queue stores, counted; counters left out. */
async function storedKinds (harness: QueueHarness, queue: string): Promise<Record<string, number>> {
  const p = harness.storage.partition('queue')
  const { qid } = JSON.parse((await p.get(catalogKey(queue)))!.toString()) as { qid: number }
  const out: Record<string, number> = {}
  for await (const [key] of p.entries({ gte: dataPrefix(qid), lt: prefixEnd(dataPrefix(qid)) })) {
    const kind = String.fromCharCode(key[5])
    if (kind !== 'c') out[kind] = (out[kind] ?? 0) + 1
  }
  return out
}

describe('queue segments: stored form', () => {
  it('a batch push is one segment; acks write its gone bitmap; the last ack deletes both, also across a restart', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    await h.queues.push('q', batch('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'))
    expect(await storedKinds(h, 'q')).toEqual({ g: 1 })
    const got = await h.queues.receive('q', { max: 8 })
    // a, c and e acked; the others leased at the stop
    await h.queues.ack('q', [got[0].receipt, got[2].receipt, got[4].receipt])
    expect(await storedKinds(h, 'q')).toMatchObject({ g: 1, a: 1 })
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 5, leased: 0, acked: 3, pushed: 8 })
      const again = await h2.queues.receive('q', { max: 10 })
      expect(payloads(again)).toEqual(['b', 'd', 'f', 'g', 'h'])
      expect(again.every(d => d.deliveries === 2)).toBe(true)
      await h2.queues.ack('q', again.map(d => d.receipt))
      expect(await storedKinds(h2, 'q')).toEqual({})
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, acked: 8 })
    } finally {
      await h2.close()
    }
  })

  it('small pushes share the segment of their group commit; one body over 64 KiB keeps a record of its own', async () => {
    await h.queues.push('q', batch('a', 'b', 'c'))
    await h.queues.push('q', batch('d'))
    // two group commits: two segments
    expect(await storedKinds(h, 'q')).toEqual({ g: 2 })
    // pushes of one tick: one segment between them, whatever their sizes and priorities
    await Promise.all([
      h.queues.push('q', batch('e')),
      h.queues.push('q', [{ payload: text('f'), priority: 3 }, { payload: text('g'), delayMs: 60_000 }]),
      h.queues.push('q', [{ payload: Buffer.alloc(70_000, 'x') }]),
      h.queues.push('q', batch('h'))
    ])
    // the large body's own record splits the run: e-g and h are two segments
    expect(await storedKinds(h, 'q')).toEqual({ g: 4, b: 1 })
    const got = await h.queues.receive('q', { max: 10 })
    expect(payloads(got).map(p => p.slice(0, 3))).toEqual(['f', 'a', 'b', 'c', 'd', 'e', 'xxx', 'h'])
    await h.queues.ack('q', got.map(d => d.receipt))
    // the delayed g keeps its segment, with e and f marked gone
    expect(await storedKinds(h, 'q')).toEqual({ g: 1, a: 1 })
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, delayed: 1, pushed: 9, acked: 8 })
    } finally {
      await h2.close()
    }
  })

  it('an open segment ends where a batch push or a purge comes between its pushes; all come back in order after a restart', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    await Promise.all([
      h.queues.push('q', batch('a')),
      h.queues.push('q', batch('b', 'c', 'd', 'e')),
      h.queues.push('q', batch('f')),
      h.queues.push('q', batch('g'))
    ])
    // a's open segment, the batch's segment, then f and g in a new open segment
    expect(await storedKinds(h, 'q')).toEqual({ g: 3 })
    const purging = h.queues.purge('q')
    const afterPurge = h.queues.push('q', batch('h'))
    await Promise.all([purging, afterPurge])
    const h2 = await h.restart()
    try {
      const got = await h2.queues.receive('q', { max: 10 })
      expect(payloads(got)).toEqual(['h'])
      await h2.queues.ack('q', got.map(d => d.receipt))
      expect(await storedKinds(h2, 'q')).toEqual({})
    } finally {
      await h2.close()
    }
  })

  it('a receiver served in the same tick as the small push that wakes it gets the body from the open segment', async () => {
    await h.queues.put('q', {})
    const waiting = h.queues.receive('q', { max: 2, waitMs: 5_000 })
    await waitFor(() => h.queues.info('q').stats.waiting === 1)
    await Promise.all([h.queues.push('q', batch('now')), h.queues.push('q', batch('too'))])
    const got = await waiting
    expect(payloads(got)).toEqual(['now'])
    const rest = await h.queues.receive('q', { max: 2 })
    expect(payloads(rest)).toEqual(['too'])
  })

  it('a segment split by priorities, delays and nacks comes back exactly after a restart', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000, maxDeliveries: 2 })
    await h.queues.push('q', [
      { payload: text('low') }, { payload: text('high'), priority: 9 }, { payload: text('later'), delayMs: 10_000 },
      { payload: text('nacked') }, { payload: text('acked') }, { payload: text('dead') }
    ])
    const got = await h.queues.receive('q', { max: 5 })
    expect(payloads(got)).toEqual(['high', 'low', 'nacked', 'acked', 'dead'])
    await h.queues.ack('q', [got[3].receipt])
    await h.queues.nack('q', [got[2].receipt], { delayMs: 5_000, reason: 'busy' })
    await h.queues.nack('q', [got[4].receipt], { dead: true, reason: 'bad' })
    await h.queues.ack('q', [got[0].receipt])
    // low is still leased at the stop
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 1, delayed: 2, dead: 1, leased: 0, acked: 2 })
      expect(payloads(await h2.queues.receive('q', { max: 10 }))).toEqual(['low'])
      h2.clock.advance(10_000)
      const due = await h2.queues.receive('q', { max: 10 })
      expect(due.map(d => [d.payload.toString(), d.deliveries])).toEqual([['later', 1], ['nacked', 2]])
      const dead = await h2.queues.listDead('q')
      expect(dead.messages.map(m => [m.payload.toString(), m.lastError])).toEqual([['dead', 'bad']])
    } finally {
      await h2.close()
    }
  })

  it('dead letters inside a segment are listed, redriven and purged; the segment goes with its last message', async () => {
    await h.queues.put('q', { maxDeliveries: 1 })
    await h.queues.push('q', batch('a', 'b', 'c', 'd', 'e'))
    const got = await h.queues.receive('q', { max: 5 })
    await h.queues.nack('q', [got[1].receipt, got[3].receipt])
    await h.queues.ack('q', [got[0].receipt, got[2].receipt, got[4].receipt])
    const dead = await h.queues.listDead('q')
    expect(payloads(dead.messages)).toEqual(['b', 'd'])
    expect(await storedKinds(h, 'q')).toMatchObject({ g: 1, a: 1, d: 2, s: 2 })
    expect(await h.queues.redrive('q', [dead.messages[0].id])).toEqual({ redriven: 1, notFound: [] })
    const [b] = await h.queues.receive('q')
    expect([b.payload.toString(), b.deliveries]).toEqual(['b', 1])
    await h.queues.ack('q', [b.receipt])
    expect(await h.queues.purgeDead('q')).toBe(1)
    expect(await storedKinds(h, 'q')).toEqual({})
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, dead: 0, leased: 0 })
  })

  it('dead letters moved to a deadLetter queue leave their segment', async () => {
    await h.queues.put('dlq')
    await h.queues.put('src', { maxDeliveries: 1, deadLetter: 'dlq' })
    await h.queues.push('src', batch('a', 'b', 'c', 'd'))
    const got = await h.queues.receive('src', { max: 4 })
    await h.queues.nack('src', got.map(d => d.receipt))
    await waitFor(() => h.queues.info('dlq').stats.ready === 4)
    await waitFor(async () => Object.keys(await storedKinds(h, 'src')).length === 0)
    const moved = await h.queues.receive('dlq', { max: 4 })
    expect(payloads(moved)).toEqual(['a', 'b', 'c', 'd'])
    expect(moved.map(m => m.headers['x-dead-letter-id'])).toEqual(got.map(d => d.id))
  })

  it('purge and retention remove messages from segments; leased ones stay readable and ackable', async () => {
    await h.queues.put('q', { retentionMs: 60_000, visibilityTimeoutMs: 120_000 })
    await h.queues.push('q', batch('a', 'b', 'c', 'd', 'e', 'f'))
    const leased = await h.queues.receive('q', { max: 2 })
    expect(await h.queues.purge('q')).toBe(4)
    await h.queues.push('q', batch('g', 'h', 'i', 'j'))
    h.clock.advance(60_000)
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, expired: 4 })
    await h.queues.ack('q', leased.map(d => d.receipt))
    await waitFor(async () => Object.keys(await storedKinds(h, 'q')).length === 0)
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, delayed: 0, dead: 0, acked: 2, expired: 4, pushed: 10 })
    } finally {
      await h2.close()
    }
  })

  it('a stale receipt of a message in a segment is told apart from one whose message is gone', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 1000 })
    await h.queues.push('q', batch('a', 'b', 'c', 'd'))
    const first = await h.queues.receive('q', { max: 4 })
    h.clock.advance(1000)
    const second = await h.queues.receive('q', { max: 4 })
    await h.queues.ack('q', [second[0].receipt])
    const results = await h.queues.ack('q', [first[0].receipt, first[1].receipt])
    expect(results.map(r => r.status)).toEqual(['not_found', 'stale'])
  })
})

describe('queue segments: SegmentIndex', () => {
  it('finds the segment of a sequence number and forgets removed ones, across compactions', () => {
    const index = new SegmentIndex()
    const segments: Segment[] = []
    // segments of 4 with gaps between them (messages pushed alone have their own records)
    for (let i = 0; i < 500; i++) {
      const s = new Segment(i * 10, 4)
      segments.push(s)
      index.add(s)
    }
    expect(index.find(13)).toBe(segments[1])
    expect(index.find(14)).toBeUndefined()
    expect(index.find(4999)).toBeUndefined()
    for (let i = 0; i < 400; i++) index.remove(segments[i])
    expect(index.size).toBe(100)
    for (let i = 0; i < 500; i++) {
      expect(index.find(i * 10 + 3)).toBe(i < 400 ? undefined : segments[i])
      expect(index.find(i * 10 + 5)).toBeUndefined()
    }
    expect(() => { index.add(new Segment(4000, 2)) }).toThrow()
  })

  it('counts live messages from a gone bitmap', () => {
    const s = new Segment(100, 10, Uint8Array.from([0b00000101, 0b00000010]))
    expect(s.live).toBe(7)
    expect([s.isGone(100), s.isGone(101), s.isGone(102), s.isGone(109)]).toEqual([true, false, true, true])
    expect(s.markGone(101)).toBe(true)
    expect(s.markGone(101)).toBe(false)
    expect(s.live).toBe(6)
  })
})
