import net from 'node:net'
import { TimeoutError } from './errors.js'
import type { SendOptions, Sender, WireResponse } from './http.js'

const HEAD_END = Buffer.from('\r\n\r\n')

interface Pending {
  resolve: (r: WireResponse) => void
  reject: (e: unknown) => void
  /** Whether any byte of the answer came (a reused connection closed before that is retried once). */
  started: boolean
}

/**
 * One keep-alive HTTP/1.1 connection, one request at a time, on a plain socket: the answers the client
 * reads carry a Content-Length or are chunked (fastify's are). Written for the worker's hot path, as the
 * bench's load generators are (bench/queue/http.ts): a queue worker draining 150k messages in batches of
 * 100 used 1.7-2.0 CPU-seconds over node:http and 0.9-1.0 over this (the raw load generator 0.7), and a
 * worker shares the cores with whatever it calls.
 */
class Connection {
  readonly socket: net.Socket
  private buffered: Buffer = Buffer.alloc(0)
  pending: Pending | null = null
  closed = false
  used = false

  constructor (host: string, port: number, private readonly onIdle: (c: Connection) => void) {
    this.socket = net.connect({ host, port, noDelay: true })
    this.socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    this.socket.on('error', err => { this.fail(err) })
    this.socket.on('close', () => { this.fail(new Error('the connection was closed')) })
  }

  send (head: string, body: string | Uint8Array | undefined, pending: Pending): void {
    // an idle connection does not keep the process alive (node:http's agents do the same)
    this.socket.ref()
    this.used = true
    this.pending = pending
    if (body === undefined || body.length === 0) this.socket.write(head)
    else if (typeof body === 'string') this.socket.write(head + body)
    else { this.socket.cork(); this.socket.write(head); this.socket.write(body); this.socket.uncork() }
  }

  private onData (chunk: Buffer): void {
    if (this.pending !== null) this.pending.started = true
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const headEnd = this.buffered.indexOf(HEAD_END)
    if (headEnd < 0) return
    const head = this.buffered.toString('latin1', 0, headEnd)
    const lines = head.split('\r\n')
    const status = Number(lines[0].slice(9, 12))
    const headers = new Map<string, string>()
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':')
      if (colon <= 0) continue
      const name = lines[i].slice(0, colon).toLowerCase()
      const value = lines[i].slice(colon + 1).trim()
      headers.set(name, headers.has(name) ? `${headers.get(name)!}, ${value}` : value)
    }
    const start = headEnd + 4
    let body: Buffer
    let end: number
    const length = headers.get('content-length')
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0)
      end = start
    } else if (length !== undefined) {
      end = start + Number(length)
      if (this.buffered.length < end) return
      body = this.buffered.subarray(start, end)
    } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      const parts: Buffer[] = []
      let at = start
      for (;;) {
        const lineEnd = this.buffered.indexOf('\r\n', at)
        if (lineEnd < 0) return
        const size = parseInt(this.buffered.toString('latin1', at, lineEnd), 16)
        if (!Number.isFinite(size)) { this.socket.destroy(new Error('bad chunk size')); return }
        if (this.buffered.length < lineEnd + 2 + size + 2) return
        if (size === 0) { end = lineEnd + 4; break }
        parts.push(this.buffered.subarray(lineEnd + 2, lineEnd + 2 + size))
        at = lineEnd + 2 + size + 2
      }
      body = Buffer.concat(parts)
    } else {
      this.socket.destroy(new Error(`an answer without length: ${lines[0]}`))
      return
    }
    // the body is copied out: the buffer goes on holding what follows
    const bytes = Buffer.from(body)
    this.buffered = this.buffered.subarray(end)
    const pending = this.pending
    this.pending = null
    if (/close/i.test(headers.get('connection') ?? '')) this.socket.end()
    pending?.resolve({
      status,
      statusText: lines[0].slice(13),
      ok: status >= 200 && status < 300,
      headers: { get: name => headers.get(name.toLowerCase()) ?? null },
      body: null,
      text: async () => bytes.toString('utf8'),
      arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
    })
    if (!this.closed && !/close/i.test(headers.get('connection') ?? '')) {
      this.socket.unref()
      this.onIdle(this)
    }
  }

  fail (err: unknown): void {
    if (!this.closed) {
      this.closed = true
      this.socket.destroy()
    }
    const pending = this.pending
    this.pending = null
    pending?.reject(err)
  }
}

/**
 * A Sender on pooled plain-socket connections for http:// (up to maxSockets per broker); Server-Sent
 * Events, https:// and anything else go to `fallback` (node:http).
 */
export function socketSender (fallback: Sender, options: { maxSockets?: number } = {}): Sender {
  const maxSockets = options.maxSockets ?? 256
  const pools = new Map<string, { idle: Connection[], open: number, waiting: Array<() => void> }>()
  return async (href, init: SendOptions) => {
    const url = new URL(href)
    const body = init.body
    if (url.protocol !== 'http:' || init.timeout === 0 || (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array))) {
      return await fallback(href, init)
    }
    init.signal?.throwIfAborted()
    const key = url.host
    let pool = pools.get(key)
    if (pool === undefined) pools.set(key, pool = { idle: [], open: 0, waiting: [] })
    const p = pool
    const bodyLength = body === undefined || body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
    let head = `${init.method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`
    for (const [name, value] of Object.entries(init.headers)) head += `${name}: ${value}\r\n`
    head += bodyLength > 0 || init.method === 'POST' || init.method === 'PUT' ? `content-length: ${bodyLength}\r\n\r\n` : '\r\n'

    const take = async (): Promise<Connection> => {
      for (;;) {
        const idle = p.idle.pop()
        if (idle !== undefined && !idle.closed) return idle
        if (idle !== undefined) continue
        if (p.open < maxSockets) {
          p.open++
          const c = new Connection(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port === '' ? 80 : url.port), conn => {
            const next = p.waiting.shift()
            p.idle.push(conn)
            next?.()
          })
          c.socket.on('close', () => {
            p.open--
            p.idle = p.idle.filter(x => x !== c)
            p.waiting.shift()?.()
          })
          return c
        }
        await new Promise<void>(resolve => { p.waiting.push(resolve) })
      }
    }

    for (let attempt = 0; ; attempt++) {
      const connection = await take()
      const reused = connection.used
      try {
        return await new Promise<WireResponse>((resolve, reject) => {
          let timer: ReturnType<typeof setTimeout> | undefined
          const onAbort = (): void => { connection.fail(init.signal?.reason) }
          const done = (): void => { clearTimeout(timer); init.signal?.removeEventListener('abort', onAbort) }
          const pending: Pending = { resolve: r => { done(); resolve(r) }, reject: e => { done(); reject(Object.assign(e instanceof Error ? e : new Error(String(e)), { started: pending.started })) }, started: false }
          if (init.timeout > 0) timer = setTimeout(() => { connection.fail(new TimeoutError(`no answer within ${init.timeout} ms`)) }, init.timeout)
          init.signal?.addEventListener('abort', onAbort, { once: true })
          connection.send(head, body ?? undefined, pending)
        })
      } catch (err) {
        if (init.signal?.aborted === true) throw init.signal.reason
        if (err instanceof TimeoutError) throw err
        // a kept-alive connection the server closed meanwhile: once more on a new one
        if (reused && attempt === 0 && (err as { started?: boolean }).started !== true) continue
        throw Object.assign(new TypeError('fetch failed'), { cause: err })
      }
    }
  }
}
