/**
 * The MQTT front-end's checks of topic names and filters as they come in (the syntax; the bus's topic
 * limits are checked with its own overTopicLimit). UTF-8 and U+0000 are the parser's (parser.ts).
 */

/** Whether a PUBLISH (or will) topic holds a wildcard (MQTT-3.3.2-2). */
export function hasWildcard (topic: string): boolean {
  return topic.includes('+') || topic.includes('#')
}

/** `$SYS` and everything under it is the broker's. */
export function isSysTopic (topic: string): boolean {
  return topic === '$SYS' || topic.startsWith('$SYS/')
}

/** A well-formed (non-shared) filter: `#` only as the whole last level, `+` only as a whole level. */
export function validFilter (filter: string): boolean {
  if (filter.length === 0) return false
  let levelStart = 0
  for (let i = 0; i <= filter.length; i++) {
    if (i < filter.length && filter.charCodeAt(i) !== 47) continue
    const length = i - levelStart
    const first = filter.charCodeAt(levelStart)
    if (length === 1 && first === 35 && i !== filter.length) return false
    if (length > 1) {
      for (let j = levelStart; j < i; j++) {
        const c = filter.charCodeAt(j)
        if (c === 35 || c === 43) return false
      }
    }
    levelStart = i + 1
  }
  return true
}

const SHARE = '$share/'

/**
 * `$share/{group}/{filter}` (MQTT 5 §4.8.2): undefined when not shared, null when malformed (an empty group,
 * a group holding a wildcard, no filter, an invalid filter), else its parts.
 */
export function parseShared (filter: string): { group: string, filter: string } | null | undefined {
  if (!filter.startsWith(SHARE)) return filter === '$share' ? null : undefined
  const rest = filter.slice(SHARE.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return null
  const group = rest.slice(0, slash)
  const inner = rest.slice(slash + 1)
  if (hasWildcard(group) || !validFilter(inner)) return null
  return { group, filter: inner }
}
