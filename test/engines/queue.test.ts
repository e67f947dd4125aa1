import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { InvalidArgument, NotFound, TooLarge } from '../../engines/errors.js'
import { openQueues, text, type QueueHarness } from './queue-helpers.js'
import { tempDir, waitFor } from '../helpers.js'
import { BODY_CACHE_BYTES } from '../../engines/queue/state.js'

let h: QueueHarness
beforeEach(async () => { h = await openQueues() })
afterEach(async () => { await h.remove() })

const payloads = (ds: Array<{ payload: Buffer }>): string[] => ds.map(d => d.payload.toString())

/** How many lease records (data key kind 'l') the queue partition holds. */
async function leaseRecords (harness: QueueHarness): Promise<number> {
  let n = 0
  for await (const [key] of harness.storage.partition('queue').entries()) if (key[0] === 0x44 && key[5] === 0x6c) n++
  return n
}

describe('queue engine: push and receive', () => {
  it('delivers FIFO within a priority and higher priorities first', async () => {
    await h.queues.put('jobs')
    await h.queues.push('jobs', [{ payload: text('a') }, { payload: text('b'), priority: 5 }, { payload: text('c') }])
    await h.queues.push('jobs', [{ payload: text('d'), priority: 5 }, { payload: text('e'), priority: 255 }])
    const got = await h.queues.receive('jobs', { max: 10 })
    expect(payloads(got)).toEqual(['e', 'b', 'd', 'a', 'c'])
    expect(got.every(d => d.deliveries === 1)).toBe(true)
    expect(new Set(got.map(d => d.receipt)).size).toBe(5)
    expect(h.queues.info('jobs').stats).toMatchObject({ ready: 0, leased: 5, pushed: 5 })
  })

  it('delivers the same bytes whether a body is still in memory or read back from LevelDB', async () => {
    // 24 MB of bodies: more than the queue keeps in memory, so later ones are read from LevelDB
    const body = (n: number): Buffer => Buffer.alloc(12 * 1024, `${n};`)
    expect(2000 * 12 * 1024).toBeGreaterThan(BODY_CACHE_BYTES)
    for (let b = 0; b < 2; b++) {
      await h.queues.push('big', Array.from({ length: 1000 }, (_, i) => ({ payload: body(b * 1000 + i), headers: { n: String(b * 1000 + i) } })))
    }
    let next = 0
    for (let round = 0; round < 2; round++) {
      const got = await h.queues.receive('big', { max: 1000 })
      expect(got).toHaveLength(1000)
      for (const d of got) {
        expect(d.headers.n).toBe(String(next))
        expect(d.payload.equals(body(next))).toBe(true)
        next++
      }
      await h.queues.ack('big', got.map(d => d.receipt))
    }
    expect(h.queues.info('big').stats).toMatchObject({ ready: 0, leased: 0, acked: 2000 })
  })

  it('keeps headers and topic and round-trips bytes', async () => {
    const bytes = Buffer.from([0, 255, 1, 2, 0xc3])
    const [id] = await h.queues.push('q', [{ payload: bytes, headers: { a: '1' }, topic: 't/1' }])
    const [d] = await h.queues.receive('q')
    expect(d.id).toBe(id)
    expect(d.payload.equals(bytes)).toBe(true)
    expect(d.headers).toEqual({ a: '1' })
    expect(d.topic).toBe('t/1')
    expect(d.enqueuedAt).toBe(h.clock.now())
    expect(d.firstDeliveredAt).toBe(h.clock.now())
  })

  it('creates queues on push unless autocreate is off; receive on an unknown queue is 404', async () => {
    await expect(h.queues.receive('nope')).rejects.toBeInstanceOf(NotFound)
    await h.queues.push('auto', [{ payload: text('x') }])
    expect(h.queues.has('auto')).toBe(true)
    h.queues.autocreate = false
    await expect(h.queues.push('other', [{ payload: text('x') }])).rejects.toBeInstanceOf(NotFound)
  })

  it('rejects bad inputs with typed errors and keeps what was accepted', async () => {
    await h.queues.put('small', { maxMessageBytes: 4 })
    await h.queues.push('small', [{ payload: text('ok') }])
    await expect(h.queues.push('small', [{ payload: text('a') }, { payload: text('too long') }])).rejects.toBeInstanceOf(TooLarge)
    await expect(h.queues.push('small', [{ payload: text('a'), delayMs: -1 }])).rejects.toBeInstanceOf(InvalidArgument)
    await expect(h.queues.push('small', [{ payload: text('a'), priority: 256 }])).rejects.toBeInstanceOf(InvalidArgument)
    await expect(h.queues.push('bad name!', [{ payload: text('a') }])).rejects.toBeInstanceOf(InvalidArgument)
    await expect(h.queues.put('small', { visibilityTimeoutMs: -5 })).rejects.toBeInstanceOf(InvalidArgument)
    await expect(h.queues.ack('small', ['garbage'])).rejects.toBeInstanceOf(InvalidArgument)
    await expect(h.queues.receive('small', { max: 1001 })).rejects.toBeInstanceOf(InvalidArgument)
    expect(h.queues.info('small').stats).toMatchObject({ ready: 1, pushed: 1 })
  })

  it('delays messages without a cap and delivers them when due', async () => {
    await h.queues.push('q', [{ payload: text('later'), delayMs: 3 * 24 * 3600_000 }, { payload: text('soon'), delayMs: 1000 }])
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, delayed: 2 })
    expect(await h.queues.receive('q')).toEqual([])
    h.clock.advance(1000)
    const soon = await h.queues.receive('q', { max: 10 })
    expect(payloads(soon)).toEqual(['soon'])
    await h.queues.ack('q', soon.map(d => d.receipt))
    h.clock.advance(3 * 24 * 3600_000)
    expect(payloads(await h.queues.receive('q', { max: 10 }))).toEqual(['later'])
  })
})

