import type { FastifyInstance } from 'fastify'
import { createWebSocketStream } from 'ws'
import type { PubSub } from '../../engines/pubsub/pubsub.js'

/**
 * MQTT over WebSocket at /mqtt (the path MQTT.js and browser clients use), subprotocol "mqtt"
 * (or the older "mqttv3.1"). Each socket becomes a duplex stream handed to the bus.
 */
export function registerMqttWebSocket (app: FastifyInstance, pubsub: PubSub): void {
  app.get('/mqtt', { websocket: true, schema: { hide: true } }, (socket, request) => {
    const stream = createWebSocketStream(socket)
    // a broken socket ends the stream; aedes sees the close and cleans the client up
    stream.on('error', () => { stream.destroy() })
    pubsub.handle(stream, request.raw)
  })
}

export function selectMqttSubprotocol (protocols: Set<string>): string | false {
  if (protocols.has('mqtt')) return 'mqtt'
  if (protocols.has('mqttv3.1')) return 'mqttv3.1'
  return false
}
