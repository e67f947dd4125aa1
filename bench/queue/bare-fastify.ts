/**
 * The HTTP baseline for the queue: fastify with the push and receive routes' shapes (JSON body in,
 * an answer of the same size out) and nothing behind them. Prints `{"event":"listening","httpPort":..}`
 * and runs until SIGTERM.
 */
import Fastify from 'fastify'

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
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(JSON.stringify({ event: 'listening', httpPort }) + '\n')
  process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}

void main()
