import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { RulePrincipal } from '../../engines/auth/principal.js'
import type { RuleSpec } from '../../engines/auth/file.js'

/**
 * The compiled, cached principal against a brute-force reading of the rules: for every topic of a small
 * universe, can() equals "some allow rule matches and no deny rule matches" (with %u/%c replaced as the
 * README says), and canSubscribe(f) is exactly "one allow rule matches every topic f matches, and no deny
 * rule matches all of them" over the universe. Patterns and filters have at most 3 levels and the universe
 * goes to 4 levels with a letter no pattern names, so coverage over it is coverage everywhere.
 */

const LETTERS = ['a', 'b', 'xa', '$s']
const UNIVERSE_LETTERS = [...LETTERS, 'z']
const UNIVERSE: string[][] = []
for (let len = 1; len <= 4; len++) {
  const grow = (prefix: string[]): void => {
    if (prefix.length === len) { UNIVERSE.push(prefix); return }
    for (const l of UNIVERSE_LETTERS) grow([...prefix, l])
  }
  grow([])
}

/** A topic pattern or filter of 1 to 3 levels, # only last. */
const levelsArb = (extra: string[]): fc.Arbitrary<string[]> =>
  fc.array(fc.constantFrom(...LETTERS, '+', ...extra), { minLength: 1, maxLength: 3 })
    .chain(levels => fc.boolean().map(hash => hash && levels.length < 3 ? [...levels, '#'] : levels))
    .chain(levels => fc.boolean().map(onlyHash => onlyHash && levels.length === 1 ? ['#'] : levels))

const ruleArb: fc.Arbitrary<RuleSpec> = fc.record({
  resource: fc.constant('topic' as const),
  pattern: levelsArb(['%u', '%c', 'x%u']).map(l => l.join('/')),
  actions: fc.subarray(['publish', 'subscribe'], { minLength: 1 }),
  effect: fc.constantFrom<'allow' | 'deny'>('allow', 'allow', 'deny')
})

/** Plain MQTT matching, written as the spec reads (MQTT-4.7.1, 4.7.2). */
function matches (pattern: string[], topic: string[]): boolean {
  if (topic[0].startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false
  const rec = (p: number, t: number): boolean => {
    if (p === pattern.length) return t === topic.length
    if (pattern[p] === '#') return true
    if (t === topic.length) return false
    return (pattern[p] === '+' || pattern[p] === topic[t]) && rec(p + 1, t + 1)
  }
  return rec(0, 0)
}

/** The pattern as it applies to this principal, or null (README: %u needs a name, %c a client id; an unsafe value voids an allow and widens a deny). */
function applied (rule: RuleSpec, name: string | null, clientId: string | undefined): string[] | null {
  const out: string[] = []
  for (const level of rule.pattern.split('/')) {
    if (!level.includes('%')) { out.push(level); continue }
    const value = level.includes('%u') ? name : clientId
    if (value === null || value === undefined) return null
    if (/[/+#]/.test(value)) {
      if (rule.effect === 'allow') return null
      out.push('+')
      continue
    }
    out.push(level.replace('%u', name ?? '').replace('%c', clientId ?? ''))
  }
  return out
}

const identityArb = fc.record({
  name: fc.constantFrom<string | null>('a', 'b', null, '+', 'q/r'),
  clientId: fc.constantFrom<string | undefined>('a', 'b', undefined, '#')
})

describe('principal decisions against a brute-force model', () => {
  it('can() equals the rules read one by one, cached or not', () => {
    fc.assert(fc.property(fc.array(ruleArb, { maxLength: 8 }), identityArb, fc.constantFrom<'publish' | 'subscribe'>('publish', 'subscribe'), (rules, who, action) => {
      const p = new RulePrincipal({ ...who, kind: 'user', roles: [], expiresAt: null }, rules)
      const relevant = rules.filter(r => r.actions.includes(action)).map(r => ({ r, levels: applied(r, who.name, who.clientId) })).filter(x => x.levels !== null)
      for (const topic of UNIVERSE) {
        const expected = relevant.some(x => x.r.effect === 'allow' && matches(x.levels!, topic)) &&
          !relevant.some(x => x.r.effect === 'deny' && matches(x.levels!, topic))
        const name = topic.join('/')
        expect(p.can('topic', name, action)).toBe(expected)
        expect(p.can('topic', name, action)).toBe(expected) // from the cache
      }
    }), { numRuns: 150 })
  })

  it('canSubscribe(f) holds exactly when one allow covers f and no deny covers all of f', () => {
    fc.assert(fc.property(fc.array(ruleArb, { maxLength: 8 }), identityArb, levelsArb([]), (rules, who, filterLevels) => {
      const p = new RulePrincipal({ ...who, kind: 'user', roles: [], expiresAt: null }, rules)
      const filter = filterLevels.join('/')
      const inFilter = UNIVERSE.filter(t => matches(filterLevels, t))
      const relevant = rules.filter(r => r.actions.includes('subscribe')).map(r => ({ r, levels: applied(r, who.name, who.clientId) })).filter(x => x.levels !== null)
      const coversAll = (levels: string[]): boolean => inFilter.every(t => matches(levels, t))
      const expected = inFilter.length > 0 &&
        relevant.some(x => x.r.effect === 'allow' && coversAll(x.levels!)) &&
        !relevant.some(x => x.r.effect === 'deny' && coversAll(x.levels!))
      const granted = p.canSubscribe(filter)
      expect(granted).toBe(expected)
      // what a granted subscription delivers: every topic of it that no deny matches
      if (granted) {
        for (const t of inFilter) {
          const denied = relevant.some(x => x.r.effect === 'deny' && matches(x.levels!, t))
          expect(p.can('topic', t.join('/'), 'subscribe')).toBe(!denied)
        }
      }
    }), { numRuns: 300 })
  })
})
