import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type onResponseHookHandler } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import type { TlsOptions } from 'node:tls'
import type { Logger } from 'pino'
import type { Engines } from '../../engines/index.js'
import type { Metrics } from '../metrics.js'
import { errorHandler, problem, sendProblem } from './problem.js'
import { clientErrorHandler, frameworkErrors, registerLingeringClose, registerRequestChecks } from './client-errors.js'
import { validatorCompiler } from './validation.js'
import { mqttWebSocketErrorHandler, registerMqttWebSocket, selectMqttSubprotocol } from '../mqtt/websocket.js'
import { registerOpsRoutes } from './routes/ops.js'
import { registerPubSubRoutes } from './routes/pubsub.js'
import { registerStoreRoutes } from './routes/store.js'
import { registerQueueRoutes } from './routes/queues.js'
import { registerStreamRoutes } from './routes/streams.js'
import { registerDashboardRoutes } from './routes/dashboard.js'
import { registerStatsRoutes } from './routes/stats.js'
import { registerInspectRoutes, type MqttDirectory } from './routes/inspect.js'
import { registerAuthRoutes } from './routes/auth.js'
import { installHttpSecurity } from './auth/index.js'
import { openApiTransform, SECURITY_SCHEMES } from './auth/openapi.js'
import { completeOpenApi } from './openapi.js'
import { peerCommonName } from '../tls-identity.js'

export interface HttpOptions {
  httpBodyLimit: number
  sseHeartbeatMs: number
  /** HTTPS (and WSS on /mqtt) with these options (src/tls.ts) when set; plain HTTP when undefined. */
  https?: TlsOptions
  /** Requests per second per principal (burst of the same size); more get 429; 0 = no limit. */
  httpRateLimit?: number
  /** Most SSE streams open at once per principal; more get 429. */
  sseMaxStreams?: number
  /** Origins allowed to call the API from a browser ('*' = any); none: same-origin only. */
  corsOrigin?: readonly string[]
  /** --mqtt-max-packet-size: the largest WebSocket message /mqtt takes (ws buffers a whole message first). */
  mqttMaxPacketSize?: number
  /** --dashboard: the web console at / (on), without its write actions (readonly), or none (off). */
  dashboard?: 'on' | 'readonly' | 'off'
  /** The broker's version, as the dashboard shows it. */
  version?: string
}

export interface HttpContext {
  engines: Engines
  metrics: Metrics
  options: HttpOptions
  /** True while the broker is shutting down: /readyz says 503 and new SSE streams are refused. */
  isShuttingDown: () => boolean
  /** The MQTT front-end's connections, for GET/DELETE /v1/pubsub/clients (absent: the bus's sessions only). */
  mqtt?: MqttDirectory
}

/** The longest a client may take to send one request, headers and body (README "Errors"). */
export const REQUEST_TIMEOUT_MS = 300_000

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
    forceCloseConnections: true,
    // errors before a route runs (parser, router) answer problem+json too (client-errors.ts)
    clientErrorHandler: clientErrorHandler(ctx.metrics.security),
    frameworkErrors: frameworkErrors(ctx.metrics.security),
    // a request (headers and body) must arrive within 5 minutes, Node's own default, which fastify turns
    // off: else a client dripping a body holds its connection forever (answered 408; SSE and long polls,
    // which are slow answers, not slow requests, are not concerned)
    requestTimeout: REQUEST_TIMEOUT_MS
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setErrorHandler(errorHandler)
  registerRequestChecks(app, ctx.metrics.security)
  registerLingeringClose(app)
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

  // before any route: every route's access declaration is compiled by its onRoute hook
  const security = installHttpSecurity(app, {
    auth: ctx.engines.auth,
    security: ctx.metrics.security,
    httpRateLimit: ctx.options.httpRateLimit ?? 0,
    sseMaxStreams: ctx.options.sseMaxStreams ?? 100,
    corsOrigin: ctx.options.corsOrigin ?? [],
    tls: ctx.options.https !== undefined,
    peerCommonName,
    now: () => ctx.engines.clock.now()
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Tetra', description: 'One broker, four engines: pub/sub, store, queues, streams.', version: '1' },
      components: { securitySchemes: SECURITY_SCHEMES }
    },
    transform: openApiTransform,
    transformObject: input => 'openapiObject' in input ? completeOpenApi(input.openapiObject) : input.swaggerObject
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  // The WebSocket plugin adds an onRequest and an onResponse hook to every route of the scope it is
  // registered in: here that is only /mqtt, not every HTTP request of the broker.
  await app.register(async scope => {
    await scope.register(websocket, {
      // a frame carries one MQTT packet (MQTT-6.0.0-2 lets it carry several, clients send one): a frame above the
      // packet cap plus its 5-byte fixed header is refused by ws (close 1009) from its header, before it is buffered
      options: { maxPayload: (ctx.options.mqttMaxPacketSize ?? 256 * 1024 * 1024) + 5, handleProtocols: selectMqttSubprotocol },
      errorHandler: mqttWebSocketErrorHandler(ctx.metrics.security)
    })
    registerMqttWebSocket(scope, ctx.engines.pubsub, ctx.metrics.security)
  })
  // first: with --dashboard readonly its hook refuses the page's writes on every route
  registerDashboardRoutes(app, ctx)
  registerOpsRoutes(app, ctx)
  registerPubSubRoutes(app, ctx)
  // engine routes: each engine's module registers its own prefix
  registerQueueRoutes(app, ctx)
  registerStoreRoutes(app, ctx)
  registerStreamRoutes(app, ctx)
  registerStatsRoutes(app, ctx)
  registerInspectRoutes(app, ctx)
  registerAuthRoutes(app, security)

  app.get('/openapi.json', { schema: { hide: true }, config: { acl: { authenticated: 'the API document' } } }, async () => app.swagger())
  return app
}
