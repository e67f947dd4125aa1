/**
 * Queue load generator, run in its own process: `node loadgen.js '<json params>'`. Modes:
 *  - fill:     push `count` messages in batches over `connections` connections
 *  - pipeline: `producers` connections push `total` messages in batches while `consumers` connections
 *              receive (long-poll) and ack them; end-to-end rate and push->receive latency. With
 *              `warmUp`, a first untimed pipeline on another queue warms up the server and this process
 *              alike (the load generator's own compiling would otherwise take cores from the server)
 *  - drain:    `consumers` connections receive + ack `count` messages from a filled queue
 *  - longpoll: one consumer long-polls an empty queue, a producer pushes one message once the consumer
 *              waits; latency from the push being sent to the consumer's answer, `samples` times
 * Prints one JSON line with the result.
 */
import { performance } from 'node:perf_hooks'
import { JsonConnection, parseUrl } from './http.js'
import { latencySummary } from '../lib/stats.js'

export type QueueLoadParams =
  | { mode: 'fill', url: string, queue: string, count: number, batch: number, connections: number }
  | { mode: 'pipeline', url: string, queue: string, total: number, batch: number, producers: number, consumers: number, timeoutSeconds: number, warmUp?: { queue: string, total: number } }
  | { mode: 'drain', url: string, queue: string, count: number, batch: number, consumers: number, timeoutSeconds: number }
  | { mode: 'longpoll', url: string, queue: string, samples: number }

export interface QueueLoadResult {
  /** Messages (or samples) per second. */
  rate: number
  pushed: number
  acked: number
  /** Messages received more than once (should be 0: nobody lets a lease run out here). */
  duplicates: number
  seconds: number
  errors: number
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
}

interface Received { messages: Array<{ receipt: string, payload: { n: number, t: number } }> }

const now = (): number => performance.timeOrigin + performance.now()

/**
 * The body of a push of `n` messages numbered from `from`, sent at `t`, written as text: the load
 * generator shares the cores with the broker, and this is the same JSON that JSON.stringify would give
 * for {messages: [{payload: {n, t, job, size}}, ...]} at a fraction of its cost.
 */
function pushBody (from: number, n: number, t: number): string {
  let body = '{"messages":['
  for (let i = 0; i < n; i++) body += `${i === 0 ? '' : ','}{"payload":{"n":${from + i},"t":${t},"job":"resize","size":1024}}`
  return body + ']}'
}

