import type { Connection } from '../connection.js'

const PINGRESP = Buffer.from([0xd0, 0x00])

/** PINGREQ: PINGRESP (MQTT-3.12.4-1); the packet itself counted as activity for the keepalive. */
export function handlePingreq (c: Connection): void {
  c.send(PINGRESP)
}
