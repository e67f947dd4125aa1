import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { createWebSocketStream, type WebSocket } from 'ws'
import type { PubSub } from '../../engines/pubsub/pubsub.js'
import type { SecurityCounters } from '../security-metrics.js'
import { frontEndOf } from './front-end.js'
import { problem, rawProblemResponse, sendProblem } from '../http/problem.js'

/**
 * MQTT over WebSocket at /mqtt (the path MQTT.js and browser clients use), subprotocol "mqtt"
 * (or the older "mqttv3.1"). Each socket becomes a duplex stream handed to the MQTT front-end serving
 * `pubsub` (front-end.ts), with its upgrade request (for the client's address and certificate).
 */
export function registerMqttWebSocket (app: FastifyInstance, pubsub: PubSub, security: SecurityCounters): void {
  app.route({
    method: 'GET',
    url: '/mqtt',
    schema: { hide: true },
    // a plain GET (no Upgrade header): say what this URL is for (RFC 9110 15.5.22: 426 names the protocol)
    handler: (_request, reply) => sendProblem(reply.header('upgrade', 'websocket'), problem(426, '/mqtt speaks MQTT over WebSocket: send a WebSocket upgrade (Upgrade: websocket) with the subprotocol "mqtt"')),
    wsHandler: (socket, request) => {
      const stream = createWebSocketStream(socket)
      // a broken socket ends the stream; the connection sees the close and cleans up
      stream.on('error', () => { stream.destroy() })
      const front = frontEndOf(pubsub)
      if (front === undefined) stream.destroy()
      else front.handle(stream, request.raw, 'mqtt_ws')
    }
  })
  // a broken handshake (no key, a wrong version, an Upgrade other than websocket): ws would answer it
  // with text/html; say it as a problem, like every other HTTP error
  app.websocketServer.on('wsClientError', (err: Error, socket: Duplex, _request: IncomingMessage) => {
    security.bad('mqtt_ws')
    app.log.debug({ err: err.message }, 'bad WebSocket handshake')
    if (!socket.writable) {
      socket.destroy()
      return
    }
    socket.once('finish', () => { socket.destroy() })
    socket.end(rawProblemResponse(problem(400, `WebSocket handshake refused: ${err.message}`)))
  })
}

/**
 * The WebSocket plugin's errorHandler: an error on an open socket. Invalid frames (a reserved opcode,
 * an unmasked frame, a bad close code, invalid UTF-8 in a text frame...) are the client's bad input:
 * counted and logged at debug, not an operator alarm; ws has already failed the connection with the
 * close code RFC 6455 prescribes. Anything else (a fault of ours) stays an error.
 */
export function mqttWebSocketErrorHandler (security: SecurityCounters): (this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest, reply: FastifyReply) => void {
  return function (error, socket, request) {
    const code = (error as NodeJS.ErrnoException).code
    if (code?.startsWith('WS_ERR_') === true) {
      security.bad('mqtt_ws')
      request.log.debug({ err: { code, message: error.message } }, 'invalid WebSocket frame from a client')
    } else if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT') {
      request.log.debug({ err: { code, message: error.message } }, 'WebSocket connection lost')
    } else {
      request.log.error({ err: error }, 'WebSocket handler failed')
    }
    socket.terminate()
  }
}

export function selectMqttSubprotocol (protocols: Set<string>): string | false {
  if (protocols.has('mqtt')) return 'mqtt'
  if (protocols.has('mqttv3.1')) return 'mqttv3.1'
  return false
}
