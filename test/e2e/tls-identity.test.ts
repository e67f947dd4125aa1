import net from 'node:net'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerCommonName } from '../../protocols/tls-identity.js'
import { readTlsMaterial, tlsServerOptions } from '../../src/tls.js'
import { tlsFixtures, tlsHandshake, type CertFiles, type TestCa } from '../fixtures/tls.js'

/**
 * peerCommonName: the CN of a client certificate the CA verified, and nothing otherwise, on a TLS server
 * built with the broker's own options (certificates asked for, not required).
 */

let fx: ReturnType<typeof tlsFixtures>
let otherCa: TestCa
let server: tls.Server
let port: number
let serverCert: CertFiles
/** The CN each accepted socket gave, in order. */
const seen: Array<string | undefined> = []

beforeAll(async () => {
  fx = tlsFixtures()
  otherCa = fx.newCa('other')
  serverCert = fx.ca.server()
  server = tls.createServer(tlsServerOptions(readTlsMaterial({ cert: serverCert.cert, key: serverCert.key, ca: fx.ca.files.cert })), socket => {
    seen.push(peerCommonName(socket))
    socket.end()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as net.AddressInfo).port
})
afterAll(async () => {
  await new Promise(resolve => server.close(resolve))
  fx.remove()
})

async function cnOf (client?: CertFiles): Promise<string | undefined> {
  const before = seen.length
  const socket = await tlsHandshake(port, { ca: fx.ca.files.certPem, client })
  await new Promise(resolve => socket.once('close', resolve))
  expect(seen.length).toBe(before + 1)
  return seen[before]
}

describe('peerCommonName', () => {
  it('gives the CN of a client certificate signed by --tls-ca', async () => {
    expect(await cnOf(fx.ca.client('sensor-1'))).toBe('sensor-1')
  })

  it('gives undefined for a client without a certificate', async () => {
    expect(await cnOf()).toBeUndefined()
  })

  it('gives undefined for a client certificate another CA signed (handshake allowed, identity not)', async () => {
    expect(await cnOf(otherCa.client('sensor-1', 'forged-sensor-1'))).toBeUndefined()
  })

  it('gives undefined for what is not a verified TLS socket', async () => {
    expect(peerCommonName(undefined)).toBeUndefined()
    expect(peerCommonName({ authorized: true, getPeerCertificate: () => ({ subject: { CN: 'admin' } }) })).toBeUndefined()
    const plain = new net.Socket()
    expect(peerCommonName(plain)).toBeUndefined()
    plain.destroy()
  })
})
