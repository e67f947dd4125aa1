import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { hashPassword } from '../../engines/auth/hash.js'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { httpsRequest, tlsFixtures, type CertFiles, type TestCa } from '../fixtures/tls.js'

/**
 * mTLS mapping (issue 11 "Tests that must exist"): with --tls-ca, a client certificate the CA verified
 * names a user of the auth file by its CN, and that user's rules apply, over MQTT TLS, WSS and HTTPS.
 * A certificate another CA signed, or a CN that is no user, authenticates nobody.
 */

let fx: ReturnType<typeof tlsFixtures>
let otherCa: TestCa
let sensor1: CertFiles
let broker: TestBroker
let observer: MqttClient
const seen: string[] = []

beforeAll(async () => {
  fx = tlsFixtures()
  otherCa = fx.newCa('other')
  const server = fx.ca.server()
  sensor1 = fx.ca.client('sensor-1')
  const authFile = join(fx.dir, 'auth.json')
  // ln=4: a cheap hash; the certificate user never uses its password
  const hash = await hashPassword('observer-pw', { ln: 4, r: 8, p: 1 })
  writeFileSync(authFile, JSON.stringify({
    users: [
      { name: 'sensor-1', password: await hashPassword('unused', { ln: 4, r: 8, p: 1 }), roles: ['device'] },
      { name: 'observer', password: hash, roles: ['observer'] }
    ],
    roles: {
      device: [
        { resource: 'topic', pattern: 'sensors/%u/#', actions: ['publish'] },
        { resource: 'topic', pattern: 'commands/%u/#', actions: ['subscribe'] },
        { resource: 'store', pattern: 'devices/sensor-1', actions: ['read', 'write'] }
      ],
      observer: [{ resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] }]
    }
  }))
  broker = await startTestBroker({ authFile, tlsCert: server.cert, tlsKey: server.key, tlsCa: fx.ca.files.cert, mqttsPort: 0 })
  observer = await mqtt.connectAsync(broker.mqttUrl, { username: 'observer', password: 'observer-pw', reconnectPeriod: 0 })
  await observer.subscribeAsync('sensors/#', { qos: 1 })
  observer.on('message', (topic, payload) => { seen.push(`${topic} ${payload.toString()}`) })
})
afterAll(async () => {
  await observer?.endAsync()
  await broker?.stop()
  fx.remove()
})

const ca = (): string => fx.ca.files.certPem

/** Connects over MQTT TLS (or WSS) without a username; resolves with the client, or rejects with the CONNACK refusal. */
async function connectWith (cert: CertFiles | undefined, transport: 'mqtts' | 'wss' = 'mqtts'): Promise<MqttClient> {
  const url = transport === 'mqtts' ? broker.mqttsUrl! : broker.wssUrl!
  return await mqtt.connectAsync(url, { ca: ca(), cert: cert?.certPem, key: cert?.keyPem, reconnectPeriod: 0, connectTimeout: 5000 })
}

