/**
 * Stream load generator, run in its own process: `node loadgen.js '<json params>'`. Drives one HTTP
 * scenario against a broker (or the bare baseline) and prints one JSON line with what it counted.
 *  - append: `connections` loops, each POSTing batches of `batch` messages of `payloadBytes` for `durationMs`
 *  - fill:   the same with batches of 1000 until `messages` are appended (setup, not measured)
 *  - replay: GET pages of `page` from offset 0 until `messages` were read, the next page requested as
 *            soon as the current one's headers say where it starts (see replay())
 *  - tail:   one SSE reader from offset 0 until `messages` events arrived
 */
import { performance } from 'node:perf_hooks'
import { get, request, type Agent, type IncomingHttpHeaders } from 'node:http'
import { latencySummary } from '../lib/stats.js'
import { httpCall, makeAgent } from './http.js'

export type StreamLoadParams =
  | { mode: 'append', base: string, stream: string, connections: number, batch: number, payloadBytes: number, durationMs: number }
  | { mode: 'fill', base: string, stream: string, connections: number, payloadBytes: number, messages: number }
  | { mode: 'replay', base: string, stream: string, page: number, messages: number, timeoutMs: number }
  | { mode: 'tail', base: string, stream: string, messages: number, timeoutMs: number }

export interface StreamLoadResult {
  /** Messages sent (append) or expected (replay, tail). */
  published: number
  /** Messages acknowledged (append) or received (replay, tail). */
  delivered: number
  rate: number
  elapsedMs: number
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
  errors?: number
}

function batchBody (batch: number, payloadBytes: number): string {
  // a JSON string payload of exactly payloadBytes bytes once encoded
  const payload = 'x'.repeat(Math.max(0, payloadBytes - 2))
  return JSON.stringify({ messages: Array.from({ length: batch }, () => ({ payload })) })
}

async function append (p: Extract<StreamLoadParams, { mode: 'append' }>): Promise<StreamLoadResult> {
  const agent = makeAgent(p.connections)
  const body = batchBody(p.batch, p.payloadBytes)
  const path = `/v1/streams/${p.stream}/messages`
  let published = 0
  let delivered = 0
  let errors = 0
  const latencies: number[] = []
  const start = performance.now()
  const end = start + p.durationMs
  await Promise.all(Array.from({ length: p.connections }, async () => {
    for (let i = 0; i < 10_000_000 && performance.now() < end; i++) {
      const t0 = performance.now()
      published += p.batch
      const res = await httpCall(agent, p.base, 'POST', path, body)
      latencies.push(performance.now() - t0)
      if (res.status === 200) delivered += (JSON.parse(res.body.toString()) as { offsets: number[] }).offsets.length
      else errors++
    }
  }))
  const elapsedMs = performance.now() - start
  agent.destroy()
  return { published, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, errors, ...latencySummary(latencies) }
}

async function fill (p: Extract<StreamLoadParams, { mode: 'fill' }>): Promise<StreamLoadResult> {
  const agent = makeAgent(p.connections)
  const body = batchBody(1000, p.payloadBytes)
  let published = 0
  let delivered = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: p.connections }, async () => {
    while (published < p.messages) {
      published += 1000
      const res = await httpCall(agent, p.base, 'POST', `/v1/streams/${p.stream}/messages`, body)
      if (res.status !== 200) throw new Error(`fill: ${res.status} ${res.body.toString()}`)
      delivered += 1000
    }
  }))
  const elapsedMs = performance.now() - start
  agent.destroy()
  return { published, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs }
}

