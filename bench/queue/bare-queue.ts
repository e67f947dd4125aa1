/**
 * The anchor of the pipeline benchmark: fastify with the push, receive (long-poll) and ack routes of the
 * queue API over a plain in-memory FIFO: no storage, no leases that run out, no priorities. Its rate is
 * what the HTTP exchanges alone allow on this machine with the same load generator. Prints
 * `{"event":"listening","httpPort":..}` and runs until SIGTERM.
 */
import Fastify from 'fastify'
import { announceListening } from '../lib/announce.js'

interface Held { id: string, payload: unknown, enqueuedAt: number }

class MemoryQueue {
  private items: Held[] = []
  private head = 0
  private nextId = 1
  private readonly waiting: Array<() => void> = []

  push (payloads: unknown[]): string[] {
    const now = Date.now()
    const ids = payloads.map(payload => {
      const id = (this.nextId++).toString(16).padStart(16, '0')
      this.items.push({ id, payload, enqueuedAt: now })
      return id
    })
    for (const wake of this.waiting.splice(0)) wake()
    return ids
  }

  take (max: number): Held[] {
    const out = this.items.slice(this.head, this.head + max)
    this.head += out.length
    if (this.head > 65_536 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return out
  }

  get ready (): number { return this.items.length - this.head }

  /** Resolves when a push arrives or after ms. */
  async wait (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, ms)
      this.waiting.push(() => { clearTimeout(timer); resolve() })
    })
  }
}

async function main (): Promise<void> {
  const queues = new Map<string, MemoryQueue>()
  const queue = (name: string): MemoryQueue => {
    let q = queues.get(name)
    if (q === undefined) queues.set(name, q = new MemoryQueue())
    return q
  }
  const app = Fastify({ logger: false })
  app.put<{ Params: { name: string } }>('/v1/queues/:name', async request => {
    queue(request.params.name)
    return { name: request.params.name }
  })
  app.post<{ Params: { name: string }, Body: { payload?: unknown, messages?: Array<{ payload: unknown }> } }>('/v1/queues/:name/messages', async request => {
    const body = request.body
    const payloads = body.messages !== undefined ? body.messages.map(m => m.payload) : [body.payload]
    return { ids: queue(request.params.name).push(payloads) }
  })
  app.post<{ Params: { name: string }, Body: { max?: number, wait?: number } }>('/v1/queues/:name/receive', async request => {
    const q = queue(request.params.name)
    const max = request.body.max ?? 1
    if (q.ready === 0 && (request.body.wait ?? 0) > 0) await q.wait(request.body.wait! * 1000)
    const now = Date.now()
    return {
      messages: q.take(max).map(h => ({
        id: h.id,
        receipt: `${h.id}.k3j2h1g0f9`,
        payload: h.payload,
        headers: {},
        priority: 0,
        deliveries: 1,
        enqueuedAt: h.enqueuedAt,
        firstDeliveredAt: now,
        leaseExpiresAt: now + 30_000
      }))
    }
  })
  app.post<{ Params: { name: string }, Body: { receipts: string[] } }>('/v1/queues/:name/ack', async request => ({
    results: request.body.receipts.map(receipt => ({ receipt, id: receipt.slice(0, 16), status: 'acked' }))
  }))
  await announceListening(app)
}

void main()
