/**
 * Per-message request load, run in its own process: `node requests.js '<json params>'`. Sends a fixed
 * number of identical JSON POSTs with autocannon and prints one JSON line with the result.
 */
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

export interface RequestsParams {
  url: string
  body: unknown
  connections: number
  requests: number
  timeoutSeconds: number
}

export interface RequestsResult {
  /** 2xx answers per second. */
  rate: number
  ok: number
  errors: number
  p50Ms: number
  p99Ms: number
}

interface AutocannonResult {
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  latency: { p50: number, p99: number }
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => unknown

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2] ?? '') as RequestsParams
  setTimeout(() => {
    process.stderr.write('requests: hard timeout\n')
    process.exit(3)
  }, (p.timeoutSeconds + 20) * 1000).unref()
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
  // autocannon's own duration is in whole seconds: too coarse for a rate, so the run is timed here
  const started = performance.now()
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon({
      url: p.url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(p.body),
      connections: p.connections,
      amount: p.requests,
      duration: p.timeoutSeconds,
      // autocannon ends a run (and calls back) only on its next sampling tick, 1 s by default: the rate of
      // a run of a few seconds would be rounded to requests / whole seconds
      sampleInt: 10
    }, (err, res) => { err !== null ? reject(err) : resolve(res) })
  })
  const seconds = (performance.now() - started) / 1000
  const ok = result['2xx']
  const out: RequestsResult = { rate: ok / seconds, ok, errors: result.errors + result.timeouts + result.non2xx, p50Ms: result.latency.p50, p99Ms: result.latency.p99 }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`requests: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
