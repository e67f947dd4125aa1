import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'
import { handleAuth } from './auth.js'
import { handleDisconnect } from './disconnect.js'
import { handlePingreq } from './pingreq.js'
import { handlePuback } from './puback.js'
import { handlePubcomp } from './pubcomp.js'
import { handlePublish } from './publish.js'
import { handlePubrec } from './pubrec.js'
import { handlePubrel } from './pubrel.js'
import { handleSubscribe } from './subscribe.js'
import { handleUnsubscribe } from './unsubscribe.js'

/** A packet of a connected client, to its handler. Packets only a server sends close the connection. */
export function dispatch (c: Connection, packet: mqttPacket.Packet): void {
  switch (packet.cmd) {
    case 'publish': return handlePublish(c, packet)
    case 'puback': return handlePuback(c, packet)
    case 'pubrec': return handlePubrec(c, packet)
    case 'pubrel': return handlePubrel(c, packet)
    case 'pubcomp': return handlePubcomp(c, packet)
    case 'subscribe': return handleSubscribe(c, packet)
    case 'unsubscribe': return handleUnsubscribe(c, packet)
    case 'pingreq': return handlePingreq(c)
    case 'disconnect': return handleDisconnect(c, packet)
    case 'auth': return handleAuth(c, packet)
    case 'connect':
      // MQTT-3.1.0-2: a second CONNECT is a protocol violation
      c.fail(RC.protocolError, 'a second CONNECT')
      return
    default:
      c.front.bad(c)
      c.fail(RC.protocolError, `a ${packet.cmd} packet from a client`)
  }
}