describe('queue engine: leases, receipts, retries', () => {
  it('returns an unacked message after its lease; the old receipt is stale', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 10_000 })
    await h.queues.push('q', [{ payload: text('m') }])
    const [first] = await h.queues.receive('q')
    h.clock.advance(9_999)
    expect(await h.queues.receive('q')).toEqual([])
    h.clock.advance(1)
    const [second] = await h.queues.receive('q')
    expect(second.id).toBe(first.id)
    expect(second.deliveries).toBe(2)
    expect(second.firstDeliveredAt).toBe(first.firstDeliveredAt)
    expect(second.receipt).not.toBe(first.receipt)
    expect(await h.queues.ack('q', [first.receipt])).toEqual([{ receipt: first.receipt, id: first.id, status: 'stale' }])
    expect(await h.queues.ack('q', [second.receipt])).toEqual([{ receipt: second.receipt, id: first.id, status: 'acked' }])
    expect(await h.queues.ack('q', [second.receipt])).toEqual([{ receipt: second.receipt, id: first.id, status: 'not_found' }])
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, leased: 0, acked: 1 })
  })

  it('answers a batch per receipt', async () => {
    await h.queues.push('q', [{ payload: text('a') }, { payload: text('b') }])
    const [a, b] = await h.queues.receive('q', { max: 2 })
    await h.queues.ack('q', [a.receipt])
    const results = await h.queues.ack('q', [a.receipt, b.receipt])
    expect(results.map(r => r.status)).toEqual(['not_found', 'acked'])
  })

  it('extends a lease (heartbeat)', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 1000 })
    await h.queues.push('q', [{ payload: text('m') }])
    const [d] = await h.queues.receive('q')
    h.clock.advance(900)
    const [r] = await h.queues.extend('q', [d.receipt], 5000)
    expect(r).toMatchObject({ status: 'extended', at: h.clock.now() + 5000 })
    h.clock.advance(4000)
    expect(await h.queues.receive('q')).toEqual([])
    expect((await h.queues.ack('q', [d.receipt]))[0].status).toBe('acked')
  })

  it('nack without delay: ready at once, or after the fixed back-off', async () => {
    await h.queues.push('plain', [{ payload: text('m') }])
    const [d] = await h.queues.receive('plain')
    expect((await h.queues.nack('plain', [d.receipt], { reason: 'boom' }))[0].status).toBe('ready')
    const [again] = await h.queues.receive('plain')
    expect(again.deliveries).toBe(2)

    await h.queues.put('fixed', { backoff: { type: 'fixed', baseMs: 2000, maxMs: 2000 } })
    await h.queues.push('fixed', [{ payload: text('m') }])
    const [f] = await h.queues.receive('fixed')
    const [res] = await h.queues.nack('fixed', [f.receipt])
    expect(res).toMatchObject({ status: 'delayed', at: h.clock.now() + 2000 })
    h.clock.advance(1999)
    expect(await h.queues.receive('fixed')).toEqual([])
    h.clock.advance(1)
    expect(await h.queues.receive('fixed')).toHaveLength(1)
  })

  it('exponential back-off doubles per delivery up to max, for nacks and expired leases; explicit delay wins', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 100, maxDeliveries: 10, backoff: { type: 'exponential', baseMs: 1000, maxMs: 3000 } })
    await h.queues.push('q', [{ payload: text('m') }])
    const gaps: number[] = []
    let [d] = await h.queues.receive('q')
    for (let i = 0; i < 3; i++) {
      await h.queues.nack('q', [d.receipt])
      const from = h.clock.now()
      for (let step = 0; step < 100; step++) {
        h.clock.advance(100)
        const got = await h.queues.receive('q')
        if (got.length > 0) { d = got[0]; break }
      }
      gaps.push(h.clock.now() - from)
    }
    expect(gaps).toEqual([1000, 2000, 3000])
    // the lease of delivery 4 runs out: back-off 3000 (capped)
    h.clock.advance(100)
    expect(h.queues.info('q').stats).toMatchObject({ delayed: 1, leased: 0 })
    h.clock.advance(2999)
    expect(await h.queues.receive('q')).toEqual([])
    h.clock.advance(1)
    ;[d] = await h.queues.receive('q')
    expect(d.deliveries).toBe(5)
    const [res] = await h.queues.nack('q', [d.receipt], { delayMs: 50 })
    expect(res).toMatchObject({ status: 'delayed', at: h.clock.now() + 50 })
  })

  it('dead-letters after maxDeliveries with the reason, lists, redrives with deliveries reset, purges', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 1000, maxDeliveries: 2 })
    await h.queues.push('q', [{ payload: text('a') }, { payload: text('b') }, { payload: text('c') }])
    const [a] = await h.queues.receive('q')
    await h.queues.nack('q', [a.receipt], { reason: 'first failure' })
    const [a2] = await h.queues.receive('q')
    expect(a2.id).toBe(a.id)
    expect((await h.queues.nack('q', [a2.receipt], { reason: 'second failure' }))[0].status).toBe('dead')
    const [b] = await h.queues.receive('q')
    h.clock.advance(1000)
    const [b2] = await h.queues.receive('q')
    expect(b2.id).toBe(b.id)
    h.clock.advance(1000)
    const [c] = await h.queues.receive('q')
    expect((await h.queues.nack('q', [c.receipt], { dead: true, reason: 'poison' }))[0].status).toBe('dead')
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, leased: 0, dead: 3, deadLettered: 3 })

    const page1 = await h.queues.listDead('q', { limit: 2 })
    expect(page1.messages).toHaveLength(2)
    expect(page1.cursor).not.toBeNull()
    const page2 = await h.queues.listDead('q', { limit: 2, cursor: page1.cursor! })
    const dead = [...page1.messages, ...page2.messages]
    expect(dead.map(m => m.payload.toString())).toEqual(['a', 'b', 'c'])
    expect(dead[0]).toMatchObject({ deliveries: 2, lastError: 'second failure' })
    expect(dead[0].reason).toMatch(/maxDeliveries \(2\)/)
    expect(dead[1].reason).toMatch(/lease expired/)
    expect(dead[2].reason).toMatch(/poison/)

    expect(await h.queues.redrive('q', [a.id, 'ff00000000000999'])).toEqual({ redriven: 1, notFound: ['ff00000000000999'] })
    const [again] = await h.queues.receive('q')
    expect(again).toMatchObject({ id: a.id, deliveries: 1 })
    expect(await h.queues.purgeDead('q')).toBe(2)
    expect(h.queues.info('q').stats).toMatchObject({ dead: 0, leased: 1 })
    expect((await h.queues.listDead('q')).messages).toEqual([])
    await h.queues.nack('q', [again.receipt], { dead: true })
    expect(await h.queues.redrive('q')).toEqual({ redriven: 1, notFound: [] })
    expect(h.queues.info('q').stats).toMatchObject({ ready: 1, dead: 0 })
  })

  it('moves dead letters to the deadLetter queue with their history in headers, also after a restart', async () => {
    await h.queues.put('dlq')
    await expect(h.queues.put('jobs', { deadLetter: 'jobs' })).rejects.toBeInstanceOf(InvalidArgument)
    await h.queues.put('jobs', { maxDeliveries: 1, visibilityTimeoutMs: 1000, deadLetter: 'dlq' })
    await h.queues.push('jobs', [{ payload: text('a'), headers: { k: 'v' }, priority: 7 }, { payload: text('b') }])
    const [a] = await h.queues.receive('jobs')
    await h.queues.nack('jobs', [a.receipt], { reason: 'boom' })
    await waitFor(() => h.queues.info('dlq').stats.ready === 1 && h.queues.info('jobs').stats.dead === 0)
    expect(h.queues.info('jobs').stats).toMatchObject({ dead: 0, deadLettered: 1 })
    const [moved] = await h.queues.receive('dlq')
    expect(moved.payload.toString()).toBe('a')
    expect(moved).toMatchObject({ priority: 7, deliveries: 1 })
    expect(moved.headers).toMatchObject({ k: 'v', 'x-dead-letter-queue': 'jobs', 'x-dead-letter-id': a.id, 'x-dead-letter-deliveries': '1', 'x-dead-letter-error': 'boom' })
    expect(moved.headers['x-dead-letter-reason']).toMatch(/maxDeliveries/)

    // the target is gone: dead letters stay in the queue's own list
    await h.queues.delete('dlq')
    const [b] = await h.queues.receive('jobs')
    h.clock.advance(1000)
    expect(h.queues.info('jobs').stats.dead).toBe(1)
    // ... and move once the target exists again
    await h.queues.put('dlq')
    await waitFor(() => h.queues.info('dlq').stats.ready === 1 && h.queues.info('jobs').stats.dead === 0)
    const [again] = await h.queues.receive('dlq')
    expect(again.headers['x-dead-letter-id']).toBe(b.id)
    expect(again.headers['x-dead-letter-reason']).toMatch(/lease expired/)
  })

  it('a dead letter moving to its deadLetter queue is never counted in both queues', async () => {
    await h.queues.put('dlq')
    await h.queues.put('jobs', { maxDeliveries: 1, deadLetter: 'dlq' })
    await h.queues.push('jobs', [{ payload: text('a') }, { payload: text('b') }])
    const got = await h.queues.receive('jobs', { max: 2 })
    await h.queues.nack('jobs', got.map(d => d.receipt), { dead: true })
    // look at the counts at every turn of the event loop until both messages arrived (bounded)
    let looks = 0
    for (; looks < 100_000; looks++) {
      const dead = h.queues.info('jobs').stats.dead
      const ready = h.queues.info('dlq').stats.ready
      expect(dead + ready).toBeLessThanOrEqual(2)
      if (ready === 2 && dead === 0) break
      await new Promise(resolve => setImmediate(resolve))
    }
    expect(looks).toBeLessThan(100_000)
  })

  it('a dead letter still waiting to be moved at a stop is moved at the next start', async () => {
    await h.queues.put('jobs', { maxDeliveries: 1 })
    await h.queues.push('jobs', [{ payload: text('a') }])
    const [a] = await h.queues.receive('jobs')
    await h.queues.nack('jobs', [a.receipt], { dead: true })
    // the deadLetter queue is set while the queue is stopped: only the start can move it
    await h.storage.flush()
    const dir = h.dir
    await h.close()
    const { Storage } = await import('../../engines/storage/storage.js')
    const { catalogKey } = await import('../../engines/queue/codec.js')
    const storage = await Storage.open({ dir, fsync: 'never' })
    const p = storage.partition('queue')
    const record = JSON.parse((await p.get(catalogKey('jobs')))!.toString()) as { settings: Record<string, unknown> }
    record.settings.deadLetter = 'dlq'
    await storage.write([p.put(catalogKey('jobs'), Buffer.from(JSON.stringify(record)))])
    const dlqRecord = { qid: 99, createdAt: 0, settings: {} }
    await storage.write([p.put(catalogKey('dlq'), Buffer.from(JSON.stringify(dlqRecord)))])
    await storage.close()
    const h2 = await h.restart()
    try {
      // the source's count drops once the move's write is durable, a moment after the target's rises
      await waitFor(() => h2.queues.info('dlq').stats.ready === 1 && h2.queues.info('jobs').stats.dead === 0)
      expect((await h2.queues.receive('dlq'))[0].headers['x-dead-letter-id']).toBe(a.id)
    } finally {
      await h2.close()
    }
  })

  it('dedups within the window and not after it', async () => {
    await h.queues.put('q', { dedupWindowMs: 60_000 })
    const [id1] = await h.queues.push('q', [{ payload: text('1'), dedupId: 'x' }])
    const ids = await h.queues.push('q', [{ payload: text('2'), dedupId: 'x' }, { payload: text('3'), dedupId: 'y' }, { payload: text('4'), dedupId: 'y' }])
    expect(ids[0]).toBe(id1)
    expect(ids[2]).toBe(ids[1])
    expect(h.queues.info('q').stats.ready).toBe(2)
    h.clock.advance(60_000)
    const [id3] = await h.queues.push('q', [{ payload: text('5'), dedupId: 'x' }])
    expect(id3).not.toBe(id1)
    expect(payloads(await h.queues.receive('q', { max: 10 }))).toEqual(['1', '3', '5'])
  })

  it('drops unconsumed messages older than the retention', async () => {
    await h.queues.put('q', { retentionMs: 60_000 })
    await h.queues.push('q', [{ payload: text('old') }])
    h.clock.advance(30_000)
    await h.queues.push('q', [{ payload: text('young') }])
    h.clock.advance(30_000)
    expect(h.queues.info('q').stats).toMatchObject({ ready: 1, expired: 1 })
    expect(payloads(await h.queues.receive('q', { max: 10 }))).toEqual(['young'])
  })

  it('purges ready and delayed messages, not leased ones', async () => {
    await h.queues.push('q', [{ payload: text('a') }, { payload: text('b') }, { payload: text('c'), delayMs: 5000 }])
    const [a] = await h.queues.receive('q')
    expect(await h.queues.purge('q')).toBe(2)
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, delayed: 0, leased: 1 })
    expect((await h.queues.ack('q', [a.receipt]))[0].status).toBe('acked')
    h.clock.advance(5000)
    expect(await h.queues.receive('q')).toEqual([])
  })

  it('deletes a queue with its data', async () => {
    await h.queues.push('q', [{ payload: text('a') }])
    await h.queues.delete('q')
    await expect(h.queues.receive('q')).rejects.toBeInstanceOf(NotFound)
    await h.queues.put('q')
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, pushed: 0 })
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, pushed: 0 })
    } finally {
      await h2.close()
    }
  })
})

