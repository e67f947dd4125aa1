import type { AuthResult, AuthService, Principal } from '../../../engines/auth/types.js'

/** What an Authorization header holds. */
export type Credential =
  | { scheme: 'bearer', token: string }
  | { scheme: 'basic', name: string, password: string }
  | { scheme: 'unknown' }

/** RFC 9110 11.6.1: the schemes a client may answer a 401 with, in one header. */
export const CHALLENGE = 'Bearer realm="tetra", Basic realm="tetra"'

/** Parses `Bearer <token>` (RFC 6750) or `Basic base64(name:password)` (RFC 7617); schemes are case-insensitive. */
export function parseAuthorization (header: string): Credential {
  const space = header.indexOf(' ')
  if (space < 0) return { scheme: 'unknown' }
  const scheme = header.slice(0, space).toLowerCase()
  const rest = header.slice(space + 1).trim()
  if (scheme === 'bearer' && rest.length > 0) return { scheme: 'bearer', token: rest }
  if (scheme === 'basic' && /^[A-Za-z0-9+/]+=*$/.test(rest)) {
    const text = Buffer.from(rest, 'base64').toString('utf8')
    const colon = text.indexOf(':')
    if (colon > 0) return { scheme: 'basic', name: text.slice(0, colon), password: text.slice(colon + 1) }
  }
  return { scheme: 'unknown' }
}

/** Headers cached at most (a bound on memory; the cache is emptied when it is full). */
const CACHE_LIMIT = 10_000

/**
 * Credentials to principals. The engine caches principals (the same object for the same identity) and
 * verified passwords, but a Basic header would still cost a promise and a SHA-256 per request, and a
 * Bearer token a SHA-256: the principal of each accepted header is kept here until the auth file's
 * generation moves (every reload and every token expiry), so a keep-alive client's request costs one
 * Map lookup. Refused credentials are never cached.
 */
export class Authenticator {
  private readonly accepted = new Map<string, Principal>()
  private generation: number

  constructor (private readonly auth: AuthService, private readonly peerCommonName: (socket: unknown) => string | undefined) {
    this.generation = auth.generation
  }

  /** The principal of an Authorization header, a client certificate, or none (anonymous). */
  authenticate (header: string | undefined, socket: unknown): AuthResult | Promise<AuthResult> {
    if (header === undefined || header === '') {
      const cn = this.peerCommonName(socket)
      return cn !== undefined ? this.auth.certificate(cn) : this.auth.anonymous()
    }
    if (this.generation !== this.auth.generation) {
      this.accepted.clear()
      this.generation = this.auth.generation
    }
    const known = this.accepted.get(header)
    if (known !== undefined) return { ok: true, principal: known }
    const credential = parseAuthorization(header)
    if (credential.scheme === 'unknown') return { ok: false, failure: 'invalid' }
    if (credential.scheme === 'bearer') return this.remember(header, this.auth.token(credential.token), this.generation)
    const generation = this.generation
    return this.auth.password(credential.name, credential.password).then(result => this.remember(header, result, generation))
  }

  private remember (header: string, result: AuthResult, generation: number): AuthResult {
    // a reload during a password check: the engine answered under the new file, but the header is not
    // kept under a generation it was not checked against
    if (result.ok && generation === this.auth.generation && this.generation === generation) {
      if (this.accepted.size >= CACHE_LIMIT) this.accepted.clear()
      this.accepted.set(header, result.principal)
    }
    return result
  }
}
