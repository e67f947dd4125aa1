import { InvalidArgument } from '../errors.js'

/** MQTT's own ceiling: a topic is a UTF-8 string with a 16-bit length. */
const MAX_TOPIC_BYTES = 65535

/**
 * The caps on topic names and filters (--mqtt-max-topic-length, --mqtt-max-topic-levels). One rule for
 * every way in: MQTT PUBLISH and SUBSCRIBE, wills, HTTP publish, SSE filters, stream and queue captures.
 */
export interface TopicLimits {
  /** Longest topic name or filter, in bytes of UTF-8. */
  maxLength: number
  /** Most levels (parts between `/`). */
  maxLevels: number
}

/** Without settings: MQTT's own length ceiling, and the 100 levels of the topic matcher's default. */
export const DEFAULT_TOPIC_LIMITS: TopicLimits = { maxLength: MAX_TOPIC_BYTES, maxLevels: 100 }

/** Which cap a topic broke; front-ends count refusals by it. */
export type TopicLimitName = 'length' | 'levels'

/** A topic or filter over a cap: a 400 over HTTP (names the setting), a refusal over MQTT. */
export class TopicLimitError extends InvalidArgument {
  constructor (message: string, readonly limit: TopicLimitName) { super(message, { limit }) }
}

/** Levels of a topic: one more than its `/` count. */
export function topicLevels (topic: string): number {
  let levels = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++
  return levels
}

/** The cap a topic name or filter breaks, or undefined when it is within both. */
export function overTopicLimit (topic: string, limits: TopicLimits): TopicLimitName | undefined {
  // a UTF-8 byte count only when the UTF-16 length could exceed the cap (a char is at most 3 bytes)
  if (topic.length * 3 > limits.maxLength && Buffer.byteLength(topic) > limits.maxLength) return 'length'
  if (topicLevels(topic) > limits.maxLevels) return 'levels'
  return undefined
}

/** Throws TopicLimitError, naming the setting, when a topic name or filter is over a cap. */
export function checkTopicLimits (what: 'topic' | 'filter', topic: string, limits: TopicLimits): void {
  const over = overTopicLimit(topic, limits)
  if (over === 'length') throw new TopicLimitError(`${what} is longer than ${limits.maxLength} bytes (the limit --mqtt-max-topic-length)`, 'length')
  if (over === 'levels') throw new TopicLimitError(`${what} has more than ${limits.maxLevels} levels (the limit --mqtt-max-topic-levels)`, 'levels')
}

/** A topic a message may be published to: not empty, no wildcards, no NUL, not under $SYS, within the limits. */
export function validatePublishTopic (topic: unknown, limits: TopicLimits = DEFAULT_TOPIC_LIMITS): string {
  if (typeof topic !== 'string' || topic.length === 0) throw new InvalidArgument('topic must be a non-empty string')
  checkTopicLimits('topic', topic, limits)
  if (topic.includes('\u0000')) throw new InvalidArgument('topic must not contain the NUL character')
  if (topic.includes('+') || topic.includes('#')) throw new InvalidArgument(`topic "${topic}" contains a wildcard (+ or #); wildcards are for subscriptions only`)
  if (topic === '$SYS' || topic.startsWith('$SYS/')) throw new InvalidArgument('$SYS topics are reserved for the broker')
  return topic
}

/**
 * A subscription filter: `+` fills a whole level, `#` only the last whole level; within MQTT's own
 * length (one argument: it is passed to Array.map). The bus checks its configured limits on top.
 */
export function validateFilter (filter: unknown): string {
  if (typeof filter !== 'string' || filter.length === 0) throw new InvalidArgument('filter must be a non-empty string')
  checkTopicLimits('filter', filter, DEFAULT_TOPIC_LIMITS)
  if (filter.includes('\u0000')) throw new InvalidArgument('filter must not contain the NUL character')
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      throw new InvalidArgument(`filter "${filter}": # must be a whole level and the last one`)
    }
    if (level.includes('+') && level !== '+') {
      throw new InvalidArgument(`filter "${filter}": + must be a whole level`)
    }
  }
  if (filter.startsWith('$share/')) throw new InvalidArgument('shared subscriptions ($share/...) are not supported here')
  return filter
}

/** MQTT matching of a topic against a filter; wildcards at the first level never match `$` topics. */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}
