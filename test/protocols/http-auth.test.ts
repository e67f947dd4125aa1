import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, tempDir, type TestBroker } from '../helpers.js'
import { basic, bearer, sse, writeAuthFile, type WrittenAuthFile } from './http-auth-fixture.js'

/**
 * Issue 11, "Tests that must exist": for every operation of the OpenAPI document, no credentials -> 401
 * (RFC 9110 11.6.1: with WWW-Authenticate; RFC 9457 problem+json), a principal whose ACL denies -> 403,
 * one that allows -> 2xx. The operations come from /openapi.json itself, so a new route without a
 * declaration or without an example request here fails this test.
 */

interface Req {
  path: string
  body?: unknown
  /** A raw body with its content type (store PUT) instead of JSON. */
  raw?: { type: string, data: string }
  sse?: boolean
  /** List routes: the item the denied principal must not see. */
  hidden?: { array: string, field: string, value: string }
}

interface Op { method: string, path: string, acl: Record<string, unknown>, security?: unknown[], responses: Record<string, unknown> }

let broker: TestBroker
let auth: WrittenAuthFile
const dir = tempDir('tetra-http-auth-')
let adminToken = ''
let nobodyToken = ''

async function call (method: string, req: Req, headers: Record<string, string>): Promise<Response> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (req.raw !== undefined) {
    init.body = req.raw.data
    ;(init.headers as Record<string, string>)['content-type'] = req.raw.type
  } else if (req.body !== undefined) {
    init.body = JSON.stringify(req.body)
    ;(init.headers as Record<string, string>)['content-type'] = 'application/json'
  }
  if (req.sse === true) {
    // the status and headers of a stream, then it is closed; a refusal is read like any answer
    const controller = new AbortController()
    const res = await fetch(broker.url + req.path, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
    if (res.status === 200) controller.abort()
    return res
  }
  return await fetch(broker.url + req.path, init)
}

/** A setup step as the allowed principal; it must succeed. */
async function admin (method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await call(method, { path, body }, bearer(adminToken))
  const text = await res.text()
  if (res.status >= 300) throw new Error(`setup ${method} ${path}: ${res.status} ${text}`)
  return text === '' ? undefined : JSON.parse(text)
}

async function receipt (queue: string): Promise<string> {
  await admin('POST', `/v1/queues/${queue}/messages`, { payload: 1 })
  const got = await admin('POST', `/v1/queues/${queue}/receive`, {}) as { messages: Array<{ receipt: string }> }
  return got.messages[0].receipt
}

async function streamWithMessage (name: string, group?: string): Promise<void> {
  await admin('POST', `/v1/streams/${name}/messages`, { payload: 1 })
  if (group !== undefined) await admin('PUT', `/v1/streams/${name}/groups/${group}`, {})
}

