import { join } from 'node:path'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'
import { ROOT, runNodeScript, startTetra, type RunningBroker } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { QueueLoadParams, QueueLoadResult } from '../queue/loadgen.js'
import type { StreamLoadParams, StreamLoadResult } from '../stream/loadgen.js'
import type { ClientLoadParams, ClientLoadResult } from '../client/loadgen.js'

/**
 * tetra/client against the raw HTTP load generators of bench/queue and bench/stream, on the same broker in
 * the same run, rounds alternating which goes first: what the client adds to the wire (target >= 0.9x).
 */

const GROUP = 'client'
const HOST = '127.0.0.1'
const run = async <T> (dir: string, params: unknown): Promise<T> => await runNodeScript<T>(join(ROOT, `dist/bench/${dir}/loadgen.js`), [JSON.stringify(params)], { tsx: false })
const raw = async (params: QueueLoadParams): Promise<QueueLoadResult> => await run<QueueLoadResult>('queue', params)
const rawStream = async (params: StreamLoadParams): Promise<StreamLoadResult> => await run<StreamLoadResult>('stream', params)
const client = async (params: ClientLoadParams): Promise<ClientLoadResult> => await run<ClientLoadResult>('client', params)

async function tetra (): Promise<RunningBroker & { url: string }> {
  const broker = await startTetra(['--log-level', 'info', '--fsync', 'interval'])
  return { ...broker, url: `http://${HOST}:${broker.httpPort}` }
}

const fmt = (n: number): string => n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)

/** The rates of the rounds so far: the raw load generator's, the client's, and their ratio per round. */
interface Rounds { raw: number[], client: number[], ratios: number[] }

/**
 * One round: both measures, raw first in even rounds and the client first in odd ones (so neither always
 * runs on a warmer or a busier machine), their rates added to `rounds`; returns the two rates.
 */
async function measureRound (r: number, measure: Record<'raw' | 'client', () => Promise<number>>, rounds: Rounds): Promise<Record<'raw' | 'client', number>> {
  const order = r % 2 === 0 ? ['raw', 'client'] as const : ['client', 'raw'] as const
  const got = { raw: 0, client: 0 }
  for (const who of order) got[who] = await measure[who]()
  rounds.raw.push(got.raw)
  rounds.client.push(got.client)
  rounds.ratios.push(got.client / got.raw)
  return got
}

/** A queue drained by 4 consumers receiving batches of 100 and acking them: raw requests vs queue.process(). */
const worker: Scenario = {
  name: 'client-queue-worker',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const rounds = ctx.quick ? 2 : 4
    const count = ctx.quick ? 50_000 : 150_000
    const measured: Rounds = { raw: [], client: [], ratios: [] }
    let duplicates = 0
    for (let r = 0; r < rounds; r++) {
      const broker = await tetra()
      try {
        // both drain a queue of their own, filled up front; a warm-up drain first for the broker's JIT
        for (const q of ['warm', 'client-warm', 'raw', 'client']) await raw({ mode: 'fill', url: broker.url, queue: q, count, batch: 1000, connections: 4 })
        await raw({ mode: 'drain', url: broker.url, queue: 'warm', count, batch: 100, consumers: 4, timeoutSeconds: 120 })
        const measure = {
          raw: async () => (await raw({ mode: 'drain', url: broker.url, queue: 'raw', count, batch: 100, consumers: 4, timeoutSeconds: 120 })).rate,
          client: async () => {
            const res = await client({ mode: 'worker', url: broker.url, queue: 'client', count, batch: 100, workers: 4, concurrency: 100, timeoutSeconds: 120, warmUp: { queue: 'client-warm', count } })
            duplicates += res.duplicates ?? 0
            return res.rate
          }
        }
        const got = await measureRound(r, measure, measured)
        ctx.progress(`round ${r + 1}: client worker ${fmt(got.client)} msg/s, raw HTTP ${fmt(got.raw)} msg/s, ratio ${(got.client / got.raw).toFixed(2)}`)
      } finally {
        await broker.stop()
      }
    }
    const scenario = `queue drained by 4 consumers, batches of 100 (${fmt(count)} messages)`
    return [
      { group: GROUP, scenario, target: 'tetra/client queue.process()', rate: median(measured.client), unit: 'msg/s', ratios: { 'raw HTTP loadgen': median(measured.ratios) }, delivered: count, note: `median of ${rounds} rounds on fresh brokers; 4 workers x concurrency 100, after an untimed warm-up drain in the same process; duplicates ${duplicates}; target >= 0.9x` },
      { group: GROUP, scenario, target: 'raw HTTP loadgen', rate: median(measured.raw), unit: 'msg/s', delivered: count, note: 'bench/queue/loadgen.ts drain: receive 100, ack 100, per connection' }
    ]
  }
}

/** Stream appends of 100 x 64 B over 4 connections: raw requests vs stream.appendMany(). */
const append: Scenario = {
  name: 'client-stream-append',
  group: GROUP,
  async run (ctx: BenchContext): Promise<BenchRow[]> {
    const rounds = ctx.quick ? 2 : 4
    const durationMs = ctx.quick ? 3000 : 8000
    const measured: Rounds = { raw: [], client: [], ratios: [] }
    const broker = await tetra()
    try {
      await rawStream({ mode: 'append', base: broker.url, stream: 'warm', connections: 4, batch: 100, payloadBytes: 64, durationMs: 2000 })
      for (let r = 0; r < rounds; r++) {
        const measure = {
          raw: async () => (await rawStream({ mode: 'append', base: broker.url, stream: `raw${r}`, connections: 4, batch: 100, payloadBytes: 64, durationMs })).rate,
          client: async () => (await client({ mode: 'append', url: broker.url, stream: `client${r}`, connections: 4, batch: 100, payloadBytes: 64, durationMs, warmUpMs: 2000 })).rate
        }
        const got = await measureRound(r, measure, measured)
        ctx.progress(`round ${r + 1}: client append ${fmt(got.client)} msg/s, raw HTTP ${fmt(got.raw)} msg/s, ratio ${(got.client / got.raw).toFixed(2)}`)
      }
    } finally {
      await broker.stop()
    }
    const scenario = 'stream append, batches of 100 x 64 B, 4 connections'
    return [
      { group: GROUP, scenario, target: 'tetra/client appendMany()', rate: median(measured.client), unit: 'msg/s', ratios: { 'raw HTTP loadgen': median(measured.ratios) }, note: `median of ${rounds} alternating rounds on one broker; each generator warmed up 2 s first (untimed); target >= 0.9x` },
      { group: GROUP, scenario, target: 'raw HTTP loadgen', rate: median(measured.raw), unit: 'msg/s', note: 'bench/stream/loadgen.ts append' }
    ]
  }
}

export const clientScenarios: Scenario[] = [worker, append]
