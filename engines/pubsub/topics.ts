import { InvalidArgument } from '../errors.js'

const MAX_TOPIC_BYTES = 65535

/** A topic a message may be published to: not empty, no wildcards, no NUL, not under $SYS. */
export function validatePublishTopic (topic: unknown): string {
  if (typeof topic !== 'string' || topic.length === 0) throw new InvalidArgument('topic must be a non-empty string')
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) throw new InvalidArgument(`topic is longer than ${MAX_TOPIC_BYTES} bytes`)
  if (topic.includes('\u0000')) throw new InvalidArgument('topic must not contain the NUL character')
  if (topic.includes('+') || topic.includes('#')) throw new InvalidArgument(`topic "${topic}" contains a wildcard (+ or #); wildcards are for subscriptions only`)
  if (topic === '$SYS' || topic.startsWith('$SYS/')) throw new InvalidArgument('$SYS topics are reserved for the broker')
  return topic
}

/** A subscription filter: `+` fills a whole level, `#` only the last whole level. */
export function validateFilter (filter: unknown): string {
  if (typeof filter !== 'string' || filter.length === 0) throw new InvalidArgument('filter must be a non-empty string')
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) throw new InvalidArgument(`filter is longer than ${MAX_TOPIC_BYTES} bytes`)
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
