import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { TimeoutError } from './errors.js'
import type { Sender, WireResponse } from './http.js'

/**
 * node:http with keep-alive agents, answers as small objects over the buffered body (SSE bodies stream):
 * tetra/client's sender in Node for SSE and https (node-socket.ts takes the rest). Node's fetch (undici)
 * with an AbortController per call costs more CPU per call: stream appends of 100 x 64 B over 4
 * connections reached 0.36-0.57x the raw load generator through fetch, 0.9-1.3x through this
 * (bench/client, same broker, same run).
 */
export function nodeSender (options: { maxSockets?: number } = {}): Sender {
  const agents = {
    http: new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 })
  }
  return async (href, init) => {
    const url = new URL(href)
    let body = init.body
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      // other body kinds are not used by the client; through a Response they become bytes
      body = new Uint8Array(await new Response(body).arrayBuffer())
    }
    const headers: Record<string, string> = { ...init.headers }
    if (body !== undefined && body !== null) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength)
    const signal = init.signal
    signal?.throwIfAborted()
    const isHttps = url.protocol === 'https:'
    return await new Promise<WireResponse>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let failure: unknown
      const req = (isHttps ? httpsRequest : httpRequest)({
        agent: isHttps ? agents.https : agents.http,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        method: init.method,
        path: url.pathname + url.search,
        headers
      }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0
        const answerHeaders = { get: (name: string): string | null => { const v = res.headers[name.toLowerCase()]; return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v } }
        const base = { status, statusText: res.statusMessage ?? '', ok: status >= 200 && status < 300, headers: answerHeaders }
        if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          clearTimeout(timer)
          const stream = new ReadableStream<Uint8Array>({
            start (controller) {
              res.on('data', (chunk: Buffer) => { controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)) })
              res.on('end', () => { controller.close() })
              res.on('close', () => { if (!res.complete) { try { controller.error(new Error('the connection was closed')) } catch {} } })
            },
            cancel () { res.destroy() }
          })
          const read = async (): Promise<Uint8Array> => new Uint8Array(await new Response(stream).arrayBuffer())
          resolve({ ...base, body: stream, text: async () => new TextDecoder().decode(await read()), arrayBuffer: async () => (await read()).slice().buffer })
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => { chunks.push(chunk) })
        res.on('end', () => {
          clearTimeout(timer)
          const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
          resolve({
            ...base,
            body: null,
            text: async () => bytes.toString('utf8'),
            arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
          })
        })
        res.on('error', err => { reject(failure ?? err) })
      })
      const onAbort = (): void => {
        failure = signal?.reason
        req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      if (init.timeout > 0) {
        timer = setTimeout(() => {
          failure = new TimeoutError(`no answer within ${init.timeout} ms`)
          req.destroy()
        }, init.timeout)
      }
      if (signal !== undefined) {
        signal.addEventListener('abort', onAbort, { once: true })
        req.on('close', () => { signal.removeEventListener('abort', onAbort) })
      }
      req.on('error', err => {
        clearTimeout(timer)
        reject(failure ?? Object.assign(new TypeError('fetch failed'), { cause: err }))
      })
      req.end(body ?? undefined)
    })
  }
}
