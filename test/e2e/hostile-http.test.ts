import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import net from 'node:net'
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { spawnBroker, tempDir, type ChildBroker } from '../helpers.js'

/*
 * Hostile HTTP input (issue 11, "Hostile input"): requests generated from the broker's own OpenAPI
 * document (every operation, its path, query and body filled from the schemas), then damaged: wrong
 * types, deep nesting, huge strings and headers, bad UTF-8 and percent-encoding, wrong content types,
 * slow bodies. Every answer is 2xx or 4xx, never 5xx, and every 4xx is application/problem+json with a
 * detail; the process stays up and logs no error; an ordinary client pushing to a queue and appending
 * to a stream meanwhile loses nothing. Requests go out on raw sockets, byte for byte as generated.
 * fast-check prints the seed and the failing request.
 */

/** Requests per run; HOSTILE_HTTP_RUNS raises it for a longer hunt outside CI. */
const RUNS = Number(process.env.HOSTILE_HTTP_RUNS ?? 2400)
const CONCURRENCY = 6
/** Long polls are cut to this many seconds (a generated `wait` may ask for 20). */
const MAX_WAIT = 0.2

let child: ChildBroker
let dir: ReturnType<typeof tempDir>
beforeAll(async () => {
  dir = tempDir()
  // a body limit the huge strings (64 KB to 1 MB) sometimes exceed: 413s without sending 16 MB each
  // HOSTILE_HTTP_AUTH_FILE: the same run through the auth hooks (an auth file whose anonymous role may do everything)
  const auth = process.env.HOSTILE_HTTP_AUTH_FILE !== undefined ? ['--auth-file', process.env.HOSTILE_HTTP_AUTH_FILE] : []
  child = await spawnBroker(['--data-dir', dir.dir, '--fsync', 'never', '--http-body-limit', '512kb', ...auth])
})
afterAll(async () => {
  if (child.child.exitCode === null) {
    child.child.kill('SIGTERM')
    await child.exited
  }
  dir.remove()
})

// --- raw HTTP/1.1 --------------------------------------------------------------------------------

interface RawRequest {
  method: string
  /** Path and query, already encoded (or deliberately not). */
  target: string
  headers: Array<[string, string]>
  body?: Buffer
  /** Send the body in this many pieces, this many ms apart. */
  slow?: { pieces: number, delayMs: number }
}

interface RawAnswer { status: number, headers: Record<string, string>, body: Buffer }

function dechunk (body: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  while (at < body.length) {
    const lineEnd = body.indexOf('\r\n', at)
    if (lineEnd < 0) break
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16)
    if (!(size > 0)) break
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/** One request on its own connection (Connection: close); the answer read to its end (SSE: its head). */
async function send (port: number, r: RawRequest): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => { /* a reset after the answer: what arrived is parsed */ })
  let data = Buffer.alloc(0)
  let headEnd = -1
  const answer = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within 30 s; so far: ${data.subarray(0, 200).toString('latin1')}`)) }, 30_000)
    const finish = (): void => { clearTimeout(timer); socket.destroy(); resolve(data) }
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      // interim answers (100 Continue) come before the answer: drop them
      while (/^HTTP\/1\.[01] 1\d\d /.test(data.subarray(0, 16).toString('latin1')) && data.includes('\r\n\r\n')) data = data.subarray(data.indexOf('\r\n\r\n') + 4)
      if (headEnd < 0) headEnd = data.indexOf('\r\n\r\n')
      // an event stream does not end: its head is the answer
      if (headEnd >= 0 && /\r\ncontent-type: *text\/event-stream/i.test(data.subarray(0, headEnd).toString('latin1'))) finish()
    })
    socket.on('close', finish)
  })
  await new Promise<void>(resolve => { socket.once('connect', resolve); socket.once('close', resolve) })
  const head = [`${r.method} ${r.target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...r.headers.map(([n, v]) => `${n}: ${v}`)]
  if (r.body !== undefined) head.push(`Content-Length: ${r.body.length}`)
  // latin1: one byte per character, so that raw bytes (raw-path-bytes) go out as they are
  socket.write(Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'))
  if (r.body !== undefined) {
    if (r.slow !== undefined) {
      const size = Math.ceil(r.body.length / r.slow.pieces)
      for (let at = 0; at < r.body.length && !socket.destroyed; at += size) {
        socket.write(r.body.subarray(at, at + size))
        await new Promise(resolve => setTimeout(resolve, r.slow!.delayMs))
      }
    } else socket.write(r.body)
  }
  const bytes = await answer
  const end = bytes.indexOf('\r\n\r\n')
  const [statusLine, ...lines] = bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim()
  const rawBody = end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4)
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
    headers,
    body: headers['transfer-encoding'] === 'chunked' ? dechunk(rawBody) : rawBody
  }
}

