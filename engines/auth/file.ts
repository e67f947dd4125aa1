import { ACTIONS, type ResourceKind } from './types.js'
import { AuthFileError } from './errors.js'
import { isTokenHash, parsePasswordHash, type ParsedPasswordHash } from './hash.js'
import { findJsonError } from './json-error.js'
import { namePatternProblem, topicFilterProblem } from './patterns.js'

/**
 * The auth file: parsing and validation into an AuthModel. Every mistake is an AuthFileError naming its
 * place (`users[2].roles[0]`); a role referenced but not defined is only a warning (it grants nothing).
 */

export interface RuleSpec {
  resource: ResourceKind
  pattern: string
  actions: string[]
  effect: 'allow' | 'deny'
}

export interface UserEntry {
  name: string
  /** The stored hash string, as in the file. */
  password: string
  parsed: ParsedPasswordHash
  roles: string[]
}

export interface TokenEntry {
  name: string
  /** `sha256:<hex>` */
  hash: string
  roles: string[]
  /** Milliseconds since the epoch; null = never. */
  expiresAt: number | null
}

export interface AuthModel {
  users: Map<string, UserEntry>
  /** By name. */
  tokens: Map<string, TokenEntry>
  /** By `sha256:<hex>`. */
  tokensByHash: Map<string, TokenEntry>
  roles: Map<string, RuleSpec[]>
  /** The roles of a client without credentials; null = anonymous clients are refused. */
  anonymous: string[] | null
}

export interface ParsedAuthFile { model: AuthModel, warnings: string[] }

const RESOURCES = Object.keys(ACTIONS) as ResourceKind[]
const TOP_KEYS = ['users', 'tokens', 'roles', 'anonymous']
const USER_KEYS = ['name', 'password', 'roles']
const TOKEN_KEYS = ['name', 'hash', 'roles', 'expiresAt']
const RULE_KEYS = ['resource', 'pattern', 'actions', 'effect']
/** ISO 8601 date, or date and time with a zone (a time without a zone would depend on the server's). */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/

/** Milliseconds since the epoch of an ISO 8601 date as the auth file takes it, or null. */
export function parseIsoDate (text: string): number | null {
  if (!ISO_DATE.test(text)) return null
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? null : ms
}

