import { Ajv, type ValidateFunction } from 'ajv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers.js'
import { Tetra } from '../../src/client/index.js'
import { undocumentedOperations } from '../../protocols/http/openapi.js'

/**
 * The OpenAPI document against what the routes really answer: every answer of a broad scenario (every
 * operation, its successes and its errors, through the client library and raw requests) is recorded and
 * must be one the document describes: its status listed for the operation, its content type among that
 * status's, and its JSON body valid against that content's schema. A route that answers something its
 * schema does not describe fails here.
 */

interface Content { schema?: Record<string, unknown> }
interface DocOperation { operationId?: string, responses: Record<string, { content?: Record<string, Content> }> }
type Doc = { paths: Record<string, Record<string, DocOperation>> }
interface Recorded { method: string, path: string, status: number, type: string, body: string | undefined }

let broker: TestBroker
let doc: Doc
const recorded: Recorded[] = []

/** fetch that records every answer (its body read from a clone; SSE streams by their head only). */
const recordingFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init)
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
  const type = (response.headers.get('content-type') ?? '').split(';')[0].trim()
  const entry: Recorded = { method: (init?.method ?? 'GET').toUpperCase(), path: url.pathname, status: response.status, type, body: undefined }
  recorded.push(entry)
  if (type !== 'text/event-stream') entry.body = await response.clone().text()
  return response
}

let tetra: Tetra
const raw = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> => {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    if (typeof body !== 'string') (init.headers as Record<string, string>)['content-type'] = 'application/json'
  }
  const res = await recordingFetch(broker.url + path, init)
  await res.arrayBuffer()
  return res
}

beforeAll(async () => {
  broker = await startTestBroker({ storeMaxValue: 1024 })
  tetra = new Tetra({ url: broker.url, fetch: recordingFetch })
  doc = await (await fetch(broker.url + '/openapi.json')).json() as Doc
})
afterAll(async () => { await broker?.stop() })

