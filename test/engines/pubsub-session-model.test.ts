import { afterAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Storage } from '../../engines/storage/storage.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import type { Delivery, KickReason, Outlet, SessionHandle } from '../../engines/pubsub/types.js'
import { tempDir } from '../helpers.js'
import { request, settle } from './pubsub-fakes.js'

/**
 * A persistent session against a model of its client, through random publishes at QoS 1 and 2,
 * acknowledgements given and withheld, disconnects, reconnects and restarts of the bus on its data
 * directory: every message routed is delivered, a QoS 2 message is never sent again once the client
 * acknowledged it with PUBREC [MQTT-4.3.3], resends keep their packet id [MQTT-4.4.0-1], first deliveries
 * come in publication order per QoS, and never more than receiveMaximum are in flight.
 */

const cleanups: Array<() => void> = []
afterAll(() => { for (const c of cleanups) c() })

type Op =
  | { kind: 'publish', qos: 1 | 2 }
  | { kind: 'ack', pick: number }
  | { kind: 'comp', pick: number }
  | { kind: 'disconnect' }
  | { kind: 'connect' }
  | { kind: 'restart' }

/** The client: what it holds of each packet id (a publish awaiting its ack, or a QoS 2 id it answered with PUBREC). */
class ModelClient implements Outlet {
  /** packet id -> [message number, qos, state] */
  readonly ids = new Map<number, { n: number, qos: number, released: boolean }>()
  readonly firstSeen: number[] = []
  readonly seen = new Set<number>()
  /** Message numbers the client acknowledged with PUBREC (QoS 2): never to come as PUBLISH again. */
  readonly completed = new Set<number>()
  errors: string[] = []
  constructor (private readonly receiveMaximum: number) {}

  deliver (d: Delivery): boolean {
    const n = Number(d.message.payload.toString())
    const id = d.packetId!
    if (this.completed.has(n)) this.errors.push(`message ${n} sent again after its PUBREC`)
    const held = this.ids.get(id)
    if (held !== undefined && held.n !== n) this.errors.push(`id ${id} reused for ${n} while the client holds it for ${held.n}`)
    if (held === undefined && d.dup === true && this.seen.has(n)) {
      // resent with DUP: the client must have held it under this id
      this.errors.push(`message ${n} resent under another id ${id}`)
    }
    this.ids.set(id, { n, qos: d.qos, released: false })
    if (!this.seen.has(n)) {
      this.seen.add(n)
      this.firstSeen.push(n)
    }
    if (this.ids.size > this.receiveMaximum) this.errors.push(`${this.ids.size} in flight, receive maximum ${this.receiveMaximum}`)
    return true
  }

  release (packetId: number): void {
    const held = this.ids.get(packetId)
    if (held === undefined || !held.released) this.errors.push(`PUBREL for id ${packetId} the client did not PUBREC`)
  }

  kick (_reason: KickReason): void {}
}

describe('a persistent session against a model of its client', () => {
  it('delivers every message, QoS 2 not again after PUBREC, same ids on resend, in order, within the receive maximum', async () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('publish' as const), qos: fc.constantFrom(1 as const, 2 as const) }), weight: 5 },
      { arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat(10) }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant('comp' as const), pick: fc.nat(10) }), weight: 3 },
      { arbitrary: fc.constant({ kind: 'disconnect' as const }), weight: 1 },
      { arbitrary: fc.constant({ kind: 'connect' as const }), weight: 1 },
      { arbitrary: fc.constant({ kind: 'restart' as const }), weight: 1 }
    )
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), fc.integer({ min: 1, max: 4 }), async (ops, receiveMaximum) => {
      const tmp = tempDir('tetra-model-')
      cleanups.push(tmp.remove)
      let storage = await Storage.open({ dir: tmp.dir, fsync: 'never' })
      let bus = await PubSub.create(storage)
      const client = new ModelClient(receiveMaximum)
      const req = request('model', { cleanStart: false, expiryInterval: 0xFFFFFFFF, receiveMaximum })
      let handle: SessionHandle | null = await bus.connect(req, client)
      await settle()
      await handle.subscribe([{ filter: 'm/#', options: { qos: 2 } }])
      let published = 0
      const byQos: Record<number, number[]> = { 1: [], 2: [] }
      const connectAgain = async (): Promise<void> => {
        handle = await bus.connect(req, client)
        await settle()
      }
      for (const o of ops) {
        if (o.kind === 'publish') {
          const n = published++
          byQos[o.qos].push(n)
          await bus.route({ topic: 'm/x', payload: Buffer.from(String(n)), qos: o.qos, retain: false }, 'mqtt')
        } else if (o.kind === 'ack' || o.kind === 'comp') {
          if (handle === null) continue
          const candidates = [...client.ids].filter(([, h]) => o.kind === 'ack' ? !h.released : h.released)
          if (candidates.length === 0) continue
          const [id, held] = candidates[o.pick % candidates.length]
          if (o.kind === 'ack' && held.qos === 2) {
            expect(handle.received(id)).toBe(true)
            held.released = true
            client.completed.add(held.n)
          } else {
            // the next message may be sent from within the acknowledgement
            client.ids.delete(id)
            expect(handle.acknowledged(id)).toBe(true)
          }
        } else if (o.kind === 'disconnect') {
          handle?.detach({ publishWill: false })
          handle = null
        } else if (o.kind === 'connect') {
          if (handle === null) await connectAgain()
        } else {
          await bus.close()
          await storage.close()
          storage = await Storage.open({ dir: tmp.dir, fsync: 'never' })
          bus = await PubSub.create(storage)
          handle = null
        }
        expect(client.errors).toEqual([])
      }
      // the client comes back and acknowledges everything until nothing is owed
      if (handle === null) await connectAgain()
      for (let round = 0; round < 1000 && client.ids.size > 0; round++) {
        const [id, held] = client.ids.entries().next().value!
        if (held.qos === 2 && !held.released) {
          handle!.received(id)
          held.released = true
          client.completed.add(held.n)
        } else {
          client.ids.delete(id)
          handle!.acknowledged(id)
        }
      }
      expect(client.errors).toEqual([])
      expect(client.ids.size).toBe(0)
      expect([...client.seen].sort((a, b) => a - b)).toEqual(Array.from({ length: published }, (_, i) => i))
      for (const qos of [1, 2]) expect(client.firstSeen.filter(n => byQos[qos].includes(n))).toEqual(byQos[qos])
      await bus.close()
      await storage.close()
    }), { numRuns: 60 })
  }, 120_000)
})