/** One valid request per operation (METHOD + the document's path), with what it needs set up first. */
const EXAMPLES: Record<string, () => Promise<Req>> = {
  'GET /healthz': async () => ({ path: '/healthz' }),
  'GET /readyz': async () => ({ path: '/readyz' }),
  'GET /metrics': async () => ({ path: '/metrics' }),
  'POST /v1/pubsub/publish': async () => ({ path: '/v1/pubsub/publish', body: { topic: 't/1', payload: 1 } }),
  'GET /v1/pubsub/subscribe': async () => ({ path: '/v1/pubsub/subscribe?filter=t%2F%23', sse: true }),
  'GET /v1/pubsub/retained': async () => ({ path: '/v1/pubsub/retained?filter=t%2F%23' }),

  'PUT /v1/queues/{name}': async () => ({ path: '/v1/queues/q-put', body: {} }),
  'GET /v1/queues/{name}': async () => { await admin('PUT', '/v1/queues/q-get', {}); return { path: '/v1/queues/q-get' } },
  'DELETE /v1/queues/{name}': async () => { await admin('PUT', '/v1/queues/q-del', {}); return { path: '/v1/queues/q-del' } },
  'GET /v1/queues': async () => {
    await admin('PUT', '/v1/queues/q-list', {})
    return { path: '/v1/queues', hidden: { array: 'queues', field: 'name', value: 'q-list' } }
  },
  'DELETE /v1/queues/{name}/messages': async () => { await admin('PUT', '/v1/queues/q-purge', {}); return { path: '/v1/queues/q-purge/messages' } },
  'POST /v1/queues/{name}/messages': async () => ({ path: '/v1/queues/q-push/messages', body: { payload: 1 } }),
  'POST /v1/queues/{name}/receive': async () => { await admin('POST', '/v1/queues/q-recv/messages', { payload: 1 }); return { path: '/v1/queues/q-recv/receive', body: {} } },
  'POST /v1/queues/{name}/ack': async () => ({ path: '/v1/queues/q-ack/ack', body: { receipts: [await receipt('q-ack')] } }),
  'POST /v1/queues/{name}/nack': async () => ({ path: '/v1/queues/q-nack/nack', body: { receipts: [await receipt('q-nack')] } }),
  'POST /v1/queues/{name}/extend': async () => ({ path: '/v1/queues/q-ext/extend', body: { receipts: [await receipt('q-ext')], visibilityTimeout: 30 } }),
  'GET /v1/queues/{name}/dead': async () => { await admin('PUT', '/v1/queues/q-dead', {}); return { path: '/v1/queues/q-dead/dead' } },
  'DELETE /v1/queues/{name}/dead': async () => { await admin('PUT', '/v1/queues/q-deadp', {}); return { path: '/v1/queues/q-deadp/dead' } },
  'POST /v1/queues/{name}/dead/redrive': async () => { await admin('PUT', '/v1/queues/q-redrive', {}); return { path: '/v1/queues/q-redrive/dead/redrive', body: {} } },

  'GET /v1/store/keys/{key}': async () => { await admin('POST', '/v1/store/mset', { entries: [{ key: 'k/get', value: 1 }] }); return { path: '/v1/store/keys/k/get' } },
  'DELETE /v1/store/keys/{key}': async () => { await admin('POST', '/v1/store/mset', { entries: [{ key: 'k/del', value: 1 }] }); return { path: '/v1/store/keys/k/del' } },
  'POST /v1/store/keys/{key}/incr': async () => ({ path: '/v1/store/keys/k/n/incr', body: {} }),
  'POST /v1/store/keys/{key}/ttl': async () => { await admin('POST', '/v1/store/mset', { entries: [{ key: 'k/ttl', value: 1 }] }); return { path: '/v1/store/keys/k/ttl/ttl', body: { ttl: 60 } } },
  'PUT /v1/store/keys/{key}': async () => ({ path: '/v1/store/keys/k/put', raw: { type: 'text/plain', data: 'x' } }),
  'GET /v1/store/keys': async () => ({ path: '/v1/store/keys?prefix=k%2F' }),
  'POST /v1/store/mget': async () => ({ path: '/v1/store/mget', body: { keys: ['k/get'] } }),
  'POST /v1/store/mset': async () => ({ path: '/v1/store/mset', body: { entries: [{ key: 'k/m', value: 1 }] } }),
  'GET /v1/store/watch': async () => ({ path: '/v1/store/watch?prefix=k%2F', sse: true }),
  'PUT /v1/store/indexes/{name}': async () => ({ path: '/v1/store/indexes/ix-put', body: { prefix: 'k/', field: 'a' } }),
  'GET /v1/store/indexes/{name}': async () => { await admin('PUT', '/v1/store/indexes/ix-get', { prefix: 'k/', field: 'a' }); return { path: '/v1/store/indexes/ix-get' } },
  'DELETE /v1/store/indexes/{name}': async () => { await admin('PUT', '/v1/store/indexes/ix-del', { prefix: 'k/', field: 'a' }); return { path: '/v1/store/indexes/ix-del' } },
  'GET /v1/store/indexes': async () => {
    await admin('PUT', '/v1/store/indexes/ix-list', { prefix: 'k/', field: 'b' })
    return { path: '/v1/store/indexes', hidden: { array: 'indexes', field: 'name', value: 'ix-list' } }
  },

  'PUT /v1/streams/{name}': async () => ({ path: '/v1/streams/s-put', body: {} }),
  'GET /v1/streams/{name}': async () => { await admin('PUT', '/v1/streams/s-get', {}); return { path: '/v1/streams/s-get' } },
  'DELETE /v1/streams/{name}': async () => { await admin('PUT', '/v1/streams/s-del', {}); return { path: '/v1/streams/s-del' } },
  'GET /v1/streams': async () => {
    await admin('PUT', '/v1/streams/s-list', {})
    return { path: '/v1/streams', hidden: { array: 'streams', field: 'name', value: 's-list' } }
  },
  'GET /v1/streams/{name}/messages': async () => { await streamWithMessage('s-read'); return { path: '/v1/streams/s-read/messages?from=start' } },
  'POST /v1/streams/{name}/messages': async () => ({ path: '/v1/streams/s-app/messages', body: { payload: 1 } }),
  'GET /v1/streams/{name}/tail': async () => { await streamWithMessage('s-tail'); return { path: '/v1/streams/s-tail/tail?from=start', sse: true } },
  'PUT /v1/streams/{name}/groups/{group}': async () => { await streamWithMessage('s-g1'); return { path: '/v1/streams/s-g1/groups/g', body: {} } },
  'GET /v1/streams/{name}/groups/{group}': async () => { await streamWithMessage('s-g2', 'g'); return { path: '/v1/streams/s-g2/groups/g' } },
  'DELETE /v1/streams/{name}/groups/{group}': async () => { await streamWithMessage('s-g3', 'g'); return { path: '/v1/streams/s-g3/groups/g' } },
  'GET /v1/streams/{name}/groups': async () => { await streamWithMessage('s-g4', 'g'); return { path: '/v1/streams/s-g4/groups' } },
  'POST /v1/streams/{name}/groups/{group}/receive': async () => { await streamWithMessage('s-g5', 'g'); return { path: '/v1/streams/s-g5/groups/g/receive', body: {} } },
  'POST /v1/streams/{name}/groups/{group}/ack': async () => {
    await streamWithMessage('s-g6', 'g')
    await admin('POST', '/v1/streams/s-g6/groups/g/receive', {})
    return { path: '/v1/streams/s-g6/groups/g/ack', body: { offsets: [0] } }
  },
  'POST /v1/streams/{name}/groups/{group}/commit': async () => { await streamWithMessage('s-g7', 'g'); return { path: '/v1/streams/s-g7/groups/g/commit', body: { offset: 0 } } },
  'GET /v1/streams/{name}/groups/{group}/dead': async () => { await streamWithMessage('s-g8', 'g'); return { path: '/v1/streams/s-g8/groups/g/dead' } },
  'POST /v1/streams/{name}/groups/{group}/dead/redrive': async () => { await streamWithMessage('s-g9', 'g'); return { path: '/v1/streams/s-g9/groups/g/dead/redrive', body: {} } },

  'GET /v1/dashboard': async () => ({ path: '/v1/dashboard' }),
  'GET /v1/stats': async () => ({ path: '/v1/stats' }),
  'GET /v1/stats/stream': async () => ({ path: '/v1/stats/stream', sse: true }),
  'GET /v1/queues/{name}/peek': async () => { await admin('PUT', '/v1/queues/q-peek', {}); return { path: '/v1/queues/q-peek/peek' } },
  'GET /v1/pubsub/clients': async () => ({ path: '/v1/pubsub/clients' }),
  'DELETE /v1/pubsub/clients/{id}': async () => {
    // a connected client for the allowed call to disconnect
    const client = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'kick-me', username: 'alice', password: 'alice-secret', reconnectPeriod: 0 })
    client.on('error', () => {})
    return { path: '/v1/pubsub/clients/kick-me' }
  },

  'POST /v1/auth/ticket': async () => ({ path: '/v1/auth/ticket', body: {} }),
  'GET /v1/auth/whoami': async () => ({ path: '/v1/auth/whoami' })
}

