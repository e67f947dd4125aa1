import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'

/**
 * AUTH: the broker offers no enhanced authentication method (a CONNECT naming one is refused with 0x8C),
 * so an AUTH naming a method gets DISCONNECT 0x8C (bad authentication method), one without a method 0x82
 * (MQTT 5 §4.12: AUTH outside an authentication exchange is a protocol error).
 */
export function handleAuth (c: Connection, packet: mqttPacket.IAuthPacket): void {
  if (packet.properties?.authenticationMethod !== undefined) return c.fail(RC.badAuthenticationMethod, `authentication method ${JSON.stringify(packet.properties.authenticationMethod)} is not supported`)
  c.fail(RC.protocolError, 'AUTH without an authentication exchange')
}