async function sseOnce<T> (iterator: AsyncIterableIterator<T> | AsyncGenerator<T>, trigger: () => Promise<unknown>): Promise<void> {
  let got = false
  const reading = (async () => { for await (const _ of iterator) { got = true; break } })()
  for (let i = 0; i < 100 && !got; i++) {
    await trigger()
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  await reading
}

async function scenario (): Promise<void> {
  // operations
  await raw('GET', '/healthz')
  await raw('GET', '/readyz')
  await raw('GET', '/metrics')
  await raw('GET', '/v1/dashboard')
  await tetra.stats()
  await tetra.whoami()
  await raw('POST', '/v1/auth/ticket', {})
  await raw('GET', '/v1/pubsub/clients')
  await raw('DELETE', '/v1/pubsub/clients/nobody')
  const statsController = new AbortController()
  const statsStream = await recordingFetch(broker.url + '/v1/stats/stream', { signal: statsController.signal })
  statsController.abort()
  void statsStream.body?.cancel().catch(() => {})

  // pub/sub
  await tetra.pubsub.publish('c/a', { x: 1 }, { qos: 1, retain: true, userProperties: { k: 'v' }, correlationData: new Uint8Array([255]) })
  await tetra.pubsub.retained('c/#')
  await sseOnce(tetra.pubsub.subscribe('c/#'), async () => await tetra.pubsub.publish('c/b', 'x'))
  await raw('POST', '/v1/pubsub/publish', { topic: 'a/+', payload: 1 })
  await raw('GET', '/v1/pubsub/retained')

  // store
  const etag = await tetra.store.set('k/a', { a: 1 }, { ttl: 100 })
  await tetra.store.set('k/a', 2, { ifAbsent: true })
  await tetra.store.get('k/a')
  await raw('GET', '/v1/store/keys/k/a', undefined, { 'if-none-match': etag! })
  await tetra.store.get('k/missing')
  await tetra.store.set('k/bin', new Uint8Array([1, 2, 3]))
  await tetra.store.set('k/big', 'x'.repeat(2000)).catch(() => {})
  await tetra.store.incr('k/n', 2)
  await tetra.store.incr('k/a').catch(() => {})
  await tetra.store.expire('k/n', 50)
  await tetra.store.expire('k/n', null)
  await tetra.store.expire('k/missing', 5).catch(() => {})
  await tetra.store.mset({ 'k/m1': 1, 'k/m2': 'two' })
  await tetra.store.mset({ 'k/m1': 1 }, { ifAbsent: true })
  await tetra.store.mget(['k/m1', 'k/none'])
  for await (const _ of tetra.store.scan({ prefix: 'k/', pageSize: 2 })) { /* every page */ }
  await raw('GET', '/v1/store/keys?limit=0')
  await tetra.store.delete('k/m1', { ifMatch: '"1"' })
  await tetra.store.delete('k/m1')
  await tetra.store.delete('k/m1')
  await sseOnce(tetra.store.watch({ prefix: 'k/', values: true }), async () => await tetra.store.set('k/w', 1))
  await raw('PUT', '/v1/store/indexes/ix', { prefix: 'u/', field: 'country' })
  await raw('PUT', '/v1/store/indexes/ix', { prefix: 'u/', field: 'country' })
  await raw('GET', '/v1/store/indexes')
  await raw('GET', '/v1/store/indexes/ix')
  await raw('GET', '/v1/store/indexes/none')
  await raw('DELETE', '/v1/store/indexes/ix')

  // queues
  const q = tetra.queue('cq')
  await q.create({ maxDeliveries: 3 })
  await q.create({ visibilityTimeout: 30 })
  await q.info()
  await tetra.queues()
  await q.push({ job: 1 }, { priority: 3, dedupId: 'd' })
  await q.pushMany([{ payload: 'a' }, { payload: new Uint8Array([0, 255]), delay: 100 }])
  const got = await q.receive({ max: 3 })
  await q.extend(got[0].receipt, 60)
  await q.ack(got[0].receipt)
  await q.ack(got[0].receipt).catch(() => {})
  await q.nack(got[1].receipt, { dead: true, reason: 'r' })
  await q.nack(got[1].receipt).catch(() => {})
  await q.extend(got[1].receipt, 5).catch(() => {})
  await raw('GET', '/v1/queues/cq/peek')
  for await (const _ of q.deadLetters()) { /* the page */ }
  await q.redrive()
  await q.purgeDead()
  await q.purge()
  await raw('POST', '/v1/queues/cq/receive', { max: 0 })
  await tetra.queue('nope').info().catch(() => {})
  await q.delete()

  // streams
  const s = tetra.stream('cs')
  await s.create({ maxCount: 1000 })
  await s.create({ maxCount: 2000 })
  await s.info()
  await tetra.streams()
  await s.append({ a: 1 }, { key: 'k', headers: { h: 'v' }, dedupId: 'x' })
  await s.appendMany([{ payload: 'b' }, { payload: new Uint8Array([255]) }], { expectedLastOffset: 0 })
  await s.appendMany([{ payload: 1 }], { expectedLastOffset: 0 }).catch(() => {})
  for await (const _ of s.read({ pageSize: 2 })) { /* pages */ }
  await s.readPage({ time: 0 })
  await raw('GET', '/v1/streams/cs/messages?from=99')
  await sseOnce(s.tail({ from: 'start' }), async () => {})
  const g = s.group('cg')
  await g.create({ from: 'start', ackWait: 30, maxDeliveries: 1 })
  await g.create({ ackWait: 20 })
  await g.info()
  await s.groups()
  const gm = await g.receive({ max: 2, consumer: 'c1' })
  await g.ack(gm[0].offset)
  await g.commit(1)
  await g.dead()
  await g.redrive()
  await raw('GET', '/v1/streams/cs/groups/none')
  await g.delete()
  await tetra.stream('nope').info().catch(() => {})
  await s.delete()
}

/** The operation of a request: templates matched most specific first (a literal beats a parameter). */
function operationOf (method: string, path: string): { template: string, op: DocOperation } | undefined {
  const candidates: Array<{ template: string, op: DocOperation, literal: number }> = []
  for (const [template, methods] of Object.entries(doc.paths)) {
    const op = methods[method.toLowerCase()]
    if (op === undefined) continue
    const pattern = new RegExp('^' + template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{key\}/g, '.+').replace(/\{[^}]+\}/g, '[^/]+') + '$')
    if (pattern.test(path)) candidates.push({ template, op, literal: template.replace(/\{[^}]+\}/g, '').length })
  }
  candidates.sort((a, b) => b.literal - a.literal)
  return candidates[0]
}

