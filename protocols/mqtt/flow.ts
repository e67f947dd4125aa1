import type { Connection } from './connection.js'

/**
 * Backpressure from subscribers to publishers. When a QoS 0 message finds its subscriber with more than
 * `PAUSE_BYTES` unsent, the connection whose PUBLISH is being routed stops being read until that
 * subscriber's socket drains or `PAUSE_MS` passes (a short stall, as nats-server stalls a producer, so that
 * a subscriber that never reads cannot hold a publisher for good). A fan-in whose subscriber reads a little
 * slower than its publishers write then slows the publishers down instead of losing messages. Past the hard
 * bound (sendBufferBytes) QoS 0 messages are dropped and counted.
 *
 * Measured on the 10 -> 1 fan-in (`bench/mqtt/profile.ts fanin`, 300k messages): no backpressure, 58% of
 * the messages dropped; pauses of up to 250 ms, 26% dropped (publishers resumed by the timer flood the
 * subscriber with what waited in their sockets); until drained (1 s cap), none dropped but 43k msg/s;
 * up to 50 ms, none dropped and 146k-225k msg/s (20 ms: 118k; 256 KB instead of 512 KB: drops again).
 */

/** Unsent bytes of a subscriber past which the publisher being routed is paused. */
export const PAUSE_BYTES = 512 * 1024
/** Longest pause for one slow subscriber. */
const PAUSE_MS = 50

/** The connection whose PUBLISH is being routed right now (routing is synchronous), or null. */
let routing: Connection | null = null

export function routingFrom (publisher: Connection | null): void {
  routing = publisher
}

/** A subscriber is over PAUSE_BYTES: the publisher being routed waits for it. */
export function backpressure (subscriber: Connection): void {
  const publisher = routing
  if (publisher === null || publisher === subscriber || publisher.waitingFor.has(subscriber)) return
  publisher.waitingFor.add(subscriber)
  subscriber.slowFor.add(publisher)
  if (publisher.waitingFor.size === 1) publisher.stream.pause()
  setTimeout(resumeAfter, PAUSE_MS, publisher, subscriber).unref()
}

/** The subscriber drained (or closed): the publishers it held go on. */
export function drained (subscriber: Connection): void {
  if (subscriber.slowFor.size === 0) return
  const held = [...subscriber.slowFor]
  subscriber.slowFor.clear()
  for (const publisher of held) release(publisher, subscriber)
}

function resumeAfter (publisher: Connection, subscriber: Connection): void {
  subscriber.slowFor.delete(publisher)
  release(publisher, subscriber)
}

function release (publisher: Connection, subscriber: Connection): void {
  if (!publisher.waitingFor.delete(subscriber)) return
  if (publisher.waitingFor.size === 0 && !publisher.isClosed) publisher.stream.resume()
}
