import type { Clock } from '../clock.js'
import type { WriteOp } from '../storage/storage.js'
import type { BusRecords } from './persistence.js'
import type { BusMessage } from './types.js'

/** A level of the retained topics' tree. */
class TopicNode {
  readonly children = new Map<string, TopicNode>()
  message: BusMessage | null = null
  /** Messages in this node and below (an empty branch is pruned). */
  count = 0
}

/**
 * Retained messages, one per topic: a retained publish with a payload replaces the topic's, one with an
 * empty payload clears it (MQTT-3.3.1-10/11). Held in memory in a tree of topic levels, so that a filter
 * walks only the branches it can match (a SUBSCRIBE storm over many retained topics stays cheap), and
 * written through BusRecords. A message past its expiry (MQTT 5 message expiry) is not served, and is
 * removed when met.
 */
export class RetainedMessages {
  private readonly root = new TopicNode()

  constructor (private readonly clock: Clock, private readonly records: BusRecords | undefined) {}

  get size (): number { return this.root.count }

  /** At load. */
  restore (message: BusMessage): void {
    this.set(message)
  }

  /** Stores or clears; returns the write op (a data directory) to go into the route's batch. */
  apply (message: BusMessage): WriteOp | undefined {
    if (message.payload.length === 0) {
      if (!this.delete(message.topic)) return undefined
      return this.records?.retainedDel(message.topic)
    }
    const kept: BusMessage = { ...message, retain: true }
    this.set(kept)
    return this.records?.retainedPut(kept)
  }

  /** The retained messages whose topic matches any of the filters, each once. */
  matching (filters: string[]): BusMessage[] {
    const out: BusMessage[] = []
    if (this.root.count === 0) return out
    const expired: string[] = []
    const seen = filters.length > 1 ? new Set<BusMessage>() : null
    const now = this.clock.now()
    const take = (message: BusMessage): void => {
      if (message.expiresAt !== undefined && message.expiresAt <= now) {
        expired.push(message.topic)
        return
      }
      if (seen !== null) {
        if (seen.has(message)) return
        seen.add(message)
      }
      out.push(message)
    }
    for (const filter of filters) this.walk(this.root, filter.split('/'), 0, take)
    if (expired.length > 0) this.forget([...new Set(expired)])
    return out
  }

  private walk (node: TopicNode, levels: string[], i: number, take: (message: BusMessage) => void): void {
    if (i === levels.length) {
      if (node.message !== null) take(node.message)
      return
    }
    const level = levels[i]
    if (level === '#') {
      // the parent level too (`a/#` matches `a`); the first level's wildcards skip `$` topics (MQTT 4.7.2)
      if (node.message !== null && i > 0) take(node.message)
      for (const [name, child] of node.children) if (i > 0 || name.charCodeAt(0) !== 36) this.all(child, take)
    } else if (level === '+') {
      for (const [name, child] of node.children) if (i > 0 || name.charCodeAt(0) !== 36) this.walk(child, levels, i + 1, take)
    } else {
      const child = node.children.get(level)
      if (child !== undefined) this.walk(child, levels, i + 1, take)
    }
  }

  private all (node: TopicNode, take: (message: BusMessage) => void): void {
    if (node.message !== null) take(node.message)
    for (const child of node.children.values()) this.all(child, take)
  }

  private set (message: BusMessage): void {
    const levels = message.topic.split('/')
    const path: TopicNode[] = [this.root]
    let node = this.root
    for (const level of levels) {
      let child = node.children.get(level)
      if (child === undefined) {
        child = new TopicNode()
        node.children.set(level, child)
      }
      node = child
      path.push(node)
    }
    if (node.message === null) for (const n of path) n.count++
    node.message = message
  }

  private delete (topic: string): boolean {
    const levels = topic.split('/')
    const path: TopicNode[] = [this.root]
    let node: TopicNode | undefined = this.root
    for (const level of levels) {
      node = node.children.get(level)
      if (node === undefined) return false
      path.push(node)
    }
    if (node.message === null) return false
    node.message = null
    for (const n of path) n.count--
    for (let i = path.length - 1; i > 0; i--) {
      if (path[i].count > 0) break
      path[i - 1].children.delete(levels[i - 1])
    }
    return true
  }

  private forget (topics: string[]): void {
    const ops: WriteOp[] = []
    for (const topic of topics) {
      if (!this.delete(topic)) continue
      const op = this.records?.retainedDel(topic)
      if (op !== undefined) ops.push(op)
    }
    // a lost delete only leaves an expired message that the next start removes again
    this.records?.write(ops).catch(() => {})
  }
}