async function operations (): Promise<Op[]> {
  const res = await fetch(broker.url + '/openapi.json', { headers: bearer(adminToken) })
  expect(res.status).toBe(200)
  const doc = await res.json() as { paths: Record<string, Record<string, { 'x-tetra-acl': Record<string, unknown>, security?: unknown[], responses: Record<string, unknown> }>> }
  const ops: Op[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) ops.push({ method: method.toUpperCase(), path, acl: op['x-tetra-acl'], security: op.security, responses: op.responses })
  }
  return ops
}

beforeAll(async () => {
  auth = await writeAuthFile(dir.dir, {
    users: [{ name: 'alice', password: 'alice-secret', roles: ['all'] }],
    tokens: [{ name: 'admin', roles: ['all'] }, { name: 'nobody', roles: ['elsewhere'] }],
    roles: {
      all: [
        { resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] },
        { resource: 'store', pattern: '*', actions: ['read', 'write'] },
        { resource: 'queue', pattern: '*', actions: ['push', 'receive', 'admin'] },
        { resource: 'stream', pattern: '*', actions: ['append', 'read', 'admin'] },
        { resource: 'system', pattern: '*', actions: ['metrics', 'dashboard', 'admin'] }
      ],
      // allowed things elsewhere only: every operation of the matrix is outside its ACL
      elsewhere: [
        { resource: 'topic', pattern: 'elsewhere/#', actions: ['publish', 'subscribe'] },
        { resource: 'store', pattern: 'elsewhere/*', actions: ['read', 'write'] },
        { resource: 'queue', pattern: 'elsewhere-*', actions: ['push', 'receive', 'admin'] },
        { resource: 'stream', pattern: 'elsewhere-*', actions: ['append', 'read', 'admin'] }
      ]
    }
  })
  adminToken = auth.tokens.admin
  nobodyToken = auth.tokens.nobody
  broker = await startTestBroker({ authFile: auth.file })
})

