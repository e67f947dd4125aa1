import type { FastifyReply, FastifyRequest } from 'fastify'
import type { SseSession } from './auth/sse-sessions.js'

export interface SseEvent {
  /** The `id:` line: what a reconnecting client sends back as Last-Event-ID. */
  id?: string
  event?: string
  /** One line of data (JSON); must not contain a newline. */
  data: string
}

/**
 * One Server-Sent Events response. The reply is taken over from fastify; the stream sends a heartbeat
 * comment every heartbeatMs and runs the onClose callbacks exactly once when the client goes away or
 * the server ends it, so every subscription behind it can be removed.
 */
export class SseStream {
  private readonly raw: FastifyReply['raw']
  private heartbeat: NodeJS.Timeout
  private closeCallbacks: Array<() => void | Promise<void>> = []
  private ended = false
  /** Events written so far (for metrics and tests). */
  sent = 0
  /** Its place among the principal's open streams (--sse-max-streams, revocation); see auth/sse-sessions.ts. */
  private readonly session: SseSession | undefined

  /** Throws TooManyRequests (429, before the reply is taken over) past --sse-max-streams for the principal. */
  constructor (request: FastifyRequest, reply: FastifyReply, heartbeatMs: number) {
    const sessions = request.server.httpSecurity?.sessions
    this.session = sessions?.open(request, this)
    if (sessions !== undefined && this.session !== undefined) {
      const session = this.session
      this.closeCallbacks.push(() => { sessions.close(session) })
    }
    reply.hijack()
    this.raw = reply.raw
    this.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    // an early comment so proxies and EventSource see the stream open at once
    this.raw.write(': connected\n\n')
    this.heartbeat = setInterval(() => { this.raw.write(': heartbeat\n\n') }, heartbeatMs)
    this.heartbeat.unref()
    request.raw.on('close', () => { this.end() })
    this.raw.on('error', () => { this.end() })
  }

  get closed (): boolean { return this.ended }

  /**
   * Whether an event about `name` (a topic, a key) may go to this stream's principal, by the rule its
   * route declared (a deny inside an allowed wildcard or prefix is honoured at delivery); true when the
   * route declares no delivery rule or there is no auth file.
   */
  permits (name: string): boolean {
    return this.session === undefined || this.session.permits(name)
  }

  /** Registers cleanup; runs at once if the stream has already ended. */
  onClose (fn: () => void | Promise<void>): void {
    if (this.ended) void fn()
    else this.closeCallbacks.push(fn)
  }

  /** Writes an event; false when the socket buffer is full (wait for drained() before more). */
  send (event: SseEvent): boolean {
    if (this.ended) return false
    let text = ''
    if (event.id !== undefined) text += `id: ${event.id}\n`
    if (event.event !== undefined) text += `event: ${event.event}\n`
    text += `data: ${event.data}\n\n`
    this.sent++
    return this.raw.write(text)
  }

  /**
   * Writes `count` events already framed as `id: ...\ndata: ...\n\n` in one write (a feed that sends
   * many events at once saves a write per event); false when the socket buffer is full. The buffer
   * must not be reused afterwards: the socket may still hold it.
   */
  sendFramed (frames: Buffer, count: number): boolean {
    if (this.ended) return false
    this.sent += count
    return this.raw.write(frames)
  }

  /** Resolves when the socket can take more, or the stream has ended. */
  async drained (): Promise<void> {
    if (this.ended || !this.raw.writableNeedDrain) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.raw.off('drain', done)
        this.raw.off('close', done)
        resolve()
      }
      this.raw.on('drain', done)
      this.raw.on('close', done)
    })
  }

  /** Ends the response (server side) and runs the cleanup callbacks. */
  end (): void {
    if (this.ended) return
    this.ended = true
    clearInterval(this.heartbeat)
    if (!this.raw.writableEnded) this.raw.end()
    const callbacks = this.closeCallbacks
    this.closeCallbacks = []
    for (const fn of callbacks) void fn()
  }
}

/** The id a reconnecting client resumes after: the Last-Event-ID header or the lastEventId query parameter. */
export function lastEventId (request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id']
  if (typeof header === 'string' && header.length > 0) return header
  const query = request.query as Record<string, unknown> | undefined
  const fromQuery = query?.lastEventId
  return typeof fromQuery === 'string' && fromQuery.length > 0 ? fromQuery : undefined
}
