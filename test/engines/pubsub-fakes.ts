import { PubSub, type PubSubOptions } from '../../engines/pubsub/pubsub.js'
import type { Delivery, KickReason, Outlet, SessionHandle, SessionRequest } from '../../engines/pubsub/types.js'
import type { Storage } from '../../engines/storage/storage.js'

/** An Outlet that records what the bus sends through it. */
export class FakeOutlet implements Outlet {
  readonly deliveries: Delivery[] = []
  readonly releases: number[] = []
  readonly kicks: KickReason[] = []
  /** deliver() answers this (false: the message can never be sent). */
  accept = true
  /** What the front-end does when kicked (the real one closes the connection and detaches at once). */
  onKick: ((reason: KickReason) => void) | null = null

  deliver (delivery: Delivery): boolean {
    if (!this.accept) return false
    this.deliveries.push(delivery)
    return true
  }

  release (packetId: number): void { this.releases.push(packetId) }
  kick (reason: KickReason): void {
    this.kicks.push(reason)
    this.onKick?.(reason)
  }

  payloads (): string[] { return this.deliveries.map(d => d.message.payload.toString()) }
}

/** The bus resends what a session owes right after connect() resolves (after the CONNACK). */
export async function settle (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

export function request (clientId: string, fields: Partial<SessionRequest> = {}): SessionRequest {
  return { clientId, cleanStart: true, expiryInterval: 0, receiveMaximum: 65535, ...fields }
}

/** Connects and lets the resend run. */
export async function connect (bus: PubSub, req: SessionRequest, outlet = new FakeOutlet()): Promise<{ handle: SessionHandle, outlet: FakeOutlet }> {
  const handle = await bus.connect(req, outlet)
  await settle()
  return { handle, outlet }
}

export async function createBus (storage?: Storage, options: PubSubOptions = {}): Promise<PubSub> {
  return await PubSub.create(storage, options)
}

export function msg (topic: string, payload: string, qos: 0 | 1 | 2 = 0, fields: Record<string, unknown> = {}): { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean } {
  return { topic, payload: Buffer.from(payload), qos, retain: false, ...fields }
}
