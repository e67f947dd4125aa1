import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import net from 'node:net'
import { MAX_JSON_DEPTH } from '../../protocols/http/payload.js'
import { REQUEST_TIMEOUT_MS } from '../../protocols/http/app.js'
import { clientErrorProblem } from '../../protocols/http/client-errors.js'
import mqtt from 'mqtt'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'

/*
 * Error answers of the HTTP port (README "Errors"): bad input never gets a 500, and every error, also
 * those raised before a route runs (by node's HTTP parser, the router, the WebSocket upgrade), is an
 * RFC 9457 application/problem+json document whose detail says what was wrong.
 */

let broker: TestBroker
beforeAll(async () => {
  broker = await startTestBroker()
  for (const path of ['/v1/queues/deep', '/v1/streams/deep']) {
    const res = await fetch(broker.url + path, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(res.ok).toBe(true)
  }
})
afterAll(async () => { await broker.stop() })

interface RawAnswer { status: number, headers: Record<string, string>, body: string }

/**
 * Writes `bytes` as they are on a fresh TCP connection and parses the one answer (status line, headers,
 * a body of Content-Length bytes, or whatever came before the server closed).
 */
async function raw (bytes: string | Buffer): Promise<RawAnswer> {
  const socket = net.connect(broker.httpAddress.port, '127.0.0.1')
  socket.on('error', () => { /* a reset after the answer: what arrived is parsed */ })
  let data = Buffer.alloc(0)
  const text = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete answer within 5 s: ${JSON.stringify(data.toString('latin1'))}`)) }, 5000)
    const done = (): void => { clearTimeout(timer); socket.destroy(); resolve(data.toString('utf8')) }
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      const end = data.indexOf('\r\n\r\n')
      if (end < 0) return
      const length = /\r\ncontent-length: *(\d+)/i.exec(data.subarray(0, end).toString('latin1'))
      if (length !== null && data.length >= end + 4 + Number(length[1])) done()
    })
    socket.on('close', done)
    socket.write(bytes)
  })
  const end = text.indexOf('\r\n\r\n')
  const [statusLine, ...headerLines] = text.slice(0, end < 0 ? text.length : end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: end < 0 ? '' : text.slice(end + 4) }
}

function expectProblem (answer: RawAnswer, status: number, detail: RegExp): void {
  expect(answer.status, `status of ${JSON.stringify(answer)}`).toBe(status)
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/)
  const body = JSON.parse(answer.body) as Record<string, unknown>
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String) })
  expect(body.detail).toMatch(detail)
}

describe('errors raised before a route runs are problem+json (RFC 9457)', () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['an unknown method', 'FROB / HTTP/1.1\r\nHost: x\r\n\r\n', 400, /method/i],
    ['a malformed request line', 'GARBAGE\r\n\r\n', 400, /request line|method/i],
    ['an unknown HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n', 400, /version/i],
    ['a control character in the path', 'GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n', 400, /URL|path/i],
    ['Content-Length with Transfer-Encoding (RFC 9112 6.3)', 'POST /v1/pubsub/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 400, /Content-Length/i],
    ['an invalid header name', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', 400, /header/i],
    ['headers over 16 KB (RFC 6585 5: 431)', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431, /header.*16/i],
    ['%ZZ in a path', 'GET /v1/store/keys/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n', 400, /percent|encod/i],
    ['%C3%28 (not UTF-8) in a path', 'GET /v1/store/keys/%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n', 400, /percent|encod/i],
    ['a lone % in a path', 'GET /v1/queues/% HTTP/1.1\r\nHost: x\r\n\r\n', 400, /percent|encod/i],
    ['an HTTP/1.1 request without Host (RFC 9112 3.2: 400)', 'GET /healthz HTTP/1.1\r\n\r\n', 400, /host/i],
    ['Expect: 200-ok (RFC 9110 10.1.1: 417)', 'POST /v1/pubsub/publish HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', 417, /expect/i],
    ['GET /mqtt without Upgrade', 'GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n', 426, /websocket/i],
    ['a WebSocket upgrade without a key', 'GET /mqtt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n', 400, /Sec-WebSocket-Key/i],
    ['an upgrade to something other than WebSocket', 'GET /mqtt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n', 400, /upgrade/i],
    ['a chunked body with a bad chunk size', 'POST /v1/pubsub/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n', 400, /chunk/i]
  ]
  for (const [what, bytes, status, detail] of cases) {
    it(`answers ${status} to ${what}`, async () => {
      expectProblem(await raw(bytes), status, detail)
    })
  }

  it('counts them in tetra_bad_input_total{transport="http"} (logged at debug: the client\'s fault)', async () => {
    const count = async (): Promise<number> => Number(/^tetra_bad_input_total\{transport="http"\} (\d+)/m.exec(await (await fetch(`${broker.url}/metrics`)).text())?.[1] ?? 0)
    const before = await count()
    await raw('GARBAGE\r\n\r\n')
    await raw('GET /v1/queues/% HTTP/1.1\r\nHost: x\r\n\r\n')
    await raw('GET /healthz HTTP/1.1\r\n\r\n')
    expect(await count()).toBe(before + 3)
  })

  it('still answers ordinary requests on a connection after an answered error (keep-alive)', async () => {
    const answer = await raw('GET /v1/store/keys/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n')
    expectProblem(answer, 400, /percent|encod/i)
    const res = await fetch(`${broker.url}/healthz`)
    expect(res.status).toBe(200)
  })
})

describe(`JSON payloads nested deeper than ${MAX_JSON_DEPTH} levels are refused with 400, never 500`, () => {
  const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
  const deep = nested(10_000)
  const post = async (path: string, body: string): Promise<Response> =>
    await fetch(broker.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body })

  const cases: Array<[string, string, RegExp]> = [
    ['/v1/queues/deep/messages', `{"payload":${deep}}`, /payload/],
    ['/v1/queues/deep/messages', `{"messages":[{"payload":1},{"payload":${deep}}]}`, /messages\[1\].*payload/],
    ['/v1/streams/deep/messages', `{"payload":${deep}}`, /payload/],
    ['/v1/streams/deep/messages', `{"messages":[{"payload":"a"},{"payload":${deep}}]}`, /messages\[1\].*payload/],
    ['/v1/store/mset', `{"entries":[{"key":"a","value":1},{"key":"b","value":${deep}}]}`, /entries\[1\].*value/],
    ['/v1/pubsub/publish', `{"topic":"a","payload":${deep}}`, /payload/]
  ]
  for (const [path, body, field] of cases) {
    it(`POST ${path} ${body.slice(0, 40)}...: 400 naming the field and the limit`, async () => {
      const res = await post(path, body)
      expect(res.status).toBe(400)
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      const problem = await res.json() as { detail: string }
      expect(problem.detail).toMatch(field)
      expect(problem.detail).toContain(String(MAX_JSON_DEPTH))
    })
  }

  it(`accepts ${MAX_JSON_DEPTH} levels and gives them back as JSON`, async () => {
    const text = nested(MAX_JSON_DEPTH)
    expect((await post('/v1/streams/deep/messages', `{"payload":${text}}`)).status).toBe(200)
    const read = await (await fetch(`${broker.url}/v1/streams/deep/messages?from=start&limit=1000`)).json() as { messages: Array<{ payload: unknown, encoding?: string }> }
    const last = read.messages[read.messages.length - 1]
    expect(last.encoding).toBeUndefined()
    expect(JSON.stringify(last.payload)).toBe(text)
    expect((await post('/v1/streams/deep/messages', `{"payload":${nested(MAX_JSON_DEPTH + 1)}}`)).status).toBe(400)
  })

  it('reads deeper JSON given as bytes (MQTT, a raw store value) back as utf8 text, not as a JSON value', async () => {
    // bytes from other protocols are not refused; an HTTP reader gets them as text it can parse itself
    const text = nested(20_000)
    const put = await fetch(`${broker.url}/v1/store/keys/deep-text`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: text })
    expect(put.status).toBe(200)
    const mget = await post('/v1/store/mget', '{"keys":["deep-text"]}')
    expect(mget.status).toBe(200)
    expect((await mget.json() as { values: unknown[] }).values[0]).toMatchObject({ value: text, encoding: 'utf8' })

    const stream = await fetch(`${broker.url}/v1/streams/deep-capture`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"capture":["deep/#"]}' })
    expect(stream.ok).toBe(true)
    const client = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0 })
    await client.publishAsync('deep/text', text, { qos: 1, retain: true })
    await client.endAsync()
    const retained = await fetch(`${broker.url}/v1/pubsub/retained?filter=deep/%23`)
    expect(retained.status).toBe(200)
    expect(JSON.stringify(await retained.json())).toContain(JSON.stringify({ payload: text, encoding: 'utf8' }).slice(1, -1))
    await waitFor(async () => {
      const read = await fetch(`${broker.url}/v1/streams/deep-capture/messages?from=start`)
      expect(read.status).toBe(200)
      const page = await read.json() as { messages: Array<{ payload: unknown, encoding?: string }> }
      return page.messages.length === 1 && page.messages[0].payload === text && page.messages[0].encoding === 'utf8'
    }, 5000, 'the captured message')
  })
})

describe('slow requests', () => {
  it('a request must arrive within REQUEST_TIMEOUT_MS (fastify turns Node\'s limit off; a dripped body would hold a connection forever)', () => {
    expect(REQUEST_TIMEOUT_MS).toBeGreaterThan(0)
    expect(broker.http.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS)
  })

  it('answers 408 problem+json when the request timeout passes', () => {
    const err = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' })
    expect(clientErrorProblem(err)).toMatchObject({ status: 408, detail: expect.stringMatching(/in time/) })
  })
})
