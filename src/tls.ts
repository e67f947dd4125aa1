import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { ConfigError, type Config } from './config.js'

/**
 * TLS from PEM files (--tls-cert, --tls-key, optional --tls-ca): read and check them, give the options of
 * the MQTT over TLS and HTTPS servers, and reload them into those servers on SIGHUP.
 */

/** The file names of the settings; `ca` is '' when client certificates are not asked for. */
export interface TlsFiles { cert: string, key: string, ca: string }

/** The checked contents of the files. */
export interface TlsMaterial {
  cert: Buffer
  key: Buffer
  ca: Buffer | undefined
  /** Of the leaf certificate (the first of --tls-cert), for the logs. */
  fingerprint256: string
  subject: string
  validTo: string
}

/** Which files the settings name; undefined when TLS is off. A half-set pair is a configuration error. */
export function tlsFilesOf (config: Pick<Config, 'tlsCert' | 'tlsKey' | 'tlsCa'>): TlsFiles | undefined {
  const { tlsCert: cert, tlsKey: key, tlsCa: ca } = config
  if (cert === '' && key === '' && ca === '') return undefined
  if (cert === '') throw new ConfigError(`--tls-cert is required with ${key !== '' ? '--tls-key' : '--tls-ca'} (the server's certificate, PEM)`)
  if (key === '') throw new ConfigError('--tls-key is required with --tls-cert (the private key of the certificate, PEM)')
  return { cert, key, ca }
}

/** Reads and checks the files; a ConfigError names the flag and the file when one is missing or wrong. */
export function readTlsMaterial (files: TlsFiles): TlsMaterial {
  const certPem = readPem('--tls-cert', files.cert)
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(certPem)
  } catch (err) {
    throw new ConfigError(`--tls-cert: ${files.cert} is not a PEM certificate (${(err as Error).message})`)
  }
  const keyPem = readPem('--tls-key', files.key)
  let key: KeyObject
  try {
    key = createPrivateKey(keyPem)
  } catch (err) {
    throw new ConfigError(`--tls-key: ${files.key} is not an unencrypted PEM private key (${(err as Error).message})`)
  }
  if (!leaf.checkPrivateKey(key)) throw new ConfigError(`--tls-key: ${files.key} is not the key of the certificate in --tls-cert ${files.cert}`)
  let ca: Buffer | undefined
  if (files.ca !== '') {
    ca = readPem('--tls-ca', files.ca)
    checkCaBundle(ca, files.ca)
  }
  return { cert: certPem, key: keyPem, ca, fingerprint256: leaf.fingerprint256, subject: leaf.subject, validTo: leaf.validTo }
}

/** The options of the certificate itself: what tls.Server.setSecureContext takes on a reload. */
export function secureContextOptions (material: TlsMaterial): tls.SecureContextOptions {
  return material.ca === undefined ? { cert: material.cert, key: material.key } : { cert: material.cert, key: material.key, ca: material.ca }
}

/**
 * The server options. With a CA, client certificates are requested and verified, but a client without
 * one (or with one the CA did not sign) is not refused the handshake: it may still authenticate with a
 * password or token, and front-ends only trust a certificate whose `socket.authorized` is true
 * (protocols/tls-identity.ts).
 */
export function tlsServerOptions (material: TlsMaterial): tls.TlsOptions {
  return { ...secureContextOptions(material), requestCert: material.ca !== undefined, rejectUnauthorized: false }
}

/**
 * The certificate in use and the servers it is in. `reload()` reads the files again: a good set goes into
 * every server for new connections (open ones keep theirs); a broken one is refused and the old kept.
 */
export class TlsCertificates {
  private readonly servers: tls.Server[] = []

  private constructor (readonly files: TlsFiles, private current: TlsMaterial, private readonly logger: Logger) {}

  /** Undefined when TLS is off; throws ConfigError when a file is missing or wrong. */
  static load (config: Pick<Config, 'tlsCert' | 'tlsKey' | 'tlsCa'>, logger: Logger): TlsCertificates | undefined {
    const files = tlsFilesOf(config)
    if (files === undefined) return undefined
    const certificates = new TlsCertificates(files, readTlsMaterial(files), logger)
    certificates.log('TLS certificate loaded')
    return certificates
  }

  get material (): TlsMaterial { return this.current }

  /** Options for creating a server; call `attach` with it so reloads reach it. */
  serverOptions (): tls.TlsOptions { return tlsServerOptions(this.current) }

  attach (server: tls.Server): void { this.servers.push(server) }

  /** True when the new files are in use; false when they were refused (logged at error, old kept). */
  reload (): boolean {
    let next: TlsMaterial
    try {
      next = readTlsMaterial(this.files)
      const options = secureContextOptions(next)
      // Built once first so a failure (after the checks above, unlikely) changes no server at all.
      tls.createSecureContext(options)
      for (const server of this.servers) server.setSecureContext(options)
    } catch (err) {
      this.logger.error({ event: 'tls_reload_refused', err: { message: (err as Error).message } }, `TLS certificate reload refused, the old certificate stays in use: ${(err as Error).message}`)
      return false
    }
    this.current = next
    this.log('TLS certificate reloaded')
    return true
  }

  private log (message: string): void {
    const { fingerprint256, subject, validTo } = this.current
    this.logger.info({ event: 'tls_certificate', subject, fingerprint256, validTo, clientCa: this.files.ca !== '' }, `${message}: ${subject.replace(/\n/g, ', ')}, valid to ${validTo}`)
  }
}

function readPem (flag: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(`${flag}: cannot read ${path}: ${(err as Error).message}`)
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** Node takes a CA bundle that is not PEM without a word (and then verifies nothing): check each block. */
function checkCaBundle (pem: Buffer, path: string): void {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw new ConfigError(`--tls-ca: ${path} holds no PEM certificate`)
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block) // eslint-disable-line no-new
    } catch (err) {
      throw new ConfigError(`--tls-ca: certificate ${i + 1} of ${path} is not valid (${(err as Error).message})`)
    }
  })
}
