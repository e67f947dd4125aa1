import net from 'node:net'
import type { PubSub } from '../../engines/pubsub/pubsub.js'

/** The MQTT over TCP listener: each socket goes to the bus, with Nagle off for low latency. */
export function createMqttServer (pubsub: PubSub): net.Server {
  return net.createServer({ noDelay: true }, socket => {
    socket.setNoDelay(true)
    pubsub.handle(socket)
  })
}
