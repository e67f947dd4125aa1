/**
 * autocannon against one store route, in its own process. Keys rotate over `keys` names so the server
 * does real lookups. Prints one JSON line with requests/s, latency and status counts.
 * Usage: http-load.js <baseUrl> <get|put|mget|mset> <keys> <seconds> <connections>
 */
import { createRequire } from 'node:module'

/** The parts of autocannon's API this script uses (autocannon ships no typings). */
interface RequestParams { method: string, path?: string, headers?: Record<string, string>, body?: string }
interface CannonRequest extends RequestParams { setupRequest?: (request: RequestParams) => RequestParams }
interface AutocannonResult {
  requests: { average: number, total: number }
  latency: { p50: number, p99: number }
  '2xx': number
  non2xx: number
  errors: number
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => unknown
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

const [baseUrl, mode, keysArg, secondsArg, connectionsArg] = process.argv.slice(2)
const keys = Number(keysArg)
const seconds = Number(secondsArg)
const connections = Number(connectionsArg)
const BATCH = 100
const value = 'v'.repeat(64)

let n = 0
const nextKey = (): string => `bench/k${(n++ * 7919) % keys}`

function request (): CannonRequest {
  switch (mode) {
    case 'get':
      return { method: 'GET', setupRequest: req => ({ ...req, path: `/v1/store/keys/${nextKey()}` }) }
    case 'put':
      return { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: value, setupRequest: req => ({ ...req, path: `/v1/store/keys/${nextKey()}` }) }
    case 'mget':
      return {
        method: 'POST',
        path: '/v1/store/mget',
        headers: { 'content-type': 'application/json' },
        setupRequest: req => ({ ...req, body: JSON.stringify({ keys: Array.from({ length: BATCH }, nextKey) }) })
      }
    case 'mset':
      return {
        method: 'POST',
        path: '/v1/store/mset',
        headers: { 'content-type': 'application/json' },
        setupRequest: req => ({ ...req, body: JSON.stringify({ entries: Array.from({ length: BATCH }, () => ({ key: nextKey(), value, encoding: 'utf8' })) }) })
      }
    default:
      throw new Error(`unknown mode ${mode}`)
  }
}

async function main (): Promise<void> {
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon({ url: baseUrl, connections, duration: seconds, requests: [request()] }, (err, res) => { err !== null ? reject(err) : resolve(res) })
  })
  process.stdout.write(JSON.stringify({
    rps: result.requests.average,
    total: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    keysPerRequest: mode === 'mget' || mode === 'mset' ? BATCH : 1
  }) + '\n')
}

void main()