// --- requests from the OpenAPI document ----------------------------------------------------------

interface Schema {
  type?: string | string[]
  enum?: unknown[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  pattern?: string
  anyOf?: Schema[]
  oneOf?: Schema[]
}

interface Parameter { name: string, in: 'path' | 'query' | 'header', required?: boolean, schema?: Schema }
interface Operation { method: string, path: string, parameters: Parameter[], body?: Schema, hasBody: boolean }

/** Names of resources made before the run, so that generated requests also reach existing ones. */
const KNOWN = ['h1', 'h2']
const nameArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...KNOWN) }, { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/) })

/** A value valid for the schema (as far as these keywords go), kept small. */
function valueOf (s: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (s === undefined || depth > 4) return fc.jsonValue({ maxDepth: 2 })
  if (s.enum !== undefined) return fc.constantFrom(...s.enum)
  const choices = s.anyOf ?? s.oneOf
  if (choices !== undefined) return fc.oneof(...choices.map(c => valueOf(c, depth + 1)))
  const types = s.type === undefined ? (s.properties !== undefined ? ['object'] : []) : Array.isArray(s.type) ? s.type : [s.type]
  if (types.length === 0) return fc.jsonValue({ maxDepth: 3 })
  return fc.oneof(...types.map(t => valueOfType(t, s, depth)))
}

function valueOfType (type: string, s: Schema, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string':
      if (s.pattern !== undefined) return s.pattern.includes('A-Za-z0-9._-') ? nameArb : fc.stringMatching(new RegExp(s.pattern))
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.max(s.minLength ?? 0, Math.min(s.maxLength ?? 16, 16)) })
    case 'integer':
      return fc.integer({ min: Math.max(s.minimum ?? -1000, -(2 ** 31)), max: Math.min(s.maximum ?? 100_000, 2 ** 31) })
    case 'number':
      return fc.double({ min: s.exclusiveMinimum ?? s.minimum ?? -1000, minExcluded: s.exclusiveMinimum !== undefined, max: Math.min(s.maximum ?? 100_000, 100_000), noNaN: true, noDefaultInfinity: true })
    case 'boolean': return fc.boolean()
    case 'null': return fc.constant(null)
    case 'array':
      return fc.array(valueOf(s.items, depth + 1), { minLength: s.minItems ?? 0, maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 4, 4)) })
    case 'object': {
      const properties = s.properties ?? {}
      const model: Record<string, fc.Arbitrary<unknown>> = {}
      for (const [key, schema] of Object.entries(properties)) model[key] = valueOf(schema, depth + 1)
      const record = fc.record(model, { requiredKeys: (s.required ?? []).filter(k => k in properties) })
      if (typeof s.additionalProperties !== 'object') return record
      const extra = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), valueOf(s.additionalProperties, depth + 1), { maxKeys: 3 })
      return fc.tuple(record, extra).map(([a, b]) => ({ ...b, ...a }))
    }
    default: return fc.jsonValue({ maxDepth: 2 })
  }
}

