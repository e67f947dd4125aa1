import { isUtf8 } from 'node:buffer'
import type mqttPacket from 'mqtt-packet'
import { packetBytes, type MqttParser } from './parser.js'

/**
 * Splits a connection's bytes into packets and parses the hot ones itself: PUBLISH without properties
 * (every 3.1.1 PUBLISH, and MQTT 5 ones whose property length is 0), the 4-byte acknowledgements and
 * PINGREQ, straight from the chunk the socket gave, with no copy of a QoS 0 payload. Every other packet
 * (CONNECT, SUBSCRIBE, a PUBLISH with properties...) goes, whole, to the connection's mqtt-packet parser,
 * which therefore always starts at a packet boundary.
 *
 * Measured on the QoS 0 fan-in 10 -> 1 (`bench/mqtt/profile.ts fanin`): mqtt-packet's parser with its
 * BufferList and debug calls was about half of the broker's CPU per message.
 */

/** A PUBLISH as parsed here; `raw`: its own bytes, when they can go out unchanged at QoS 0 to subscribers of its version. */
export type RawPublish = mqttPacket.IPublishPacket & { raw?: Buffer }

export interface ReaderEvents {
  packet: (packet: mqttPacket.Packet) => void
  /** A packet larger than the cap was announced (its size), or bytes that are no MQTT. */
  error: (err: Error, oversize: number) => void
  /** A string in a packet parsed here was malformed (it is not emitted). */
  malformed: (reason: string) => void
}

const MAX_HEADER = 5

/**
 * What is wrong with a packet's first byte, or undefined: the first packet is a CONNECT (MQTT-3.1.0-1),
 * reserved flags are as the specification lists them (MQTT-2.2.2-1), a PUBLISH has no QoS 3 (MQTT-3.3.1-4).
 */
function badFirstByte (first: number, version: number): string | undefined {
  const type = first >> 4
  const flags = first & 0x0f
  if (version === 0) return first === 0x10 ? undefined : 'the first packet is not a CONNECT'
  if (type === 3) return (flags & 0x06) === 0x06 ? 'PUBLISH with QoS 3' : undefined
  if (type === 0 || (type === 15 && version !== 5)) return `reserved packet type ${type}`
  const required = type === 6 || type === 8 || type === 10 ? 2 : 0
  return flags === required ? undefined : `packet type ${type} with flags ${flags}`
}

export class PacketReader {
  /** 0 until the CONNECT was parsed (everything goes to mqtt-packet until then), then 3, 4 or 5. */
  version = 0
  private chunks: Buffer[] = []
  private held = 0
  /** Bytes the packet at the start of `chunks` needs in all (0: its header is not complete yet). */
  private needed = 0
  private failed = false

  constructor (private readonly parser: MqttParser, private readonly events: ReaderEvents) {}

  push (chunk: Buffer): void {
    if (this.failed) return
    if (this.held > 0) {
      this.chunks.push(chunk)
      this.held += chunk.length
      if (this.held < (this.needed > 0 ? this.needed : 2)) return
      chunk = Buffer.concat(this.chunks, this.held)
      this.chunks = []
      this.held = 0
      this.needed = 0
    }
    let at = 0
    const end = chunk.length
    while (at < end && !this.failed) {
      // the first byte alone can be wrong (before its packet is complete: bytes that are not MQTT at all,
      // such as an HTTP request, would otherwise wait for a length they never send)
      const bad = badFirstByte(chunk[at], this.version)
      if (bad !== undefined) return this.fail(new Error(bad), 0)
      // fixed header: type and flags, remaining length (1 to 4 bytes)
      let remaining = 0
      let multiplier = 1
      let i = at + 1
      let complete = false
      for (; i < end && i < at + MAX_HEADER; i++) {
        const b = chunk[i]
        remaining += (b & 0x7f) * multiplier
        multiplier *= 128
        if ((b & 0x80) === 0) { complete = true; break }
      }
      if (!complete) {
        if (i >= at + MAX_HEADER) return this.fail(new Error('invalid remaining length'), 0)
        return this.keep(chunk, at, 0)
      }
      const headerLength = i + 1 - at
      const total = headerLength + remaining
      if (packetBytes(remaining) > this.parser.maxPacketBytes) return this.fail(new Error(`packet of ${packetBytes(remaining)} bytes is over the limit of ${this.parser.maxPacketBytes}`), packetBytes(remaining))
      if (at + total > end) return this.keep(chunk, at, total)
      const bodyStart = at + headerLength
      const first = chunk[at]
      if (this.version === 0 || !this.fast(chunk, first, at, bodyStart, at + total)) this.parser.parse(chunk.subarray(at, at + total))
      at += total
    }
  }

