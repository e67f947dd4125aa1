// The page's way to the broker: the same REST and SSE any client uses, with the credentials the user
// signed in with (kept in this tab's sessionStorage only), and API errors turned into readable messages.

export interface Credentials { kind: 'basic' | 'bearer', user?: string, secret: string }

export interface Rule { resource: string, pattern: string, actions: string[], effect: 'allow' | 'deny' }
export interface WhoAmI { name: string | null, kind: string, roles: string[], rules: Rule[], expiresAt: number | null }
export interface DashboardInfo { mode: 'on' | 'readonly', version: string, auth: boolean }

/** An API answer that was not 2xx, as its problem+json says it. */
export class ApiError extends Error {
  constructor (readonly status: number, readonly title: string, readonly detail: string) {
    super(detail === '' ? `${status} ${title}` : detail)
  }

  /** What the page shows. */
  get text (): string {
    if (this.status === 0) return `the broker cannot be reached (${this.detail})`
    return `${this.title || 'Error'} (${this.status}): ${this.detail}`
  }
}

const STORAGE_KEY = 'tetra.credentials'
let credentials: Credentials | null = (() => {
  try { return JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null') as Credentials | null } catch { return null }
})()

export function getCredentials (): Credentials | null { return credentials }
export function setCredentials (c: Credentials | null): void {
  credentials = c
  if (c === null) sessionStorage.removeItem(STORAGE_KEY)
  else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c))
}

function authHeader (): Record<string, string> {
  if (credentials === null) return {}
  if (credentials.kind === 'bearer') return { authorization: `Bearer ${credentials.secret}` }
  const bytes = new TextEncoder().encode(`${credentials.user ?? ''}:${credentials.secret}`)
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return { authorization: `Basic ${btoa(bin)}` }
}

/** Listeners told when the broker answers again after failing to (a restart) or stops answering. */
type ReachListener = (reachable: boolean) => void
const reachListeners = new Set<ReachListener>()
let reachable = true
export function onReachability (l: ReachListener): () => void { reachListeners.add(l); return () => { reachListeners.delete(l) } }
export function setReachable (r: boolean): void {
  if (r === reachable) return
  reachable = r
  for (const l of reachListeners) l(r)
}

/** Told when the broker no longer accepts the credentials the page signed in with (a revoked or expired token). */
const rejectedListeners = new Set<(detail: string) => void>()
export function onCredentialsRejected (l: (detail: string) => void): () => void { rejectedListeners.add(l); return () => { rejectedListeners.delete(l) } }

export interface RequestOptions {
  method?: string
  body?: unknown
  /** A raw body (the store's values) with its content type. */
  raw?: { body: BodyInit, type: string }
  headers?: Record<string, string>
}

/** A request; resolves with the Response of a 2xx (or 304), rejects with ApiError otherwise. */
export async function request (path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeader(), 'tetra-dashboard': '1', ...options.headers }
  let body: BodyInit | undefined
  if (options.raw !== undefined) {
    body = options.raw.body
    headers['content-type'] = options.raw.type
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers['content-type'] = 'application/json'
  }
  let res: Response
  try {
    // credentials 'omit': no cookie and, on a 401, no browser login dialog (the page has its own sign-in);
    // the Authorization header set here is sent all the same
    res = await fetch(path, { method: options.method ?? 'GET', headers, body, cache: 'no-store', credentials: 'omit' })
  } catch (err) {
    setReachable(false)
    throw new ApiError(0, 'Unreachable', (err as Error).message)
  }
  setReachable(res.status !== 502 && res.status !== 503 && res.status !== 504)
  if (res.ok || res.status === 304) return res
  let title = res.statusText
  let detail = ''
  try {
    const p = await res.json() as { title?: string, detail?: string }
    title = p.title ?? title
    detail = p.detail ?? ''
  } catch { /* not problem+json */ }
  const error = new ApiError(res.status, title, detail)
  if (res.status === 401 && credentials !== null) for (const l of rejectedListeners) l(error.text)
  throw error
}

export async function json<T> (path: string, options: RequestOptions = {}): Promise<T> {
  const res = await request(path, options)
  if (res.status === 204) return undefined as T
  return await res.json() as T
}

/** `encodeURIComponent` for each segment of a key or name that may hold '/'. */
export function pathOf (key: string): string { return key.split('/').map(encodeURIComponent).join('/') }

