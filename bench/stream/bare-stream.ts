/**
 * The HTTP baseline of the stream scenarios: fastify with the same routes and the same bytes as Tetra's
 * stream API, with nothing stored: append parses the batch and answers offsets from a counter; a page
 * read (with the same next-page headers) and the SSE tail build the same JSON from messages held in memory. Prints
 * `{"event":"listening","httpPort":..}` and runs until SIGTERM.
 */
import Fastify from 'fastify'
import { announceListening } from '../lib/announce.js'

interface AppendBody { messages?: Array<{ payload: unknown }>, payload?: unknown }

async function main (): Promise<void> {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 })
  let next = 0
  const payloadBytes = Number(process.argv[2] ?? 64)
  const payload = 'x'.repeat(Math.max(0, payloadBytes - 2))
  const timestamp = Date.now()
  const message = (offset: number): Record<string, unknown> => ({ offset, timestamp, payload, encoding: 'utf8' })

  app.post<{ Body: AppendBody }>('/v1/streams/:name/messages', async request => {
    const n = request.body.messages?.length ?? 1
    const offsets = Array.from({ length: n }, () => next++)
    return { offsets }
  })
  app.get<{ Params: { name: string }, Querystring: { from?: string, limit?: string } }>('/v1/streams/:name/messages', async (request, reply) => {
    const from = Number(request.query.from ?? 0)
    const limit = Number(request.query.limit ?? 100)
    const messages = Array.from({ length: limit }, (_, i) => message(from + i))
    void reply.header('tetra-next', String(from + limit))
      .header('link', `</v1/streams/${request.params.name}/messages?from=${from + limit}&limit=${limit}>; rel="next"`)
    return { messages, next: from + limit, firstOffset: 0, truncated: false }
  })
  app.get('/v1/streams/:name/tail', async (request, reply) => {
    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    let closed = false
    request.raw.on('close', () => { closed = true })
    for (let offset = 0; !closed && offset < 100_000_000; offset++) {
      if (!raw.write(`id: ${offset}\ndata: ${JSON.stringify(message(offset))}\n\n`)) {
        await new Promise<void>(resolve => {
          const done = (): void => { raw.off('drain', done); raw.off('close', done); resolve() }
          raw.on('drain', done)
          raw.on('close', done)
        })
      }
    }
    raw.end()
  })
  await announceListening(app)
}

void main()
