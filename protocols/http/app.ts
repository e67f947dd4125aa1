import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type onResponseHookHandler } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import type { TlsOptions } from 'node:tls'
import type { Logger } from 'pino'
import type { Engines } from '../../engines/index.js'
import type { Metrics } from '../metrics.js'
import { errorHandler, problem, sendProblem } from './problem.js'
import { validatorCompiler } from './validation.js'
import { registerMqttWebSocket, selectMqttSubprotocol } from '../mqtt/websocket.js'
import { registerOpsRoutes } from './routes/ops.js'
import { registerPubSubRoutes } from './routes/pubsub.js'
import { registerStoreRoutes } from './routes/store.js'
import { registerQueueRoutes } from './routes/queues.js'
import { registerStreamRoutes } from './routes/streams.js'
import { registerWebRoutes } from './routes/web.js'

export interface HttpOptions {
  httpBodyLimit: number
  sseHeartbeatMs: number
  /** HTTPS (and WSS on /mqtt) with these options (src/tls.ts) when set; plain HTTP when undefined. */
  https?: TlsOptions
}

export interface HttpContext {
  engines: Engines
  metrics: Metrics
  options: HttpOptions
  /** True while the broker is shutting down: /readyz says 503 and new SSE streams are refused. */
  isShuttingDown: () => boolean
}

/** The fastify app: every HTTP route of the broker, the /mqtt WebSocket, docs and the dashboard. */
export async function buildHttpApp (ctx: HttpContext, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    // the server is then an https.Server; requests and replies are the same IncomingMessage/ServerResponse
    ...(ctx.options.https !== undefined ? { https: ctx.options.https } : {}),
    loggerInstance: logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.options.httpBodyLimit,
    // keys and topics may be long; fastify's default (100) would cut them with a 414
    routerOptions: { maxParamLength: 65535 },
    // no child logger per request: nothing is logged per request but errors, which log their route
    childLoggerFactory: logger => logger,
    return503OnClosing: true,
    forceCloseConnections: true
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setErrorHandler(errorHandler)
  const observeUnmatched = ctx.metrics.httpRouteObserver('unmatched')
  app.setNotFoundHandler((request, reply) => {
    void sendProblem(reply, problem(404, `no route ${request.method} ${request.url.split('?')[0]}`))
    observeUnmatched(request.method, 404, reply.elapsedTime / 1000)
  })

  // Request durations: every route gets its own onResponse hook that knows the route, rather than one
  // global hook reading request.routeOptions, which builds a new object on every access.
  app.addHook('onRoute', route => {
    const observe = ctx.metrics.httpRouteObserver(route.url)
    const hook: onResponseHookHandler = (request, reply, done) => {
      observe(request.method, reply.statusCode, reply.elapsedTime / 1000)
      done()
    }
    const existing = route.onResponse
    route.onResponse = existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook]
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Tetra', description: 'One broker, four engines: pub/sub, store, queues, streams.', version: '1' }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  // The WebSocket plugin adds an onRequest and an onResponse hook to every route of the scope it is
  // registered in: here that is only /mqtt, not every HTTP request of the broker.
  await app.register(async scope => {
    await scope.register(websocket, { options: { maxPayload: 256 * 1024 * 1024, handleProtocols: selectMqttSubprotocol } })
    registerMqttWebSocket(scope, ctx.engines.pubsub)
  })
  registerOpsRoutes(app, ctx)
  registerPubSubRoutes(app, ctx)
  // engine routes: each engine's module registers its own prefix
  registerQueueRoutes(app, ctx)
  registerStoreRoutes(app, ctx)
  registerStreamRoutes(app, ctx)
  registerWebRoutes(app)

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  return app
}