  /** A packet parsed here, or false to let mqtt-packet do it. */
  private fast (chunk: Buffer, first: number, packetStart: number, start: number, end: number): boolean {
    const type = first >> 4
    if (type === 3) return this.publish(chunk, first, packetStart, start, end)
    const length = end - start
    // an acknowledgement: the id, and in v5 a reason code (with an empty property length) or nothing (0x00)
    if ((length === 2 || (this.version === 5 && (length === 3 || (length === 4 && chunk[start + 3] === 0)))) &&
      (first === 0x40 || first === 0x50 || first === 0x62 || first === 0x70)) {
      const cmd = first === 0x40 ? 'puback' : first === 0x50 ? 'pubrec' : first === 0x62 ? 'pubrel' : 'pubcomp'
      const packet = { cmd, messageId: chunk.readUInt16BE(start) } as mqttPacket.IPubackPacket
      if (this.version === 5) packet.reasonCode = length === 2 ? 0 : chunk[start + 2]
      this.events.packet(packet as mqttPacket.Packet)
      return true
    }
    if (first === 0xc0 && end === start) {
      this.events.packet({ cmd: 'pingreq' })
      return true
    }
    return false
  }

  private publish (chunk: Buffer, first: number, packetStart: number, start: number, end: number): boolean {
    const qos = (first >> 1) & 0x03
    if (qos === 3 || end - start < 2) return false
    const topicLength = chunk.readUInt16BE(start)
    const topicStart = start + 2
    const topicEnd = topicStart + topicLength
    let at = topicEnd
    if (qos > 0) at += 2
    if (this.version === 5) {
      if (at >= end || chunk[at] !== 0) return false // properties: mqtt-packet parses them
      at++
    }
    if (at > end) return false
    // the topic: ASCII without NUL is the common case; anything else is checked as UTF-8
    let ascii = true
    for (let j = topicStart; j < topicEnd; j++) {
      const c = chunk[j]
      if (c === 0 || c >= 0x80) { ascii = false; break }
    }
    let topic: string
    if (ascii) topic = chunk.toString('latin1', topicStart, topicEnd)
    else {
      if (!isUtf8(chunk.subarray(topicStart, topicEnd)) || chunk.subarray(topicStart, topicEnd).includes(0)) {
        this.events.malformed('the topic is not well-formed UTF-8 without U+0000')
        return true
      }
      topic = chunk.toString('utf8', topicStart, topicEnd)
    }
    const retain = (first & 0x01) !== 0
    // a QoS 0 message that is not retained is routed and written at once: a view of the chunk will do;
    // anything that may be kept (queued, retained) gets its own copy rather than pinning the whole chunk
    const payload = qos === 0 && !retain ? chunk.subarray(at, end) : Buffer.from(chunk.subarray(at, end))
    const packet: RawPublish = { cmd: 'publish', topic, payload, qos: qos as 0 | 1 | 2, retain, dup: (first & 0x08) !== 0 }
    if (qos > 0) packet.messageId = chunk.readUInt16BE(topicEnd)
    // a QoS 0 PUBLISH without flags (and, in v5, without properties: the only ones parsed here) is, byte for
    // byte, what subscribers of its version get
    else if (first === 0x30) packet.raw = chunk.subarray(packetStart, end)
    this.events.packet(packet)
    return true
  }

  private keep (chunk: Buffer, at: number, needed: number): void {
    const rest = chunk.subarray(at)
    // a copy when the rest is a small part of a large chunk: the chunk is not pinned while the packet completes
    this.chunks.push(rest.length * 4 < chunk.length ? Buffer.from(rest) : rest)
    this.held = rest.length
    this.needed = needed
  }

  private fail (err: Error, oversize: number): void {
    this.failed = true
    this.chunks = []
    this.held = 0
    this.events.error(err, oversize)
  }
}
