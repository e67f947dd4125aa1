import type { FastifyRequest } from 'fastify'
import type { Action, Principal } from '../../../engines/auth/types.js'
import { actionsOf, type NameSource, type RequestPart, type RuleAccess } from './declare.js'

/**
 * A route's declaration compiled once (at onRoute) into plain functions: the request hook then does a
 * property read or two and one `can` per name, no allocation when allowed.
 */

/** Null when allowed; else the problem's detail, naming the resource and the action. */
export type Check = (principal: Principal, request: FastifyRequest) => string | null

/** Longest name quoted in a 403's detail (keys may be 64 KB). */
const MAX_QUOTED = 200

function quote (name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED ? name.slice(0, MAX_QUOTED) + '…' : name)
}

function partOf (request: FastifyRequest, part: RequestPart): Record<string, unknown> | undefined {
  const value: unknown = part === 'params' ? request.params : part === 'query' ? request.query : request.body
  return value !== null && typeof value === 'object' ? value as Record<string, unknown> : undefined
}

function field (request: FastifyRequest, part: RequestPart, name: string): unknown {
  return partOf(request, part)?.[name]
}

const asText = (v: unknown): string => typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v)

/** Whether the principal may do any of the rule's actions on one name. */
export function nameDecider (rule: RuleAccess): (p: Principal, name: string) => boolean {
  const resource = rule.resource
  const actions = actionsOf(rule) as readonly Action[]
  if (actions.length === 1) {
    const action = actions[0]
    return (p, name) => p.can(resource, name, action)
  }
  return (p, name) => {
    for (const a of actions) if (p.can(resource, name, a)) return true
    return false
  }
}

function prefixDecider (rule: RuleAccess): (p: Principal, prefix: string) => boolean {
  const resource = rule.resource
  const actions = actionsOf(rule) as readonly Action[]
  if (resource === 'topic' || resource === 'system') {
    // no prefix scans over topics or system names: the whole space is asked for
    return (p, prefix) => actions.some(a => p.can(resource, prefix + '*', a))
  }
  return (p, prefix) => {
    for (const a of actions) if (p.canPrefix(resource, prefix, a)) return true
    return false
  }
}

/** Compiles a rule with a name source; a list rule (no name) needs no check up front. */
export function compileCheck (rule: RuleAccess): Check | null {
  const source: NameSource | undefined = rule.name
  if (source === undefined) return null
  const label = `${actionsOf(rule).join(' or ')}`
  const kind = rule.resource
  const allowsName = nameDecider(rule)
  const allowsPrefix = prefixDecider(rule)
  const deniedName = (name: string): string => `forbidden: ${kind} ${quote(name)} ${label}`
  const deniedPrefix = (prefix: string): string => `forbidden: ${kind} prefix ${quote(prefix)} ${label}`

  if ('fixed' in source) {
    const name = source.fixed
    return p => allowsName(p, name) ? null : deniedName(name)
  }
  if ('one' in source) {
    const { one: part, field: f } = source
    return (p, request) => {
      const name = asText(field(request, part, f))
      return allowsName(p, name) ? null : deniedName(name)
    }
  }
  if ('each' in source) {
    const { each: part, field: f, key } = source
    return (p, request) => {
      const list = field(request, part, f)
      if (!Array.isArray(list)) return null // the schema requires the list; nothing is named otherwise
      for (const item of list) {
        const name = asText(key === undefined ? item : (item as Record<string, unknown> | null)?.[key])
        if (!allowsName(p, name)) return deniedName(name)
      }
      return null
    }
  }
  if ('prefix' in source) {
    const { prefix: part, field: f } = source
    return (p, request) => {
      const prefix = asText(field(request, part, f))
      return allowsPrefix(p, prefix) ? null : deniedPrefix(prefix)
    }
  }
  if ('filters' in source) {
    const { filters: part, field: f } = source
    return (p, request) => {
      const value = field(request, part, f)
      const filters = Array.isArray(value) ? value : [value]
      for (const filter of filters) {
        const text = asText(filter)
        if (!p.canSubscribe(text)) return `forbidden: topic filter ${quote(text)} subscribe`
      }
      return null
    }
  }
  const resolve = source.resolve
  return (p, request) => {
    const target = resolve(request)
    if ('name' in target) return allowsName(p, target.name) ? null : deniedName(target.name)
    return allowsPrefix(p, target.prefix) ? null : deniedPrefix(target.prefix)
  }
}

/** Cuts a list answer to the items the principal may use; undefined when the rule declares no results. */
export function compileResultsFilter (rule: RuleAccess): ((p: Principal, payload: unknown) => unknown) | undefined {
  const results = rule.results
  if (results === undefined) return undefined
  const allows = results.prefix === true ? prefixDecider(rule) : nameDecider(rule)
  const { array, field: f } = results
  return (p, payload) => {
    if (payload === null || typeof payload !== 'object') return payload
    const list = (payload as Record<string, unknown>)[array]
    if (!Array.isArray(list)) return payload
    const kept = list.filter(item => allows(p, asText((item as Record<string, unknown> | null)?.[f])))
    return kept.length === list.length ? payload : { ...payload, [array]: kept }
  }
}
