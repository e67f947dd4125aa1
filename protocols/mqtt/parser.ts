import mqttPacket from 'mqtt-packet'

/**
 * One mqtt-packet parser per connection (it parses 3.1.1 and, once it has seen a level 5 CONNECT, 5.0),
 * with three checks mqtt-packet leaves out, installed on the instance as overrides of its steps:
 *
 * - the packet size cap (--mqtt-max-packet-size) acts on the fixed header: a packet announcing more is
 *   refused before its body is buffered (mqtt-packet would buffer up to the 256 MB the length allows);
 * - a string (topic, filter, client id, property) must be well-formed UTF-8 without U+0000 (MQTT-1.5.3-1,
 *   -2; MQTT 5 §1.5.4): mqtt-packet decodes with Buffer#toString, which turns overlong forms, encoded
 *   surrogates and code points past U+10FFFF into U+FFFD. A string holding U+FFFD is compared with its
 *   bytes (a U+FFFD the client really sent is 3 bytes EF BF BD): only then are bytes copied;
 * - the CONNECT's protocol name and level are read before mqtt-packet refuses them, so that the front-end
 *   can answer CONNACK 0x01 / 0x84 (MQTT-3.1.2-2) rather than just close.
 */

/** The parser internals the overrides use; mqtt-packet's typings leave them out. */
interface ParserState {
  packet: { length: number, cmd: string | null }
  _pos: number
  _list: { length: number, readUInt8: (at: number) => number, readUInt16BE: (at: number) => number, toString: (enc: 'utf8', from: number, to: number) => string, slice: (from: number, to: number) => Buffer }
  _parseLength: () => boolean
  _parseString: () => string | null
  _parseConnect: () => unknown
  _parseStringPair: () => { name: string | null, value: string | null }
  _emitError: (err: Error) => void
}

export interface MqttParser extends mqttPacket.Parser {
  /** Largest packet in bytes (fixed header included). */
  maxPacketBytes: number
  /** Set when a packet's fixed header announced more than maxPacketBytes (its size). */
  oversize: number
  /** Set while parsing a packet holding a malformed string; the front-end reads and clears it per packet. */
  malformed: string | null
  /** Set when a CONNECT names an unknown protocol or level: what it named. */
  unsupported: { name: string, level: number } | null
  /**
   * The user properties of the packet being parsed, in the order sent (mqtt-packet groups them by name);
   * the front-end reads and clears it per packet.
   */
  pairs: Array<[string, string]>
}

/** Bytes of a packet whose remaining length is `remaining`: the fixed header byte, the length's own bytes, the rest. */
export function packetBytes (remaining: number): number {
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining
}

const prototype = Object.getPrototypeOf(mqttPacket.parser()) as ParserState

function cappedLength (this: ParserState & MqttParser): boolean {
  const done = prototype._parseLength.call(this)
  if (done && packetBytes(this.packet.length) > this.maxPacketBytes) {
    this.oversize = packetBytes(this.packet.length)
    this._emitError(new Error(`packet of ${this.oversize} bytes is over the limit of ${this.maxPacketBytes}`))
    return false
  }
  return done
}

function checkedString (this: ParserState & MqttParser): string | null {
  const start = this._pos
  const text = prototype._parseString.call(this)
  if (text === null) return null
  if (text.includes('\u0000')) this.malformed ??= 'a string holds U+0000'
  else if (text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(this._list.slice(start + 2, this._pos))) this.malformed ??= 'a string is not well-formed UTF-8'
  return text
}

function checkedConnect (this: ParserState & MqttParser): unknown {
  const list = this._list
  if (list.length >= 2) {
    const nameLength = list.readUInt16BE(0)
    if (list.length >= 3 + nameLength && this.packet.length >= 3 + nameLength) {
      const name = list.toString('utf8', 2, 2 + nameLength)
      const level = list.readUInt8(2 + nameLength)
      const known = (name === 'MQTT' && (level === 4 || level === 5)) || (name === 'MQIsdp' && level === 3)
      if (!known) {
        this.unsupported = { name, level }
        this._emitError(new Error(`unsupported protocol ${JSON.stringify(name)} level ${level}`))
        return undefined
      }
    }
  }
  return prototype._parseConnect.call(this)
}

function orderedPair (this: ParserState & MqttParser): { name: string | null, value: string | null } {
  const pair = prototype._parseStringPair.call(this)
  if (pair.name !== null && pair.value !== null) this.pairs.push([pair.name, pair.value])
  return pair
}

export function createParser (maxPacketBytes: number): MqttParser {
  const parser = mqttPacket.parser() as MqttParser & ParserState
  parser.maxPacketBytes = maxPacketBytes
  parser.oversize = 0
  parser.malformed = null
  parser.unsupported = null
  parser._parseLength = cappedLength
  parser._parseString = checkedString
  parser._parseConnect = checkedConnect
  parser.pairs = []
  parser._parseStringPair = orderedPair
  return parser
}
