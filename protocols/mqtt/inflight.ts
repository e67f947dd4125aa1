import type { Delivery } from '../../engines/pubsub/types.js'

/**
 * --mqtt-max-waiting for a connected session that ends with its connection (3.1.1 clean session, v5
 * session expiry 0): at most --mqtt-max-inflight QoS 1/2 messages sent and not yet acknowledged (PUBACK,
 * or PUBCOMP for QoS 2); further ones wait here, at most --mqtt-max-waiting of them, and past that the
 * oldest waiting one is dropped and counted (a slow reader loses messages instead of growing the broker's
 * memory). The bus is given a receive maximum of 65,535 for such a session so that its messages come here;
 * a dropped one is completed on the session (its packet id freed). A session that outlives its connection
 * keeps its waiting messages in its (stored) queue instead: the bus holds them under the client's window.
 */
export class WaitingWindow {
  /** Packet ids sent and not yet acknowledged. */
  private readonly sent = new Set<number>()
  /** Oldest first from `head` (shift() on a long array would cost its length). */
  private waiting: Delivery[] = []
  private head = 0

  constructor (
    private readonly maxInflight: number,
    private readonly maxWaiting: number,
    /** Writes a delivery; false when it could not be (it is then completed on the session). */
    private readonly send: (delivery: Delivery) => boolean,
    /** A delivery that will never be sent: counted, and completed on the session. */
    private readonly dropped: (delivery: Delivery, counted: boolean) => void
  ) {}

  private get waitingCount (): number { return this.waiting.length - this.head }

  /** A QoS 1/2 delivery from the bus; true: sent or waiting (the session sees it as in flight). */
  offer (delivery: Delivery): boolean {
    if (this.sent.size < this.maxInflight && this.waitingCount === 0) return this.write(delivery)
    if (this.waitingCount >= this.maxWaiting) {
      const oldest = this.next()
      if (oldest !== undefined) this.dropped(oldest, true)
    }
    this.waiting.push(delivery)
    return true
  }

  /** PUBACK or PUBCOMP from the client. */
  acknowledged (packetId: number): void {
    if (!this.sent.delete(packetId)) return
    while (this.sent.size < this.maxInflight && this.waitingCount > 0) {
      const next = this.next()
      if (next !== undefined && !this.write(next)) this.dropped(next, false)
    }
  }

  private write (delivery: Delivery): boolean {
    if (!this.send(delivery)) return false
    if (delivery.packetId !== undefined) this.sent.add(delivery.packetId)
    return true
  }

  private next (): Delivery | undefined {
    if (this.head >= this.waiting.length) return undefined
    const next = this.waiting[this.head++]
    if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head)
      this.head = 0
    }
    return next
  }
}
