import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'

/** PUBACK from the client: a QoS 1 message to it is done (an unknown id is ignored, MQTT 5 §4.3.2). */
export function handlePuback (c: Connection, packet: mqttPacket.IPubackPacket): void {
  if (packet.messageId === undefined) return
  c.window?.acknowledged(packet.messageId)
  c.session?.acknowledged(packet.messageId)
}
