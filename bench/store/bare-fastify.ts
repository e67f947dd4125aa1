/**
 * The HTTP baseline for the store routes: bare fastify answering GET/PUT /v1/store/keys/* and
 * POST /v1/store/mget|mset with the same bytes and shapes as Tetra, from a plain Map, without
 * schemas, conditions, TTLs or metrics. Prints `{"event":"listening","httpPort":..}`; runs until SIGTERM.
 */
import Fastify from 'fastify'
import { announceListening } from '../lib/announce.js'

const values = new Map<string, Buffer>()
let revision = 0

async function main (): Promise<void> {
  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 65535 } })
  await app.register(async scope => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
    scope.put('/v1/store/keys/*', async (request, reply) => {
      const key = (request.params as Record<string, string>)['*']
      const body = request.body as Buffer
      values.set(key, Buffer.from(body))
      const etag = `"${++revision}"`
      void reply.header('etag', etag)
      return { key, etag, size: body.length }
    })
  })
  app.get('/v1/store/keys/*', async (request, reply) => {
    const key = (request.params as Record<string, string>)['*']
    const value = values.get(key)
    if (value === undefined) return reply.code(404).send({ status: 404 })
    return reply.header('etag', '"1"').type('application/octet-stream').send(value)
  })
  app.post<{ Body: { keys: string[] } }>('/v1/store/mget', async request => {
    return { values: request.body.keys.map(key => { const v = values.get(key); return v === undefined ? null : { key, value: v.toString('utf8'), encoding: 'utf8', contentType: 'text/plain', etag: '"1"', ttl: null } }) }
  })
  app.post<{ Body: { entries: Array<{ key: string, value: string }> } }>('/v1/store/mset', async request => {
    return { etags: request.body.entries.map(e => { values.set(e.key, Buffer.from(e.value)); return `"${++revision}"` }) }
  })
  await announceListening(app)
}

void main()
