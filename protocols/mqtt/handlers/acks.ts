import mqttPacket from 'mqtt-packet'
import type { Connection } from '../connection.js'

const CODES = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const

/**
 * PUBACK, PUBREC, PUBREL or PUBCOMP. Success is the 4 bytes every version shares (MQTT 5 §3.4.2.1 lets
 * the reason code go when it is 0x00); a v5 failure carries its code and, unless the client asked for no
 * problem information, the reason string. 3.1.1 has no failure acknowledgements: success.
 */
export function ackBytes (c: Connection, cmd: keyof typeof CODES, id: number, code: number, reason?: string): Buffer {
  if (code === 0 || !c.v5) return Buffer.from([CODES[cmd], 0x02, id >> 8, id & 0xff])
  const properties = reason !== undefined ? c.reasonProperties(reason) : undefined
  return mqttPacket.generate({ cmd, messageId: id, reasonCode: code, ...(properties !== undefined ? { properties } : {}) } as mqttPacket.Packet, { protocolVersion: 5 })
}

/**
 * mqtt-packet turns a property given twice into an array; only user properties and subscription
 * identifiers may repeat (MQTT 5 §2.2.2.2: any other twice is a protocol error). The name of the first
 * one repeated, or undefined.
 */
export function repeatedProperty (properties: object): string | undefined {
  for (const [name, value] of Object.entries(properties)) {
    if (Array.isArray(value) && name !== 'userProperties' && name !== 'subscriptionIdentifier') return name
  }
  return undefined
}
