import type { Socket } from 'node:net'
import tls from 'node:tls'
import type { MqttFrontEnd } from './front-end.js'

/**
 * The MQTT over TLS listener (like tcp.ts, behind a TLS handshake): each socket goes to the front-end once
 * the handshake is done, with Nagle off. The socket it gets is the TLSSocket itself, so the gate can read
 * its client certificate (protocols/tls-identity.ts).
 */
export function createMqttTlsServer (front: MqttFrontEnd, options: tls.TlsOptions, onHandshakeError: (err: Error, socket: tls.TLSSocket) => void): { server: tls.Server, destroySockets: () => void } {
  const server = tls.createServer({ ...options, noDelay: true }, socket => {
    socket.setNoDelay(true)
    front.handle(socket, undefined, 'mqtt_tls')
  })
  // A failed handshake (wrong CA on the client, plain MQTT on the TLS port) is the client's problem:
  // node destroys the socket; we only report it.
  server.on('tlsClientError', onHandshakeError)
  // Sockets mid-handshake would hold server.close() open past shutdown; the front-end closes the
  // connections it was handed, these are destroyed after it.
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  })
  return { server, destroySockets: () => { for (const socket of sockets) socket.destroy() } }
}
