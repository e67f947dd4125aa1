/**
 * Broker statistics as retained messages under `$SYS/broker/`, with Mosquitto's topic names, so that MQTT
 * tools that read them (MQTT Explorer, mosquitto_sub -t '$SYS/#') work unchanged. Published at start and
 * then every interval; a value is published again only when it changed (uptime when its second did), so
 * an idle broker writes little. Wildcard filters at the top level do not match `$SYS/` topics (MQTT's rule).
 */

/** What the statistics are read from, at each tick. */
export interface SysSource {
  version: string
  connectedClients: () => number
  /**
   * Persistent sessions whose client is not connected, and the subscriptions of connected clients and of
   * those sessions.
   */
  sessions: () => { disconnected: number, subscriptions: number }
  retainedMessages: () => number
  /** QoS 1/2 messages queued for persistent sessions (offline, or sent and not yet acknowledged). */
  queuedMessages: () => number
  publishesReceived: () => number
  publishesSent: () => number
}

export type SysPublish = (topic: string, payload: string) => void

export class SysTopics {
  private readonly startedAt = Date.now()
  private readonly last = new Map<string, string>()
  private maximumClients = 0
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly source: SysSource, private readonly publish: SysPublish) {}

  /** Publishes now and then every intervalMs (0: never). */
  start (intervalMs: number): void {
    if (intervalMs <= 0) return
    this.tick()
    this.timer = setInterval(() => { this.tick() }, intervalMs)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** The values of this tick, by topic. */
  values (): Array<[string, string]> {
    const s = this.source
    const connected = s.connectedClients()
    this.maximumClients = Math.max(this.maximumClients, connected)
    const { disconnected, subscriptions } = s.sessions()
    const retained = s.retainedMessages()
    return [
      ['$SYS/broker/version', `tetra ${s.version}`],
      ['$SYS/broker/uptime', `${Math.floor((Date.now() - this.startedAt) / 1000)} seconds`],
      ['$SYS/broker/clients/connected', String(connected)],
      ['$SYS/broker/clients/disconnected', String(disconnected)],
      ['$SYS/broker/clients/total', String(connected + disconnected)],
      ['$SYS/broker/clients/maximum', String(this.maximumClients)],
      ['$SYS/broker/subscriptions/count', String(subscriptions)],
      ['$SYS/broker/retained messages/count', String(retained)],
      ['$SYS/broker/store/messages/count', String(retained + s.queuedMessages())],
      ['$SYS/broker/publish/messages/received', String(s.publishesReceived())],
      ['$SYS/broker/publish/messages/sent', String(s.publishesSent())]
    ]
  }

  private tick (): void {
    for (const [topic, payload] of this.values()) {
      if (this.last.get(topic) === payload) continue
      this.last.set(topic, payload)
      this.publish(topic, payload)
    }
  }
}
