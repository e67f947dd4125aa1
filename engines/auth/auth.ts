import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { systemClock, type Clock, type TimerHandle } from '../clock.js'
import type { AuthResult, AuthService, Principal, PrincipalKind } from './types.js'
import { AuthFileError } from './errors.js'
import { parseAuthFile, type AuthModel, type RuleSpec } from './file.js'
import { hashToken, parsePasswordHash, safeEqual, verifyPassword, type ParsedPasswordHash } from './hash.js'
import { OpenPrincipal, RulePrincipal } from './principal.js'
import { watchForChanges } from './watch.js'

export type AuthLogLevel = 'info' | 'warn' | 'error'
/** Where the auth engine reports reloads, warnings and failed background reloads (the broker logs them). */
export type AuthLog = (level: AuthLogLevel, message: string, details?: Record<string, unknown>) => void

export interface AuthOptions {
  /** The auth file; undefined or '' = no auth: everyone is allowed everything. */
  file?: string
  clock?: Clock
  log?: AuthLog
  /** Reload when the file changes (default true). */
  watch?: boolean
  /** Debounce of file events in ms (default 100). */
  watchDebounceMs?: number
  /** Stat polling interval in ms, the fallback of fs.watch (default 500). */
  watchPollMs?: number
}

/** Successful password verifications and principals kept per model (a bound on memory). */
const CACHE_LIMIT = 10_000
/** Longest wait of the expiry timer: it re-arms, so clock changes and far dates are handled. */
const MAX_TIMER_MS = 60 * 60 * 1000
/** How long a file that failed to load must stay quiet before the failure is logged (reloadFromWatcher). */
const WATCH_SETTLE_MS = 300
/** Verified against when the name is unknown, so the answer takes as long as for a known name. */
const DUMMY_HASH = '$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

/** What the engine remembers of each principal it handed out. */
interface PrincipalMeta {
  key: string
  /** The credential it proved (password or token hash); a change revokes it. */
  credential: string
  /** Its roles and their rules (and expiry): a change gives a new principal. */
  fingerprint: string
  generation: number
}

/** One loaded auth file with its caches; replaced whole by a reload. */
interface Loaded {
  model: AuthModel
  bytes: Buffer
  /** `name \0 sha256(password)` of verified passwords. */
  verified: Set<string>
  /** Verifications under way by the same key: a burst of requests with new credentials runs scrypt once. */
  verifying: Map<string, Promise<boolean>>
  principals: Map<string, RulePrincipal>
}

const ok = (principal: Principal): AuthResult => ({ ok: true, principal })
const fail = (failure: 'missing' | 'invalid' | 'expired'): AuthResult => ({ ok: false, failure })

/** The auth engine: the auth file, its reloads, and the principals every front-end asks. */
export class Auth implements AuthService {
  readonly enabled: boolean
  /** The absolute path of the auth file ('' when there is none). */
  readonly file: string
  private gen = 0
  private loaded: Loaded | undefined
  private currentWarnings: string[] = []
  private readonly clock: Clock
  private readonly log: AuthLog
  private readonly listeners = new Set<() => void>()
  private readonly metas = new WeakMap<Principal, PrincipalMeta>()
  private readonly openPrincipal = new OpenPrincipal()
  private expiryTimer: TimerHandle | undefined
  private stopWatching: (() => void) | undefined
  private reloading: Promise<void> = Promise.resolve()
  private closed = false
  private readonly dummy: ParsedPasswordHash

  private constructor (options: AuthOptions) {
    this.file = options.file === undefined || options.file === '' ? '' : resolve(options.file)
    this.enabled = this.file !== ''
    this.clock = options.clock ?? systemClock
    this.log = options.log ?? (() => {})
    this.dummy = parsePasswordHash(DUMMY_HASH) as ParsedPasswordHash
  }

  /** Loads the auth file (throws AuthFileError when it is malformed) and starts watching it. */
  static async open (options: AuthOptions = {}): Promise<Auth> {
    const auth = new Auth(options)
    if (!auth.enabled) return auth
    const { bytes, parsed } = await auth.read()
    auth.apply(bytes, parsed.model, parsed.warnings, false)
    if (options.watch ?? true) {
      auth.stopWatching = watchForChanges(auth.file, () => { void auth.reloadFromWatcher() }, { debounceMs: options.watchDebounceMs, pollMs: options.watchPollMs })
    }
    return auth
  }

