import type { BusMessage } from '../pubsub/pubsub.js'
import type { MessageProperties } from '../pubsub/types.js'
import { prepareEntry } from './codec.js'
import type { StreamLog } from './log.js'
import type { AppendMessage, StreamContext } from './types.js'

/**
 * Turns publishes matched by a stream's capture filters into append batches. Messages that arrive in
 * the same tick go in one batch (up to the batch limit), so a high fan-in rate costs one storage write
 * per tick. When too many captured messages wait for storage, QoS 0 ones are dropped and counted
 * (at-most-once, as MQTT QoS 0 allows); QoS 1 and 2 are always kept.
 */
export class CaptureBuffer {
  private buffer: AppendMessage[] = []
  private scheduled = false
  private readonly inFlight = new Set<Promise<void>>()
  /** Settles when the batch being gathered is written (or has failed): what add() returns. */
  private gathered: { written: Promise<void>, settle: () => void } | null = null

  constructor (private readonly log: StreamLog, private readonly ctx: StreamContext) {}

  /** Buffers a captured publish; the promise settles once its batch is durable (or dropped, counted). */
  add (m: BusMessage & { properties?: MessageProperties }): Promise<void> | undefined {
    const { stats, limits } = this.ctx
    if (this.log.deleted) return
    const tooMany = this.log.capturePending >= limits.captureMaxPending && m.qos === 0
    // the publish's MQTT 5 properties are kept; its message expiry is not (the stream's retention governs)
    const entry: AppendMessage = { payload: m.payload, topic: m.topic, qos: m.qos, retain: m.retain }
    if (m.properties !== undefined) entry.properties = m.properties
    // measured as the append will measure it (properties included): one message over the limit would fail its whole batch
    const bytes = m.properties === undefined ? m.payload.length + Buffer.byteLength(m.topic) : prepareEntry(entry, 0).size - 9
    if (tooMany || bytes > limits.maxMessageBytes) {
      stats.captureDropped++
      return
    }
    this.buffer.push(entry)
    this.log.capturePending++
    if (this.gathered === null) {
      let settle: () => void = () => {}
      const written = new Promise<void>(resolve => { settle = resolve })
      this.gathered = { written, settle }
    }
    const written = this.gathered.written
    if (this.buffer.length >= limits.maxBatch) this.flush()
    else if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => { this.flush() })
    }
    return written
  }

  private flush (): void {
    this.scheduled = false
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    const gathered = this.gathered
    this.gathered = null
    const { stats } = this.ctx
    const done = this.log.append(batch).then(() => {
      stats.captured += batch.length
    }, () => {
      stats.captureDropped += batch.length
    }).finally(() => {
      this.log.capturePending -= batch.length
      this.inFlight.delete(done)
      gathered?.settle()
    })
    this.inFlight.add(done)
  }

  /** Writes what is buffered and waits for every capture write in flight. */
  async drain (): Promise<void> {
    this.flush()
    await Promise.all([...this.inFlight])
  }
}