function operationsOf (doc: { paths: Record<string, Record<string, { parameters?: Parameter[], requestBody?: { content?: Record<string, { schema?: Schema }> } }>> }): Operation[] {
  const out: Operation[] = []
  for (const [path, byMethod] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(byMethod)) {
      const body = op.requestBody?.content?.['application/json']?.schema
      out.push({ method: method.toUpperCase(), path, parameters: op.parameters ?? [], body, hasBody: method === 'put' || method === 'post' })
    }
  }
  return out
}

/** A request as generated, before it is damaged. */
interface Generated { op: Operation, path: Record<string, string>, query: Array<[string, string]>, body: unknown, rawBody?: { bytes: Buffer, type: string } }

function generatedRequest (op: Operation): fc.Arbitrary<Generated> {
  const pathArbs: Record<string, fc.Arbitrary<string>> = {}
  for (const p of op.parameters.filter(p => p.in === 'path')) {
    pathArbs[p.name] = p.name === '*' || p.name === 'key'
      ? fc.oneof(fc.constantFrom('k1', 'a/b', 'h1'), fc.string({ maxLength: 24 }).filter(k => k.length > 0))
      : valueOf(p.schema).map(String)
  }
  const queryArbs = op.parameters.filter(p => p.in === 'query').map(p =>
    fc.option(valueOf(p.schema).map(v => [p.name, String(v)] as [string, string]), { nil: undefined, freq: p.required === true ? 100 : 2 }))
  return fc.record({
    path: fc.record(pathArbs),
    query: fc.tuple(...queryArbs).map(q => q.filter((x): x is [string, string] => x !== undefined)),
    body: op.body !== undefined ? valueOf(op.body) : fc.constant(undefined),
    rawBody: op.hasBody && op.body === undefined
      ? fc.record({ bytes: fc.uint8Array({ maxLength: 256 }).map(b => Buffer.from(b)), type: fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'image/png') })
      : fc.constant(undefined)
  }).map(g => {
    const generated: Generated = { op, ...g }
    // the counterexample fast-check prints: the request, not the operation's whole schema
    return Object.assign(generated, { [fc.toStringMethod]: () => `${op.method} ${op.path} ${JSON.stringify({ path: g.path, query: g.query, body: g.body, rawBody: g.rawBody?.type })}` })
  })
}

// --- damage -----------------------------------------------------------------------------------

const jsonSample = fc.jsonValue({ maxDepth: 3 })
type Damage =
  | { kind: 'none' }
  | { kind: 'wrong-type', field: number, value: unknown }
  | { kind: 'deep', field: number, depth: number, open: '[' | '{"a":' }
  | { kind: 'huge-string', field: number, length: number }
  | { kind: 'huge-header', length: number }
  | { kind: 'many-headers', count: number }
  | { kind: 'bad-utf8', bytes: number[] }
  | { kind: 'bad-percent', where: 'path' | 'query', escape: string }
  | { kind: 'content-type', type: string | null }
  | { kind: 'slow', pieces: number, delayMs: number }
  | { kind: 'truncated-json', at: number }
  | { kind: 'odd-number', field: number, text: string }
  | { kind: 'proto', text: string }
  | { kind: 'odd-header', name: string, value: string }
  | { kind: 'raw-path-bytes', bytes: string }

