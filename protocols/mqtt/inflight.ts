import type { AedesPublishPacket, Client } from 'aedes'

/**
 * --mqtt-max-inflight for messages to a client: at most that many QoS 1/2 PUBLISH sent and not yet
 * acknowledged (PUBACK, or PUBCOMP for QoS 2), as Mosquitto's max_inflight_messages. Further ones wait
 * in a list, sent as acknowledgements come back. For a clean session the list holds at most
 * --mqtt-max-waiting messages (default 0: no cap, nothing dropped, as when the window did not exist), beyond
 * which the oldest waiting one is dropped and counted; a persistent session's waiting messages are in its stored queue already and are not dropped. The router
 * is never held up by a slow client.
 *
 * aedes sends a QoS 1/2 message through `client.deliverQoS(packet, cb)`, which gives the message its id
 * and calls `cb` as a method of the packet it wrote (`packet.writeCallback()`): that is where the id of
 * each message actually sent is learnt. A message aedes does not send (the ACL refused it, a duplicate)
 * calls `cb` from setImmediate, without a packet.
 *
 * aedes drops a message whose broker counter is not above the last one the client got (its guard against
 * one message reaching a client twice through overlapping subscriptions). A waiting message is older than
 * what went out meanwhile, so this window applies that guard itself when a message starts to wait, and
 * lets the message through aedes' guard when it is sent.
 */

type Deliver = (packet: AedesPublishPacket, cb: () => void) => void

/** The parts of an aedes client this module replaces or reads; aedes' typings leave them out. */
interface DeliveringClient { deliverQoS: Deliver, duplicates: Record<string, number> }

/** A packet as aedes hands it to the write callback. */
interface Written { cmd?: unknown, qos?: unknown, messageId?: unknown }

export interface InflightOptions {
  maxInflight: number
  /** Most messages waiting for a free slot; 0: no cap. */
  maxWaiting: number
  /** A waiting message was dropped (counted). */
  dropped: (client: Client, packet: AedesPublishPacket) => void
}

/** Acknowledgements of ids not seen sent (emptied past this): bogus ones, or ones aedes sent at reconnect. */
const EARLY_ACKS_KEPT = 1024

export class InflightWindow {
  /** Ids of QoS 1/2 messages written and not yet acknowledged. */
  private readonly sent = new Set<number>()
  /** Messages handed to aedes whose write has not completed. */
  private writing = 0
  /** Messages waiting for a slot, oldest first from `head` (shift() on a long array would cost its length). */
  private waiting: AedesPublishPacket[] = []
  private head = 0
  /** Acknowledgements that overtook the write callback of their message. */
  private readonly early = new Set<number>()
  private readonly deliver: Deliver

  constructor (private readonly client: Client, private readonly options: InflightOptions) {
    const delivering = client as unknown as DeliveringClient
    this.deliver = delivering.deliverQoS
    delivering.deliverQoS = (packet, cb) => {
      // a QoS 0 message (downgraded by the publisher) goes aedes' way at once; others keep their order
      if (packet.qos === 0 || (!this.full && this.waitingCount === 0)) this.send(packet, cb)
      else {
        if (!this.seenBefore(packet)) this.wait(packet)
        cb()
      }
    }
  }

  private get full (): boolean { return this.sent.size + this.writing >= this.options.maxInflight }

  /** The client acknowledged a message (PUBACK, PUBCOMP). */
  acknowledged (messageId: number | undefined): void {
    if (messageId === undefined) return
    if (!this.sent.delete(messageId)) {
      if (this.early.size >= EARLY_ACKS_KEPT) this.early.clear()
      this.early.add(messageId)
    }
    this.pump()
  }

  private send (packet: AedesPublishPacket, cb: () => void): void {
    if (packet.qos === 0) {
      this.deliver(packet, cb)
      return
    }
    this.writing++
    const window = this
    this.deliver(packet, function written (this: Written | undefined) {
      window.writing--
      const id = this?.messageId
      if (this?.cmd === 'publish' && typeof this.qos === 'number' && this.qos > 0 && typeof id === 'number' && !window.early.delete(id)) window.sent.add(id)
      cb()
      window.pump()
    })
  }

  /** aedes' duplicate guard, applied (and recorded) when a message starts to wait. */
  private seenBefore (packet: AedesPublishPacket): boolean {
    const origin = packet.brokerId
    if (origin === undefined || origin === null || origin === '') return false
    const duplicates = (this.client as unknown as DeliveringClient).duplicates
    if ((duplicates[origin] ?? 0) >= packet.brokerCounter) return true
    duplicates[origin] = packet.brokerCounter
    return false
  }

  /** Sends a message that waited: past aedes' duplicate guard (it was applied when it started to wait). */
  private sendWaited (packet: AedesPublishPacket): void {
    const origin = packet.brokerId
    const duplicates = (this.client as unknown as DeliveringClient).duplicates
    const last = origin !== undefined && origin !== null ? duplicates[origin] : undefined
    if (last !== undefined) duplicates[origin] = packet.brokerCounter - 1
    // aedes applies its guard synchronously, before it defers the write
    this.send(packet, noop)
    if (last !== undefined) duplicates[origin] = Math.max(last, duplicates[origin] ?? 0)
  }

  private wait (packet: AedesPublishPacket): void {
    const cap = this.options.maxWaiting
    // a persistent session's messages are in its stored queue already (and in memory there): they wait
    // without a cap, and those still waiting when the client leaves are sent when it comes back
    if (cap > 0 && this.client.clean && this.waitingCount >= cap) {
      const oldest = this.nextWaiting()
      if (oldest !== undefined) this.options.dropped(this.client, oldest)
    }
    this.waiting.push(packet)
  }

  private get waitingCount (): number { return this.waiting.length - this.head }

  private nextWaiting (): AedesPublishPacket | undefined {
    if (this.head >= this.waiting.length) return undefined
    const next = this.waiting[this.head++]
    if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head)
      this.head = 0
    }
    return next
  }

  private pump (): void {
    while (!this.full && this.waitingCount > 0 && !this.client.closed) {
      const next = this.nextWaiting()
      if (next !== undefined) this.sendWaited(next)
    }
  }
}

function noop (): void {}
