import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'

/** PUBCOMP from the client: a QoS 2 message to it is done. */
export function handlePubcomp (c: Connection, packet: mqttPacket.IPubcompPacket): void {
  if (packet.messageId === undefined) return
  c.window?.acknowledged(packet.messageId)
  c.session?.acknowledged(packet.messageId)
}
