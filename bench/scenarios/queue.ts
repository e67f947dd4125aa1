import { join } from 'node:path'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'
import { ROOT, peakRssMb, rssMb, runNodeScript, startListening, startTetra, type RunningBroker } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { QueueLoadParams, QueueLoadResult } from '../queue/loadgen.js'
import type { RequestsParams, RequestsResult } from '../queue/requests.js'

/**
 * Queue benchmarks. Tetra (the built dist/, fsync `interval`) and, for the per-message rows, a bare
 * fastify with the same routes run in their own processes; load generators run in another process.
 */

const GROUP = 'queue'
const HOST = '127.0.0.1'
const script = (name: string): string => join(ROOT, `dist/bench/queue/${name}.js`)

async function load (params: QueueLoadParams): Promise<QueueLoadResult> {
  return await runNodeScript<QueueLoadResult>(script('loadgen'), [JSON.stringify(params)], { tsx: false })
}

async function requests (params: RequestsParams): Promise<RequestsResult> {
  return await runNodeScript<RequestsResult>(script('requests'), [JSON.stringify(params)], { tsx: false })
}

async function tetra (): Promise<RunningBroker & { url: string }> {
  // the listening line is logged at info level
  const broker = await startTetra(['--log-level', 'info', '--fsync', 'interval'])
  return { ...broker, url: `http://${HOST}:${broker.httpPort}` }
}

async function bareServer (name: 'bare-fastify' | 'bare-queue'): Promise<{ url: string, stop: () => Promise<void> }> {
  const bare = await startListening<{ httpPort: number }>(script(name))
  return { url: `http://${HOST}:${bare.info.httpPort}`, stop: bare.stop }
}
const bareFastify = async (): Promise<{ url: string, stop: () => Promise<void> }> => await bareServer('bare-fastify')
const bareQueue = async (): Promise<{ url: string, stop: () => Promise<void> }> => await bareServer('bare-queue')

const fmt = (n: number): string => n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)

/**
 * Warm-up before a timed run, on a queue of its own: a broker runs for days, and the first tens of
 * thousands of requests of a fresh process pay for V8 compiling the hot code (about a second of CPU on
 * the compiler threads here), which a short timed run would otherwise count as the broker's cost.
 */
const WARM_QUEUE = 'warm-up'
async function warmRequests (url: string, path: 'messages' | 'receive', body: unknown, connections: number, count: number): Promise<void> {
  await requests({ url: `${url}/v1/queues/${WARM_QUEUE}/${path}`, body, connections, requests: count, timeoutSeconds: 60 })
}

/** push -> receive -> ack with batches of 100 over 4 producer and 4 consumer connections. */
const pipeline: Scenario = {
  name: 'queue-pipeline',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const rounds = ctx.quick ? 1 : 5
    const total = ctx.quick ? 100_000 : 300_000
    // the warm-up runs in the load generator's process too, so that it is warm as well
    const params = { mode: 'pipeline', queue: 'bench', total, batch: 100, producers: 4, consumers: 4, timeoutSeconds: 120, warmUp: { queue: WARM_QUEUE, total: ctx.quick ? 30_000 : 50_000 } } as const
    const samples: Record<'tetra' | 'bare', Array<QueueLoadResult & { rss?: number }>> = { tetra: [], bare: [] }
    const ratios: number[] = []
    for (let r = 0; r < rounds; r++) {
      // the anchor, then Tetra, each warmed up the same way; the anchor is an in-memory FIFO behind the
      // same routes, so its rate is the most the HTTP exchanges allow here with this load generator
      const bare = await bareQueue()
      try {
        samples.bare.push(await load({ ...params, url: bare.url }))
      } finally {
        await bare.stop()
      }
      const broker = await tetra()
      try {
        const res = await load({ ...params, url: broker.url })
        samples.tetra.push({ ...res, rss: peakRssMb(broker.pid) })
        ratios.push(res.rate / samples.bare[r].rate)
        ctx.progress(`round ${r + 1}: ${fmt(res.rate)} msg/s, acked ${res.acked}/${res.pushed}, duplicates ${res.duplicates}, errors ${res.errors}; in-memory anchor ${fmt(samples.bare[r].rate)} msg/s`)
      } finally {
        await broker.stop()
      }
    }
    const middle = (xs: QueueLoadResult[]): QueueLoadResult & { rss?: number } => xs.slice().sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)]
    const mid = middle(samples.tetra)
    const anchor = middle(samples.bare)
    const scenario = 'push->receive->ack, batch 100, 4+4 conns'
    return [{
      group: GROUP,
      scenario,
      target: 'tetra',
      rate: mid.rate,
      unit: 'msg/s',
      ratios: { 'fastify + in-memory FIFO': median(ratios) },
      p50Ms: mid.p50Ms,
      p99Ms: mid.p99Ms,
      p999Ms: mid.p999Ms,
      delivered: mid.acked,
      published: mid.pushed,
      peakRssMb: mid.rss,
      note: `median of ${rounds}, each on a fresh broker after a warm-up pipeline; latency = push sent -> received; duplicates ${mid.duplicates}; target >= 100k msg/s`
    }, {
      group: GROUP,
      scenario,
      target: 'fastify + in-memory FIFO',
      rate: anchor.rate,
      unit: 'msg/s',
      p50Ms: anchor.p50Ms,
      p99Ms: anchor.p99Ms,
      delivered: anchor.acked,
      published: anchor.pushed,
      note: 'anchor: the same routes over an array, no storage, no leases (bench/queue/bare-queue.ts)'
    }]
  }
}

