import type { Clock } from '../clock.js'
import type { WriteOp } from '../storage/storage.js'
import type { BusRecords } from './persistence.js'
import { topicMatches } from './topics.js'
import type { BusMessage } from './types.js'

/**
 * Retained messages, one per topic: a retained publish with a payload replaces the topic's, one with an
 * empty payload clears it (MQTT-3.3.1-10/11). Held in memory, written through BusRecords. A message past
 * its expiry (MQTT 5 message expiry) is not served, and is removed when met.
 */
export class RetainedMessages {
  private readonly byTopic = new Map<string, BusMessage>()

  constructor (private readonly clock: Clock, private readonly records: BusRecords | undefined) {}

  get size (): number { return this.byTopic.size }

  /** At load. */
  restore (message: BusMessage): void {
    this.byTopic.set(message.topic, message)
  }

  /** Stores or clears; returns the write op (a data directory) to go into the route's batch. */
  apply (message: BusMessage): WriteOp | undefined {
    if (message.payload.length === 0) {
      if (!this.byTopic.delete(message.topic)) return undefined
      return this.records?.retainedDel(message.topic)
    }
    const kept: BusMessage = { ...message, retain: true }
    this.byTopic.set(message.topic, kept)
    return this.records?.retainedPut(kept)
  }

  /** The retained messages whose topic matches any of the filters, each once. */
  matching (filters: string[]): BusMessage[] {
    const out: BusMessage[] = []
    const now = this.clock.now()
    const expired: string[] = []
    for (const [topic, message] of this.byTopic) {
      if (message.expiresAt !== undefined && message.expiresAt <= now) {
        expired.push(topic)
        continue
      }
      for (const filter of filters) {
        if (topicMatches(filter, topic)) {
          out.push(message)
          break
        }
      }
    }
    if (expired.length > 0) this.forget(expired)
    return out
  }

  private forget (topics: string[]): void {
    const ops: WriteOp[] = []
    for (const topic of topics) {
      this.byTopic.delete(topic)
      const op = this.records?.retainedDel(topic)
      if (op !== undefined) ops.push(op)
    }
    // a lost delete only leaves an expired message that the next start removes again
    this.records?.write(ops).catch(() => {})
  }
}
