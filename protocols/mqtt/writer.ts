import type { Duplex } from 'node:stream'

/**
 * The writes of one connection, gathered and written once per turn of the event loop: a subscriber that
 * gets 50 messages from one incoming chunk (fan-in) costs one socket write of their bytes, not 50 (each
 * stream write costs more than copying a small packet). Writers with bytes waiting are flushed together
 * by one setImmediate for the whole process, so queuing a packet allocates no closure and no promise.
 */
export class Writer {
  private chunks: Buffer[] = []
  private bytes = 0
  private queued = false
  /** While held (a CONNECT being answered), packets gather and nothing is written. */
  private held = false

  constructor (private readonly stream: Duplex) {}

  /** Bytes queued here and in the stream, not yet handed to the OS. */
  get pending (): number { return this.bytes + this.stream.writableLength }

  write (bytes: Buffer): void {
    this.chunks.push(bytes)
    this.bytes += bytes.length
    if (!this.queued && !this.held) {
      this.queued = true
      schedule(this)
    }
  }

  /** Writes `bytes` now, ahead of everything queued or held (a CONNACK ahead of its session's deliveries). */
  writeNow (bytes: Buffer): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.write(bytes)
  }

  hold (): void { this.held = true }

  release (): void {
    this.held = false
    if (this.bytes > 0 && !this.queued) {
      this.queued = true
      schedule(this)
    }
  }

  flush (): void {
    this.queued = false
    if (this.held || this.bytes === 0) return
    const chunks = this.chunks
    const bytes = this.bytes
    this.chunks = []
    this.bytes = 0
    if (this.stream.destroyed || this.stream.writableEnded) return
    this.stream.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes))
  }

  /** Flushes what is queued (unless held) and ends the stream. */
  end (): void {
    this.held = false
    this.flush()
    if (!this.stream.writableEnded) this.stream.end()
  }

  /** Drops what is queued (the connection is gone). */
  discard (): void {
    this.chunks = []
    this.bytes = 0
  }
}

const dirty: Writer[] = []
let scheduled = false

function schedule (writer: Writer): void {
  dirty.push(writer)
  if (!scheduled) {
    scheduled = true
    setImmediate(flushAll)
  }
}

function flushAll (): void {
  scheduled = false
  // a flush may queue more (a write error closing a connection): those are in `dirty` too, and flushed here
  for (let i = 0; i < dirty.length; i++) dirty[i].flush()
  dirty.length = 0
}