/** One message per request (push; receive of one) against a bare fastify with the same routes. */
const perMessage: Scenario = {
  name: 'queue-per-message',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const rounds = ctx.quick ? 1 : 5
    const count = ctx.quick ? 30_000 : 100_000
    // many clients, as a broker has them; the same for both targets
    const connections = 64
    const warmCount = ctx.quick ? 20_000 : 30_000
    const body = { payload: { n: 1, t: 0, job: 'resize', size: 1024 } }
    const rows: BenchRow[] = []
    const results: Record<'push' | 'receive', { tetra: RequestsResult[], bare: RequestsResult[], ratios: number[], rss: number[] }> = {
      push: { tetra: [], bare: [], ratios: [], rss: [] },
      receive: { tetra: [], bare: [], ratios: [], rss: [] }
    }
    for (let r = 0; r < rounds; r++) {
      const bare = await bareFastify()
      const broker = await tetra()
      try {
        // the same warm-up for both: pushes, then receives of what they left
        for (const base of [broker.url, bare.url]) {
          await warmRequests(base, 'messages', body, connections, warmCount)
          await warmRequests(base, 'receive', { max: 1 }, connections, warmCount)
        }
        for (const kind of ['push', 'receive'] as const) {
          const path = kind === 'push' ? '/v1/queues/bench/messages' : '/v1/queues/bench/receive'
          const reqBody = kind === 'push' ? body : { max: 1 }
          // receive needs messages waiting: the push round left `count` of them
          const order = r % 2 === 0 ? ['tetra', 'bare'] as const : ['bare', 'tetra'] as const
          const got: Partial<Record<'tetra' | 'bare', RequestsResult>> = {}
          for (const who of order) {
            const base = who === 'tetra' ? broker.url : bare.url
            got[who] = await requests({ url: `${base}${path}`, body: reqBody, connections, requests: count, timeoutSeconds: 60 })
          }
          const t = got.tetra!
          const b = got.bare!
          results[kind].tetra.push(t)
          results[kind].bare.push(b)
          results[kind].ratios.push(t.rate / b.rate)
          results[kind].rss.push(peakRssMb(broker.pid) ?? NaN)
          ctx.progress(`round ${r + 1} ${kind}: tetra ${fmt(t.rate)} req/s (${t.errors} errors), fastify ${fmt(b.rate)} req/s, ratio ${(t.rate / b.rate).toFixed(2)}`)
        }
      } finally {
        await broker.stop()
        await bare.stop()
      }
    }
    for (const kind of ['push', 'receive'] as const) {
      const res = results[kind]
      const t = res.tetra.slice().sort((a, c) => a.rate - c.rate)[Math.floor(res.tetra.length / 2)]
      const b = res.bare.slice().sort((a, c) => a.rate - c.rate)[Math.floor(res.bare.length / 2)]
      const scenario = kind === 'push' ? 'push, 1 message per request' : 'receive, 1 message per request'
      rows.push({
        group: GROUP,
        scenario,
        target: 'tetra',
        rate: t.rate,
        unit: 'req/s',
        ratios: { 'fastify (bare)': median(res.ratios) },
        p50Ms: t.p50Ms,
        p99Ms: t.p99Ms,
        delivered: t.ok,
        published: count,
        peakRssMb: median(res.rss),
        note: `${connections} conns; both warmed up with ${fmt(warmCount)} pushes and receives first; ratio = median of per-round ratios; target >= 0.8x`
      })
      rows.push({ group: GROUP, scenario, target: 'fastify (bare)', rate: b.rate, unit: 'req/s', p50Ms: b.p50Ms, p99Ms: b.p99Ms, delivered: b.ok, published: count })
    }
    return rows
  }
}

