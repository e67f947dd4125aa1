/**
 * The HTTP baseline: fastify with one JSON route that parses the same body as POST /v1/pubsub/publish
 * and answers with the same shape, without publishing anything. Prints
 * `{"event":"listening","httpPort":..}` and runs until SIGTERM.
 */
import Fastify from 'fastify'

interface PublishBody { topic: string, payload: unknown }

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  app.post<{ Body: PublishBody }>('/v1/pubsub/publish', async request => {
    const { topic, payload } = request.body
    return { topic, bytes: Buffer.byteLength(JSON.stringify(payload)) }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : 0
  process.stdout.write(JSON.stringify({ event: 'listening', httpPort }) + '\n')
  process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}

void main()
