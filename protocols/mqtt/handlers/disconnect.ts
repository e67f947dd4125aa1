import type mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { RC } from '../reason.js'

/**
 * DISCONNECT from the client: the will is discarded (MQTT-3.14.4-3); a v5 client keeps it with any reason
 * code but 0x00 (0x04 asks for it, and MQTT-3.1.2-10 removes it on 0x00 only); a v5 client may change the
 * session expiry, but not from 0 to more (MQTT-3.14.2-2: DISCONNECT 0x82).
 */
export function handleDisconnect (c: Connection, packet: mqttPacket.IDisconnectPacket): void {
  c.publishWill = c.v5 && (packet.reasonCode ?? RC.success) !== RC.success
  const expiry = c.v5 ? packet.properties?.sessionExpiryInterval : undefined
  if (expiry !== undefined) {
    if (c.sessionExpiry === 0 && expiry !== 0) {
      c.publishWill = true
      return c.fail(RC.protocolError, 'the session expiry was 0 at CONNECT and may not be set at DISCONNECT')
    }
    c.expiryAtDisconnect = expiry
  }
  c.end()
}
