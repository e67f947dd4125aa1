import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'
import { parseShared, validFilter } from '../topics.js'

/**
 * UNSUBSCRIBE: the session drops the filters; UNSUBACK (v5: 0x00 for each one that existed, 0x11 for one
 * that did not, 0x8F for a malformed filter). One without filters is a protocol error (MQTT-3.10.3-2).
 */
export function handleUnsubscribe (c: Connection, packet: mqttPacket.IUnsubscribePacket): void {
  const session = c.session
  if (session === null) return
  const id = packet.messageId ?? 0
  if (id === 0) return c.fail(RC.protocolError, 'packet identifier 0') // MQTT-2.3.1-1
  if (packet.unsubscriptions.length === 0) return c.fail(RC.protocolError, 'an UNSUBSCRIBE without topic filters')
  const valid = packet.unsubscriptions.map(f => parseShared(f) !== null && (parseShared(f) !== undefined || validFilter(f)))
  const filters = packet.unsubscriptions.filter((_f, i) => valid[i])
  const unsuback = (existed: boolean[]): void => {
    if (!c.v5) {
      c.sendPacket({ cmd: 'unsuback', messageId: id, granted: [] })
      return
    }
    let j = 0
    const granted = valid.map(ok => !ok ? RC.topicFilterInvalid : existed[j++] === true ? RC.success : RC.noSubscriptionExisted)
    c.sendPacket({ cmd: 'unsuback', messageId: id, granted })
  }
  session.unsubscribe(filters).then(existed => {
    c.chainAck(() => { unsuback(existed) })
  }, () => {
    c.chainAck(() => { unsuback(filters.map(() => false)) })
  })
}
