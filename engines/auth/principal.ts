import { ACTIONS, type Action, type Principal, type PrincipalKind, type PrincipalSummary, type ResourceKind } from './types.js'
import type { RuleSpec } from './file.js'
import { compileNamePattern, covers, coversPrefix, matchesName, splitTopic, topicFilterProblem, type Levels, type NamePattern } from './patterns.js'

/** Who a principal is, before its rules are compiled. */
export interface Identity {
  name: string | null
  kind: PrincipalKind
  roles: readonly string[]
  clientId: string | undefined
  expiresAt: number | null
}

/** The rules of one (resource, action): allow and deny patterns, and the decisions made so far. */
interface Bucket<P> { allow: P[], deny: P[], decisions: Map<string, boolean> }

type Buckets = {
  topic: Record<string, Bucket<Levels>>
} & Record<Exclude<ResourceKind, 'topic'>, Record<string, Bucket<NamePattern>>>

/**
 * Decisions kept per principal before the cache starts again: a bound on memory, not a tuning knob. Every
 * MQTT connection has its own principal, and a client may use long topics (up to 64 KiB), so the names'
 * length is bounded too: at most about 10k entries or 256 KiB of names, ~1 MB per principal at worst.
 */
export const DECISION_CACHE_LIMIT = 10_000
const DECISION_CACHE_CHARS = 256 * 1024

/** Up to this many name patterns in a (resource, action), its decisions are made afresh rather than cached. */
const UNCACHED_NAME_PATTERNS = 8

