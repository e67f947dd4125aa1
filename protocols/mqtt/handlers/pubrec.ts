import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'
import { ackBytes } from './acks.js'

/**
 * PUBREC from the client: the second step of a QoS 2 message to it, answered with PUBREL. A v5 PUBREC
 * with a failure code (>= 0x80) ends the message instead (MQTT 5 §4.3.3: no PUBREL). An unknown id:
 * PUBREL 0x92 (v5) so the client can finish its side.
 */
export function handlePubrec (c: Connection, packet: mqttPacket.IPubrecPacket): void {
  const id = packet.messageId
  const session = c.session
  if (id === undefined || session === null) return
  if ((packet.reasonCode ?? 0) >= 0x80) {
    session.acknowledged(id)
    return
  }
  if (session.received(id)) c.send(ackBytes(c, 'pubrel', id, RC.success))
  else c.send(ackBytes(c, 'pubrel', id, RC.packetIdNotFound, 'no QoS 2 message with this packet id is in flight'))
}
