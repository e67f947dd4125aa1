import { ConnectionError, errorFromProblem } from './errors.js'
import { readProblem, sleep, type RequestSpec, type Transport, type WireResponse } from './http.js'

/** One Server-Sent Event. */
export interface SseMessage {
  id?: string
  event: string
  data: string
}

/**
 * Reads the events of a text/event-stream body (the WHATWG parsing rules: `data:` lines joined with
 * newlines, comments ignored, CR, LF and CRLF line ends). Works on any ReadableStream of bytes, so in Node
 * and in browsers alike, without EventSource (which cannot send an Authorization header).
 */
export async function * readSse (body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  let data: string[] = []
  let event = ''
  let id: string | undefined
  let sawCr = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      buffer += decoder.decode(value, { stream: true })
      let start = 0
      for (let i = 0; i < buffer.length; i++) {
        const ch = buffer.charCodeAt(i)
        if (ch !== 10 && ch !== 13) continue
        if (ch === 10 && sawCr && i === start) { sawCr = false; start = i + 1; continue }
        sawCr = ch === 13
        const line = buffer.slice(start, i)
        start = i + 1
        if (line === '') {
          if (data.length > 0) yield { ...(id !== undefined ? { id } : {}), event: event === '' ? 'message' : event, data: data.join('\n') }
          data = []
          event = ''
          continue
        }
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        let value = colon < 0 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (field === 'data') data.push(value)
        else if (field === 'event') event = value
        else if (field === 'id' && !value.includes('\0')) id = value
      }
      buffer = buffer.slice(start)
    }
  } finally {
    reader.releaseLock()
    await body.cancel().catch(() => {})
  }
}

export interface FeedOptions {
  signal?: AbortSignal
  /** Resume after this event id (sent as Last-Event-ID). */
  lastEventId?: string
  /** Reconnect when the stream ends or breaks (default true); the last id seen is sent back. */
  reconnect?: boolean
}

/**
 * A feed that survives the broker's restarts: on a lost connection (or a 503) it reconnects with back-off
 * and sends the last event id it saw as Last-Event-ID, so a resumable feed (store watch, stream tail)
 * continues without gap or duplicate. A 4xx answer ends it with the typed error. The first connection
 * fails after the client's retries; once a feed has been open it retries until it is stopped.
 */
export async function * sseFeed (transport: Transport, spec: Pick<RequestSpec, 'path' | 'query'>, options: FeedOptions = {}): AsyncGenerator<SseMessage> {
  const controller = new AbortController()
  const onAbort = (): void => { controller.abort(options.signal?.reason) }
  options.signal?.addEventListener('abort', onAbort, { once: true })
  let lastId = options.lastEventId
  let everOpen = false
  let failures = 0
  try {
    for (;;) {
      options.signal?.throwIfAborted()
      let response: WireResponse | undefined
      try {
        response = await transport.send(transport.urlOf(spec.path, spec.query), {
          method: 'GET',
          headers: transport.headers({ accept: 'text/event-stream', ...(lastId !== undefined ? { 'last-event-id': lastId } : {}) }),
          timeout: 0,
          signal: controller.signal
        })
      } catch (err) {
        if (options.signal?.aborted === true) throw options.signal.reason
        if (!everOpen && failures >= transport.maxRetries) throw new ConnectionError(`GET ${spec.path}: cannot reach ${transport.url}: ${(err as Error).message}`, { cause: err })
      }
      if (response !== undefined) {
        if (!response.ok) {
          const problem = await readProblem(response)
          if (response.status !== 503 || (!everOpen && failures >= transport.maxRetries)) throw errorFromProblem(problem)
        } else if (response.body !== null) {
          everOpen = true
          failures = 0
          try {
            for await (const message of readSse(response.body)) {
              if (message.id !== undefined) lastId = message.id
              yield message
            }
          } catch (err) {
            if (options.signal?.aborted === true) throw options.signal.reason
            // the connection broke: reconnect below
          }
          if (options.reconnect === false) return
        }
      }
      await sleep(transport.retryDelay(Math.min(failures++, 10)), options.signal)
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    controller.abort()
  }
}