/** A value that would change a pattern's meaning if put into it (Mosquitto refuses such names too). */
const UNSAFE_VALUE = /[/+#\u0000]/

/**
 * The pattern with %u and %c replaced, or null when the rule does not apply to this principal: %u without a
 * name, %c without a client id, or a value containing / + # that would widen an allow rule. In a deny rule
 * such a value makes the level a `+` instead, so an odd name never escapes a deny.
 */
export function substitute (pattern: string, name: string | null, clientId: string | undefined, effect: 'allow' | 'deny'): string | null {
  if (!pattern.includes('%')) return pattern
  const levels = pattern.split('/')
  for (const [i, level] of levels.entries()) {
    const hasU = level.includes('%u')
    const hasC = level.includes('%c')
    if (!hasU && !hasC) continue
    if ((hasU && name === null) || (hasC && clientId === undefined)) return null
    if ((hasU && UNSAFE_VALUE.test(name!)) || (hasC && UNSAFE_VALUE.test(clientId!))) {
      if (effect === 'allow') return null
      levels[i] = '+'
      continue
    }
    levels[i] = level.replace(/%([uc])/g, (_, k: string) => k === 'u' ? name! : clientId!)
  }
  return levels.join('/')
}

function emptyBuckets (): Buckets {
  // null prototypes: an action or resource that is not one (`toString`) finds nothing, not Object's members
  const make = <P>(r: ResourceKind): Record<string, Bucket<P>> =>
    Object.assign(Object.create(null) as Record<string, Bucket<P>>, Object.fromEntries(ACTIONS[r].map(a => [a, { allow: [], deny: [], decisions: new Map() }])))
  return Object.assign(Object.create(null) as Buckets, { topic: make('topic'), store: make('store'), queue: make('queue'), stream: make('stream'), system: make('system') })
}

/** A principal whose rules come from the auth file: compiled once, decisions cached. */
export class RulePrincipal implements Principal {
  readonly name: string | null
  readonly kind: PrincipalKind
  readonly roles: readonly string[]
  readonly clientId: string | undefined
  readonly expiresAt: number | null
  private readonly buckets: Buckets
  private readonly rules: PrincipalSummary['rules']
  private cached = 0
  private cachedChars = 0

  constructor (identity: Identity, rules: readonly RuleSpec[]) {
    this.name = identity.name
    this.kind = identity.kind
    this.roles = Object.freeze([...identity.roles])
    this.clientId = identity.clientId
    this.expiresAt = identity.expiresAt
    this.buckets = emptyBuckets()
    this.rules = []
    for (const rule of rules) {
      const pattern = rule.resource === 'topic' ? substitute(rule.pattern, this.name, this.clientId, rule.effect) : rule.pattern
      if (pattern === null) continue
      this.rules.push({ resource: rule.resource, pattern, actions: [...rule.actions], effect: rule.effect })
      const compiled = rule.resource === 'topic' ? splitTopic(pattern) : compileNamePattern(pattern)
      for (const action of rule.actions) {
        const bucket = (this.buckets[rule.resource] as Record<string, Bucket<Levels | NamePattern>>)[action]
        bucket[rule.effect].push(compiled)
      }
    }
  }

  can (resource: ResourceKind, name: string, action: Action): boolean {
    const bucket = (this.buckets[resource] as Record<string, Bucket<Levels | NamePattern> | undefined> | undefined)?.[action]
    if (bucket === undefined) return false
    // A key, queue or stream name against a few patterns is a few startsWith: cheaper than a cache that keys
    // rotating through more than DECISION_CACHE_LIMIT names keep filling and emptying (store GET over 10,000
    // keys: 0.8 µs a request with the cache, most of it clearing and refilling).
    if (resource !== 'topic' && bucket.allow.length + bucket.deny.length <= UNCACHED_NAME_PATTERNS) return decideName(bucket as Bucket<NamePattern>, name)
    const known = bucket.decisions.get(name)
    if (known !== undefined) return known
    const decision = resource === 'topic'
      ? decideTopic(bucket as Bucket<Levels>, splitTopic(name))
      : decideName(bucket as Bucket<NamePattern>, name)
    if (this.cached >= DECISION_CACHE_LIMIT || this.cachedChars + name.length > DECISION_CACHE_CHARS) this.clearDecisions()
    this.cached++
    this.cachedChars += name.length
    bucket.decisions.set(name, decision)
    return decision
  }

  canSubscribe (filter: string): boolean {
    // a shared subscription's grant is about its filter: $share/<group>/<filter>
    if (filter.startsWith('$share/')) {
      const slash = filter.indexOf('/', 7)
      if (slash === -1) return false
      filter = filter.slice(slash + 1)
    }
    if (topicFilterProblem(filter) !== null) return false
    return decideTopic(this.buckets.topic.subscribe, splitTopic(filter))
  }

  canPrefix (resource: 'store' | 'queue' | 'stream', prefix: string, action: Action): boolean {
    const bucket = (this.buckets[resource] as Record<string, Bucket<NamePattern> | undefined> | undefined)?.[action]
    if (bucket === undefined) return false
    return bucket.allow.some(p => coversPrefix(p, prefix)) && !bucket.deny.some(p => coversPrefix(p, prefix))
  }

  summary (): PrincipalSummary {
    return {
      name: this.name,
      kind: this.kind,
      roles: [...this.roles],
      rules: this.rules.map(r => ({ ...r, actions: [...r.actions] })),
      expiresAt: this.expiresAt
    }
  }

  private clearDecisions (): void {
    for (const r of Object.values(this.buckets) as Array<Record<string, Bucket<unknown>>>) {
      for (const b of Object.values(r)) b.decisions.clear()
    }
    this.cached = 0
    this.cachedChars = 0
  }
}

/** Allowed when some allow pattern covers the topic (or every topic of a filter) and no deny pattern covers it. */
function decideTopic (bucket: Bucket<Levels>, levels: Levels): boolean {
  let allowed = false
  for (const p of bucket.allow) if (covers(p, levels)) { allowed = true; break }
  if (!allowed) return false
  for (const p of bucket.deny) if (covers(p, levels)) return false
  return true
}

function decideName (bucket: Bucket<NamePattern>, name: string): boolean {
  return bucket.allow.some(p => matchesName(p, name)) && !bucket.deny.some(p => matchesName(p, name))
}

/** Without an auth file: allowed everything (the broker allows that only on loopback or with --allow-anonymous). */
export class OpenPrincipal implements Principal {
  readonly name = null
  readonly kind = 'open' as const
  readonly roles: readonly string[] = Object.freeze([])
  readonly expiresAt = null
  readonly clientId: string | undefined
  constructor (clientId?: string) { this.clientId = clientId }
  can (): boolean { return true }
  canSubscribe (): boolean { return true }
  canPrefix (): boolean { return true }
  summary (): PrincipalSummary {
    const rules = (Object.keys(ACTIONS) as ResourceKind[]).map(resource =>
      ({ resource, pattern: resource === 'topic' ? '#' : '*', actions: [...ACTIONS[resource]], effect: 'allow' as const }))
    return { name: null, kind: 'open', roles: [], rules, expiresAt: null }
  }
}
