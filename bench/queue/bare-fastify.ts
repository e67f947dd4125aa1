/**
 * The HTTP baseline for the queue: fastify with the push and receive routes' shapes (JSON body in,
 * an answer of the same size out) and nothing behind them. Prints `{"event":"listening","httpPort":..}`
 * and runs until SIGTERM.
 */
import Fastify from 'fastify'
import { announceListening } from '../lib/announce.js'

const ID = 'ff00000000000001'
const MESSAGE = {
  id: ID,
  receipt: `${ID}.k3j2h1g0f9`,
  payload: { n: 1, t: 0, job: 'resize', size: 1024 },
  headers: {},
  priority: 0,
  deliveries: 1,
  enqueuedAt: 1_700_000_000_000,
  firstDeliveredAt: 1_700_000_000_000,
  leaseExpiresAt: 1_700_000_030_000
}

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  app.post<{ Body: { payload: unknown } }>('/v1/queues/:name/messages', async request => {
    JSON.stringify(request.body.payload)
    return { ids: [ID] }
  })
  app.post('/v1/queues/:name/receive', async () => ({ messages: [MESSAGE] }))
  await announceListening(app)
}

void main()
