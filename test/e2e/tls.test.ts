import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { runCli, startTestBroker, tempDir, type TestBroker } from '../helpers.js'
import { httpsRequest, tlsFixtures, tlsHandshake, type CertFiles, type TestCa } from '../fixtures/tls.js'

/** MQTT over TLS, HTTPS and WSS from PEM files (README "Security / TLS"), on a broker in this process. */

let fx: ReturnType<typeof tlsFixtures>
let server: CertFiles
let otherCa: TestCa
let broker: TestBroker
beforeAll(async () => {
  fx = tlsFixtures()
  server = fx.ca.server()
  otherCa = fx.newCa('other')
  broker = await startTestBroker({ tlsCert: server.cert, tlsKey: server.key, tlsCa: fx.ca.files.cert, mqttsPort: 0 })
})
afterAll(async () => {
  await broker?.stop()
  fx.remove()
})

async function received (client: MqttClient, topic: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no message on ${topic} within 5 s`)) }, 5000)
    client.on('message', (t, payload) => {
      if (t !== topic) return
      clearTimeout(timer)
      resolve(payload.toString())
    })
  })
}

describe('TLS listeners', () => {
  it('listens for MQTT over TLS on its own port, beside plain MQTT', () => {
    expect(broker.mqtts).toBeDefined()
    expect(broker.mqtts!.port).not.toBe(broker.mqtt.port)
    expect(broker.mqttsUrl).toBe(`mqtts://127.0.0.1:${broker.mqtts!.port}`)
  })

  it('MQTT over TLS: publish and subscribe (QoS 1) through the broker\'s certificate', async () => {
    const sub = await mqtt.connectAsync(broker.mqttsUrl!, { ca: fx.ca.files.certPem, reconnectPeriod: 0 })
    const pub = await mqtt.connectAsync(broker.mqttsUrl!, { ca: fx.ca.files.certPem, reconnectPeriod: 0 })
    try {
      await sub.subscribeAsync('tls/t', { qos: 1 })
      const got = received(sub, 'tls/t')
      await pub.publishAsync('tls/t', 'over tls', { qos: 1 })
      expect(await got).toBe('over tls')
    } finally {
      await sub.endAsync()
      await pub.endAsync()
    }
  })

  it('the MQTT TLS socket presents the server certificate of --tls-cert', async () => {
    const socket = await tlsHandshake(broker.mqtts!.port, { ca: fx.ca.files.certPem })
    expect(socket.getPeerCertificate().fingerprint256).toBe(server.fingerprint256)
    socket.destroy()
  })

  it('HTTPS on the HTTP port: GET /healthz and a store round trip', async () => {
    const health = await httpsRequest(`${broker.httpsUrl!}/healthz`, { ca: fx.ca.files.certPem })
    expect(health.status).toBe(200)
    expect(health.serverFingerprint256).toBe(server.fingerprint256)
    const put = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/tls-key`, { ca: fx.ca.files.certPem, method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"over":"https"}' })
    expect(put.status).toBe(200)
    const get = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/tls-key`, { ca: fx.ca.files.certPem })
    expect(get.status).toBe(200)
    expect(JSON.parse(get.body)).toEqual({ over: 'https' })
  })

  it('a client certificate is asked for but not required: a client without one is served', async () => {
    const socket = await tlsHandshake(broker.httpAddress.port, { ca: fx.ca.files.certPem })
    expect(socket.authorized).toBe(true)
    socket.destroy()
    const withCert = await httpsRequest(`${broker.httpsUrl!}/healthz`, { ca: fx.ca.files.certPem, client: fx.ca.client('someone') })
    expect(withCert.status).toBe(200)
  })

  it('the HTTP port speaks only TLS: a plain HTTP request gets no HTTP answer', async () => {
    await expect(fetch(`http://127.0.0.1:${broker.httpAddress.port}/healthz`)).rejects.toThrow()
  })

  it('WSS: MQTT over WebSocket on /mqtt through TLS, to and from an MQTT TLS client', async () => {
    const ws = await mqtt.connectAsync(broker.wssUrl!, { ca: fx.ca.files.certPem, reconnectPeriod: 0 })
    const tls = await mqtt.connectAsync(broker.mqttsUrl!, { ca: fx.ca.files.certPem, reconnectPeriod: 0 })
    try {
      await ws.subscribeAsync('wss/t', { qos: 1 })
      const got = received(ws, 'wss/t')
      await tls.publishAsync('wss/t', 'from mqtts to wss', { qos: 1 })
      expect(await got).toBe('from mqtts to wss')
    } finally {
      await ws.endAsync()
      await tls.endAsync()
    }
  })

  it('a client that trusts another CA refuses the handshake (MQTT TLS, HTTPS and WSS)', async () => {
    const wrong = otherCa.files.certPem
    // the server sends its CA in the chain (it is in --tls-ca), so the client sees a root it does not trust
    const untrusted = { code: expect.stringMatching(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/) }
    await expect(tlsHandshake(broker.mqtts!.port, { ca: wrong })).rejects.toMatchObject(untrusted)
    await expect(mqtt.connectAsync(broker.mqttsUrl!, { ca: wrong, reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toMatchObject(untrusted)
    await expect(httpsRequest(`${broker.httpsUrl!}/healthz`, { ca: wrong })).rejects.toMatchObject(untrusted)
    await expect(mqtt.connectAsync(broker.wssUrl!, { ca: wrong, reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toThrow()
  })

  it('a plain MQTT client on the TLS port is dropped and counted as bad input', async () => {
    const res1 = await httpsRequest(`${broker.httpsUrl!}/metrics`, { ca: fx.ca.files.certPem })
    const count = (text: string): number => Number(/tetra_bad_input_total\{transport="mqtt_tls"\} (\d+)/.exec(text)?.[1] ?? 0)
    const plain = mqtt.connect(`mqtt://127.0.0.1:${broker.mqtts!.port}`, { reconnectPeriod: 0, connectTimeout: 5000 })
    await new Promise<void>(resolve => { plain.once('close', () => { resolve() }) })
    plain.end(true)
    const res2 = await httpsRequest(`${broker.httpsUrl!}/metrics`, { ca: fx.ca.files.certPem })
    expect(count(res2.body)).toBe(count(res1.body) + 1)
  })
})

describe('TLS settings that cannot work stop the start, naming the flag', () => {
  it.each([
    ['a missing certificate file', (): object => ({ tlsCert: '/nonexistent/tetra.crt', tlsKey: server.key }), /--tls-cert: cannot read \/nonexistent\/tetra\.crt/],
    ['a certificate file that is not PEM', (): object => ({ tlsCert: server.key, tlsKey: server.key }), /--tls-cert: .* is not a PEM certificate/],
    ['a missing key file', (): object => ({ tlsCert: server.cert, tlsKey: '/nonexistent/tetra.key' }), /--tls-key: cannot read/],
    ['a key of another certificate', (): object => ({ tlsCert: server.cert, tlsKey: fx.ca.files.key }), /--tls-key: .* is not the key of the certificate in --tls-cert/],
    ['a CA file without a certificate', (): object => ({ tlsCert: server.cert, tlsKey: server.key, tlsCa: server.key }), /--tls-ca: .* holds no PEM certificate/],
    ['a key without a certificate', (): object => ({ tlsKey: server.key }), /--tls-cert is required with --tls-key/],
    ['a certificate without a key', (): object => ({ tlsCert: server.cert }), /--tls-key is required with --tls-cert/]
  ])('%s', async (_what, settings, message) => {
    const tmp = tempDir()
    try {
      await expect(startTestBroker({ mqttsPort: 0, ...settings() }, tmp.dir)).rejects.toThrow(message)
    } finally {
      tmp.remove()
    }
  })

  it('the CLI reports them as configuration errors: exit 2, before the data dir is made', async () => {
    const tmp = tempDir()
    try {
      const dataDir = join(tmp.dir, 'data')
      const { code, stderr } = await runCli(['--tls-cert', server.cert, '--tls-key', fx.ca.files.key, '--mqtts-port', '0', '--data-dir', dataDir])
      expect(code).toBe(2)
      expect(stderr).toMatch(/^tetra: invalid configuration: --tls-key: .* is not the key of the certificate in --tls-cert/)
      expect(existsSync(dataDir)).toBe(false)
    } finally {
      tmp.remove()
    }
  })
})
