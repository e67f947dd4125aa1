/**
 * Load through tetra/client, run in its own process: `node loadgen.js '<json params>'`. Modes:
 *  - worker: `workers` queue.process() workers (concurrency `concurrency`, receive batches of `batch`)
 *            handle `count` messages of a filled queue with a handler that does nothing; the rate of acks
 *  - append: `connections` loops of stream.appendMany() batches of `batch` x `payloadBytes` for `durationMs`
 * The raw-HTTP counterparts are bench/queue/loadgen.ts (drain) and bench/stream/loadgen.ts (append).
 * With a warm-up, an untimed first run (another queue, another stream) warms this process's JIT up.
 * Prints one JSON line with the result.
 */
import { performance } from 'node:perf_hooks'
import { Tetra } from '../../src/client/node.js'
import { latencySummary } from '../lib/stats.js'

export type ClientLoadParams =
  | { mode: 'worker', url: string, queue: string, count: number, batch: number, workers: number, concurrency: number, timeoutSeconds: number, warmUp?: { queue: string, count: number } }
  | { mode: 'append', url: string, stream: string, connections: number, batch: number, payloadBytes: number, durationMs: number, warmUpMs?: number }

export interface ClientLoadResult { rate: number, done: number, seconds: number, errors: number, duplicates?: number, p50Ms?: number, p99Ms?: number }

async function worker (p: Extract<ClientLoadParams, { mode: 'worker' }>): Promise<ClientLoadResult> {
  if (p.warmUp !== undefined) await worker({ ...p, ...p.warmUp, warmUp: undefined })
  const tetra = new Tetra({ url: p.url })
  const queue = tetra.queue(p.queue)
  const seen = new Set<number>()
  let duplicates = 0
  let errors = 0
  let finished: () => void = () => {}
  const done = new Promise<void>(resolve => { finished = resolve })
  const started = performance.now()
  const workers = Array.from({ length: p.workers }, () => queue.process<{ n: number }>(payload => {
    if (seen.has(payload.n)) duplicates++
    seen.add(payload.n)
  }, { concurrency: p.concurrency, batch: p.batch, wait: 1, onError: () => { errors++ } }))
  const timer = setInterval(() => {
    const acked = workers.reduce((sum, w) => sum + w.completed, 0)
    if (acked >= p.count || performance.now() - started > p.timeoutSeconds * 1000) finished()
  }, 5)
  await done
  clearInterval(timer)
  await Promise.all(workers.map(async w => { await w.close() }))
  const seconds = (performance.now() - started) / 1000
  const acked = workers.reduce((sum, w) => sum + w.completed, 0)
  return { rate: acked / seconds, done: acked, seconds, errors, duplicates }
}

async function append (p: Extract<ClientLoadParams, { mode: 'append' }>): Promise<ClientLoadResult> {
  if (p.warmUpMs !== undefined) await append({ ...p, stream: `${p.stream}-warm`, durationMs: p.warmUpMs, warmUpMs: undefined })
  const tetra = new Tetra({ url: p.url })
  const stream = tetra.stream(p.stream)
  const payload = 'x'.repeat(Math.max(0, p.payloadBytes - 2))
  const messages = Array.from({ length: p.batch }, () => ({ payload }))
  let done = 0
  let errors = 0
  const latencies: number[] = []
  const start = performance.now()
  const end = start + p.durationMs
  await Promise.all(Array.from({ length: p.connections }, async () => {
    for (let i = 0; i < 10_000_000 && performance.now() < end; i++) {
      const t0 = performance.now()
      try {
        // awaited before the sum: `done += await ...` would read `done` before the await and lose the
        // other loops' additions
        const offsets = await stream.appendMany(messages)
        done += offsets.length
      } catch { errors++ }
      latencies.push(performance.now() - t0)
    }
  }))
  const seconds = (performance.now() - start) / 1000
  return { rate: done / seconds, done, seconds, errors, ...latencySummary(latencies) }
}

const params = JSON.parse(process.argv[2]) as ClientLoadParams
const result = params.mode === 'worker' ? await worker(params) : await append(params)
process.stdout.write(JSON.stringify(result) + '\n')