  /**
   * A reload the file watcher asked for. A file written in place can be read half-written (an event or poll
   * left from an earlier change fires during the write; Linux grows the file page by page), so a failure is
   * an error only when the file still fails once it has been quiet for WATCH_SETTLE_MS; what was read
   * half-written then loads whole on the second try, with no false alarm in the log.
   */
  private async reloadFromWatcher (): Promise<void> {
    try {
      await this.reload()
    } catch {
      await new Promise<void>(resolve => { setTimeout(resolve, WATCH_SETTLE_MS).unref() })
      if (this.closed) return
      try {
        await this.reload()
      } catch (err) {
        this.log('error', `auth file not reloaded, the previous one stays in force: ${(err as Error).message}`, { file: this.file })
      }
    }
  }

  get generation (): number { return this.gen }

  /** The warnings of the file in force (roles referenced but not defined). */
  get warnings (): readonly string[] { return this.currentWarnings }

  anonymous (clientId?: string): AuthResult {
    if (this.loaded === undefined) return ok(this.open(clientId))
    if (this.loaded.model.anonymous === null) return fail('missing')
    return ok(this.principal(this.loaded, 'anonymous', null, clientId))
  }

  async password (name: string, password: string | Buffer, clientId?: string): Promise<AuthResult> {
    const loaded = this.loaded
    if (loaded === undefined) return ok(this.open(clientId))
    const token = loaded.model.tokens.get(name)
    if (token !== undefined) {
      if (!safeEqual(hashToken(password), token.hash)) return fail('invalid')
      if (token.expiresAt !== null && this.clock.now() >= token.expiresAt) return fail('expired')
      return ok(this.principal(loaded, 'token', name, clientId))
    }
    const user = loaded.model.users.get(name)
    if (user === undefined) {
      await verifyPassword(password, this.dummy)
      return fail('invalid')
    }
    const seen = `${name}\u0000${createHash('sha256').update(password).digest('hex')}`
    if (!loaded.verified.has(seen)) {
      let verifying = loaded.verifying.get(seen)
      if (verifying === undefined) {
        verifying = verifyPassword(password, user.parsed).finally(() => { loaded.verifying.delete(seen) })
        loaded.verifying.set(seen, verifying)
      }
      const good = await verifying
      // the file may have been reloaded meanwhile: decide under the one in force now
      if (this.loaded !== loaded) return await this.password(name, password, clientId)
      if (!good) return fail('invalid')
      if (loaded.verified.size >= CACHE_LIMIT) loaded.verified.clear()
      loaded.verified.add(seen)
    }
    return ok(this.principal(loaded, 'user', name, clientId))
  }

  token (token: string, clientId?: string): AuthResult {
    const loaded = this.loaded
    if (loaded === undefined) return ok(this.open(clientId))
    const entry = loaded.model.tokensByHash.get(hashToken(token))
    if (entry === undefined) return fail('invalid')
    if (entry.expiresAt !== null && this.clock.now() >= entry.expiresAt) return fail('expired')
    return ok(this.principal(loaded, 'token', entry.name, clientId))
  }

  certificate (commonName: string, clientId?: string): AuthResult {
    const loaded = this.loaded
    if (loaded === undefined) return ok(this.open(clientId))
    if (!loaded.model.users.has(commonName)) return fail('invalid')
    return ok(this.principal(loaded, 'certificate', commonName, clientId))
  }

  refresh (principal: Principal): Principal | null {
    if (principal instanceof OpenPrincipal) return this.enabled ? null : principal
    const meta = this.metas.get(principal)
    const loaded = this.loaded
    if (meta === undefined || loaded === undefined) return null
    const state = this.check(principal, meta, loaded)
    if (state === 'revoked') return null
    if (state === 'same') return principal
    return this.principal(loaded, principal.kind, principal.name, principal.clientId)
  }

  /** Whether a principal is unchanged under the loaded model (then marked current), changed or revoked. */
  private check (principal: Principal, meta: PrincipalMeta, loaded: Loaded): 'same' | 'changed' | 'revoked' {
    if (meta.generation === this.gen) return 'same'
    const now = this.describe(loaded.model, principal.kind, principal.name)
    if (now === null || now.credential !== meta.credential) return 'revoked'
    if (now.expiresAt !== null && this.clock.now() >= now.expiresAt) return 'revoked'
    if (now.fingerprint !== meta.fingerprint) return 'changed'
    meta.generation = this.gen
    return 'same'
  }

