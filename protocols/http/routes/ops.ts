import type { FastifyInstance } from 'fastify'
import type { HttpContext } from '../app.js'
import { problem, sendProblem } from '../problem.js'

/** /healthz (process up), /readyz (engines open, not shutting down), /metrics (Prometheus text). */
export function registerOpsRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const statusSchema = { type: 'object', properties: { status: { type: 'string' } } }
  app.get('/healthz', { config: { acl: { open: 'liveness probe' } }, schema: { tags: ['operations'], summary: 'The process is up', response: { 200: statusSchema } } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { config: { acl: { open: 'readiness probe' } }, schema: { tags: ['operations'], summary: 'Engines open and listeners bound', response: { 200: statusSchema } } }, async (_request, reply) => {
    if (ctx.isShuttingDown() || !ctx.engines.ready) return await sendProblem(reply, problem(503, 'not ready: starting or shutting down'))
    return { status: 'ready' }
  })

  app.get('/metrics', { config: { acl: { resource: 'system', action: 'metrics', name: { fixed: 'metrics' } } }, schema: { tags: ['operations'], summary: 'Prometheus metrics (text format)', produces: ['text/plain'] } }, async (_request, reply) => {
    const text = await ctx.metrics.text()
    return await reply.type(ctx.metrics.registry.contentType).send(text)
  })
}
