import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, tempDir, type TestBroker } from '../helpers.js'
import { httpsRequest, tlsFixtures } from '../fixtures/tls.js'
import { RateLimiter } from '../../protocols/rate-limit.js'
import { bearer, sse, within, writeAuthFile, type RuleSpec } from './http-auth-fixture.js'

/**
 * Issue 11, HTTP limits and browser policy: --http-rate-limit (429 + Retry-After, RFC 6585 4 and RFC 9110
 * 10.2.3), CORS (--cors-origin; Fetch standard preflight), HSTS only over TLS (RFC 6797 7.2), and a broker
 * without an auth file that works anonymously.
 */

const ALL: RuleSpec[] = [
  { resource: 'store', pattern: '*', actions: ['read', 'write'] },
  { resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] },
  { resource: 'system', pattern: '*', actions: ['metrics'] }
]

describe('--http-rate-limit', () => {
  const dir = tempDir('tetra-http-limits-')
  let broker: TestBroker
  let tokens: Record<string, string>

  beforeAll(async () => {
    ({ tokens } = await writeAuthFile(dir.dir, { tokens: [{ name: 'a', roles: ['all'] }, { name: 'b', roles: ['all'] }], roles: { all: ALL } }))
    broker = await startTestBroker({ authFile: `${dir.dir}/auth.json`, httpRateLimit: 5 })
  })
  afterAll(async () => {
    await broker?.stop()
    dir.remove()
  })

  it('past N requests per second a principal gets 429 problem+json with Retry-After in seconds; another principal does not', async () => {
    let refused: Response | undefined
    // a burst of 5, then 5 per second: 40 requests in a row cannot all pass (bounded loop)
    for (let i = 0; i < 40 && refused === undefined; i++) {
      const res = await fetch(`${broker.url}/v1/store/keys?prefix=x`, { headers: bearer(tokens.a) })
      if (res.status === 429) refused = res
      else expect(res.status).toBe(200)
    }
    expect(refused).toBeDefined()
    expect(refused!.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(refused!.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
    expect(await refused!.json()).toMatchObject({ status: 429, detail: expect.stringContaining('--http-rate-limit') })

    const other = await fetch(`${broker.url}/v1/store/keys?prefix=x`, { headers: bearer(tokens.b) })
    expect(other.status).toBe(200)
    // probes are not limited
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200)
    const metrics = await (await fetch(`${broker.url}/metrics`, { headers: bearer(tokens.b) })).text()
    expect(metrics).toMatch(/tetra_limit_refusals_total\{limit="http_rate_limit"\} [1-9]/)
  })

  it('token bucket: a burst of N, then N per second, Retry-After rounded up (unit, on a clock of its own)', () => {
    let now = 0
    const limiter = new RateLimiter(2, () => now)
    expect([limiter.take('p'), limiter.take('p'), limiter.take('p')]).toEqual([0, 0, 1])
    expect(limiter.take('q')).toBe(0)
    now += 499
    expect(limiter.take('p')).toBe(1)
    now += 1
    expect(limiter.take('p')).toBe(0)
    now += 10_000
    expect([limiter.take('p'), limiter.take('p'), limiter.take('p')]).toEqual([0, 0, 1])
    const slow = new RateLimiter(1, () => now)
    slow.take('s')
    expect(slow.take('s')).toBe(1)
  })
})

describe('--http-rate-limit without an auth file: per client address', () => {
  let broker: TestBroker
  beforeAll(async () => { broker = await startTestBroker({ httpRateLimit: 3 }) })
  afterAll(async () => { await broker?.stop() })

  it('429 with Retry-After', async () => {
    let status = 0
    for (let i = 0; i < 40 && status !== 429; i++) status = (await fetch(`${broker.url}/v1/store/keys?prefix=x`)).status
    expect(status).toBe(429)
  })
})

describe('CORS (--cors-origin)', () => {
  const dir = tempDir('tetra-http-cors-')
  let broker: TestBroker
  let any: TestBroker
  let none: TestBroker
  let tokens: Record<string, string>
  const app = 'https://app.example'

  beforeAll(async () => {
    ({ tokens } = await writeAuthFile(dir.dir, { tokens: [{ name: 'a', roles: ['all'] }], roles: { all: ALL } }))
    broker = await startTestBroker({ authFile: `${dir.dir}/auth.json`, corsOrigin: [app, 'http://localhost:3000'] })
    any = await startTestBroker({ corsOrigin: ['*'] })
    none = await startTestBroker()
  })
  afterAll(async () => {
    await broker?.stop()
    await any?.stop()
    await none?.stop()
    dir.remove()
  })

  const preflight = async (b: TestBroker, origin: string): Promise<Response> => await fetch(`${b.url}/v1/store/keys/a/b`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, content-type, if-match' }
  })

  it('a preflight from an allowed origin: 204 with the origin, methods, headers and max age (no credentials needed)', async () => {
    const res = await preflight(broker, app)
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe(app)
    expect(res.headers.get('access-control-allow-methods')).toMatch(/PUT/)
    for (const h of ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'Last-Event-ID']) expect(res.headers.get('access-control-allow-headers')).toContain(h)
    expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0)
    expect(res.headers.get('vary')).toMatch(/Origin/)
  })

  it('a preflight from another origin: 403 problem+json without CORS headers (the browser refuses the call)', async () => {
    for (const [b, origin] of [[broker, 'https://evil.example'], [none, app]] as const) {
      const res = await preflight(b, origin)
      expect(res.status).toBe(403)
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(res.headers.get('access-control-allow-origin')).toBeNull()
    }
  })

  it('answers to an allowed origin carry Allow-Origin and Expose-Headers (ETag, Retry-After, ...), a 401 too; another origin gets none', async () => {
    const put = await fetch(`${broker.url}/v1/store/keys/c`, { method: 'PUT', headers: { ...bearer(tokens.a), origin: app, 'content-type': 'text/plain' }, body: 'v' })
    expect(put.status).toBe(200)
    expect(put.headers.get('access-control-allow-origin')).toBe(app)
    const exposed = put.headers.get('access-control-expose-headers') ?? ''
    for (const h of ['ETag', 'Tetra-TTL', 'Tetra-Next', 'Link', 'Retry-After', 'WWW-Authenticate']) expect(exposed).toContain(h)

    const unauthenticated = await fetch(`${broker.url}/v1/store/keys/c`, { headers: { origin: app } })
    expect(unauthenticated.status).toBe(401)
    expect(unauthenticated.headers.get('access-control-allow-origin')).toBe(app)

    const stream = sse(`${broker.url}/v1/pubsub/subscribe?filter=a`, { ...bearer(tokens.a), origin: app })
    expect((await within(stream.response, 5000, 'the SSE answer')).headers.get('access-control-allow-origin')).toBe(app)
    stream.close()

    const foreign = await fetch(`${broker.url}/v1/store/keys/c`, { headers: { ...bearer(tokens.a), origin: 'https://evil.example' } })
    expect(foreign.status).toBe(200)
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('* allows any origin', async () => {
    const res = await preflight(any, 'https://whoever.example')
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const get = await fetch(`${any.url}/healthz`, { headers: { origin: 'https://whoever.example' } })
    expect(get.headers.get('access-control-allow-origin')).toBe('*')
  })

  it('an OPTIONS that is not a preflight: 204 with Allow', async () => {
    const res = await fetch(`${none.url}/v1/store/keys/a`, { method: 'OPTIONS' })
    expect(res.status).toBe(204)
    expect(res.headers.get('allow')).toMatch(/GET.*PUT.*DELETE/)
  })
})