  onChange (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  reload (): Promise<void> {
    // one reload at a time, in order: a SIGHUP and a file event may come together
    const next = this.reloading.then(async () => {
      if (!this.enabled || this.closed) return
      const { bytes, parsed } = await this.read()
      if (this.closed) return
      if (this.loaded !== undefined && bytes.equals(this.loaded.bytes)) return
      this.apply(bytes, parsed.model, parsed.warnings, true)
    })
    this.reloading = next.catch(() => {})
    return next
  }

  close (): void {
    this.closed = true
    this.stopWatching?.()
    this.expiryTimer?.cancel()
    this.listeners.clear()
  }

  private async read (): Promise<{ bytes: Buffer, parsed: ReturnType<typeof parseAuthFile> }> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.file)
    } catch (err) {
      throw new AuthFileError(this.file, '', `cannot be read: ${(err as Error).message}`)
    }
    return { bytes, parsed: parseAuthFile(bytes.toString('utf8'), this.file) }
  }

  private apply (bytes: Buffer, model: AuthModel, warnings: string[], isReload: boolean): void {
    const previous = this.loaded
    const loaded: Loaded = { model, bytes, verified: new Set(), verifying: new Map(), principals: new Map() }
    this.loaded = loaded
    this.gen++
    this.currentWarnings = warnings
    // principals for which nothing changed stay the same objects (their decision caches stay warm)
    if (previous !== undefined) {
      for (const p of previous.principals.values()) {
        const meta = this.metas.get(p)!
        if (this.check(p, meta, loaded) === 'same') loaded.principals.set(meta.key, p)
      }
    }
    for (const w of warnings) this.log('warn', w, { file: this.file })
    this.log('info', isReload ? 'auth file reloaded' : 'auth file loaded', {
      file: this.file, users: model.users.size, tokens: model.tokens.size, roles: model.roles.size, anonymous: model.anonymous !== null, generation: this.gen
    })
    this.scheduleExpiry()
    if (isReload) this.notify()
  }

  /** The credential, fingerprint and expiry of an identity under a model; null when it does not exist there. */
  private describe (model: AuthModel, kind: PrincipalKind, name: string | null): { credential: string, fingerprint: string, roles: string[], expiresAt: number | null } | null {
    let credential = ''
    let roles: string[]
    let expiresAt: number | null = null
    if (kind === 'anonymous') {
      if (model.anonymous === null) return null
      roles = model.anonymous
    } else if (kind === 'token') {
      const t = model.tokens.get(name!)
      if (t === undefined) return null
      credential = t.hash
      roles = t.roles
      expiresAt = t.expiresAt
    } else if (kind === 'user' || kind === 'certificate') {
      const u = model.users.get(name!)
      if (u === undefined) return null
      if (kind === 'user') credential = u.password
      roles = u.roles
    } else {
      return null
    }
    const fingerprint = JSON.stringify([roles, expiresAt, roles.map(r => model.roles.get(r) ?? null)])
    return { credential, fingerprint, roles, expiresAt }
  }

  /** The principal of an identity under the loaded model: the cached object, or a new one. */
  private principal (loaded: Loaded, kind: PrincipalKind, name: string | null, clientId: string | undefined): RulePrincipal {
    const key = JSON.stringify([kind, name, clientId ?? null, clientId === undefined])
    const cached = loaded.principals.get(key)
    if (cached !== undefined) return cached
    const d = this.describe(loaded.model, kind, name)
    if (d === null) throw new Error(`no ${kind} ${String(name)} in the auth file`) // callers checked
    const rules: RuleSpec[] = []
    for (const role of d.roles) rules.push(...(loaded.model.roles.get(role) ?? []))
    const principal = new RulePrincipal({ name, kind, roles: d.roles, clientId, expiresAt: d.expiresAt }, rules)
    this.metas.set(principal, { key, credential: d.credential, fingerprint: d.fingerprint, generation: this.gen })
    if (loaded.principals.size >= CACHE_LIMIT) loaded.principals.clear()
    loaded.principals.set(key, principal)
    return principal
  }

  private open (clientId: string | undefined): OpenPrincipal {
    return clientId === undefined ? this.openPrincipal : new OpenPrincipal(clientId)
  }

  /** Arms a timer to the earliest future token expiry; when it passes, the generation moves and listeners run. */
  private scheduleExpiry (): void {
    this.expiryTimer?.cancel()
    this.expiryTimer = undefined
    if (this.closed || this.loaded === undefined) return
    const now = this.clock.now()
    let next = Infinity
    for (const t of this.loaded.model.tokens.values()) {
      if (t.expiresAt !== null && t.expiresAt > now && t.expiresAt < next) next = t.expiresAt
    }
    if (next === Infinity) return
    this.expiryTimer = this.clock.setTimer(() => {
      this.expiryTimer = undefined
      if (this.clock.now() >= next) {
        this.gen++
        this.log('info', 'a token expired', { file: this.file, generation: this.gen })
        this.notify()
      }
      this.scheduleExpiry()
    }, Math.min(next - now, MAX_TIMER_MS))
  }

  private notify (): void {
    for (const listener of [...this.listeners]) {
      try {
        listener()
      } catch (err) {
        this.log('error', `an auth change listener failed: ${(err as Error).message}`, { err })
      }
    }
  }
}
