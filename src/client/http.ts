import { ConnectionError, errorFromProblem, TimeoutError, type ProblemDetails } from './errors.js'
import { bytesToBase64 } from './payload.js'

/** How a client reaches the broker. */
export interface ClientOptions {
  /** The broker's HTTP address, e.g. http://127.0.0.1:8080 (default: TETRA_URL in Node, else that). */
  url?: string
  /** A bearer token (`tetra token`). */
  token?: string
  /** A user of the auth file and its password (HTTP Basic), instead of a token. */
  username?: string
  password?: string
  /** Milliseconds a call may take, long-polls not counting their wait (default 30 000). 0: no timeout. */
  timeout?: number
  /** Retries of a call after a lost connection or a 503 (default 5); never after another status. */
  retries?: number
  /** First back-off between retries in ms, doubled each time up to maxRetryDelay (default 100 / 5000). */
  retryDelay?: number
  maxRetryDelay?: number
  /** Headers sent with every call. */
  headers?: Record<string, string>
  /** The fetch to use (default: globalThis.fetch; in Node, tetra/client sends over node:http instead). */
  fetch?: typeof fetch
  /** How a request is sent, below fetch (tetra/client in Node sets it: node-fetch.ts). */
  send?: Sender
}

/** What the client reads of an answer: a fetch Response has all of it. */
export interface WireResponse {
  status: number
  statusText: string
  ok: boolean
  headers: { get: (name: string) => string | null }
  body: ReadableStream<Uint8Array> | null
  text: () => Promise<string>
  arrayBuffer: () => Promise<ArrayBuffer>
}

export interface SendOptions {
  method: string
  headers: Record<string, string>
  body?: BodyInit
  /** Ms before the attempt is abandoned (0: never); it then rejects with a TimeoutError. */
  timeout: number
  signal?: AbortSignal
}

/** Sends one request; rejects with the signal's reason when aborted, a TimeoutError, or a connection error. */
export type Sender = (url: string, options: SendOptions) => Promise<WireResponse>

/** The Sender over a fetch: an AbortController per attempt carries the timeout and the caller's signal. */
export function fetchSender (fetchImpl: typeof fetch): Sender {
  return async (url, options) => {
    if (options.timeout === 0) {
      // a stream (SSE): the caller's signal must reach the body too, after the answer's head
      try {
        return await fetchImpl(url, { method: options.method, headers: options.headers, body: options.body, signal: options.signal })
      } catch (err) {
        if (options.signal?.aborted === true) throw options.signal.reason
        throw err
      }
    }
    const controller = new AbortController()
    const onAbort = (): void => { controller.abort(options.signal?.reason) }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    let timedOut = false
    const timer = options.timeout > 0 ? setTimeout(() => { timedOut = true; controller.abort() }, options.timeout) : undefined
    try {
      return await fetchImpl(url, { method: options.method, headers: options.headers, body: options.body, signal: controller.signal })
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason
      if (timedOut) throw new TimeoutError(`no answer within ${options.timeout} ms`)
      throw err
    } finally {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
    }
  }
}

/** Options every call takes. */
export interface CallOptions {
  signal?: AbortSignal
  /** This call's timeout in ms (0: none). */
  timeout?: number
}

export interface RequestSpec extends CallOptions {
  method: string
  path: string
  query?: Record<string, string | number | boolean | undefined | Array<string | number>>
  /** A JSON body. */
  json?: unknown
  /** A raw body with its content type. */
  body?: BodyInit
  headers?: Record<string, string>
  /** Extra time in ms on top of the timeout (the wait of a long-poll). */
  extraTime?: number
  /** Statuses that are answers, not errors (besides 2xx), e.g. 304. */
  accept?: number[]
}

export interface Answer {
  status: number
  headers: WireResponse['headers']
  response: WireResponse
}

const envUrl = (): string | undefined => {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  return env?.TETRA_URL
}

export const sleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Path segment of a name or a key: a key may hold `/`, which stays a separator. */
export const keyPath = (key: string): string => key.split('/').map(encodeURIComponent).join('/')
export const namePath = (name: string): string => encodeURIComponent(name)

/**
 * The HTTP side of the client: one fetch per call with the credentials, a timeout and the caller's
 * AbortSignal; retries with exponential back-off (and jitter) on a lost connection and on 503; an answer
 * that is not a success becomes a typed error. Node's fetch (undici) and browsers keep connections alive.
 */