describe('without an auth file', () => {
  let broker: TestBroker
  beforeAll(async () => { broker = await startTestBroker() })
  afterAll(async () => { await broker?.stop() })

  it('every route answers anonymously: whoami says open, SSE streams open without a ticket, tickets still work', async () => {
    const whoami = await fetch(`${broker.url}/v1/auth/whoami`)
    expect(await whoami.json()).toMatchObject({ name: null, kind: 'open' })
    expect((await fetch(`${broker.url}/metrics`)).status).toBe(200)
    expect((await fetch(`${broker.url}/openapi.json`)).status).toBe(200)
    expect((await fetch(`${broker.url}/`)).status).toBe(200)
    const put = await fetch(`${broker.url}/v1/store/keys/x`, { method: 'PUT', body: 'v' })
    expect(put.status).toBe(200)
    const stream = sse(`${broker.url}/v1/pubsub/subscribe?filter=a`)
    expect((await within(stream.response, 5000, 'the SSE answer')).status).toBe(200)
    stream.close()
    const ticket = await (await fetch(`${broker.url}/v1/auth/ticket`, { method: 'POST' })).json() as { ticket: string }
    const withTicket = sse(`${broker.url}/v1/store/watch?prefix=x&ticket=${ticket.ticket}`)
    expect((await within(withTicket.response, 5000, 'the SSE answer')).status).toBe(200)
    withTicket.close()
  })

  it('a body over --http-body-limit: 413, counted as http_body_limit', async () => {
    const res = await fetch(`${broker.url}/v1/store/mset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(broker.config.httpBodyLimit + 1) })
    expect(res.status).toBe(413)
    const metrics = await (await fetch(`${broker.url}/metrics`)).text()
    expect(metrics).toMatch(/tetra_limit_refusals_total\{limit="http_body_limit"\} [1-9]/)
  })
})

describe('HSTS over TLS only', () => {
  const tls = tlsFixtures()
  let broker: TestBroker
  let ca: string
  beforeAll(async () => {
    const server = tls.ca.server()
    ca = tls.ca.files.certPem
    broker = await startTestBroker({ tlsCert: server.cert, tlsKey: server.key, mqttsPort: 0 })
  })
  afterAll(async () => {
    await broker?.stop()
    tls.remove()
  })

  it('HTTPS answers carry Strict-Transport-Security', async () => {
    const res = await httpsRequest(`https://127.0.0.1:${broker.httpAddress.port}/healthz`, { ca })
    expect(res.status).toBe(200)
    expect(res.headers['strict-transport-security']).toMatch(/^max-age=\d+/)
    expect(res.headers['x-content-type-options']).toBe('nosniff')
  })
})