/** Receive + ack throughput with 10k and with 1M messages waiting (O(log n) per message), and RSS. */
const depth: Scenario = {
  name: 'queue-depth',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const measured = ctx.quick ? 50_000 : 100_000
    const depths = [10_000, 1_000_000]
    const rows: BenchRow[] = []
    const rates: number[] = []
    for (const d of depths) {
      const broker = await tetra()
      try {
        const fill = await load({ mode: 'fill', url: broker.url, queue: 'deep', count: d + measured, batch: 1000, connections: 4 })
        const rssFilled = rssMb(broker.pid)
        ctx.progress(`depth ${fmt(d)}: filled ${fmt(fill.pushed)} in ${fill.seconds.toFixed(1)} s (${fmt(fill.rate)} msg/s), RSS ${rssFilled?.toFixed(0)} MB`)
        const res = await load({ mode: 'drain', url: broker.url, queue: 'deep', count: measured, batch: 100, consumers: 4, timeoutSeconds: 120 })
        const rssAfter = rssMb(broker.pid)
        rates.push(res.rate)
        ctx.progress(`depth ${fmt(d)}: receive+ack ${fmt(res.rate)} msg/s, RSS ${rssAfter?.toFixed(0)} MB`)
        rows.push({
          group: GROUP,
          scenario: `receive+ack with ${fmt(d)} waiting, batch 100`,
          target: 'tetra',
          rate: res.rate,
          unit: 'msg/s',
          delivered: res.acked,
          published: measured,
          peakRssMb: peakRssMb(broker.pid),
          note: `RSS with ${fmt(d + measured)} ready: ${rssFilled?.toFixed(0)} MB; fill ${fmt(fill.rate)} msg/s (batch 1000); duplicates ${res.duplicates}`
        })
      } finally {
        await broker.stop()
      }
    }
    rows[rows.length - 1].ratios = { [`${fmt(depths[0])} waiting`]: rates[rates.length - 1] / rates[0] }
    return rows
  }
}

/** Latency from a push to the answer of a receiver that was long-polling the empty queue. */
const longPoll: Scenario = {
  name: 'queue-longpoll',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const samples = ctx.quick ? 500 : 2000
    const broker = await tetra()
    try {
      await load({ mode: 'fill', url: broker.url, queue: 'poll', count: 1, batch: 1, connections: 1 })
      await load({ mode: 'drain', url: broker.url, queue: 'poll', count: 1, batch: 1, consumers: 1, timeoutSeconds: 10 })
      const res = await load({ mode: 'longpoll', url: broker.url, queue: 'poll', samples })
      ctx.progress(`p50 ${res.p50Ms?.toFixed(2)} ms, p99 ${res.p99Ms?.toFixed(2)} ms over ${samples}`)
      return [{
        group: GROUP,
        scenario: 'long-poll receive latency after a push',
        target: 'tetra',
        p50Ms: res.p50Ms,
        p99Ms: res.p99Ms,
        p999Ms: res.p999Ms,
        delivered: res.acked,
        published: res.pushed,
        peakRssMb: peakRssMb(broker.pid),
        note: 'from sending the push to the waiting receiver\'s answer; target p99 <= 5 ms'
      }]
    } finally {
      await broker.stop()
    }
  }
}

export const queueScenarios: Scenario[] = [pipeline, perMessage, depth, longPoll]
