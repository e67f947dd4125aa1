/**
 * MQTT 5 topic aliases (§3.3.2.3.4). Inbound: the client sets an alias by sending it with a topic and uses
 * it with an empty topic, up to the maximum the broker gave in CONNACK (--mqtt-topic-alias-max). Outbound:
 * when the client's CONNECT allows aliases, the broker gives one to each topic it sends, least recently
 * used first out when all are taken: a topic sent again costs 3 bytes instead of its length.
 */

export class InboundAliases {
  private readonly topics = new Map<number, string>()

  constructor (readonly maximum: number) {}

  /** 'invalid': 0 or over the maximum (DISCONNECT 0x94); undefined: an alias never set (protocol error). */
  resolve (alias: number, topic: string): string | undefined | 'invalid' {
    if (alias === 0 || alias > this.maximum) return 'invalid'
    if (topic.length > 0) {
      this.topics.set(alias, topic)
      return topic
    }
    return this.topics.get(alias)
  }
}

export class OutboundAliases {
  /** Topic -> alias, in order of use (a Map keeps insertion order: delete + set moves one to the end). */
  private readonly byTopic = new Map<string, number>()

  constructor (readonly maximum: number) {}

  /** The alias for `topic`, and whether the client knows it already (send an empty topic) or learns it now. */
  aliasFor (topic: string): { alias: number, known: boolean } {
    const alias = this.byTopic.get(topic)
    if (alias !== undefined) {
      this.byTopic.delete(topic)
      this.byTopic.set(topic, alias)
      return { alias, known: true }
    }
    let next = this.byTopic.size + 1
    if (next > this.maximum) {
      const [oldest, reused] = this.byTopic.entries().next().value as [string, number]
      this.byTopic.delete(oldest)
      next = reused
    }
    this.byTopic.set(topic, next)
    return { alias: next, known: false }
  }
}
