import tls from 'node:tls'

/**
 * The common name (CN) of the client certificate on a TLS connection, when the certificate was verified
 * against --tls-ca; otherwise undefined (plain TCP, no certificate, a certificate the CA did not sign, or a
 * subject without exactly one CN). Front-ends map it to a user with `auth.certificate(cn, clientId)`.
 *
 * The servers request client certificates with rejectUnauthorized false (so clients without one can still
 * use passwords or tokens), which is why `authorized` must be checked here: an unverified certificate
 * proves nothing.
 *
 * `socket` is whatever the front-end holds: the TLS socket itself (MQTT over TLS, an HTTPS request's
 * `req.socket`, the upgrade request's socket for WSS).
 */
export function peerCommonName (socket: unknown): string | undefined {
  if (!(socket instanceof tls.TLSSocket)) return undefined
  if (socket.authorized !== true) return undefined
  const cert = socket.getPeerCertificate()
  // An empty object when the client sent no certificate.
  const cn: unknown = cert?.subject?.CN
  // A subject with two CNs is given as an array by node: ambiguous, so it names nobody.
  if (typeof cn !== 'string' || cn === '') return undefined
  return cn
}