describe('queue engine: long-poll', () => {
  it('wakes a waiting receiver at once on push, and times out empty', async () => {
    const waiting = h.queues.receive('q', { waitMs: 20_000, max: 5 }).catch(() => null)
    await h.queues.put('q').catch(() => undefined)
    expect(await waiting).toBeNull() // the queue did not exist yet: 404

    const first = h.queues.receive('q', { waitMs: 20_000, max: 5 })
    await waitFor(() => h.queues.info('q').stats.waiting === 1)
    await h.queues.push('q', [{ payload: text('hello') }])
    expect(payloads(await first)).toEqual(['hello'])

    const empty = h.queues.receive('q', { waitMs: 2000 })
    h.clock.advance(2000)
    expect(await empty).toEqual([])
    expect(h.queues.info('q').stats.waiting).toBe(0)
  })

  it('shares a burst among waiters, each message to one of them', async () => {
    await h.queues.put('q')
    const waiters = Array.from({ length: 4 }, () => h.queues.receive('q', { waitMs: 20_000, max: 10 }))
    await h.queues.push('q', Array.from({ length: 8 }, (_, i) => ({ payload: text(String(i)) })))
    const got = await Promise.all(waiters)
    expect(got.map(g => g.length)).toEqual([2, 2, 2, 2])
    expect(new Set(got.flat().map(d => d.id)).size).toBe(8)
  })

  it('removes a waiter whose client went away', async () => {
    await h.queues.put('q')
    const controller = new AbortController()
    const gone = h.queues.receive('q', { waitMs: 20_000, signal: controller.signal })
    const stays = h.queues.receive('q', { waitMs: 20_000 })
    expect(h.queues.info('q').stats.waiting).toBe(2)
    controller.abort()
    expect(await gone).toEqual([])
    expect(h.queues.info('q').stats.waiting).toBe(1)
    await h.queues.push('q', [{ payload: text('m') }])
    expect(payloads(await stays)).toEqual(['m'])
  })

  it('a receiver that leaves while its messages are handed out gives them back untouched', async () => {
    await h.queues.push('q', [{ payload: text('m') }])
    const controller = new AbortController()
    const pending = h.queues.receive('q', { signal: controller.signal })
    controller.abort()
    expect(await pending).toEqual([])
    expect(h.queues.info('q').stats).toMatchObject({ ready: 1, leased: 0 })
    const h2 = await h.restart()
    try {
      // the lease was written and then given back: it does not count, also after a restart
      expect((await h2.queues.receive('q'))[0].deliveries).toBe(1)
    } finally {
      await h2.close()
    }
  })

  it('wakes a waiter when a delayed message falls due or a lease runs out', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 5000 })
    await h.queues.push('q', [{ payload: text('d'), delayMs: 3000 }])
    const waiting = h.queues.receive('q', { waitMs: 20_000 })
    h.clock.advance(3000)
    const [d] = await waiting
    expect(d.payload.toString()).toBe('d')
    const again = h.queues.receive('q', { waitMs: 20_000 })
    h.clock.advance(5000)
    expect((await again)[0]).toMatchObject({ id: d.id, deliveries: 2 })
  })
})

