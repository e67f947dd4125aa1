import type { AedesPublishPacket, Client, ConnectPacket, PublishPacket } from 'aedes'

/**
 * The seam through which the MQTT front-end (protocols/mqtt/gate.ts) decides for MQTT connections: who
 * may connect, publish, subscribe and receive. The bus knows nothing of identities or the auth file
 * (engines never ask auth, DESIGN §1); it calls these hooks at the points aedes offers and keeps its own
 * rules beside them ($SYS reserved, $share parsing, topic limits, routing before PUBACK).
 */

/** What becomes of a client's PUBLISH (or its will): routed, dropped (still acknowledged), or the connection closes. */
export type PublishVerdict = 'allow' | 'drop' | Error

/** A connection refused at CONNECT: the CONNACK return code goes with it (MQTT 3.1.1 §3.2.2.3). */
export type ConnectRefusal = Error & { returnCode: 2 | 3 | 4 | 5 }

/** A limit of the bus that refused or dropped something; the front-end counts it. */
export type BusLimit = 'topic_length' | 'topic_levels' | 'queued'

export interface MqttGate {
  /** A new connection, before a byte of it is read: per-connection set-up (parser limits, counters). */
  accept?: (client: Client) => void
  /** Before the CONNECT is processed (connection caps, rate): false refuses; the gate answers the client itself. */
  preConnect?: (client: Client, packet: ConnectPacket, callback: (error: Error | null, ok: boolean) => void) => void
  /** The CONNECT's credentials: ok, or a refusal with its CONNACK return code. */
  authenticate?: (client: Client, username: string | undefined, password: Buffer | undefined, callback: (error: ConnectRefusal | null, ok: boolean) => void) => void
  /**
   * A client's PUBLISH, or its will (at CONNECT, and again when it is published; client null: the will of a
   * connection that a previous broker process had).
   */
  authorizePublish?: (client: Client | null, packet: PublishPacket) => PublishVerdict
  /** One filter of a SUBSCRIBE or of a persistent session being restored (a $share's inner filter): false refuses it (0x80). */
  authorizeSubscribe?: (client: Client, filter: string) => boolean
  /** A message about to go to a client (live, retained, or queued for its session): false drops it for that client. */
  authorizeForward?: (client: Client, packet: AedesPublishPacket) => boolean
  /** A bus limit refused or dropped something. */
  limit?: (name: BusLimit) => void
}
