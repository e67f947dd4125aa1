import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'
import { ackBytes } from './acks.js'

/**
 * PUBREL from the client: the QoS 2 publish with this id is released; PUBCOMP (MQTT-4.3.3-11), 0x92 in
 * v5 when the id was not awaiting release. Goes after the PUBREC of the same id when that still waits for
 * durable writes (the acknowledgements of a connection keep the order of its packets).
 */
export function handlePubrel (c: Connection, packet: mqttPacket.IPubrelPacket): void {
  const id = packet.messageId
  const session = c.session
  if (id === undefined || session === null) return
  const complete = (): void => {
    c.inboundQos2.delete(id)
    const known = session.releaseQos2(id)
    c.send(ackBytes(c, 'pubcomp', id, known ? RC.success : RC.packetIdNotFound, 'no QoS 2 publish with this packet id awaits release'))
  }
  if (c.ackTail === null) complete()
  else c.chainAck(complete)
}
