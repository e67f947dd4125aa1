import net from 'node:net'
import type { MqttFrontEnd } from './front-end.js'

/** The MQTT over TCP listener: each socket goes to the front-end, with Nagle off for low latency. */
export function createMqttServer (front: MqttFrontEnd): net.Server {
  return net.createServer({ noDelay: true }, socket => {
    socket.setNoDelay(true)
    front.handle(socket, undefined, 'mqtt_tcp')
  })
}
