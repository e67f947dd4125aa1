import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'

/**
 * AUTH: the broker offers no enhanced authentication method (a CONNECT naming one is refused with CONNACK
 * 0x8C), so no authentication exchange is ever under way: an AUTH is a protocol error (MQTT 5 §4.12,
 * MQTT-4.12.0-2): DISCONNECT 0x82 (0x8C is not a DISCONNECT reason code), its reason string naming the method.
 */
export function handleAuth (c: Connection, packet: mqttPacket.IAuthPacket): void {
  const method = packet.properties?.authenticationMethod
  c.fail(RC.protocolError, method !== undefined ? `authentication method ${JSON.stringify(method)} is not supported` : 'AUTH without an authentication exchange')
}