const show = (v: unknown): string => JSON.stringify(v) ?? String(v)
const typeName = (v: unknown): string => v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const list = (words: readonly string[]): string => words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`

/** Line and column (1-based) of a character offset. */
function lineColumn (text: string, offset: number): { line: number, column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)))
  const lines = before.split('\n')
  return { line: lines.length, column: lines[lines.length - 1].length + 1 }
}

/** Parses and validates the text of an auth file; throws AuthFileError naming the place of the first mistake. */
export function parseAuthFile (text: string, file: string): ParsedAuthFile {
  const fail = (where: string, problem: string): never => { throw new AuthFileError(file, where, problem) }
  let json: unknown
  // a byte order mark, as some Windows editors write, is not a mistake worth refusing a file for
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  try {
    json = JSON.parse(text)
  } catch {
    const { offset, problem } = findJsonError(text)
    const { line, column } = lineColumn(text, offset)
    fail('', `not valid JSON at line ${line}, column ${column}: ${problem}`)
  }
  if (!isObject(json)) return fail('', `must be a JSON object ({"users": [...], "tokens": [...], "roles": {...}, "anonymous": [...]}), not ${typeName(json)}`)
  const unknown = (obj: Record<string, unknown>, allowed: string[], where: string): void => {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) fail(where === '' ? key : `${where}.${key}`, `unknown key; ${where === '' ? 'the file' : where} may have ${list(allowed)}`)
    }
  }
  const str = (v: unknown, where: string): string => {
    if (typeof v !== 'string' || v === '') fail(where, `must be a non-empty string, not ${v === '' ? 'an empty one' : typeName(v)}`)
    return v as string
  }
  const arrayOf = (v: unknown, where: string): unknown[] => {
    if (!Array.isArray(v)) fail(where, `must be an array, not ${typeName(v)}`)
    return v as unknown[]
  }
  const roleList = (v: unknown, where: string): string[] => {
    if (v === undefined) return []
    return arrayOf(v, where).map((r, i) => str(r, `${where}[${i}]`))
  }
  unknown(json, TOP_KEYS, '')
  const warnings: string[] = []
  const model: AuthModel = { users: new Map(), tokens: new Map(), tokensByHash: new Map(), roles: new Map(), anonymous: null }
  /** users and tokens share one namespace: an MQTT user name may be a token's name */
  const owner = new Map<string, string>()
  const claim = (name: string, where: string): void => {
    const other = owner.get(name)
    if (other !== undefined) fail(`${where}.name`, `${show(name)} is already the name of ${other}; users and tokens share one namespace`)
    owner.set(name, where)
  }

  if (json.users !== undefined) {
    for (const [i, u] of arrayOf(json.users, 'users').entries()) {
      const where = `users[${i}]`
      if (!isObject(u)) fail(where, `must be an object {"name", "password", "roles"}, not ${typeName(u)}`)
      const user = u as Record<string, unknown>
      unknown(user, USER_KEYS, where)
      const name = str(user.name, `${where}.name`)
      claim(name, where)
      const password = str(user.password, `${where}.password`)
      const parsed = parsePasswordHash(password)
      if (typeof parsed === 'string') fail(`${where}.password`, parsed)
      model.users.set(name, { name, password, parsed: parsed as ParsedPasswordHash, roles: roleList(user.roles, `${where}.roles`) })
    }
  }

  if (json.tokens !== undefined) {
    for (const [i, t] of arrayOf(json.tokens, 'tokens').entries()) {
      const where = `tokens[${i}]`
      if (!isObject(t)) fail(where, `must be an object {"name", "hash", "roles", "expiresAt"}, not ${typeName(t)}`)
      const token = t as Record<string, unknown>
      unknown(token, TOKEN_KEYS, where)
      const name = str(token.name, `${where}.name`)
      claim(name, where)
      const hash = str(token.hash, `${where}.hash`)
      if (!isTokenHash(hash)) fail(`${where}.hash`, 'is not a token hash written by tetra token (sha256:<64 hex digits>)')
      const other = model.tokensByHash.get(hash)
      if (other !== undefined) fail(`${where}.hash`, `is the same as the hash of token ${show(other.name)}`)
      let expiresAt: number | null = null
      if (token.expiresAt !== undefined && token.expiresAt !== null) {
        const at = token.expiresAt
        const ms = typeof at === 'string' ? parseIsoDate(at) : null
        if (ms === null) return fail(`${where}.expiresAt`, `${show(at)} is not an ISO 8601 date (like 2030-01-31 or 2030-01-31T12:00:00Z) or null`)
        expiresAt = ms
      }
      const entry: TokenEntry = { name, hash, roles: roleList(token.roles, `${where}.roles`), expiresAt }
      model.tokens.set(name, entry)
      model.tokensByHash.set(hash, entry)
    }
  }

  if (json.roles !== undefined) {
    if (!isObject(json.roles)) fail('roles', `must be an object of role name -> rules, not ${typeName(json.roles)}`)
    for (const [role, rules] of Object.entries(json.roles as Record<string, unknown>)) {
      const rwhere = `roles.${role}`
      if (role === '') fail('roles', 'has a role with an empty name')
      model.roles.set(role, arrayOf(rules, rwhere).map((r, j) => parseRule(r, `${rwhere}[${j}]`, fail, unknown)))
    }
  }

  if (json.anonymous !== undefined) model.anonymous = roleList(json.anonymous, 'anonymous')

  const check = (roles: string[], where: string): void => {
    for (const [i, r] of roles.entries()) {
      if (!model.roles.has(r)) warnings.push(`auth file ${file}: ${where}[${i}]: role ${show(r)} is not defined in roles; it grants nothing`)
    }
  }
  for (const [name, u] of model.users) check(u.roles, owner.get(name)! + '.roles')
  for (const [name, t] of model.tokens) check(t.roles, owner.get(name)! + '.roles')
  if (model.anonymous !== null) check(model.anonymous, 'anonymous')
  return { model, warnings }
}

function parseRule (
  r: unknown,
  where: string,
  fail: (where: string, problem: string) => never,
  unknown: (obj: Record<string, unknown>, allowed: string[], where: string) => void
): RuleSpec {
  if (!isObject(r)) fail(where, `must be an object {"resource", "pattern", "actions", "effect"?}, not ${typeName(r)}`)
  const rule = r as Record<string, unknown>
  unknown(rule, RULE_KEYS, where)
  const resource = rule.resource
  if (typeof resource !== 'string' || !(RESOURCES as string[]).includes(resource)) {
    fail(`${where}.resource`, `${show(resource)} is not a resource; use ${list(RESOURCES)}`)
  }
  const kind = resource as ResourceKind
  const pattern = rule.pattern
  if (typeof pattern !== 'string') return fail(`${where}.pattern`, `must be a string, not ${typeName(pattern)}`)
  // %u and %c stand for one level's worth of text; check the filter with a placeholder value
  const problem = kind === 'topic' ? topicFilterProblem(pattern.replace(/%[uc]/g, 'x')) : namePatternProblem(pattern)
  if (problem !== null) fail(`${where}.pattern`, `${show(pattern)} ${problem}`)
  if (!Array.isArray(rule.actions) || rule.actions.length === 0) {
    fail(`${where}.actions`, `must be a non-empty array of actions of ${kind} (${list(ACTIONS[kind])})`)
  }
  const allowed: readonly string[] = ACTIONS[kind]
  const actions = (rule.actions as unknown[]).map((a, k) => {
    if (typeof a !== 'string' || !allowed.includes(a)) fail(`${where}.actions[${k}]`, `${show(a)} is not an action of ${kind}; use ${list(allowed)}`)
    return a as string
  })
  const effect = rule.effect ?? 'allow'
  if (effect !== 'allow' && effect !== 'deny') fail(`${where}.effect`, `${show(effect)} is not an effect; use allow or deny`)
  return { resource: kind, pattern, actions, effect: effect as 'allow' | 'deny' }
}