describe('queue engine: capture', () => {
  it('pushes every matching publish with its topic', async () => {
    await h.queues.put('events', { capture: ['sensors/+/temp'] })
    await h.pubsub.publish({ topic: 'sensors/a/temp', payload: text('21') })
    await h.pubsub.publish({ topic: 'sensors/a/humidity', payload: text('50') })
    await h.pubsub.publish({ topic: 'sensors/b/temp', payload: text('22') })
    await waitFor(() => h.queues.info('events').stats.ready === 2)
    const got = await h.queues.receive('events', { max: 10 })
    expect(got.map(d => [d.topic, d.payload.toString()])).toEqual([['sensors/a/temp', '21'], ['sensors/b/temp', '22']])
    await h.queues.put('events', { capture: [] })
    await h.pubsub.publish({ topic: 'sensors/c/temp', payload: text('23') })
    expect(h.pubsub.activeSubscriptions).toBe(0)
  })

  it('a capture that cannot be pushed reaches the engines\' background error handler', async () => {
    const { createEngines } = await import('../../engines/index.js')
    const dir = tempDir('tetra-queue-errors-')
    const errors: Array<{ err: unknown, what: string }> = []
    const engines = await createEngines({ dataDir: dir.dir, fsync: 'never', fsyncIntervalMs: 100, onBackgroundError: (err, what) => { errors.push({ err, what }) } })
    try {
      await engines.queues.put('small', { capture: ['big/#'], maxMessageBytes: 4 })
      await engines.pubsub.publish({ topic: 'big/1', payload: text('too large') })
      await waitFor(() => errors.length === 1)
      expect(errors[0].err).toBeInstanceOf(TooLarge)
      expect(errors[0].what).toMatch(/capture of big\/1 into queue small/)
      expect(engines.queues.captureDropped).toBe(1)
    } finally {
      await engines.close()
      dir.remove()
    }
  })
})