/** A GET whose headers and body arrive as two promises: the headers say where the next page starts. */
function getPage (agent: Agent, base: string, path: string): { headers: Promise<IncomingHttpHeaders>, body: Promise<{ status: number, body: Buffer }> } {
  let onHeaders!: (h: IncomingHttpHeaders) => void
  const headers = new Promise<IncomingHttpHeaders>(resolve => { onHeaders = resolve })
  const url = new URL(path, base)
  const body = new Promise<{ status: number, body: Buffer }>((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, method: 'GET', path: url.pathname + url.search }, res => {
      onHeaders(res.headers)
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', err => { onHeaders({}); reject(err) })
    req.end()
  })
  return { headers, body }
}

/**
 * Pages of `page` messages from offset 0, as a consumer that prefetches reads them: the request for
 * page N+1 goes out (on a second connection) as soon as page N's headers give its `Tetra-Next`, while
 * page N is still arriving and being parsed. Every message of every page is parsed and counted, and
 * the offsets must follow each other without gap or repeat (else counted in errors).
 */
async function replay (p: Extract<StreamLoadParams, { mode: 'replay' }>): Promise<StreamLoadResult> {
  const agent = makeAgent(2)
  const path = (from: number): string => `/v1/streams/${p.stream}/messages?from=${from}&limit=${p.page}`
  let expected = 0
  let delivered = 0
  let errors = 0
  const latencies: number[] = []
  const start = performance.now()
  const deadline = start + p.timeoutMs
  let t0 = performance.now()
  let current = getPage(agent, p.base, path(0))
  for (let round = 0; round < 10_000_000 && delivered < p.messages && performance.now() < deadline; round++) {
    const headers = await current.headers
    const next = Number(headers['tetra-next'])
    let following: ReturnType<typeof getPage> | null = null
    let t1 = 0
    if (Number.isSafeInteger(next) && next < p.messages) {
      t1 = performance.now()
      following = getPage(agent, p.base, path(next))
    }
    const res = await current.body
    latencies.push(performance.now() - t0)
    const page = JSON.parse(res.body.toString()) as { messages: Array<{ offset: number }>, next: number }
    for (const m of page.messages) {
      if (m.offset !== expected) errors++
      expected = m.offset + 1
    }
    delivered += page.messages.length
    if (page.messages.length === 0 || following === null) break
    if (page.next !== next) errors++
    current = following
    t0 = t1
  }
  const elapsedMs = performance.now() - start
  agent.destroy()
  return { published: p.messages, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, errors, ...latencySummary(latencies) }
}

async function tail (p: Extract<StreamLoadParams, { mode: 'tail' }>): Promise<StreamLoadResult> {
  const start = performance.now()
  let delivered = 0
  let lastId = -1
  let outOfOrder = 0
  await new Promise<void>((resolve, reject) => {
    const req = get(`${p.base}/v1/streams/${p.stream}/tail?from=start`, { headers: { accept: 'text/event-stream' } }, res => {
      let rest = ''
      const timer = setTimeout(() => { req.destroy(); resolve() }, p.timeoutMs)
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        const text = rest + chunk
        let at = 0
        for (;;) {
          const i = text.indexOf('id: ', at)
          if (i < 0) break
          const nl = text.indexOf('\n', i)
          if (nl < 0) break
          const id = Number(text.slice(i + 4, nl))
          if (id !== lastId + 1) outOfOrder++
          lastId = id
          delivered++
          at = nl + 1
        }
        rest = text.slice(at)
        if (delivered >= p.messages) {
          clearTimeout(timer)
          req.destroy()
          resolve()
        }
      })
      res.on('error', () => { clearTimeout(timer); resolve() })
    })
    req.on('error', err => { if (delivered < p.messages) reject(err) })
  })
  const elapsedMs = performance.now() - start
  return { published: p.messages, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, errors: outOfOrder }
}

async function main (): Promise<void> {
  const params = JSON.parse(process.argv[2]) as StreamLoadParams
  let result: StreamLoadResult
  switch (params.mode) {
    case 'append': result = await append(params); break
    case 'fill': result = await fill(params); break
    case 'replay': result = await replay(params); break
    case 'tail': result = await tail(params); break
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

void main()