afterAll(async () => {
  await broker?.stop()
  dir.remove()
})

describe('HTTP auth: every operation of the OpenAPI document', () => {
  it('declares its access, its security and its 401/403/429 answers (generated from the declaration)', async () => {
    const ops = await operations()
    expect(ops.length).toBeGreaterThan(40)
    for (const op of ops) {
      const where = `${op.method} ${op.path}`
      expect(op.acl, where).toBeDefined()
      expect(op.acl.undeclared, where).toBeUndefined()
      if ('open' in op.acl) {
        expect(op.security, where).toEqual([])
        continue
      }
      expect(op.security, where).toEqual(expect.arrayContaining([{ bearer: [] }, { basic: [] }]))
      expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['401', '429']))
      if ('resource' in op.acl && typeof op.acl.name === 'string' && !op.acl.name.startsWith('none')) expect(Object.keys(op.responses), where).toContain('403')
    }
  })

  it('no credentials -> 401 with WWW-Authenticate; an ACL that denies -> 403; one that allows -> 2xx', async () => {
    const ops = await operations()
    const failures: string[] = []
    const missing = ops.map(op => `${op.method} ${op.path}`).filter(key => EXAMPLES[key] === undefined)
    expect(missing, 'operations without an example request in EXAMPLES').toEqual([])
    const stale = Object.keys(EXAMPLES).filter(key => !ops.some(op => `${op.method} ${op.path}` === key))
    expect(stale, 'examples of operations the document no longer has').toEqual([])

    for (const op of ops) {
      const key = `${op.method} ${op.path}`
      const req = await EXAMPLES[key]()
      const fail = (what: string): void => { failures.push(`${key}: ${what}`) }

      if ('open' in op.acl) {
        const res = await call(op.method, req, {})
        if (res.status >= 300) fail(`open route answered ${res.status} without credentials`)
        continue
      }

      // no credentials (and the file has no anonymous roles)
      const anonymous = await call(op.method, req, {})
      const problem401 = anonymous.headers.get('content-type') ?? ''
      if (anonymous.status !== 401) fail(`no credentials: ${anonymous.status}, not 401`)
      else {
        if (!/Bearer realm="tetra"/.test(anonymous.headers.get('www-authenticate') ?? '') || !/Basic realm="tetra"/.test(anonymous.headers.get('www-authenticate') ?? '')) fail('401 without WWW-Authenticate Bearer and Basic')
        if (!problem401.startsWith('application/problem+json')) fail(`401 as ${problem401}`)
        const body = await anonymous.json() as { status: number }
        if (body.status !== 401) fail('401 problem without status 401')
      }

      // a principal whose ACL allows nothing here
      const denied = await call(op.method, req, bearer(nobodyToken))
      const isRule = 'resource' in op.acl
      const isList = isRule && typeof op.acl.name === 'string' && op.acl.name.startsWith('none')
      if (isRule && !isList) {
        if (denied.status !== 403) fail(`denying ACL: ${denied.status}, not 403 (${await denied.text()})`)
        else {
          const body = await denied.json() as { detail: string }
          if (!(denied.headers.get('content-type') ?? '').startsWith('application/problem+json')) fail('403 not problem+json')
          if (!body.detail.startsWith(`forbidden: ${String(op.acl.resource)}`)) fail(`403 detail does not name the resource: ${body.detail}`)
        }
      } else if (isList) {
        // a list answers, holding only what the principal may use
        if (denied.status !== 200) fail(`list for a denying ACL: ${denied.status}`)
        else if (req.hidden !== undefined) {
          const body = await denied.json() as Record<string, Array<Record<string, unknown>>>
          if (body[req.hidden.array].some(item => item[req.hidden!.field] === req.hidden!.value)) fail(`list shows ${req.hidden.value} to a principal that may not use it`)
        }
      } else if (denied.status >= 300) {
        fail(`authenticated-only route: ${denied.status} for an authenticated principal`)
      }

      // a principal whose ACL allows it
      const allowed = await call(op.method, req, bearer(adminToken))
      if (allowed.status < 200 || allowed.status >= 300) fail(`allowing ACL: ${allowed.status} (${allowed.status === 200 ? '' : await allowed.text()})`)
      else if (req.hidden !== undefined) {
        const body = await allowed.json() as Record<string, Array<Record<string, unknown>>>
        if (!body[req.hidden.array].some(item => item[req.hidden!.field] === req.hidden!.value)) fail(`list hides ${req.hidden.value} from a principal that may use it`)
      }
    }
    expect(failures).toEqual([])
  })
})

