/**
 * The HTTP baseline: fastify with one JSON route that parses the same body as POST /v1/pubsub/publish
 * and answers with the same shape, without publishing anything. Prints
 * `{"event":"listening","httpPort":..}` and runs until SIGTERM.
 */
import Fastify from 'fastify'
import { announceListening } from '../lib/announce.js'

interface PublishBody { topic: string, payload: unknown }

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  app.post<{ Body: PublishBody }>('/v1/pubsub/publish', async request => {
    const { topic, payload } = request.body
    return { topic, bytes: Buffer.byteLength(JSON.stringify(payload)) }
  })
  await announceListening(app)
}

void main()
