import type { FastifyRequest } from 'fastify'
import type { AuthService, Principal } from '../../../engines/auth/types.js'
import { TooManyRequests } from '../../../engines/errors.js'
import type { SecurityCounters } from '../../security-metrics.js'
import type { Check } from './enforce.js'

/** What a session needs of its SSE stream (protocols/http/sse.ts's SseStream). */
export interface SseHost {
  send (event: { event?: string, data: string }): boolean
  end (): void
}

/** What the route declared that an open stream keeps applying. */
export interface StreamRules {
  /** The action the route needs (the label of the denial counter). */
  action: string
  /** The route's check, run again when the principal's rules change. */
  check: Check | null
  /** Whether each delivered event's name may be seen (a deny inside an allowed wildcard or prefix). */
  deliver: ((p: Principal, name: string) => boolean) | null
}

/**
 * The key of a principal's share of the limits: its name (users and tokens share one namespace, and a
 * certificate names a user, so a user counts once however it authenticates), or the client's address
 * when it has no name (anonymous, or no auth file).
 */
export function principalKey (principal: Principal | null, request: FastifyRequest): string {
  if (principal === null || principal.name === null) return 'ip ' + request.ip
  return 'name ' + principal.name
}

/** One open SSE stream and the principal it was opened by (replaced when the auth file changes). */
export class SseSession {
  constructor (
    readonly key: string,
    public principal: Principal | null,
    readonly request: FastifyRequest,
    readonly rules: StreamRules | undefined,
    readonly host: SseHost
  ) {}

  /** Whether an event about `name` (a topic, a key) may go to this stream's principal. */
  permits (name: string): boolean {
    const deliver = this.rules?.deliver
    return deliver == null || this.principal === null || deliver(this.principal, name)
  }
}

/**
 * The open SSE streams: their count per principal (--sse-max-streams) and their revocation. An SSE
 * stream outlives the request that authenticated it, so when the auth file changes (a reload or a token
 * expiry, reported within 1 s by auth.onChange) each stream's principal is refreshed: a revoked one ends
 * the stream, a changed one has the route's check run again (and its deliveries decided by the new rules).
 */
export class SseSessions {
  private readonly sessions = new Set<SseSession>()
  private readonly perKey = new Map<string, number>()
  private readonly stopListening: () => void

  constructor (
    private readonly auth: AuthService,
    private readonly maxPerPrincipal: number,
    private readonly security: SecurityCounters,
    private readonly rulesOf: (request: FastifyRequest) => StreamRules | undefined
  ) {
    this.stopListening = auth.enabled ? auth.onChange(() => { this.recheck() }) : () => {}
  }

  /** Registers a stream before its reply is taken over; throws TooManyRequests (429) past the limit. */
  open (request: FastifyRequest, host: SseHost): SseSession {
    const principal = request.principal
    const key = principalKey(principal, request)
    const count = this.perKey.get(key) ?? 0
    if (count >= this.maxPerPrincipal) {
      this.security.limit('sse_max_streams')
      throw new TooManyRequests(`too many SSE streams open: at most ${this.maxPerPrincipal} per principal (--sse-max-streams)`)
    }
    this.perKey.set(key, count + 1)
    const session = new SseSession(key, principal, request, this.rulesOf(request), host)
    this.sessions.add(session)
    return session
  }

  close (session: SseSession): void {
    if (!this.sessions.delete(session)) return
    const left = (this.perKey.get(session.key) ?? 1) - 1
    if (left <= 0) this.perKey.delete(session.key)
    else this.perKey.set(session.key, left)
  }

  get size (): number { return this.sessions.size }

  /** Ends every stream (server side) at shutdown. */
  dispose (): void {
    this.stopListening()
  }

  private recheck (): void {
    for (const s of [...this.sessions]) {
      if (s.principal === null) continue
      const next = this.auth.refresh(s.principal)
      if (next === null) {
        this.end(s, 401, 'the credentials of this stream were revoked or expired')
        continue
      }
      if (next === s.principal) continue
      s.principal = next
      const denied = s.rules?.check?.(next, s.request) ?? null
      if (denied !== null) this.end(s, 403, denied)
    }
  }

  private end (s: SseSession, status: number, detail: string): void {
    if (status === 401) this.security.authFailure('http', 'revoked')
    else this.security.deny('http', s.rules?.action ?? 'unknown')
    s.host.send({ event: 'revoked', data: JSON.stringify({ status, detail }) })
    this.close(s)
    s.host.end()
  }
}