const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('wrong-type' as const), field: fc.nat(), value: jsonSample.map((v): unknown => v) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('deep' as const), field: fc.nat(), depth: fc.oneof(fc.integer({ min: 500, max: 530 }), fc.integer({ min: 1000, max: 50_000 })), open: fc.constantFrom('[' as const, '{"a":' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('huge-string' as const), field: fc.nat(), length: fc.integer({ min: 64 * 1024, max: 1024 * 1024 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('huge-header' as const), length: fc.integer({ min: 8 * 1024, max: 64 * 1024 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('many-headers' as const), count: fc.integer({ min: 100, max: 3000 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bad-utf8' as const), bytes: fc.constantFrom<number[]>([0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x00]) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bad-percent' as const), where: fc.constantFrom('path' as const, 'query' as const), escape: fc.constantFrom('%ZZ', '%C3%28', '%', '%E2%82', '%00', '%FF%FE', '%2', '%%', '%ED%A0%80') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('content-type' as const), type: fc.constantFrom(null, 'text/plain', 'application/xml', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json, text/plain', '*/*', ';;;', 'application/problem+json') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('slow' as const), pieces: fc.integer({ min: 2, max: 8 }), delayMs: fc.integer({ min: 1, max: 25 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncated-json' as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('odd-number' as const),
      field: fc.nat(),
      text: fc.constantFrom('1e309', '-1e309', '1e-400', '123456789012345678901234567890', '-0', '0.0000001', '9007199254740993', '4294967296', '-1', '1.5', '0', '2147483648', '1e21')
    })
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw-path-bytes' as const), bytes: fc.constantFrom('\xc3\x28', '\xff', '\xc3\xa9', '\x7f', '\x00', '\t', ' x', '#frag', '?', '\\', '/../..', '//') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('proto' as const), text: fc.constantFrom('"__proto__":{"polluted":1}', '"constructor":{"prototype":{"polluted":1}}', '"__proto__":null') }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('odd-header' as const),
      name: fc.constantFrom('If-Match', 'If-None-Match', 'Last-Event-ID', 'Authorization', 'Accept', 'Accept-Encoding', 'Content-Encoding', 'Origin', 'X-HTTP-Method-Override', 'Expect', 'Range', 'Cookie', 'Access-Control-Request-Method'),
      value: fc.oneof(fc.constantFrom('*', '"x"', 'W/"1"', '-1', '99999999999999999999', 'Bearer ', 'Bearer abc', 'Basic !!!', 'Basic Og==', 'gzip', 'deflate, br', 'application/xml', 'http://evil.example', 'DELETE', '100-continue', 'bytes=0-1'), fc.string({ unit: 'grapheme-ascii', maxLength: 40 }))
    })
  }
)

/** A body's JSON text with the value of one of its top-level fields (by index; or the whole body) replaced by `text`. */
function withField (body: unknown, field: number, text: string): string {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const keys = Object.keys(body)
    const key = keys.length > 0 ? keys[field % keys.length] : 'payload'
    const marker = `"${randomUUID()}"`
    return JSON.stringify({ ...body, [key]: marker }).replace(JSON.stringify(marker), text)
  }
  return text
}

function encodePath (op: Operation, params: Record<string, string>): string {
  return op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => {
    const value = params[name] ?? 'x'
    return name === '*' || name === 'key' ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value)
  })
}

/** Long polls cut short: the run stays bounded whatever `wait` was generated. */
function boundWaits (body: unknown): unknown {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && typeof (body as { wait?: unknown }).wait === 'number') {
    return { ...body, wait: Math.min((body as { wait: number }).wait, MAX_WAIT) }
  }
  return body
}

function build (g: Generated, d: Damage): RawRequest {
  const body = boundWaits(g.body)
  let path = encodePath(g.op, g.path)
  let query = g.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  const headers: Array<[string, string]> = []
  let text: string | undefined = body === undefined ? undefined : JSON.stringify(body)
  let bytes: Buffer | undefined
  let type: string | null = g.rawBody?.type ?? (text !== undefined ? 'application/json' : null)
  let slow: RawRequest['slow']
  switch (d.kind) {
    case 'none': break
    case 'wrong-type': if (text !== undefined) text = withField(body, d.field, JSON.stringify(d.value) ?? 'null'); break
    case 'deep': if (text !== undefined) text = withField(body, d.field, d.open.repeat(d.depth) + (d.open === '[' ? ']'.repeat(d.depth) : '1' + '}'.repeat(d.depth))); break
    case 'huge-string': if (text !== undefined) text = withField(body, d.field, JSON.stringify('x'.repeat(d.length))); else query.push(`prefix=${'y'.repeat(Math.min(d.length, 12 * 1024))}`); break
    case 'huge-header': headers.push(['X-Huge', 'h'.repeat(d.length)]); break
    case 'many-headers': for (let i = 0; i < d.count; i++) headers.push([`X-H${i}`, 'v']); break
    case 'bad-utf8': {
      const base = text ?? '{"a":"b"}'
      const at = base.indexOf('"') >= 0 ? base.indexOf('"') + 1 : 0
      bytes = Buffer.concat([Buffer.from(base.slice(0, at)), Buffer.from(d.bytes), Buffer.from(base.slice(at))])
      type ??= 'application/json'
      break
    }
    case 'bad-percent':
      if (d.where === 'path') path = path.replace(/\/([^/]*)$/, `/$1${d.escape}`)
      else query = [...query, `filter=${d.escape}`, `prefix=a${d.escape}`]
      break
    case 'content-type': type = d.type; break
    case 'slow': slow = { pieces: d.pieces, delayMs: d.delayMs }; break
    case 'truncated-json': if (text !== undefined && text.length > 1) text = text.slice(0, d.at % text.length); break
    case 'odd-number': if (text !== undefined) text = withField(body, d.field, d.text); else query = query.map(q => q.replace(/=.*/, '=' + encodeURIComponent(d.text))); break
    case 'proto': if (text?.startsWith('{') === true) text = text.length > 2 ? `{${d.text},${text.slice(1)}` : `{${d.text}}`; break
    case 'odd-header': headers.push([d.name, d.value]); break
    case 'raw-path-bytes': path = path.replace(/\/([^/]*)$/, `/$1${d.bytes}`); break
  }
  if (bytes === undefined && text !== undefined) bytes = Buffer.from(text)
  if (bytes === undefined && g.rawBody !== undefined) bytes = g.rawBody.bytes
  if (type !== null && bytes !== undefined) headers.push(['Content-Type', type])
  return { method: g.op.method, target: path + (query.length > 0 ? '?' + query.join('&') : ''), headers, body: bytes, slow }
}

/** What a hostile request may get: anything but a 5xx; any 4xx as problem+json with a detail. */
function checkAnswer (request: RawRequest, a: RawAnswer): void {
  const what = `${request.method} ${request.target.slice(0, 200)} -> ${a.status} ${a.body.subarray(0, 300).toString()}`
  expect(a.status, what).toBeGreaterThanOrEqual(200)
  expect(a.status, what).toBeLessThan(500)
  if (a.status >= 400) {
    expect(a.headers['content-type'], what).toMatch(/^application\/problem\+json/)
    const problem = JSON.parse(a.body.toString()) as { status?: number, detail?: unknown }
    expect(problem.status, what).toBe(a.status)
    expect(typeof problem.detail === 'string' && problem.detail.length > 0, what).toBe(true)
  }
}

// --- the ordinary client -------------------------------------------------------------------------

async function json (url: string, body: unknown, method = 'POST'): Promise<{ status: number, body: unknown }> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as unknown }
}

/** Pushes to a queue and appends to a stream, one after the other, until stopped; then reads both back. */
async function ordinaryTraffic (base: string): Promise<{ stop: () => Promise<void>, halt: () => void }> {
  const name = `ordinary-${randomUUID()}`
  expect((await json(`${base}/v1/queues/${name}`, {}, 'PUT')).status).toBeLessThan(300)
  expect((await json(`${base}/v1/streams/${name}`, {}, 'PUT')).status).toBeLessThan(300)
  const pushed: number[] = []
  const appended: number[] = []
  let running = true
  // a failure is kept for stop(), so that it is reported once, not as an unhandled rejection
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const push = await json(`${base}/v1/queues/${name}/messages`, { payload: { n: i } })
      expect(push.status, JSON.stringify(push.body)).toBe(200)
      pushed.push(i)
      const append = await json(`${base}/v1/streams/${name}/messages`, { payload: i })
      expect(append.status, JSON.stringify(append.body)).toBe(200)
      appended.push(i)
    }
  })().then(() => undefined, (err: unknown) => err)
  return {
    halt: () => { running = false },
    stop: async () => {
      running = false
      const failure = await loop
      if (failure !== undefined) throw failure
      const received: number[] = []
      for (let round = 0; round < 1000; round++) {
        const r = await json(`${base}/v1/queues/${name}/receive`, { max: 100, wait: 0 })
        const messages = (r.body as { messages: Array<{ receipt: string, payload: { n: number } }> }).messages
        if (messages.length === 0) break
        received.push(...messages.map(m => m.payload.n))
        expect((await json(`${base}/v1/queues/${name}/ack`, { receipts: messages.map(m => m.receipt) })).status).toBe(200)
      }
      expect(received.sort((a, b) => a - b)).toEqual(pushed)
      const read: number[] = []
      let from = 0
      for (let round = 0; round < 1000; round++) {
        const page = await (await fetch(`${base}/v1/streams/${name}/messages?from=${from}&limit=1000`)).json() as { messages: Array<{ payload: number }>, next: number }
        if (page.messages.length === 0) break
        read.push(...page.messages.map(m => m.payload))
        from = page.next
      }
      expect(read).toEqual(appended)
      expect(pushed.length).toBeGreaterThan(0)
    }
  }
}

