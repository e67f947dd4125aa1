import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { Tetra, ConflictError, NotFoundError } from '../../src/client/node.js'

let broker: TestBroker
let tetra: Tetra

beforeAll(async () => {
  broker = await startTestBroker()
  tetra = new Tetra({ url: broker.url })
})
afterAll(async () => { await broker?.stop() })

describe('client: queue', () => {
  it('create, push one and many (delay, priority, dedupId), receive, ack, info', async () => {
    const q = tetra.queue('jobs')
    await q.create({ visibilityTimeout: 30 })
    const id = await q.push({ n: 1 }, { dedupId: 'one' })
    expect(await q.push({ n: 1 }, { dedupId: 'one' })).toBe(id)
    const ids = await q.pushMany([{ payload: 'low' }, { payload: new Uint8Array([1, 2]), priority: 9 }, { payload: 'later', delay: 3600 }])
    expect(ids).toHaveLength(3)
    const got = await q.receive({ max: 10 })
    expect(got.map(m => m.payload)).toEqual([new Uint8Array([1, 2]), { n: 1 }, 'low'])
    expect(got[0]).toMatchObject({ deliveries: 1, priority: 9 })
    const results = await q.ack(got.map(m => m.receipt))
    expect(results.every(r => r.status === 'acked')).toBe(true)
    await expect(q.ack(got[0].receipt)).rejects.toBeInstanceOf(NotFoundError)
    const info = await q.info()
    expect(info.stats).toMatchObject({ ready: 0, leased: 0, delayed: 1 })
    expect(await q.purge()).toBe(1)
    expect((await tetra.queues()).map(i => i.name)).toContain('jobs')
  })

  it('nack with delay, nack dead, dead letters and redrive, extend', async () => {
    const q = tetra.queue('retry')
    await q.create({ maxDeliveries: 5 })
    await q.pushMany([{ payload: 1 }, { payload: 2 }])
    const [a, b] = await q.receive({ max: 2 })
    expect((await q.extend(a.receipt, 60))[0].status).toBe('extended')
    expect((await q.nack(a.receipt, { delay: 3600 }))[0].status).toBe('delayed')
    expect((await q.nack(b.receipt, { dead: true, reason: 'bad' }))[0].status).toBe('dead')
    await expect(q.nack(b.receipt)).rejects.toBeInstanceOf(ConflictError)
    const dead = []
    for await (const d of q.deadLetters()) dead.push(d)
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ payload: 2, reason: expect.any(String) })
    expect((await q.redrive()).redriven).toBe(1)
    expect((await q.receive()).map(m => m.payload)).toEqual([2])
    expect(await q.purgeDead()).toBe(0)
    await q.delete()
    await expect(q.info()).rejects.toBeInstanceOf(NotFoundError)
  })

  it('receive long-polls and is cancelled by an AbortSignal', async () => {
    const q = tetra.queue('idle')
    await q.create()
    const controller = new AbortController()
    const waiting = q.receive({ wait: 20, signal: controller.signal })
    setTimeout(() => { controller.abort(new Error('stop')) }, 100)
    await expect(waiting).rejects.toThrow('stop')
    const aborted = AbortSignal.abort(new Error('already'))
    await expect(q.push(1, { signal: aborted })).rejects.toThrow('already')
  })

  it('process(): runs jobs with concurrency, acks on success, nacks with back-off on a throw, drains on close()', async () => {
    const q = tetra.queue('work')
    await q.create({ maxDeliveries: 2, backoff: { type: 'fixed', base: 0.05 } })
    await q.pushMany(Array.from({ length: 20 }, (_, i) => ({ payload: i })))
    const seen: number[] = []
    const attempts = new Map<number, number>()
    let running = 0
    let most = 0
    const worker = q.process<number>(async n => {
      running++
      most = Math.max(most, running)
      await new Promise(resolve => setTimeout(resolve, 5))
      running--
      attempts.set(n, (attempts.get(n) ?? 0) + 1)
      if (n === 7) throw new Error('seven fails')
      seen.push(n)
    }, { concurrency: 4, wait: 1 })
    await waitFor(() => seen.length === 19 && attempts.get(7) === 2, 10_000, 'all jobs')
    await worker.close()
    expect(most).toBeLessThanOrEqual(4)
    expect(most).toBeGreaterThan(1)
    const info = await q.info()
    expect(info.stats).toMatchObject({ ready: 0, leased: 0, dead: 1 })
    const [dead] = await (async () => { const out = []; for await (const d of q.deadLetters()) out.push(d); return out })()
    expect(dead.lastError ?? dead.reason).toMatch(/seven fails/)
    expect(worker.completed).toBe(19)
    expect(worker.failed).toBe(2)
  })

  it('process(): extends the lease of a job that outlives it (no second delivery)', async () => {
    const q = tetra.queue('long')
    await q.create({ visibilityTimeout: 1 })
    await q.push('slow')
    let calls = 0
    const worker = q.process(async (_payload, message) => {
      calls++
      expect(message.deliveries).toBe(1)
      // 2.5 lease lengths: without extension it would be delivered again meanwhile
      await new Promise(resolve => setTimeout(resolve, 2500))
    }, { concurrency: 2, wait: 1 })
    await waitFor(async () => (await q.info()).stats.acked === 1, 10_000, 'the slow job acked')
    await worker.close()
    expect(calls).toBe(1)
  })

  it('process(): close() while jobs run waits for them and acks them; nothing is received after it', async () => {
    const q = tetra.queue('drain')
    await q.create()
    await q.pushMany(Array.from({ length: 3 }, (_, i) => ({ payload: i })))
    let started = 0
    let release: () => void = () => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    const worker = q.process(async () => { started++; await gate }, { concurrency: 3, wait: 1 })
    await waitFor(() => started === 3, 5000, 'three jobs running')
    const closing = worker.close()
    await q.push('after close')
    release()
    await closing
    expect(worker.completed).toBe(3)
    const info = await q.info()
    expect(info.stats).toMatchObject({ acked: 3, leased: 0, ready: 1 })
  })
})