/** Creates the queue up front (settings left at their defaults) so receivers do not race its creation. */
async function createQueue (url: string, queue: string): Promise<void> {
  const { host, port } = parseUrl(url)
  const c = new JsonConnection(host, port)
  const res = await c.request('PUT', `/v1/queues/${queue}`, {})
  c.close()
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT /v1/queues/${queue}: ${res.status}`)
}

async function fill (p: Extract<QueueLoadParams, { mode: 'fill' }>): Promise<QueueLoadResult> {
  const { host, port } = parseUrl(p.url)
  let next = 0
  let pushed = 0
  let errors = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: p.connections }, async () => {
    const c = new JsonConnection(host, port)
    while (next < p.count) {
      const from = next
      const n = Math.min(p.batch, p.count - from)
      next += n
      const res = await c.requestText('POST', `/v1/queues/${p.queue}/messages`, pushBody(from, n, 0))
      if (res.status === 200) pushed += n
      else errors++
    }
    c.close()
  }))
  const seconds = (performance.now() - started) / 1000
  return { rate: pushed / seconds, pushed, acked: 0, duplicates: 0, seconds, errors }
}

async function pipeline (p: Extract<QueueLoadParams, { mode: 'pipeline' }>): Promise<QueueLoadResult> {
  const { host, port } = parseUrl(p.url)
  let next = 0
  let pushed = 0
  let acked = 0
  let errors = 0
  let duplicates = 0
  const seen = new Uint8Array(p.total)
  const latencies: number[] = []
  const started = performance.now()
  const deadline = started + p.timeoutSeconds * 1000
  let lastAck = started
  let producersDone = false
  const producers = Array.from({ length: p.producers }, async () => {
    const c = new JsonConnection(host, port)
    while (next < p.total && performance.now() < deadline) {
      const from = next
      const n = Math.min(p.batch, p.total - from)
      next += n
      const res = await c.requestText('POST', `/v1/queues/${p.queue}/messages`, pushBody(from, n, now()))
      if (res.status === 200) pushed += n
      else errors++
    }
    c.close()
  })
  const consumers = Array.from({ length: p.consumers }, async () => {
    const c = new JsonConnection(host, port)
    while (performance.now() < deadline && !(producersDone && acked >= pushed)) {
      const res = await c.request<Received>('POST', `/v1/queues/${p.queue}/receive`, { max: p.batch, wait: 1 })
      if (res.status !== 200) {
        errors++
        process.stderr.write(`receive ${res.status} ${JSON.stringify(res.body).slice(0, 300)}\n`)
        continue
      }
      const ms = res.body.messages
      if (ms.length === 0) continue
      const t = now()
      for (const m of ms) {
        if (seen[m.payload.n] === 1) duplicates++
        seen[m.payload.n] = 1
        latencies.push(t - m.payload.t)
      }
      const ack = await c.request<{ results: unknown[] }>('POST', `/v1/queues/${p.queue}/ack`, { receipts: ms.map(m => m.receipt) })
      if (ack.status === 200) {
        acked += ms.length
        lastAck = performance.now()
      } else {
        errors++
        process.stderr.write(`ack ${ack.status} ${JSON.stringify(ack.body).slice(0, 300)}\n`)
      }
    }
    c.close()
  })
  void Promise.all(producers).then(() => { producersDone = true })
  await Promise.all([...producers, ...consumers])
  const seconds = (lastAck - started) / 1000
  return { rate: acked / seconds, pushed, acked, duplicates, seconds, errors, ...latencySummary(latencies) }
}

async function drain (p: Extract<QueueLoadParams, { mode: 'drain' }>): Promise<QueueLoadResult> {
  const { host, port } = parseUrl(p.url)
  let acked = 0
  let errors = 0
  let duplicates = 0
  const seen = new Set<number>()
  const started = performance.now()
  const deadline = started + p.timeoutSeconds * 1000
  await Promise.all(Array.from({ length: p.consumers }, async () => {
    const c = new JsonConnection(host, port)
    while (acked < p.count && performance.now() < deadline) {
      const res = await c.request<Received>('POST', `/v1/queues/${p.queue}/receive`, { max: Math.min(p.batch, p.count - acked) })
      if (res.status !== 200) { errors++; continue }
      const ms = res.body.messages
      if (ms.length === 0) break
      for (const m of ms) {
        if (seen.has(m.payload.n)) duplicates++
        seen.add(m.payload.n)
      }
      const ack = await c.request('POST', `/v1/queues/${p.queue}/ack`, { receipts: ms.map(m => m.receipt) })
      if (ack.status === 200) acked += ms.length
      else errors++
    }
    c.close()
  }))
  const seconds = (performance.now() - started) / 1000
  return { rate: acked / seconds, pushed: 0, acked, duplicates, seconds, errors }
}

async function longpoll (p: Extract<QueueLoadParams, { mode: 'longpoll' }>): Promise<QueueLoadResult> {
  const { host, port } = parseUrl(p.url)
  const consumer = new JsonConnection(host, port)
  const producer = new JsonConnection(host, port)
  const latencies: number[] = []
  let errors = 0
  const started = performance.now()
  for (let i = 0; i < p.samples; i++) {
    const waiting = consumer.request<Received>('POST', `/v1/queues/${p.queue}/receive`, { wait: 20 })
    // push only once the receiver is parked (bounded polling of the queue's waiting count)
    for (let tries = 0; tries < 2000; tries++) {
      const info = await producer.request<{ stats: { waiting: number } }>('GET', `/v1/queues/${p.queue}`)
      if (info.body.stats.waiting >= 1) break
    }
    const t0 = performance.now()
    const push = producer.request('POST', `/v1/queues/${p.queue}/messages`, { payload: { n: i, t: 0 } })
    const got = await waiting
    latencies.push(performance.now() - t0)
    await push
    const ms = got.body.messages
    if (ms.length !== 1) { errors++; continue }
    await consumer.request('POST', `/v1/queues/${p.queue}/ack`, { receipts: [ms[0].receipt] })
  }
  consumer.close()
  producer.close()
  const seconds = (performance.now() - started) / 1000
  return { rate: p.samples / seconds, pushed: p.samples, acked: latencies.length - errors, duplicates: 0, seconds, errors, ...latencySummary(latencies) }
}

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2] ?? '') as QueueLoadParams
  await createQueue(p.url, p.queue)
  setTimeout(() => {
    process.stderr.write('queue loadgen: hard timeout\n')
    process.exit(3)
  }, 600_000).unref()
  let result: QueueLoadResult
  switch (p.mode) {
    case 'fill': result = await fill(p); break
    case 'pipeline':
      if (p.warmUp !== undefined) {
        await createQueue(p.url, p.warmUp.queue)
        await pipeline({ ...p, queue: p.warmUp.queue, total: p.warmUp.total })
      }
      result = await pipeline(p)
      break
    case 'drain': result = await drain(p); break
    case 'longpoll': result = await longpoll(p); break
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`queue loadgen: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
