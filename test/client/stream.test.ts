import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'
import { Tetra, ConflictError, type StreamMessage } from '../../src/client/node.js'

let broker: TestBroker
let tetra: Tetra

beforeAll(async () => {
  broker = await startTestBroker()
  tetra = new Tetra({ url: broker.url })
})
afterAll(async () => { await broker?.stop() })

describe('client: stream', () => {
  it('append one and a batch (key, headers, dedupId, expectedLastOffset), info', async () => {
    const s = tetra.stream('orders')
    await s.create({ maxCount: 1000 })
    expect(await s.append({ id: 1 }, { key: 'c-7', headers: { source: 'web' }, dedupId: 'o-1' })).toBe(0)
    expect(await s.append({ id: 1 }, { dedupId: 'o-1' })).toBe(0)
    expect(await s.appendMany([{ payload: 'text' }, { payload: new Uint8Array([0, 255]) }], { expectedLastOffset: 0 })).toEqual([1, 2])
    await expect(s.appendMany([{ payload: 1 }], { expectedLastOffset: 0 })).rejects.toBeInstanceOf(ConflictError)
    const info = await s.info()
    expect(info).toMatchObject({ name: 'orders', count: 3, lastOffset: 2 })
    expect((await tetra.streams()).map(i => i.name)).toContain('orders')
  })

  it('read by offset and by time as async iterators over pages', async () => {
    const s = tetra.stream('log')
    await s.appendMany(Array.from({ length: 25 }, (_, i) => ({ payload: i })))
    const all: number[] = []
    for await (const m of s.read<number>({ pageSize: 7 })) all.push(m.payload)
    expect(all).toEqual(Array.from({ length: 25 }, (_, i) => i))
    const tail: number[] = []
    for await (const m of s.read<number>({ from: 20, pageSize: 2 })) tail.push(m.offset)
    expect(tail).toEqual([20, 21, 22, 23, 24])
    const byTime: number[] = []
    for await (const m of s.read<number>({ time: new Date(0) })) byTime.push(m.offset)
    expect(byTime).toHaveLength(25)
    const first = await s.readPage({ from: 'start', limit: 1 })
    expect(first.messages[0]).toMatchObject({ offset: 0, payload: 0 })
    expect(first.next).toBe(1)
  })

  it('consumer group: receive, ack, commit, dead letters, claim; process() acks', async () => {
    const s = tetra.stream('g')
    await s.appendMany(Array.from({ length: 6 }, (_, i) => ({ payload: i })))
    const g = s.group('billing')
    await g.create({ from: 'start', ackWait: 0.2, maxDeliveries: 2 })
    const got = await g.receive({ max: 2, consumer: 'a' })
    expect(got.map(m => m.offset)).toEqual([0, 1])
    expect(await g.ack(0)).toMatchObject({ acked: 1 })
    // offset 1 is not acked: after ackWait another reader claims it
    let claimed: StreamMessage[] = []
    await waitFor(async () => { claimed = await g.claim({ consumer: 'b' }); return claimed.length > 0 }, 5000, 'a claim')
    expect(claimed[0]).toMatchObject({ offset: 1, deliveries: 2 })
    expect(await g.commit(2)).toMatchObject({ committed: 3 })
    const handled: number[] = []
    const worker = g.process<number>(n => { handled.push(n) }, { concurrency: 2, wait: 1 })
    await waitFor(() => handled.length >= 3, 5000, 'the rest handled')
    await worker.close()
    expect(handled.sort()).toEqual([3, 4, 5])
    await waitFor(async () => (await g.info()).committed === 6, 5000, 'committed to the end')
    expect(await g.dead()).toEqual([])
    expect((await s.groups()).map(x => x.name)).toContain('billing')
  })

  it('tail: history then live; stops with the signal', async () => {
    const s = tetra.stream('live')
    await s.append('a')
    const controller = new AbortController()
    const seen: unknown[] = []
    const done = (async () => {
      try {
        for await (const m of s.tail({ from: 'start', signal: controller.signal })) {
          seen.push(m.payload)
          if (seen.length === 3) controller.abort()
        }
      } catch (err) { if (!controller.signal.aborted) throw err }
    })()
    await waitFor(() => seen.length === 1, 5000, 'history')
    await s.appendMany([{ payload: 'b' }, { payload: 'c' }])
    await done
    expect(seen).toEqual(['a', 'b', 'c'])
  })
})

describe('client: iterators resume after the broker restarts', () => {
  it('a stream tail and a store watch continue where they were, without gap or duplicate', async () => {
    const dir = tempDir('tetra-client-restart-')
    let b = await startTestBroker({}, dir.dir)
    const port = b.httpAddress.port
    const client = new Tetra({ url: b.url, retryDelay: 50, maxRetryDelay: 200 })
    const s = client.stream('resume')
    await s.appendMany([{ payload: 0 }, { payload: 1 }])
    const controller = new AbortController()
    const offsets: number[] = []
    const watched: string[] = []
    const tailing = (async () => {
      try { for await (const m of s.tail({ from: 'start', signal: controller.signal })) offsets.push(m.offset) } catch (err) { if (!controller.signal.aborted) throw err }
    })()
    const watching = (async () => {
      try { for await (const e of client.store.watch({ prefix: 'r/', signal: controller.signal })) watched.push(`${e.type}:${e.key}`) } catch (err) { if (!controller.signal.aborted) throw err }
    })()
    await waitFor(() => offsets.length === 2, 5000, 'history')
    for (let i = 0; i < 100 && watched.length === 0; i++) {
      await client.store.set('r/before', i)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const watchedBefore = watched.length
    await b.close()
    b = await startTestBroker({ httpPort: port }, dir.dir)
    await s.appendMany([{ payload: 2 }, { payload: 3 }])
    await client.store.set('r/after', 1)
    await waitFor(() => offsets.length === 4 && watched.includes('set:r/after'), 10_000, 'live after the restart')
    controller.abort()
    await Promise.all([tailing, watching])
    await b.close()
    dir.remove()
    expect(offsets).toEqual([0, 1, 2, 3])
    expect(watched.length).toBeGreaterThan(watchedBefore)
  })
})