describe('OpenAPI contract: every answer is one the document describes', () => {
  it('every operation has an operationId, unique, and the document\'s table knows it', () => {
    const ids: string[] = []
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/)
        ids.push(op.operationId!)
        if (method === 'delete') expect(Object.keys(op.responses).some(s => s.startsWith('2')), `${method} ${path}`).toBe(true)
        for (const [status, answer] of Object.entries(op.responses)) {
          if (Number(status) >= 400) expect(Object.keys(answer.content ?? {}), `${method} ${path} ${status}`).toEqual(['application/problem+json'])
        }
      }
    }
    expect(new Set(ids).size).toBe(ids.length)
    expect(undocumentedOperations(doc.paths)).toEqual({ missingInTable: [], missingInDocument: [] })
    expect(Object.keys(doc.paths)).not.toContain('/v1/store/keys/{*}')
  })

  it('a broad scenario: status, content type and body of every answer match the operation\'s response', async () => {
    await scenario()
    expect(recorded.length).toBeGreaterThan(80)
    const ajv = new Ajv({ strict: false, allErrors: true })
    const validators = new Map<object, ValidateFunction>()
    const failures: string[] = []
    const covered = new Set<string>()
    for (const r of recorded) {
      const where = `${r.method} ${r.path} -> ${r.status} ${r.type}`
      const found = operationOf(r.method, r.path)
      if (found === undefined) { failures.push(`${where}: no operation in the document`); continue }
      covered.add(`${r.method} ${found.template}`)
      const answer = found.op.responses[String(r.status)]
      if (answer === undefined) { failures.push(`${where}: status not documented for ${found.op.operationId} (documented: ${Object.keys(found.op.responses).join(', ')})`); continue }
      const contents = answer.content ?? {}
      if (Object.keys(contents).length === 0) {
        if (r.body !== undefined && r.body !== '') failures.push(`${where}: a body where the document says none`)
        continue
      }
      const content = contents[r.type] ?? contents['*/*']
      if (content === undefined) { failures.push(`${where}: content type not documented (documented: ${Object.keys(contents).join(', ')})`); continue }
      if (!r.type.endsWith('json') || content.schema === undefined || r.body === undefined) continue
      let validate = validators.get(content.schema)
      if (validate === undefined) {
        validate = ajv.compile(content.schema)
        validators.set(content.schema, validate)
      }
      if (!validate(JSON.parse(r.body))) failures.push(`${where}: ${ajv.errorsText(validate.errors)} in ${r.body.slice(0, 300)}`)
    }
    expect(failures).toEqual([])
    // every operation was exercised (401/403/429 are the auth matrix's, test/protocols/http-auth.test.ts)
    const all = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map(m => `${m.toUpperCase()} ${path}`))
    expect(all.filter(op => !covered.has(op))).toEqual([])
    const statuses = new Set(recorded.map(r => r.status))
    for (const s of [200, 201, 204, 304, 400, 404, 409, 412, 413]) expect(statuses, `status ${s} exercised`).toContain(s)
  }, 60_000)
})