export class Transport {
  readonly url: string
  readonly options: ClientOptions
  readonly send: Sender
  private readonly auth: Record<string, string>

  constructor (options: ClientOptions = {}) {
    this.options = options
    this.url = (options.url ?? envUrl() ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
    this.send = options.send ?? fetchSender(options.fetch ?? globalThis.fetch.bind(globalThis))
    this.auth = {}
    if (options.token !== undefined && options.token !== '') this.auth.authorization = `Bearer ${options.token}`
    else if (options.username !== undefined) {
      this.auth.authorization = 'Basic ' + bytesToBase64(new TextEncoder().encode(`${options.username}:${options.password ?? ''}`))
    }
  }

  /** Headers with the credentials (for SSE and other callers that fetch themselves). */
  headers (extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.options.headers, ...this.auth, ...extra }
  }

  urlOf (path: string, query?: RequestSpec['query']): string {
    let url = this.url + path
    if (query !== undefined) {
      const params = new URLSearchParams()
      for (const [name, value] of Object.entries(query)) {
        if (value === undefined) continue
        if (Array.isArray(value)) for (const v of value) params.append(name, String(v))
        else params.append(name, String(value))
      }
      const text = params.toString()
      if (text !== '') url += '?' + text
    }
    return url
  }

  /** The back-off before retry number `attempt` (0-based). */
  retryDelay (attempt: number): number {
    const base = this.options.retryDelay ?? 100
    const max = this.options.maxRetryDelay ?? 5000
    const delay = Math.min(max, base * 2 ** attempt)
    return delay / 2 + Math.random() * delay / 2
  }

  get maxRetries (): number { return this.options.retries ?? 5 }

  /** One call: the answer (2xx or an accepted status), or a thrown TetraError / ConnectionError / TimeoutError. */
  async request (spec: RequestSpec): Promise<Answer> {
    const headers = this.headers(spec.headers)
    let body: BodyInit | undefined = spec.body
    if (spec.json !== undefined) {
      body = JSON.stringify(spec.json)
      headers['content-type'] = 'application/json'
    }
    const url = this.urlOf(spec.path, spec.query)
    const timeout = spec.timeout ?? this.options.timeout ?? 30_000
    for (let attempt = 0; ; attempt++) {
      spec.signal?.throwIfAborted()
      let response: WireResponse
      try {
        response = await this.send(url, { method: spec.method, headers, body, timeout: timeout > 0 ? timeout + (spec.extraTime ?? 0) : 0, signal: spec.signal })
      } catch (err) {
        if (spec.signal?.aborted === true) throw spec.signal.reason
        if (err instanceof TimeoutError) throw new TimeoutError(`${spec.method} ${spec.path}: no answer within ${timeout} ms`)
        if (attempt >= this.maxRetries) throw new ConnectionError(`${spec.method} ${spec.path}: cannot reach ${this.url}: ${(err as Error).cause !== undefined ? String(((err as Error).cause as Error).message ?? (err as Error).cause) : (err as Error).message}`, { cause: err })
        await sleep(this.retryDelay(attempt), spec.signal)
        continue
      }
      if (response.ok || spec.accept?.includes(response.status) === true) return { status: response.status, headers: response.headers, response }
      const problem = await readProblem(response)
      if (response.status === 503 && attempt < this.maxRetries) {
        const retryAfter = Number(response.headers.get('retry-after'))
        await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : this.retryDelay(attempt), spec.signal)
        continue
      }
      throw errorFromProblem(problem)
    }
  }

  /** A call whose answer is JSON (an empty body is undefined). */
  async json<T> (spec: RequestSpec): Promise<T> {
    const { response } = await this.request(spec)
    const text = await response.text()
    return (text === '' ? undefined : JSON.parse(text)) as T
  }
}

/** The problem document of an answer that is not a success (one made up when the body is not one). */
export async function readProblem (response: WireResponse): Promise<ProblemDetails> {
  const text = await response.text().catch(() => '')
  try {
    const parsed = JSON.parse(text) as Partial<ProblemDetails>
    if (typeof parsed === 'object' && parsed !== null && typeof parsed.status === 'number') {
      return { ...parsed, type: parsed.type ?? 'about:blank', title: parsed.title ?? response.statusText, status: parsed.status, detail: parsed.detail ?? '' }
    }
  } catch {}
  return { type: 'about:blank', title: response.statusText, status: response.status, detail: text.slice(0, 500) || `HTTP ${response.status}` }
}
