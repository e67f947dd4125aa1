import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { spawnBroker, tempDir, waitFor, type ChildBroker } from '../helpers.js'
import { httpsRequest, tlsFixtures, tlsHandshake, type CertFiles } from '../fixtures/tls.js'

/**
 * Certificates reload on SIGHUP in the real CLI: new connections get the new certificate, open ones stay
 * open, and a broken file is refused with a logged error while the certificate in use stays.
 */

let fx: ReturnType<typeof tlsFixtures>
let data: { dir: string, remove: () => void }
let certA: CertFiles
let certB: CertFiles
let broker: ChildBroker
let mqttsPort: number
const active = { cert: '', key: '' }
let idle: TLSSocket | undefined

function logEntries (): Array<Record<string, unknown>> {
  return broker.output.flatMap(line => {
    try { return [JSON.parse(line) as Record<string, unknown>] } catch { return [] }
  })
}

function install (files: CertFiles): void {
  copyFileSync(files.key, active.key)
  copyFileSync(files.cert, active.cert)
}

beforeAll(async () => {
  fx = tlsFixtures()
  data = tempDir()
  certA = fx.ca.server('server-a')
  certB = fx.ca.server('server-b')
  active.cert = join(fx.dir, 'active.crt')
  active.key = join(fx.dir, 'active.key')
  install(certA)
  broker = await spawnBroker(['--tls-cert', active.cert, '--tls-key', active.key, '--mqtts-port', '0', '--data-dir', data.dir])
  const listening = logEntries().find(e => e.event === 'listening')
  mqttsPort = listening?.mqttsPort as number
  expect(mqttsPort).toBeGreaterThan(0)
})
afterAll(async () => {
  if (broker.child.exitCode === null) {
    broker.child.kill('SIGTERM')
    await broker.exited
  }
  data.remove()
  fx.remove()
})

async function sighupAndWaitFor (event: string, count: number): Promise<void> {
  broker.child.kill('SIGHUP')
  await waitFor(() => logEntries().filter(e => e.event === event).length >= count, 10_000, `log event ${event} #${count}`)
}

describe('TLS certificate reload on SIGHUP', () => {
  it('new connections get the new certificate; an open MQTT TLS connection stays open and working', async () => {
    const ca = fx.ca.files.certPem
    // left open on purpose, without an MQTT CONNECT: it must not hold up the shutdown at the end
    idle = await tlsHandshake(mqttsPort, { ca })
    expect(idle.getPeerCertificate().fingerprint256).toBe(certA.fingerprint256)
    expect((await httpsRequest(`https://127.0.0.1:${broker.httpPort}/healthz`, { ca })).serverFingerprint256).toBe(certA.fingerprint256)

    // opened under certificate A, kept across the reload
    const old: MqttClient = await mqtt.connectAsync(`mqtts://127.0.0.1:${mqttsPort}`, { ca, reconnectPeriod: 0 })
    let oldClosed = false
    old.on('close', () => { oldClosed = true })
    const oldRaw = await tlsHandshake(mqttsPort, { ca })

    install(certB)
    const loadedBefore = logEntries().filter(e => e.event === 'tls_certificate').length
    await sighupAndWaitFor('tls_certificate', loadedBefore + 1)
    expect(logEntries().filter(e => e.event === 'tls_certificate').at(-1)?.fingerprint256).toBe(certB.fingerprint256)

    const fresh = await tlsHandshake(mqttsPort, { ca })
    expect(fresh.getPeerCertificate().fingerprint256).toBe(certB.fingerprint256)
    fresh.destroy()
    expect((await httpsRequest(`https://127.0.0.1:${broker.httpPort}/healthz`, { ca })).serverFingerprint256).toBe(certB.fingerprint256)

    // the old connections still have certificate A and still carry traffic
    expect(oldRaw.destroyed).toBe(false)
    expect(oldRaw.getPeerCertificate().fingerprint256).toBe(certA.fingerprint256)
    oldRaw.destroy()
    const sub = await mqtt.connectAsync(`mqtts://127.0.0.1:${mqttsPort}`, { ca, reconnectPeriod: 0 })
    await sub.subscribeAsync('reload/t', { qos: 1 })
    const got = new Promise<string>(resolve => { sub.on('message', (_t, p) => { resolve(p.toString()) }) })
    await old.publishAsync('reload/t', 'still here', { qos: 1 })
    expect(await got).toBe('still here')
    expect(oldClosed).toBe(false)
    expect(old.connected).toBe(true)
    await sub.endAsync()
    await old.endAsync()
  })

  it('a broken certificate file is refused on reload: logged at error, the certificate in use stays', async () => {
    const ca = fx.ca.files.certPem
    writeFileSync(active.cert, 'not a certificate\n')
    await sighupAndWaitFor('tls_reload_refused', 1)
    const refusal = logEntries().find(e => e.event === 'tls_reload_refused')
    expect(refusal?.level).toBe(50) // pino's error
    expect(String(refusal?.msg)).toMatch(/--tls-cert: .*active\.crt is not a PEM certificate/)

    // a key that does not match the certificate is refused too
    copyFileSync(certB.cert, active.cert)
    copyFileSync(certA.key, active.key)
    await sighupAndWaitFor('tls_reload_refused', 2)
    expect(String(logEntries().filter(e => e.event === 'tls_reload_refused')[1]?.msg)).toMatch(/--tls-key: .* is not the key of the certificate/)

    expect(broker.child.exitCode).toBeNull()
    const socket = await tlsHandshake(mqttsPort, { ca })
    expect(socket.getPeerCertificate().fingerprint256).toBe(certB.fingerprint256)
    socket.destroy()
    expect((await httpsRequest(`https://127.0.0.1:${broker.httpPort}/healthz`, { ca })).status).toBe(200)
  })

  it('the process still stops cleanly, also with a TLS connection open that never sent CONNECT', async () => {
    expect(idle?.destroyed).toBe(false)
    const idleClosed = new Promise(resolve => idle?.once('close', resolve))
    broker.child.kill('SIGTERM')
    expect(await broker.exited).toBe(0)
    await idleClosed
  })
})
