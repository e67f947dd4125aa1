/**
 * The bus's contract with its front-ends (MQTT in protocols/mqtt, HTTP publish and SSE in protocols/http,
 * captures in engines/queue and engines/stream). The bus knows no wire protocol: a session here is the
 * protocol-neutral state MQTT calls a session (subscriptions, the QoS 1/2 messages owed to the client and
 * their packet ids, the QoS 2 ids received and not yet released, the will, the expiry), and the front-end
 * that holds the connection is the session's Outlet.
 */

export type QoS = 0 | 1 | 2

/** MQTT 5 user properties in mqtt-packet's shape: a name with one value, or several in order. */
export type UserProperties = Record<string, string | string[]>

/** The publish properties that travel with a message unchanged (MQTT 5 §3.3.2.3), from any front-end. */
export interface MessageProperties {
  /** 1: the payload is UTF-8 (checked where it comes in); 0 or absent: bytes. */
  payloadFormat?: 0 | 1
  contentType?: string
  responseTopic?: string
  correlationData?: Buffer
  userProperties?: UserProperties
  /** The user properties in the order sent, when a name recurs between others (MQTT-3.3.2-18); userProperties holds the same ones. */ // added by mqtt front-end
  userPropertyList?: Array<[string, string]>
}

/** A message on the bus. Front-ends build it; the bus never changes one it was handed (it copies). */
export interface BusMessage {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  properties?: MessageProperties
  /** Absolute time (ms since the epoch) after which it is not delivered (MQTT 5 message expiry); absent: never. */
  expiresAt?: number
  /** The client id of the session that published it (for no local); absent for HTTP and internal publishes. */
  from?: string
}

/** A subscription's options (MQTT 5 §3.8.3.1; a 3.1.1 client gets the defaults). */
export interface SubscriptionOptions {
  qos: QoS
  /** Not delivered to the session that published it. Not allowed on a shared subscription (the front-end refuses). */
  noLocal?: boolean
  /** The retain flag is kept as published (else 0 on live delivery). */
  retainAsPublished?: boolean
  /** 0: retained messages at subscribe; 1: only if the subscription is new; 2: none. */
  retainHandling?: 0 | 1 | 2
  /** MQTT 5 subscription identifier, 1..268,435,455. */
  subscriptionId?: number
}

/** One message as it goes to one session's client. */
export interface Delivery {
  message: BusMessage
  /** min(message QoS, subscription QoS), the highest over the session's matching subscriptions. */
  qos: QoS
  /** The retain flag to send: true for retained messages sent at subscribe, message.retain with retainAsPublished, else false. */
  retain: boolean
  /** Identifiers of the matching subscriptions that have one (MQTT 5 §3.3.4). */
  subscriptionIds?: number[]
  /** QoS 1/2 only: the packet id the session gave it. */
  packetId?: number
  /** QoS 1/2 only: sent before (a resend after reconnect): DUP = 1. */
  dup?: boolean
}

/** Why the bus ends a connection from its side. The MQTT front-end maps it to a DISCONNECT reason code (v5). */
export type KickReason = 'takeover' | 'shutdown' | 'expired' | 'revoked'

/**
 * The front-end's side of a connected session. The bus calls it synchronously from routing; it must not
 * throw and must not call back into the bus synchronously.
 */
export interface Outlet {
  /**
   * Sends one message (PUBLISH) to the client. Returns false when it was not sent and never will be:
   * the client's maximum packet size, an ACL refusal at delivery, a QoS 0 message over the send buffer.
   * The session then drops a QoS 1/2 message from its queue (completed unsent).
   */
  deliver (delivery: Delivery): boolean
  /** A QoS 2 message the client acknowledged with PUBREC: PUBREL to send (also resent at reconnect). */
  release (packetId: number): void
  /** The bus ends the connection (another connection took the session over, shutdown...). */
  kick (reason: KickReason): void
}

/** What a connecting client asks of its session (MQTT CONNECT). */
export interface SessionRequest {
  clientId: string
  /** Clean start (v5) / clean session (3.1.1): any previous session is discarded. */
  cleanStart: boolean
  /**
   * Seconds the session outlives the connection: 0 ends it with the connection (3.1.1 clean session 1);
   * 0xFFFFFFFF never expires (3.1.1 clean session 0). Can be changed at DISCONNECT (v5).
   */
  expiryInterval: number
  /** Most QoS 1/2 messages in flight to the client (its receive maximum; --mqtt-max-inflight for 3.1.1). */
  receiveMaximum: number
  /** The will, published when the connection ends without a normal DISCONNECT (after delay seconds). */
  // expiryInterval: the will's Message Expiry Interval in seconds, counted from when it is published (added by the bus)
  will?: { message: BusMessage, delay: number, expiryInterval?: number }
}

/** One filter of a SUBSCRIBE, already checked by the front-end (syntax, limits, ACL, $share form). */
export interface SubscriptionRequest {
  /** As the client sent it, `$share/{group}/{filter}` included (the bus routes shared groups itself). */
  filter: string
  options: SubscriptionOptions
}

/** Where a publish came in; used for per-protocol counters. */
export type Origin = 'mqtt' | 'http' | 'internal'

/**
 * A connected client's session, as the bus hands it to the front-end at connect. Packet ids of messages
 * to the client are the session's (it persists them with the QoS 1/2 queue); the front-end writes the
 * packets the bus asks for and reports what the client sends.
 */
export interface SessionHandle {
  readonly clientId: string
  /** A previous session was resumed (CONNACK session present). */
  readonly present: boolean
  /**
   * Adds or replaces subscriptions (durable for a session that outlives its connection); resolves once
   * written, to whether each one existed before (retain handling 1).
   */
  subscribe (subscriptions: SubscriptionRequest[]): Promise<boolean[]>
  /** After the SUBACK: the retained messages owed under each subscription's retain handling. */
  deliverRetained (subscriptions: SubscriptionRequest[], existed: boolean[]): void
  /** Removes subscriptions; resolves to whether each one existed (UNSUBACK 0x00 / 0x11). */
  unsubscribe (filters: string[]): Promise<boolean[]>
  /** The session's subscriptions (as the client sent the filters). */
  subscriptions (): SubscriptionRequest[]
  /**
   * An inbound QoS 2 PUBLISH: true when the id is new (route the message, then PUBREC); false when a
   * publish with this id awaits its PUBREL already (a resend: PUBREC again, do not route twice).
   * Resolves once the id is durable (a session that outlives its connection).
   */
  receiveQos2 (packetId: number): Promise<boolean> | boolean
  /** PUBREL from the client: true when the id was awaiting release (PUBCOMP 0x00, else v5 0x92). */
  releaseQos2 (packetId: number): boolean
  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: true when the id was in flight. */
  acknowledged (packetId: number): boolean
  /** PUBREC from the client: true when the id was a QoS 2 message in flight (the front-end then sends PUBREL). */
  received (packetId: number): boolean
  /**
   * The connection ended. `publishWill` false for a normal DISCONNECT (v5 0x04 asks for the will: true);
   * `expiryInterval` when the client changed it at DISCONNECT (v5). The session then waits offline for its
   * expiry (messages QoS 1/2 queued), or ends now (expiry 0).
   */
  detach (options: { publishWill: boolean, expiryInterval?: number }): void
}