// --- the test ----------------------------------------------------------------------------------

describe('hostile HTTP input generated from the OpenAPI document', () => {
  // found by the run below: the broker answered 413 and closed the connection while the body was still
  // coming; closing with unread bytes resets the connection, and the reset wiped the answer before the
  // client read it (about 1 time in 3, the client saw EPIPE and nothing else)
  it('RFC 9112 9.6: a 413 or 415 answered before the body was read reaches the client (lingering close)', async () => {
    const body = Buffer.alloc(1024 * 1024, 0x20)
    for (let i = 0; i < 10; i++) {
      for (const [type, status] of [['application/json', 413], ['application/xml', 415]] as const) {
        const r: RawRequest = { method: 'POST', target: '/v1/pubsub/publish', headers: [['Content-Type', type]], body }
        const a = await send(child.httpPort, r)
        expect(a.status, `${type}: ${a.body.toString()}`).toBe(status)
        checkAnswer(r, a)
      }
    }
  })

  it('answers every request 2xx or 4xx problem+json, stays up, and an ordinary client loses nothing', async () => {
    const base = child.url
    for (const name of KNOWN) {
      expect((await json(`${base}/v1/queues/${name}`, {}, 'PUT')).status).toBeLessThan(300)
      expect((await json(`${base}/v1/streams/${name}`, {}, 'PUT')).status).toBeLessThan(300)
    }
    const doc = await (await fetch(`${base}/openapi.json`)).json() as Parameters<typeof operationsOf>[0]
    const operations = operationsOf(doc)
    expect(operations.length).toBeGreaterThan(40)
    const request = fc.constantFrom(...operations).chain(generatedRequest)
    const ordinary = await ordinaryTraffic(base)

    const seen = new Map<number, number>()
    try {
      await fc.assert(fc.asyncProperty(fc.array(fc.tuple(request, damage), { minLength: CONCURRENCY, maxLength: CONCURRENCY }), async batch => {
        await Promise.all(batch.map(async ([g, d]) => {
          const r = build(g, d)
          const a = await send(child.httpPort, r)
          seen.set(a.status, (seen.get(a.status) ?? 0) + 1)
          checkAnswer(r, a)
        }))
        expect(child.child.exitCode).toBe(null)
      }), { numRuns: Math.ceil(RUNS / CONCURRENCY), endOnFailure: true })
    } finally {
      ordinary.halt()
    }

    await ordinary.stop()
    expect(child.child.exitCode).toBe(null)
    expect(child.output.filter(line => /"level":(50|60)/.test(line))).toEqual([])
    // the run reached the routes, not only the refusals before them
    expect([...seen.keys()].some(s => s >= 200 && s < 300)).toBe(true)
    console.log(`hostile HTTP: ${[...seen.values()].reduce((a, b) => a + b, 0)} requests over ${operations.length} operations; answers by status: ${JSON.stringify(Object.fromEntries([...seen].sort((a, b) => a[0] - b[0])))}`)
  }, Math.max(120_000, RUNS * 50))
})
