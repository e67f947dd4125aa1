/**
 * MQTT 5 reason codes (§2.4) the front-end sends, and their 3.1.1 CONNACK return codes (§3.2.2.3) where a
 * 3.1.1 client has one. Names follow the specification's table.
 */
export const RC = {
  success: 0x00,
  grantedQos1: 0x01,
  grantedQos2: 0x02,
  disconnectWithWill: 0x04,
  noMatchingSubscribers: 0x10,
  noSubscriptionExisted: 0x11,
  unspecified: 0x80,
  malformed: 0x81,
  protocolError: 0x82,
  implementationSpecific: 0x83,
  unsupportedVersion: 0x84,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  serverBusy: 0x89,
  serverShuttingDown: 0x8b,
  badAuthenticationMethod: 0x8c,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  packetIdNotFound: 0x92,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
  administrativeAction: 0x98,
  retainNotSupported: 0x9a,
  qosNotSupported: 0x9b,
  useAnotherServer: 0x9c,
  sharedNotSupported: 0x9e,
  connectionRateExceeded: 0x9f
} as const

/** CONNACK return codes of MQTT 3.1.1. */
export const V3 = {
  accepted: 0,
  unacceptableVersion: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUserNameOrPassword: 4,
  notAuthorized: 5
} as const

/** The 3.1.1 CONNACK return code nearest to an MQTT 5 CONNACK reason code. */
export function v3ConnackCode (reason: number): number {
  switch (reason) {
    case RC.success: return V3.accepted
    case RC.unsupportedVersion: return V3.unacceptableVersion
    case RC.clientIdNotValid: return V3.identifierRejected
    case RC.badUserNameOrPassword: return V3.badUserNameOrPassword
    case RC.notAuthorized:
    case RC.quotaExceeded: return V3.notAuthorized
    default: return V3.serverUnavailable
  }
}

/** A reason to end a connection from the server's side: the v5 DISCONNECT code and its reason string. */
export interface Refusal { code: number, reason: string }

export function refusal (code: number, reason: string): Refusal {
  return { code, reason }
}
