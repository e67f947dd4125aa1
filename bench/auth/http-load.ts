/**
 * HTTP load of the auth benchmarks, run in its own process: `node http-load.js '<json params>'`. A fixed
 * number of requests with autocannon: store GET or PUT of 64-byte values under `cache/` (the backend
 * role's prefix), or a push of one message to the queue `jobs-bench`, with `Authorization: Bearer` when
 * a token is given. The run is timed here (autocannon's duration is in whole seconds). Prints one JSON
 * line with the result.
 */
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { KEY_PREFIX, QUEUE } from './authfile.js'

export interface AuthHttpParams {
  url: string
  mode: 'get' | 'put' | 'push'
  /** Bearer token; none for the broker without auth file. */
  token?: string
  /** Keys the store modes rotate over (preloaded for `get`). */
  keys: number
  connections: number
  requests: number
  timeoutSeconds: number
}

export interface AuthHttpResult {
  /** 2xx answers per second. */
  rate: number
  ok: number
  /** Answers that were not 2xx, errors and timeouts. */
  errors: number
  /** The status of the first non-2xx answer, if any (a 401/403 means the benchmark's file is wrong). */
  firstBadStatus?: number
  p50Ms: number
  p99Ms: number
}

interface RequestParams { method: string, path?: string, headers?: Record<string, string>, body?: string }
interface CannonRequest extends RequestParams { setupRequest?: (request: RequestParams) => RequestParams }
interface AutocannonResult {
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  latency: { p50: number, p99: number }
}
interface CannonInstance { on: (event: 'response', listener: (client: unknown, statusCode: number) => void) => void }
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => CannonInstance

const VALUE = 'v'.repeat(64)
const PUSH_BODY = JSON.stringify({ payload: { n: 1, t: 0, job: 'resize', size: 1024 } })

function request (p: AuthHttpParams): CannonRequest {
  let n = 0
  const nextKey = (): string => `${KEY_PREFIX}${(n++ * 7919) % p.keys}`
  switch (p.mode) {
    case 'get':
      return { method: 'GET', setupRequest: req => ({ ...req, path: `/v1/store/keys/${nextKey()}` }) }
    case 'put':
      return { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: VALUE, setupRequest: req => ({ ...req, path: `/v1/store/keys/${nextKey()}` }) }
    case 'push':
      return { method: 'POST', path: `/v1/queues/${QUEUE}/messages`, headers: { 'content-type': 'application/json' }, body: PUSH_BODY }
  }
}

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2] ?? '') as AuthHttpParams
  setTimeout(() => {
    process.stderr.write('auth http-load: hard timeout\n')
    process.exit(3)
  }, (p.timeoutSeconds + 20) * 1000).unref()
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
  const started = performance.now()
  let firstBadStatus: number | undefined
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon({
      url: p.url,
      // headers shared by every request; a request's own headers (content-type) are added to them
      headers: p.token === undefined ? {} : { authorization: `Bearer ${p.token}` },
      connections: p.connections,
      amount: p.requests,
      duration: p.timeoutSeconds,
      requests: [request(p)],
      // autocannon ends a run only on its next sampling tick (1 s by default)
      sampleInt: 10
    }, (err, res) => { err !== null ? reject(err) : resolve(res) })
    instance.on('response', (_client, statusCode) => {
      if ((statusCode < 200 || statusCode > 299) && firstBadStatus === undefined) firstBadStatus = statusCode
    })
  })
  const seconds = (performance.now() - started) / 1000
  const ok = result['2xx']
  const out: AuthHttpResult = {
    rate: ok / seconds,
    ok,
    errors: result.errors + result.timeouts + result.non2xx,
    ...(firstBadStatus === undefined ? {} : { firstBadStatus }),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`auth http-load: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