export interface LiveOptions {
  /** Named events to listen to besides `message`. */
  events?: string[]
  onEvent: (event: string, data: string, id: string) => void
  /** Told when the stream opens (again) or drops. */
  onState?: (state: 'open' | 'reconnecting' | 'closed', detail?: string) => void
  /** The query string to add on a reconnect, given the last event id seen. */
  resume?: (lastEventId: string) => string
}

/**
 * An SSE stream through the ticket flow (EventSource cannot send a header): POST /v1/auth/ticket with the
 * credentials, then the stream with ?ticket=. A ticket is single-use, so every reconnect asks for a new one,
 * after 1, 2, 4 ... up to 10 s. Returns the closer.
 */
export function live (path: string, query: string, options: LiveOptions): () => void {
  let closed = false
  let es: EventSource | null = null
  let lastId = ''
  let delay = 1000
  let timer: ReturnType<typeof setTimeout> | undefined
  const open = async (): Promise<void> => {
    if (closed) return
    let ticket: string
    try {
      ticket = (await json<{ ticket: string }>('/v1/auth/ticket', { method: 'POST', body: { path } })).ticket
    } catch (err) {
      const e = err as ApiError
      if (e.status === 401 || e.status === 403) { options.onState?.('closed', e.text); return }
      retry(e.text)
      return
    }
    if (closed) return
    const resume = lastId !== '' && options.resume !== undefined ? options.resume(lastId) : ''
    const q = [query, resume, `ticket=${encodeURIComponent(ticket)}`].filter(s => s !== '').join('&')
    const source = new EventSource(`${path}?${q}`)
    es = source
    let opened = false
    source.onopen = () => { opened = true; delay = 1000; setReachable(true); options.onState?.('open') }
    const handle = (name: string) => (e: MessageEvent<string>) => {
      if (e.lastEventId !== '') lastId = e.lastEventId
      options.onEvent(name, e.data, e.lastEventId)
    }
    source.onmessage = handle('message')
    for (const name of options.events ?? []) source.addEventListener(name, handle(name) as EventListener)
    source.addEventListener('revoked', ((e: MessageEvent<string>) => {
      closed = true
      source.close()
      options.onState?.('closed', `the stream was ended: ${e.data}`)
    }) as EventListener)
    source.onerror = () => {
      // the used ticket would be refused: close, and open anew with a new ticket
      source.close()
      if (closed) return
      if (opened) setReachable(false)
      retry('the stream dropped')
    }
  }
  const retry = (why: string): void => {
    if (closed) return
    options.onState?.('reconnecting', why)
    timer = setTimeout(() => { void open() }, delay)
    delay = Math.min(delay * 2, 10_000)
  }
  void open()
  return () => {
    closed = true
    if (timer !== undefined) clearTimeout(timer)
    es?.close()
  }
}

// ---- what the principal may do (the broker checks every request; this only hides what it would refuse) ----

function topicMatches (pattern: string, topic: string): boolean {
  const p = pattern.split('/')
  const t = topic.split('/')
  if (t[0]?.startsWith('$') === true && (p[0] === '+' || p[0] === '#')) return false
  for (let i = 0; ; i++) {
    if (p[i] === '#') return true
    if (p[i] === undefined || t[i] === undefined) return p[i] === t[i]
    if (p[i] !== '+' && p[i] !== t[i]) return false
  }
}

function nameMatches (pattern: string, name: string): boolean {
  if (pattern === '*') return true
  if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1))
  return pattern === name
}

export class Permissions {
  constructor (private readonly who: WhoAmI | null, readonly readonly: boolean) {}

  /** May the principal do `action` on `name` (undefined: on some name of that kind)? */
  can (resource: string, action: string, name?: string): boolean {
    const who = this.who
    if (who === null || who.kind === 'open') return true
    const match = (r: Rule): boolean => r.resource === resource && r.actions.includes(action) &&
      (name === undefined || (resource === 'topic' ? topicMatches(r.pattern, name) : nameMatches(r.pattern, name)))
    if (name !== undefined && who.rules.some(r => r.effect === 'deny' && match(r))) return false
    return who.rules.some(r => r.effect === 'allow' && match(r))
  }

  /** A write action: also hidden in read-only mode. */
  write (resource: string, action: string, name?: string): boolean {
    return !this.readonly && this.can(resource, action, name)
  }
}
