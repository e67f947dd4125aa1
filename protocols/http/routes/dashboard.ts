import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, extname, join } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { HttpContext } from '../app.js'
import { problem, sendProblem } from '../problem.js'

export type DashboardMode = 'on' | 'readonly' | 'off'

/**
 * The header every request of the dashboard page carries. With --dashboard readonly, a write (any method
 * but GET, HEAD, OPTIONS) that carries it is refused: the page hides its write actions, and a write it
 * would still send is refused here. It is a guard for operators, not a security boundary: the ACL is one
 * (a client that leaves the header out is judged by its principal's rules, like any client).
 */
export const DASHBOARD_HEADER = 'tetra-dashboard'

/** Writes a read-only page may still send: asking for an SSE ticket changes nothing. */
const READONLY_ALLOWED = new Set(['/v1/auth/ticket'])

interface Asset { body: Buffer, gzip: Buffer | undefined, type: string }

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json'
}

/** web/dist, the output of `npm run build` (web/build.mjs), from both the sources and dist/. */
export function findDashboardDir (): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'web', 'dist')
    if (existsSync(join(candidate, 'index.html'))) return candidate
    dir = dirname(dir)
  }
  return undefined
}

/** Reads the built files once, with a gzip copy of the compressible ones (a few hundred KB: read at start). */
function loadAssets (dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(join(dir, 'assets'))) {
    const body = readFileSync(join(dir, 'assets', name))
    const type = TYPES[extname(name)] ?? 'application/octet-stream'
    const compressible = !type.startsWith('image/png')
    assets.set(name, { body, gzip: compressible ? gzipSync(body, { level: 9 }) : undefined, type })
  }
  return assets
}

const acceptsGzip = (request: FastifyRequest): boolean => /\bgzip\b/.test(request.headers['accept-encoding'] ?? '')

async function sendAsset (request: FastifyRequest, reply: FastifyReply, asset: Asset, cache: string): Promise<FastifyReply> {
  void reply.header('cache-control', cache).header('vary', 'accept-encoding').type(asset.type)
  if (asset.gzip !== undefined && acceptsGzip(request)) return await reply.header('content-encoding', 'gzip').send(asset.gzip)
  return await reply.send(asset.body)
}

/**
 * The page may load and connect only to the broker itself (its files, its API, its /mqtt WebSocket): the
 * browser enforces that no request leaves it. Styles set from script (element.style) are not inline styles;
 * MQTT.js keeps its timers in a worker it makes from a blob.
 */
const CSP = "default-src 'none'; script-src 'self'; worker-src blob:; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const NOT_BUILT = Buffer.from('<!doctype html><meta charset="utf-8"><title>Tetra</title><h1>Tetra</h1><p>The dashboard is not built: run <code>npm run build</code>.</p>')

/**
 * The dashboard: its page at / and its files under /assets/ (open: they hold code, no data; every figure
 * the page shows comes through the API, which checks each request), GET /v1/dashboard (what the page needs
 * to know, system `dashboard`), and with --dashboard readonly the refusal of the page's writes.
 */
export function registerDashboardRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const version = ctx.options.version ?? 'unknown'
  const mode: DashboardMode = ctx.options.dashboard ?? 'on'
  if (mode === 'off') return
  let page: Asset = { body: NOT_BUILT, gzip: undefined, type: TYPES['.html'] }
  let assets = new Map<string, Asset>()
  const dir = findDashboardDir()
  if (dir !== undefined) {
    try {
      const body = readFileSync(join(dir, 'index.html'))
      assets = loadAssets(dir)
      page = { body, gzip: gzipSync(body), type: TYPES['.html'] }
    } catch (err) {
      // a build replacing web/dist right now: the broker serves the note, the API works as ever
      app.log.warn({ err }, 'the dashboard\'s files could not be read')
    }
  }

  const open = { open: 'the dashboard\'s page and files: code, no data (the API checks every request the page makes)' }
  // the page itself is revalidated on each visit (it names the current files); the files are named by their content
  app.get('/', { schema: { hide: true }, config: { acl: open } }, async (request, reply) => {
    void reply.header('content-security-policy', CSP)
    return await sendAsset(request, reply, page, 'no-cache')
  })
  app.get<{ Params: { file: string } }>('/assets/:file', { schema: { hide: true }, config: { acl: open } }, async (request, reply) => {
    const asset = assets.get(request.params.file)
    if (asset === undefined) return await sendProblem(reply, problem(404, `no dashboard file ${request.params.file}`))
    return await sendAsset(request, reply, asset, 'public, max-age=31536000, immutable')
  })

  app.get('/v1/dashboard', {
    config: { acl: { resource: 'system', action: 'dashboard', name: { fixed: 'dashboard' } } },
    schema: {
      tags: ['operations'],
      summary: 'What the dashboard page needs to know: its mode, the broker\'s version and whether auth is on',
      response: {
        200: {
          type: 'object',
          properties: {
            mode: { type: 'string', enum: ['on', 'readonly'] },
            version: { type: 'string' },
            auth: { type: 'boolean' }
          }
        }
      }
    }
  }, async (_request, reply) => {
    void reply.header('cache-control', 'no-store')
    return { mode, version, auth: ctx.engines.auth.enabled }
  })

  if (mode === 'readonly') {
    app.addHook('onRequest', (request, reply, done) => {
      const m = request.method
      if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS' || request.headers[DASHBOARD_HEADER] === undefined ||
        READONLY_ALLOWED.has(request.url.split('?')[0])) {
        done()
        return
      }
      void sendProblem(reply, problem(403, 'the dashboard is read-only (--dashboard readonly): it makes no changes'))
    })
  }
}