describe('queue engine: restart', () => {
  it('keeps ready, delayed and dead messages; leased become ready with their delivery count; counts and dedup survive', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000, maxDeliveries: 3, dedupWindowMs: 60_000, capture: ['cap/#'] })
    const [idA] = await h.queues.push('q', [{ payload: text('a'), dedupId: 'A' }])
    await h.queues.push('q', [{ payload: text('b') }, { payload: text('c'), delayMs: 10_000 }, { payload: text('d') }, { payload: text('e') }])
    const [a] = await h.queues.receive('q')
    await h.queues.nack('q', [a.receipt])
    const [a2, b] = await h.queues.receive('q', { max: 2 })
    expect(a2.deliveries).toBe(2)
    const [d] = await h.queues.receive('q')
    await h.queues.nack('q', [d.receipt], { dead: true })
    const [e] = await h.queues.receive('q')
    await h.queues.ack('q', [e.receipt])
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, leased: 2, delayed: 1, dead: 1, pushed: 5, acked: 1, deadLettered: 1 })

    const h2 = await h.restart()
    try {
      const q = h2.queues
      expect(q.info('q').stats).toMatchObject({ ready: 2, leased: 0, delayed: 1, dead: 1, pushed: 5, acked: 1, deadLettered: 1 })
      expect(q.info('q').settings).toMatchObject({ visibilityTimeoutMs: 60_000, maxDeliveries: 3, capture: ['cap/#'] })
      // old receipts do not survive the lease
      expect((await q.ack('q', [b.receipt]))[0].status).toBe('stale')
      const got = await q.receive('q', { max: 10 })
      expect(got.map(g => [g.payload.toString(), g.deliveries])).toEqual([['a', 3], ['b', 2]])
      expect(await q.push('q', [{ payload: text('dup'), dedupId: 'A' }])).toEqual([idA])
      const [fresh] = await q.push('q', [{ payload: text('f') }])
      expect([idA, a.id, b.id, d.id, e.id]).not.toContain(fresh)
      h2.clock.advance(10_000)
      expect(payloads(await q.receive('q', { max: 10 }))).toEqual(['c', 'f'])
      expect((await q.listDead('q')).messages.map(m => m.payload.toString())).toEqual(['d'])
      await h2.pubsub.publish({ topic: 'cap/x', payload: text('captured') })
      await waitFor(() => q.info('q').stats.ready === 1)
    } finally {
      await h2.close()
    }
  })

  it('one receive\'s deliveries, each ended differently, come back right after restarts (and leave no lease behind)', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000, maxDeliveries: 2 })
    await h.queues.push('q', [{ payload: text('a') }, { payload: text('b') }, { payload: text('c') }, { payload: text('d') }])
    const [a, b, c] = await h.queues.receive('q', { max: 3 })
    await h.queues.ack('q', [a.receipt])
    await h.queues.nack('q', [b.receipt], { reason: 'boom' })
    // b again, in a second receive, while the first receive's c is still leased
    const [b2, d] = await h.queues.receive('q', { max: 2 })
    expect([b2.payload.toString(), b2.deliveries, d.payload.toString()]).toEqual(['b', 2, 'd'])
    await h.queues.nack('q', [b2.receipt])
    expect((await h.queues.listDead('q')).messages.map(m => [m.payload.toString(), m.deliveries])).toEqual([['b', 2]])
    await h.queues.redrive('q')
    await h.queues.extend('q', [c.receipt], 120_000)

    let h2 = await h.restart()
    try {
      // b was redriven (count reset) after its deliveries were recorded; c and d were leased at the stop
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 3, leased: 0, dead: 0, acked: 1 })
      const got = await h2.queues.receive('q', { max: 10 })
      expect(got.map(g => [g.payload.toString(), g.deliveries])).toEqual([['b', 1], ['c', 2], ['d', 2]])
      await h2.queues.ack('q', [got[0].receipt, got[1].receipt])
      await h2.queues.nack('q', [got[2].receipt], { delayMs: 5_000 })
      h2 = await h2.restart()
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, delayed: 0, dead: 1, acked: 3 })
      // nothing but d's records is left: the segment of the push (with a gone bitmap marking a, b and c),
      // its dead-letter entry and its state
      const rest: string[] = []
      for await (const [key] of h2.storage.partition('queue').entries()) if (key[0] === 0x44 && key[5] !== 0x63) rest.push(String.fromCharCode(key[5]))
      expect(rest.sort()).toEqual(['a', 'd', 'g', 's'])
    } finally {
      await h2.close()
    }
  })

  it('the receives of one tick share one lease record; restart with it half acked restores the rest with their counts', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    await h.queues.push('q', ['a', 'b', 'c', 'd'].map(s => ({ payload: text(s) })))
    // four one-message receives in the same tick: their deliveries are written as one record
    const got = (await Promise.all([0, 1, 2, 3].map(async () => await h.queues.receive('q')))).flat()
    expect(got.map(d => d.payload.toString()).sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(await leaseRecords(h)).toBe(1)
    const by = new Map(got.map(d => [d.payload.toString(), d]))
    await h.queues.ack('q', [by.get('a')!.receipt, by.get('c')!.receipt])
    await h.queues.nack('q', [by.get('b')!.receipt], { reason: 'boom' })
    // d is still leased: the record stays
    expect(await leaseRecords(h)).toBe(1)

    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 2, leased: 0, acked: 2 })
      const again = await h2.queues.receive('q', { max: 10 })
      expect(again.map(d => [d.payload.toString(), d.deliveries])).toEqual([['b', 2], ['d', 2]])
      await h2.queues.ack('q', again.map(d => d.receipt))
      expect(await leaseRecords(h2)).toBe(0)
    } finally {
      await h2.close()
    }
  })

  it('the writes of one tick carry one segment, one counters record and one lease record; totals are right after a restart', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    const opsBefore = h.storage.stats.ops
    await Promise.all(Array.from({ length: 8 }, async (_, i) => await h.queues.push('q', [{ payload: text(`m${i}`) }])))
    // one segment for the eight bodies and the counters once
    expect(h.storage.stats.ops - opsBefore).toBe(2)
    const got = (await Promise.all(Array.from({ length: 8 }, async () => await h.queues.receive('q')))).flat()
    expect(got).toHaveLength(8)
    expect(h.storage.stats.ops - opsBefore).toBe(3)
    await Promise.all(got.slice(0, 5).map(async d => await h.queues.ack('q', [d.receipt])))
    expect(h.queues.info('q').stats).toMatchObject({ pushed: 8, acked: 5, leased: 3 })
    const h2 = await h.restart()
    try {
      expect(h2.queues.info('q').stats).toMatchObject({ pushed: 8, acked: 5, ready: 3, leased: 0 })
      const [id] = await h2.queues.push('q', [{ payload: text('next') }])
      expect(got.map(d => d.id)).not.toContain(id)
    } finally {
      await h2.close()
    }
  })

  it('the shared lease record goes with the last of its leases; a record whose leases all ran out is not joined again', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    await h.queues.push('q', [{ payload: text('a') }, { payload: text('b') }, { payload: text('c') }])
    const got = (await Promise.all([0, 1, 2].map(async () => await h.queues.receive('q')))).flat()
    await h.queues.ack('q', [got[0].receipt])
    await h.queues.nack('q', [got[1].receipt])
    expect(await leaseRecords(h)).toBe(1)
    await h.queues.ack('q', [got[2].receipt])
    expect(await leaseRecords(h)).toBe(0)

    // a lease that runs out before its record is written ends the record (its delete is queued); a
    // receive in the same tick must write a record of its own, or its delivery count would be lost
    const [b] = await h.queues.receive('q', { visibilityMs: 60_000 })
    await h.queues.nack('q', [b.receipt])
    const first = h.queues.receive('q', { visibilityMs: 1 })
    h.clock.advance(2)
    const second = h.queues.receive('q')
    expect(await first).toEqual([])
    const [again] = await second
    expect([again.payload.toString(), again.deliveries]).toEqual(['b', 4])
    expect(await leaseRecords(h)).toBe(1)
    const h2 = await h.restart()
    try {
      const [last] = await h2.queues.receive('q')
      expect([last.payload.toString(), last.deliveries]).toEqual(['b', 5])
    } finally {
      await h2.close()
    }
  })

  it('a message that used up its deliveries in a lease cut short by a restart is dead-lettered, not delivered again', async () => {
    await h.queues.put('q', { maxDeliveries: 1 })
    await h.queues.push('q', [{ payload: text('a') }])
    await h.queues.receive('q')
    const h2 = await h.restart()
    try {
      expect(await h2.queues.receive('q')).toEqual([])
      expect(h2.queues.info('q').stats).toMatchObject({ ready: 0, dead: 1 })
    } finally {
      await h2.close()
    }
  })
})

