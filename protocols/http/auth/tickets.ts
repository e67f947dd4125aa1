import { randomBytes } from 'node:crypto'
import type { Principal } from '../../../engines/auth/types.js'

/** A ticket is good for this long after it is issued (seconds). */
export const TICKET_TTL_SECONDS = 60
/** Tickets outstanding at most over all principals: 10,000 × ~200 bytes. */
const MAX_OUTSTANDING = 10_000

interface Ticket {
  principal: Principal
  /** The one path it may be used on; undefined: any SSE route. */
  path: string | undefined
  expiresAt: number
}

export type TicketUse = { ok: true, principal: Principal } | { ok: false, reason: string }

/**
 * Single-use tickets for the SSE routes: a browser's EventSource cannot send an Authorization header, and
 * a long-lived secret in a URL ends up in logs and histories. A ticket is random (256 bits), good for one
 * request within 60 s, and burnt by any use, right or wrong.
 */
export class Tickets {
  /** In issue order, so the expired ones are at the front. */
  private readonly tickets = new Map<string, Ticket>()

  constructor (private readonly now: () => number) {}

  /** A new ticket for the principal, or undefined when too many are outstanding. */
  issue (principal: Principal, path: string | undefined): string | undefined {
    this.sweep()
    if (this.tickets.size >= MAX_OUTSTANDING) return undefined
    const ticket = randomBytes(32).toString('base64url')
    this.tickets.set(ticket, { principal, path, expiresAt: this.now() + TICKET_TTL_SECONDS * 1000 })
    return ticket
  }

  /** Uses (and so removes) a ticket on a path. */
  use (ticket: string, path: string): TicketUse {
    const found = this.tickets.get(ticket)
    if (found === undefined) return { ok: false, reason: 'unknown or already used ticket' }
    this.tickets.delete(ticket)
    if (this.now() >= found.expiresAt) return { ok: false, reason: 'expired ticket' }
    if (found.path !== undefined && found.path !== path) return { ok: false, reason: `the ticket was issued for ${found.path}` }
    return { ok: true, principal: found.principal }
  }

  get size (): number { return this.tickets.size }

  private sweep (): void {
    const now = this.now()
    for (const [key, t] of this.tickets) {
      if (t.expiresAt > now) break
      this.tickets.delete(key)
    }
  }
}