describe('HTTP auth: credentials', () => {
  it('Bearer and Basic (user:password, or token name:token) both authenticate; whoami says who', async () => {
    const viaBearer = await fetch(`${broker.url}/v1/auth/whoami`, { headers: bearer(adminToken) })
    expect(viaBearer.status).toBe(200)
    expect(viaBearer.headers.get('cache-control')).toBe('no-store')
    expect(await viaBearer.json()).toMatchObject({ name: 'admin', kind: 'token', roles: ['all'], expiresAt: null })

    const viaBasic = await fetch(`${broker.url}/v1/auth/whoami`, { headers: basic('alice', 'alice-secret') })
    expect(viaBasic.status).toBe(200)
    const summary = await viaBasic.json() as { name: string, kind: string, rules: Array<{ resource: string }> }
    expect(summary).toMatchObject({ name: 'alice', kind: 'user' })
    expect(summary.rules.map(r => r.resource)).toEqual(expect.arrayContaining(['topic', 'store', 'queue', 'stream', 'system']))

    const tokenAsPassword = await fetch(`${broker.url}/v1/auth/whoami`, { headers: basic('admin', adminToken) })
    expect(await tokenAsPassword.json()).toMatchObject({ name: 'admin', kind: 'token' })

    // the scheme name is case-insensitive (RFC 9110 11.1)
    const lower = await fetch(`${broker.url}/v1/store/keys?prefix=x`, { headers: { authorization: `bearer ${adminToken}` } })
    expect(lower.status).toBe(200)
  })

  it('wrong credentials -> 401 problem+json with WWW-Authenticate, counted by reason', async () => {
    for (const headers of [basic('alice', 'wrong'), basic('nobody-at-all', 'x'), bearer('tetra_not-a-token'), { authorization: 'Digest abc' }, { authorization: 'Basic !!!' }]) {
      const res = await fetch(`${broker.url}/v1/store/keys/k`, { headers })
      expect(res.status, JSON.stringify(headers)).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="tetra", Basic realm="tetra"')
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(await res.json()).toMatchObject({ status: 401, detail: 'invalid credentials' })
    }
    const metrics = await (await fetch(`${broker.url}/metrics`, { headers: bearer(adminToken) })).text()
    expect(metrics).toMatch(/tetra_auth_failures_total\{protocol="http",reason="invalid"\} \d+/)
    expect(metrics).toMatch(/tetra_acl_denied_total\{protocol="http",action="[a-z]+"\} \d+/)
  })

  it('a credential in the query string is refused, even a valid one (no long-lived secret in URLs)', async () => {
    for (const query of [`token=${adminToken}`, `access_token=${adminToken}`]) {
      const res = await fetch(`${broker.url}/v1/store/keys?prefix=k&${query}`)
      expect(res.status).toBe(401)
      expect((await res.json() as { detail: string }).detail).toMatch(/not accepted in the URL/)
      // also next to a valid header
      const both = await fetch(`${broker.url}/v1/pubsub/subscribe?filter=a&${query}`, { headers: bearer(adminToken) })
      expect(both.status).toBe(401)
    }
  })

  it('the 403 detail names the resource and the action', async () => {
    const res = await fetch(`${broker.url}/v1/queues/orders/messages`, { method: 'POST', headers: { ...bearer(nobodyToken), 'content-type': 'application/json' }, body: JSON.stringify({ payload: 1 }) })
    expect(res.status).toBe(403)
    expect(await res.json()).toMatchObject({ status: 403, detail: 'forbidden: queue "orders" push' })
    const scan = await fetch(`${broker.url}/v1/store/keys?prefix=cache%2F`, { headers: bearer(nobodyToken) })
    expect(await scan.json()).toMatchObject({ status: 403, detail: 'forbidden: store prefix "cache/" read' })
  })

  it('the dashboard\'s page is open (code, no data), what it reads needs system dashboard; /openapi.json and /docs any principal', async () => {
    const status = async (path: string, headers: Record<string, string> = {}): Promise<number> => (await fetch(broker.url + path, { headers, redirect: 'manual' })).status
    expect(await status('/')).toBe(200)
    expect(await status('/v1/dashboard')).toBe(401)
    expect(await status('/v1/dashboard', bearer(nobodyToken))).toBe(403)
    expect(await status('/v1/dashboard', bearer(adminToken))).toBe(200)
    expect(await status('/v1/stats', bearer(nobodyToken))).toBe(403)
    expect(await status('/v1/stats', bearer(adminToken))).toBe(200)
    for (const path of ['/openapi.json', '/docs/json', '/docs']) {
      expect(await status(path), path).toBe(401)
      expect(await status(path, bearer(nobodyToken)), path).toBeLessThan(400)
    }
  })

  it('HEAD routes (made by fastify from GET routes) are guarded like their GET', async () => {
    expect((await fetch(`${broker.url}/v1/store/keys/k/get`, { method: 'HEAD' })).status).toBe(401)
    expect((await fetch(`${broker.url}/v1/store/keys/k/get`, { method: 'HEAD', headers: bearer(nobodyToken) })).status).toBe(403)
    expect((await fetch(`${broker.url}/metrics`, { method: 'HEAD', headers: bearer(nobodyToken) })).status).toBe(403)
  })

  it('a 401 does not read the request body (authentication runs before the body is parsed)', async () => {
    // a body larger than the body limit: had it been read, the answer would be 413
    const big = 'x'.repeat(broker.config.httpBodyLimit + 1024)
    const res = await fetch(`${broker.url}/v1/store/mset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big })
    expect(res.status).toBe(401)
  })
})

describe('HTTP security headers', () => {
  it('nosniff, no-referrer and frame DENY on every answer (200, 401, 403, 404, SSE); no HSTS over plain HTTP; no CORS headers by default', async () => {
    const answers = [
      await fetch(`${broker.url}/healthz`),
      await fetch(`${broker.url}/v1/store/keys/a`),
      await fetch(`${broker.url}/v1/store/keys/a`, { headers: bearer(nobodyToken) }),
      await fetch(`${broker.url}/no/such/route`, { headers: bearer(adminToken) })
    ]
    const stream = sse(`${broker.url}/v1/pubsub/subscribe?filter=a`, { ...bearer(adminToken), origin: 'https://elsewhere.example' })
    answers.push(await stream.response)
    stream.close()
    expect(answers.map(a => a.status)).toEqual([200, 401, 403, 404, 200])
    for (const res of answers) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff')
      expect(res.headers.get('referrer-policy')).toBe('no-referrer')
      expect(res.headers.get('x-frame-options')).toBe('DENY')
      expect(res.headers.get('strict-transport-security')).toBeNull()
      expect(res.headers.get('access-control-allow-origin')).toBeNull()
    }
    expect(answers[1].headers.get('cache-control')).toBe('no-store')
  })
})