describe('mTLS: a client certificate\'s CN is a user of the auth file', () => {
  it.each(['mqtts', 'wss'] as const)('%s: CN=sensor-1 without a username publishes where sensor-1 may, and only there (MQTT-3.3.5: a denied PUBLISH is still acknowledged)', async transport => {
    const client = await connectWith(sensor1, transport)
    try {
      await client.publishAsync(`sensors/sensor-1/${transport}`, 'allowed', { qos: 1 })
      await client.publishAsync(`sensors/sensor-2/${transport}`, 'denied', { qos: 1 })
      await client.publishAsync(`sensors/sensor-1/${transport}-after`, 'allowed too', { qos: 1 })
      await waitFor(() => seen.includes(`sensors/sensor-1/${transport}-after allowed too`), 5000, 'the allowed publishes at the observer')
      expect(seen).toContain(`sensors/sensor-1/${transport} allowed`)
      expect(seen.filter(m => m.startsWith('sensors/sensor-2/'))).toEqual([])
    } finally {
      await client.endAsync()
    }
  })

  it('mqtts: CN=sensor-1 may subscribe to commands/sensor-1/# and not to commands/sensor-2/# (MQTT-3.9.3: SUBACK 0x80 for that filter only)', async () => {
    const client = await connectWith(sensor1)
    try {
      // MQTT.js rejects a SUBSCRIBE with any 0x80 in its SUBACK; the return codes are on the error's packet
      const suback = await new Promise<number[]>((resolve, reject) => {
        client.once('packetreceive', packet => { if (packet.cmd === 'suback') resolve(packet.granted as number[]) })
        client.subscribe({ 'commands/sensor-1/#': { qos: 1 }, 'commands/sensor-2/#': { qos: 1 } }, err => { if (err !== null && err.message !== 'Subscribe error: Unspecified error') reject(err) })
      })
      expect(suback).toEqual([1, 128])
    } finally {
      await client.endAsync()
    }
  })

  it('mqtts (MQTT-3.2.2.3): no certificate, or one another CA signed, is no identity: 0x05 (anonymous is off in this file); a CN that is no user: 0x04', async () => {
    const cases: Array<[CertFiles | undefined, number]> = [[undefined, 5], [otherCa.client('sensor-1', 'forged-sensor-1'), 5], [fx.ca.client('nobody'), 4]]
    for (const [cert, returnCode] of cases) {
      await expect(connectWith(cert), cert?.cert ?? 'no certificate').rejects.toMatchObject({ code: returnCode })
    }
  })

  it('mqtts: a user name with a password wins over the certificate', async () => {
    const client = await mqtt.connectAsync(broker.mqttsUrl!, { ca: ca(), cert: sensor1.certPem, key: sensor1.keyPem, username: 'observer', password: 'observer-pw', reconnectPeriod: 0 })
    try {
      // observer may publish anywhere; sensor-1 may not publish here
      await client.publishAsync('sensors/sensor-2/as-observer', 'observer', { qos: 1 })
      await waitFor(() => seen.includes('sensors/sensor-2/as-observer observer'), 5000, 'the observer\'s publish')
    } finally {
      await client.endAsync()
    }
  })

  it('HTTPS: CN=sensor-1 is the certificate user sensor-1 with its rules', async () => {
    const whoami = await httpsRequest(`${broker.httpsUrl!}/v1/auth/whoami`, { ca: ca(), client: sensor1 })
    expect(whoami.status).toBe(200)
    expect(JSON.parse(whoami.body)).toMatchObject({ name: 'sensor-1', kind: 'certificate', roles: ['device'] })
    const put = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/devices/sensor-1`, { ca: ca(), client: sensor1, method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"t":21.5}' })
    expect(put.status).toBe(200)
    const get = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/devices/sensor-1`, { ca: ca(), client: sensor1 })
    expect(get.status).toBe(200)
    expect(JSON.parse(get.body)).toEqual({ t: 21.5 })
    const other = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/devices/sensor-2`, { ca: ca(), client: sensor1, method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"t":0}' })
    expect(other.status).toBe(403)
    expect(other.headers['content-type']).toMatch(/^application\/problem\+json/)
  })

  it('HTTPS: no certificate, a certificate another CA signed, or a CN that is no user: 401', async () => {
    for (const client of [undefined, otherCa.client('sensor-1', 'forged-sensor-1-http'), fx.ca.client('nobody', 'nobody-http')]) {
      const res = await httpsRequest(`${broker.httpsUrl!}/v1/store/keys/devices/sensor-1`, { ca: ca(), client })
      expect(res.status, client?.cert ?? 'no certificate').toBe(401)
    }
  })

  it('after a certificate reload (SIGHUP\'s broker.reload()) client certificates are still asked for and mapped', async () => {
    await broker.reload()
    const whoami = await httpsRequest(`${broker.httpsUrl!}/v1/auth/whoami`, { ca: ca(), client: sensor1 })
    expect(JSON.parse(whoami.body)).toMatchObject({ name: 'sensor-1', kind: 'certificate' })
    const client = await connectWith(sensor1)
    await client.publishAsync('sensors/sensor-1/after-reload', 'mapped', { qos: 1 })
    await waitFor(() => seen.includes('sensors/sensor-1/after-reload mapped'), 5000, 'the publish after the reload')
    await client.endAsync()
  })
})
