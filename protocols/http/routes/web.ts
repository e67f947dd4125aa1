import type { FastifyInstance } from 'fastify'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

/** Finds web/ from both the sources (protocols/http/routes) and the build (dist/protocols/http/routes). */
function findWebDir (): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'web')
    if (existsSync(join(candidate, 'index.html'))) return candidate
    dir = dirname(dir)
  }
  return undefined
}

/** The dashboard page at /. */
export function registerWebRoutes (app: FastifyInstance): void {
  const webDir = findWebDir()
  const page = webDir !== undefined ? readFileSync(join(webDir, 'index.html')) : Buffer.from('<!doctype html><title>Tetra</title><h1>Tetra</h1>')
  app.get('/', { schema: { hide: true }, config: { acl: { resource: 'system', action: 'dashboard', name: { fixed: 'dashboard' } } } }, async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))
}