describe('queue engine: concurrency', () => {
  it('many receivers never get the same message within a lease', async () => {
    await h.queues.put('q', { visibilityTimeoutMs: 60_000 })
    const total = 2000
    for (let i = 0; i < total; i += 500) {
      await h.queues.push('q', Array.from({ length: 500 }, (_, k) => ({ payload: text(String(i + k)), priority: (i + k) % 3 })))
    }
    const seen = new Map<string, number>()
    let acked = 0
    const receiver = async (): Promise<void> => {
      for (let round = 0; round < 1000; round++) {
        const got = await h.queues.receive('q', { max: 7 })
        if (got.length === 0) return
        for (const d of got) seen.set(d.id, (seen.get(d.id) ?? 0) + 1)
        // ack about half at once, leave the rest leased
        const acks = got.filter((_, i) => i % 2 === 0).map(d => d.receipt)
        if (acks.length > 0) {
          const results = await h.queues.ack('q', acks)
          acked += results.filter(r => r.status === 'acked').length
        }
      }
    }
    await Promise.all(Array.from({ length: 16 }, receiver))
    expect(seen.size).toBe(total)
    expect([...seen.values()].every(n => n === 1)).toBe(true)
    expect(h.queues.info('q').stats).toMatchObject({ ready: 0, leased: total - acked, acked })
  })

  it('long-polling receivers and concurrent pushers: each message once', async () => {
    await h.queues.put('q')
    const got: string[] = []
    let stop = false
    const receiver = async (): Promise<void> => {
      for (let round = 0; round < 10_000 && !stop; round++) {
        const ds = await h.queues.receive('q', { max: 3, waitMs: 20_000 })
        for (const d of ds) got.push(d.payload.toString())
        if (ds.length > 0) await h.queues.ack('q', ds.map(d => d.receipt))
      }
    }
    const receivers = Array.from({ length: 8 }, receiver)
    await Promise.all(Array.from({ length: 5 }, async (_, p) => {
      for (let i = 0; i < 40; i++) await h.queues.push('q', [{ payload: text(`${p}-${i}`) }, { payload: text(`${p}-${i}b`) }])
    }))
    await waitFor(() => got.length === 400)
    stop = true
    await h.queues.close()
    await Promise.all(receivers)
    expect(new Set(got).size).toBe(400)
  })
})
