import type { AddressInfo, Server } from 'node:net'
import tls from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { createEngines, type Engines } from '../engines/index.js'
import { buildHttpApp } from '../protocols/http/app.js'
import { mqttDirectory } from '../protocols/http/routes/inspect.js'
import { createMqttServer } from '../protocols/mqtt/tcp.js'
import { createMqttTlsServer } from '../protocols/mqtt/tls.js'
import { TlsCertificates } from './tls.js'
import { Metrics } from '../protocols/metrics.js'
import { SecurityCounters } from '../protocols/security-metrics.js'
import { MqttFrontEnd, mqttSettings } from '../protocols/mqtt/front-end.js'
import type { LimitName } from '../protocols/security-metrics.js'
import { packageVersion } from './version.js'

export interface Broker {
  engines: Engines
  http: FastifyInstance
  /** The bound addresses (the real ports when 0 was asked for). */
  mqtt: { host: string, port: number }
  httpAddress: { host: string, port: number }
  /** MQTT over TLS, when --tls-cert is set (the HTTP port then speaks HTTPS and WSS). */
  mqtts?: { host: string, port: number }
  /**
   * SIGHUP: reads the TLS files again (a broken set is refused and logged, the old one kept) and the auth
   * file (a malformed one rejects with AuthFileError and the old one stays in force).
   */
  reload (): Promise<void>
  /** Graceful stop: stop accepting, close clients, flush and close storage. Safe to call twice. */
  close (): Promise<void>
}

function listen (server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}

/** Assembles the engines and the front-ends and binds the listeners. */
export async function startBroker (config: Config, logger: Logger): Promise<Broker> {
  // before the data dir is opened: a missing or wrong certificate stops the start with a ConfigError
  const certificates = TlsCertificates.load(config, logger)
  const engines = await createEngines({
    ...config,
    version: packageVersion(),
    onBackgroundError: (err, what) => { logger.warn({ err }, `${what} failed`) },
    authLog: (level, message, details) => { logger[level]({ ...details, component: 'auth' }, message) }
  })
  let shuttingDown = false
  let http: FastifyInstance | undefined
  let mqtts: ReturnType<typeof createMqttTlsServer> | undefined
  // the MQTT front-end's decisions and limits, before any listener accepts (its refusals are counted here)
  const security = new SecurityCounters()
  const mqttFront = new MqttFrontEnd(engines.pubsub, engines.auth, mqttSettings(config), security)
  mqttFront.log = (message, details) => { logger.debug(details, `mqtt: ${message}`) }
  // the bus's limits (topic caps on its other ways in, offline queues) counted with the front-end's
  const busLimits: Record<string, LimitName> = { topic_length: 'mqtt_max_topic_length', topic_levels: 'mqtt_max_topic_levels', queued: 'mqtt_max_queued' }
  engines.pubsub.onLimit(name => { const limit = busLimits[name]; if (limit !== undefined) security.limit(limit) })
  const mqttServer = createMqttServer(mqttFront)
  try {
    const metrics = new Metrics(engines, security)
    const handshakeFailed = (transport: string) => (err: Error): void => {
      metrics.security.bad(transport)
      logger.debug({ transport, err: err.message }, 'TLS handshake failed')
    }
    http = await buildHttpApp({
      engines,
      metrics,
      options: {
        httpBodyLimit: config.httpBodyLimit,
        sseHeartbeatMs: config.sseHeartbeatMs,
        https: certificates?.serverOptions(),
        httpRateLimit: config.httpRateLimit,
        sseMaxStreams: config.sseMaxStreams,
        corsOrigin: config.corsOrigin,
        mqttMaxPacketSize: config.mqttMaxPacketSize,
        dashboard: config.dashboard,
        version: packageVersion()
      },
      isShuttingDown: () => shuttingDown,
      mqtt: mqttDirectory(mqttFront)
    }, logger)
    const mqttAddress = await listen(mqttServer, config.mqttPort, config.host)
    let mqttsAddress: AddressInfo | undefined
    if (certificates !== undefined) {
      mqtts = createMqttTlsServer(mqttFront, certificates.serverOptions(), handshakeFailed('mqtt_tls'))
      certificates.attach(mqtts.server)
      mqttsAddress = await listen(mqtts.server, config.mqttsPort, config.host)
      // fastify built an https.Server from options.https
      if (http.server instanceof tls.Server) {
        certificates.attach(http.server)
        http.server.on('tlsClientError', handshakeFailed('https'))
      }
    }
    await http.listen({ port: config.httpPort, host: config.host, listenTextResolver: address => `http listener bound at ${address}` })
    const httpAddress = http.server.address() as AddressInfo
    const app = http
    let closing: Promise<void> | undefined
    const broker: Broker = {
      engines,
      http: app,
      mqtt: { host: mqttAddress.address, port: mqttAddress.port },
      httpAddress: { host: httpAddress.address, port: httpAddress.port },
      ...(mqttsAddress !== undefined ? { mqtts: { host: mqttsAddress.address, port: mqttsAddress.port } } : {}),
      async reload () {
        certificates?.reload()
        await engines.auth.reload()
      },
      close () {
        closing ??= (async () => {
          shuttingDown = true
          // 1. stop accepting new MQTT connections; 2. close HTTP (SSE and WebSocket clients included);
          // 3. close MQTT clients (v5: DISCONNECT 0x8B); 4. flush and close LevelDB
          const mqttClosed = new Promise<void>(resolve => { mqttServer.close(() => { resolve() }) })
          const tlsListener = mqtts
          const mqttsClosed = new Promise<void>(resolve => { if (tlsListener === undefined) resolve(); else tlsListener.server.close(() => { resolve() }) })
          mqttFront.close()
          await app.close()
          await engines.close()
          await mqttClosed
          tlsListener?.destroySockets()
          await mqttsClosed
        })()
        return closing
      }
    }
    return broker
  } catch (err) {
    mqttFront.close()
    mqttServer.close()
    mqtts?.server.close()
    mqtts?.destroySockets()
    await http?.close()
    await engines.close()
    throw err
  }
}
