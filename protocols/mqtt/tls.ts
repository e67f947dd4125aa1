import type { Socket } from 'node:net'
import tls from 'node:tls'
import type { PubSub } from '../../engines/pubsub/pubsub.js'

/**
 * The MQTT over TLS listener (like tcp.ts, behind a TLS handshake): each socket goes to the bus once the
 * handshake is done, with Nagle off. The socket the bus gets is the TLSSocket itself, so a front-end can
 * read its client certificate (protocols/tls-identity.ts).
 */
export function createMqttTlsServer (pubsub: PubSub, options: tls.TlsOptions, onHandshakeError: (err: Error, socket: tls.TLSSocket) => void): { server: tls.Server, destroySockets: () => void } {
  const server = tls.createServer({ ...options, noDelay: true }, socket => {
    socket.setNoDelay(true)
    pubsub.handle(socket)
  })
  // A failed handshake (wrong CA on the client, plain MQTT on the TLS port) is the client's problem:
  // node destroys the socket; we only report it.
  server.on('tlsClientError', onHandshakeError)
  // Sockets the bus never saw as clients (mid-handshake, or no CONNECT yet) would hold server.close()
  // open past shutdown; the bus closes its clients, these are destroyed after it.
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  })
  return { server, destroySockets: () => { for (const socket of sockets) socket.destroy() } }
}
