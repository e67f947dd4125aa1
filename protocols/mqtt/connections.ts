import type { Duplex } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import type { Client } from 'aedes'

/**
 * What the MQTT front-end knows of one connection, and the per-connection limits that act on the wire:
 * the packet size cap in the parser, and refusals written before aedes has a session for the client.
 */

/** The parts of aedes' client and mqtt-packet's parser this module reaches into; their typings leave them out. */
interface ParserInternals {
  packet: { length: number }
  _parseLength: () => boolean
  _emitError: (err: Error) => void
}
interface ClientInternals { _parser: ParserInternals & NodeJS.EventEmitter, req?: { socket?: { remoteAddress?: string } } }

/** The client's IP address: the TCP/TLS socket's, or for a WebSocket the upgrade request's socket's. */
export function remoteAddress (client: Client): string {
  const viaRequest = (client as unknown as ClientInternals).req?.socket?.remoteAddress
  const viaSocket = (client.conn as Duplex & { remoteAddress?: string }).remoteAddress
  return viaRequest ?? viaSocket ?? 'unknown'
}

/** Bytes of a packet whose remaining length is `remaining`: the fixed header byte, the length's own bytes, the rest. */
function packetBytes (remaining: number): number {
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining
}

/**
 * --mqtt-max-packet-size: the parser refuses a packet as soon as its fixed header announces a larger
 * one (mqtt-packet has no such option and would buffer up to the 256 MB the remaining length allows): the
 * connection closes before its body is read. MQTT 3.1.1 has no way to say why (MQTT 5 would send
 * CONNACK/DISCONNECT 0x95).
 */
export function capPacketSize (client: Client, maxBytes: number, refused: () => void): void {
  const parser = (client as unknown as ClientInternals)._parser
  const parseLength = parser._parseLength
  parser._parseLength = function cappedLength (this: ParserInternals): boolean {
    const done = parseLength.call(this)
    if (done && packetBytes(this.packet.length) > maxBytes) {
      refused()
      this._emitError(new Error(`packet of ${packetBytes(this.packet.length)} bytes is over --mqtt-max-packet-size (${maxBytes})`))
      return false
    }
    return done
  }
}

/** Calls `listener` with each packet the client sends (after aedes got it), until the connection closes. */
export function onClientPacket (client: Client, listener: (packet: mqttPacket.Packet) => void): void {
  (client as unknown as ClientInternals)._parser.on('packet', listener)
}

/**
 * Answers a CONNECT with a refusal before aedes holds a session for it (the connection cap and rate act
 * in preConnect, before aedes writes anything) and closes the connection once the CONNACK is out; a client
 * that does not close its side is cut after a second.
 */
export function refuseConnect (client: Client, returnCode: 3 | 5): void {
  const conn = client.conn
  conn.end(mqttPacket.generate({ cmd: 'connack', returnCode, sessionPresent: false }))
  setTimeout(() => { conn.destroy() }, 1000).unref()
}
