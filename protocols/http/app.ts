import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
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
  app.setNotFoundHandler((request, reply) => {
    void sendProblem(reply, problem(404, `no route ${request.method} ${request.url.split('?')[0]}`))
  })

  app.addHook('onResponse', (request, reply, done) => {
    ctx.metrics.observeHttp(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000)
    done()
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Tetra', description: 'One broker, four engines: pub/sub, store, queues, streams.', version: '1' }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  await app.register(websocket, { options: { maxPayload: 256 * 1024 * 1024, handleProtocols: selectMqttSubprotocol } })

  registerMqttWebSocket(app, ctx.engines.pubsub)
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
