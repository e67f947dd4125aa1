import type { AddressInfo, Server } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { createEngines, type Engines } from '../engines/index.js'
import { buildHttpApp } from '../protocols/http/app.js'
import { createMqttServer } from '../protocols/mqtt/tcp.js'
import { Metrics } from '../protocols/metrics.js'
import { packageVersion } from './version.js'

export interface Broker {
  engines: Engines
  http: FastifyInstance
  /** The bound addresses (the real ports when 0 was asked for). */
  mqtt: { host: string, port: number }
  httpAddress: { host: string, port: number }
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
  const engines = await createEngines({ ...config, version: packageVersion(), onBackgroundError: (err, what) => { logger.warn({ err }, `${what} failed`) } })
  let shuttingDown = false
  let http: FastifyInstance | undefined
  const mqttServer = createMqttServer(engines.pubsub)
  engines.pubsub.broker.on('clientError', (client, err) => { logger.debug({ client: client.id, err: err.message }, 'mqtt client error') })
  engines.pubsub.broker.on('connectionError', (_client, err) => { logger.debug({ err: err.message }, 'mqtt connection error') })
  try {
    const metrics = new Metrics(engines)
    http = await buildHttpApp({
      engines,
      metrics,
      options: { httpBodyLimit: config.httpBodyLimit, sseHeartbeatMs: config.sseHeartbeatMs },
      isShuttingDown: () => shuttingDown
    }, logger)
    const mqttAddress = await listen(mqttServer, config.mqttPort, config.host)
    await http.listen({ port: config.httpPort, host: config.host, listenTextResolver: address => `http listener bound at ${address}` })
    const httpAddress = http.server.address() as AddressInfo
    const app = http
    let closing: Promise<void> | undefined
    const broker: Broker = {
      engines,
      http: app,
      mqtt: { host: mqttAddress.address, port: mqttAddress.port },
      httpAddress: { host: httpAddress.address, port: httpAddress.port },
      close () {
        closing ??= (async () => {
          shuttingDown = true
          // 1. stop accepting new MQTT connections; 2. close HTTP (SSE and WebSocket clients included);
          // 3. close MQTT clients through aedes; 4. flush and close LevelDB
          const mqttClosed = new Promise<void>(resolve => { mqttServer.close(() => { resolve() }) })
          await app.close()
          await engines.close()
          await mqttClosed
        })()
        return closing
      }
    }
    return broker
  } catch (err) {
    mqttServer.close()
    await http?.close()
    await engines.close()
    throw err
  }
}
