/**
 * Pattern matching of ACL rules. Topic patterns are MQTT topic filters (with %u and %c replaced before they
 * get here); store, queue, stream and system patterns are an exact name, a prefix ending in `*`, or `*`.
 *
 * One function answers both questions about topics: `covers(pattern, filter)` is true when every topic the
 * filter matches is matched by the pattern. For a topic name (no wildcards) that is plain matching.
 */

/** A topic pattern or filter split into its levels. */
export type Levels = readonly string[]

export function splitTopic (topic: string): Levels { return topic.split('/') }

/**
 * Why a string is not a valid MQTT topic filter (MQTT-4.7.1), or null when it is: not empty, `#` alone in
 * the last level, `+` alone in its level, no U+0000, at most 65535 bytes.
 */
export function topicFilterProblem (filter: string): string | null {
  if (filter === '') return 'is empty; a topic pattern is an MQTT topic filter such as sensors/+/temperature or #'
  if (Buffer.byteLength(filter) > 65535) return 'is longer than 65535 bytes'
  if (filter.includes('\u0000')) return 'contains U+0000'
  const levels = filter.split('/')
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return 'is not a valid MQTT topic filter: # must be a whole level and the last one (like a/#)'
    if (level.includes('+') && level !== '+') return 'is not a valid MQTT topic filter: + must be a whole level (like a/+/b)'
  }
  return null
}

/**
 * Whether the pattern matches every topic the filter matches. `#` covers the rest, its parent level
 * included (`a/#` covers `a`); `+` covers any one level, a literal only itself; a filter's `+` is covered only
 * by `+` or `#`, its `#` only by `#`. MQTT-4.7.2: a pattern starting with a wildcard does not match topics
 * starting with `$`, so it does not cover a filter whose first level is a literal starting with `$`.
 */
export function covers (pattern: Levels, filter: Levels): boolean {
  if (filter[0]?.startsWith('$') === true && (pattern[0] === '+' || pattern[0] === '#')) return false
  for (let i = 0; ; i++) {
    const p = pattern[i]
    if (p === '#') return true
    const f = filter[i]
    if (p === undefined || f === undefined) return p === f
    // a filter's # covers a pattern's + only as the whole filter `#` against `+/#` (both: every non-$ topic)
    if (f === '#') return i === 0 && p === '+' && pattern[1] === '#' && pattern.length === 2
    if (p === '+') continue
    if (f === '+' || p !== f) return false
  }
}

/** A compiled store/queue/stream/system pattern. */
export type NamePattern = { all: true } | { all: false, prefix: string } | { all: false, exact: string }

/** Why a name pattern is invalid, or null: not empty, `*` only at the end. */
export function namePatternProblem (pattern: string): string | null {
  if (pattern === '') return 'is empty; use a name, a prefix ending in * (like jobs-*), or * for all'
  const star = pattern.indexOf('*')
  if (star !== -1 && star !== pattern.length - 1) return 'has a * that is not at the end; * may only end a pattern (a prefix like jobs-*)'
  return null
}

export function compileNamePattern (pattern: string): NamePattern {
  if (pattern === '*') return { all: true }
  if (pattern.endsWith('*')) return { all: false, prefix: pattern.slice(0, -1) }
  return { all: false, exact: pattern }
}

export function matchesName (p: NamePattern, name: string): boolean {
  if (p.all) return true
  return 'prefix' in p ? name.startsWith(p.prefix) : name === p.exact
}

/** Whether the pattern matches every name that starts with `prefix` (an exact name never does). */
export function coversPrefix (p: NamePattern, prefix: string): boolean {
  if (p.all) return true
  return 'prefix' in p && prefix.startsWith(p.prefix)
}
