import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { startTestBroker, tempDir, waitFor, type TestBroker } from '../helpers.js'
import { httpsRequest, tlsFixtures } from '../fixtures/tls.js'
import { hashPassword, hashToken } from '../../engines/auth/hash.js'
import type { AuthSpec } from './http-auth-fixture.js'
import { frontEndOf } from '../../protocols/mqtt/front-end.js'

/**
 * The MQTT side of issue 11 over TCP, WebSocket and TLS, with a real auth file: login (MQTT 3.1.1
 * §3.2.2.3 CONNACK return codes), SUBSCRIBE (§3.9.3: 0x80 for a refused filter only), PUBLISH outside
 * the ACL (dropped and still acknowledged, §4.3), delivery filtering (a deny inside an allowed wildcard),
 * retained messages, wills and persistent sessions under the same rules; --mqtt-deny-disconnect.
 */

type Transport = 'tcp' | 'ws' | 'tls'

/** The token of "billing" (fixed: the file is written again in the revocation tests). */
const BILLING_TOKEN = 'tetra_mqtt-auth-test-billing-token-0123456789'
const hashes = new Map<string, string>()

/**
 * Writes the auth file (atomically). A password keeps its hash from one write to the next: a new hash
 * is a changed password, which revokes the user's connections.
 */
async function writeAuthFile (dir: string, spec: AuthSpec): Promise<{ file: string, tokens: Record<string, string> }> {
  const users = []
  for (const u of spec.users ?? []) {
    const key = `${u.name}\u0000${u.password}`
    if (!hashes.has(key)) hashes.set(key, await hashPassword(u.password, { ln: 4, r: 8, p: 1 }))
    users.push({ name: u.name, password: hashes.get(key), roles: u.roles })
  }
  const tokens: Record<string, string> = {}
  const body = {
    users,
    tokens: (spec.tokens ?? []).map(t => {
      tokens[t.name] = t.token ?? BILLING_TOKEN
      return { name: t.name, hash: hashToken(tokens[t.name]), roles: t.roles, expiresAt: t.expiresAt == null ? null : new Date(t.expiresAt).toISOString() }
    }),
    roles: spec.roles,
    ...(spec.anonymous !== undefined ? { anonymous: spec.anonymous } : {})
  }
  const file = join(dir, 'auth.json')
  writeFileSync(file + '.tmp', JSON.stringify(body, null, 2))
  renameSync(file + '.tmp', file)
  return { file, tokens }
}

const SPEC: AuthSpec = {
  users: [
    { name: 'sensor-1', password: 'pw-sensor', roles: ['device'] },
    { name: 'backend', password: 'pw-backend', roles: ['backend'] },
    { name: 'viewer', password: 'pw-viewer', roles: ['viewer'] }
  ],
  tokens: [{ name: 'billing', roles: ['backend'] }],
  roles: {
    device: [
      { resource: 'topic', pattern: 'sensors/%u/#', actions: ['publish'] },
      { resource: 'topic', pattern: 'commands/%u/#', actions: ['subscribe'] },
      { resource: 'topic', pattern: 'clients/%c/#', actions: ['publish'] }
    ],
    backend: [
      { resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] },
      { resource: 'topic', pattern: 'secret/#', actions: ['subscribe'], effect: 'deny' },
      { resource: 'system', pattern: '*', actions: ['metrics'] }
    ],
    viewer: [
      { resource: 'topic', pattern: 'sensors/#', actions: ['subscribe'] },
      { resource: 'topic', pattern: 'alerts/#', actions: ['subscribe'] }
    ],
    public: [{ resource: 'topic', pattern: 'public/#', actions: ['publish', 'subscribe'] }]
  },
  anonymous: ['public']
}

/** The CONNACK return code a connection gets (0: accepted). */
export async function connackCode (url: string, options: IClientOptions): Promise<number> {
  try {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
    await client.endAsync(true)
    return 0
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'number') return code
    throw err
  }
}

/** Messages a client receives, as "topic payload". */
function collect (client: MqttClient): string[] {
  const got: string[] = []
  client.on('message', (topic, payload) => { got.push(`${topic} ${payload.toString()}`) })
  return got
}

/** SUBACK's granted QoS per filter; MQTT.js rejects a SUBACK holding a failure, with the packet. */
async function suback (client: MqttClient, filters: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map(g => g.qos)
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted
    if (granted === undefined) throw err
    return granted
  }
}

interface Fixture {
  broker: TestBroker
  caCert?: string
  url: string
  tlsOptions: IClientOptions
  authFile: string
  tokens: Record<string, string>
  cleanup: () => void
}

async function startAuthBroker (transport: Transport, spec: AuthSpec, overrides: Record<string, unknown> = {}): Promise<Fixture> {
  const tmp = tempDir('tetra-mqtt-auth-')
  const { file, tokens } = await writeAuthFile(tmp.dir, spec)
  let tlsOptions: IClientOptions = {}
  let fx: ReturnType<typeof tlsFixtures> | undefined
  let tlsSettings = {}
  if (transport === 'tls') {
    fx = tlsFixtures()
    const server = fx.ca.server()
    tlsSettings = { tlsCert: server.cert, tlsKey: server.key, tlsCa: fx.ca.files.cert, mqttsPort: 0 }
    tlsOptions = { ca: readFileSync(fx.ca.files.cert), rejectUnauthorized: true, servername: 'localhost' }
  }
  const broker = await startTestBroker({ authFile: file, mqttSysIntervalMs: 0, ...tlsSettings, ...overrides })
  const url = transport === 'tcp' ? broker.mqttUrl : transport === 'ws' ? broker.wsUrl : `mqtts://localhost:${broker.mqtts!.port}`
  return { broker, url, tlsOptions, authFile: file, tokens, caCert: fx === undefined ? undefined : readFileSync(fx.ca.files.cert, 'utf8'), cleanup: () => { fx?.remove(); tmp.remove() } }
}

describe.each<Transport>(['tcp', 'ws', 'tls'])('MQTT auth and ACL over %s', transport => {
  let f: Fixture
  const clients: MqttClient[] = []
  const connect = async (options: IClientOptions): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(f.url, { reconnectPeriod: 0, ...f.tlsOptions, ...options })
    clients.push(client)
    return client
  }
  const backend = async (options: IClientOptions = {}): Promise<MqttClient> => await connect({ username: 'backend', password: 'pw-backend', ...options })
  const sensor = async (options: IClientOptions = {}): Promise<MqttClient> => await connect({ username: 'sensor-1', password: 'pw-sensor', ...options })

  beforeAll(async () => { f = await startAuthBroker(transport, SPEC) })
  afterAll(async () => {
    await Promise.all(clients.map(async c => await c.endAsync(true)))
    await f.broker.stop()
    f.cleanup()
  })

  it('MQTT-3.2.2.3: accepts good credentials and tokens (0), refuses wrong ones with 0x04 and admits anonymous clients to the anonymous roles', async () => {
    const o = f.tlsOptions
    expect(await connackCode(f.url, { ...o, username: 'sensor-1', password: 'pw-sensor' })).toBe(0)
    expect(await connackCode(f.url, { ...o, username: 'sensor-1', password: 'wrong' })).toBe(4)
    expect(await connackCode(f.url, { ...o, username: 'nobody', password: 'pw-sensor' })).toBe(4)
    expect(await connackCode(f.url, { ...o, username: 'billing', password: f.tokens.billing })).toBe(0)
    expect(await connackCode(f.url, { ...o, username: 'billing', password: 'tetra_wrong' })).toBe(4)
    // a user name without its password proves nothing
    expect(await connackCode(f.url, { ...o, username: 'sensor-1' })).toBe(4)
    // no credentials: the anonymous roles ("public")
    expect(await connackCode(f.url, { ...o })).toBe(0)
    const headers = { authorization: `Bearer ${f.tokens.billing}` }
    const metrics = f.caCert === undefined
      ? await (await fetch(`${f.broker.url}/metrics`, { headers })).text()
      : (await httpsRequest(`https://localhost:${f.broker.httpAddress.port}/metrics`, { ca: f.caCert, headers })).body
    expect(metrics).toMatch(/tetra_auth_failures_total\{protocol="mqtt",reason="invalid"\} [1-9]/)
  })

  it('MQTT-3.9.3: a SUBSCRIBE gets 0x80 for each refused filter and the granted QoS for the others', async () => {
    const device = await sensor()
    expect(await suback(device, { 'commands/sensor-1/#': { qos: 1 }, 'sensors/#': { qos: 1 }, 'commands/other/#': { qos: 0 } })).toEqual([1, 128, 128])
    // a deny rule covering all of a filter refuses it; a wildcard with a deny inside is granted (filtered at delivery)
    const reader = await backend()
    expect(await suback(reader, { 'secret/#': { qos: 0 }, '#': { qos: 0 }, '$share/g/secret/x': { qos: 0 } })).toEqual([128, 0, 128])
    // anonymous: its roles only
    const anonymous = await connect({})
    expect(await suback(anonymous, { 'public/#': { qos: 0 }, 'sensors/#': { qos: 0 } })).toEqual([0, 128])
  })

  it('MQTT-4.3: a PUBLISH outside the ACL is acknowledged (QoS 1 and 2) and nobody receives it; %u and %c patterns', async () => {
    const reader = await backend()
    const got = collect(reader)
    await reader.subscribeAsync('sensors/#', { qos: 1 })
    await reader.subscribeAsync('clients/#', { qos: 1 })
    const device = await sensor({ clientId: 'dev-42' })
    // denied: acknowledged all the same (publishAsync resolves on PUBACK / PUBCOMP)
    await device.publishAsync('sensors/sensor-2/t', 'denied-1', { qos: 1 })
    await device.publishAsync('sensors/sensor-2/t', 'denied-2', { qos: 2 })
    await device.publishAsync('clients/dev-43/x', 'denied-3', { qos: 1 })
    await device.publishAsync('clients/dev-42/x', 'allowed-c', { qos: 1 })
    await device.publishAsync('sensors/sensor-1/t', 'allowed-u', { qos: 0 })
    await waitFor(() => got.includes('sensors/sensor-1/t allowed-u'), 5000, 'the allowed messages')
    expect(got).toEqual(['clients/dev-42/x allowed-c', 'sensors/sensor-1/t allowed-u'])
    expect(device.connected).toBe(true)
  })

  it('filters each delivery: a deny rule inside an allowed wildcard is honoured, for live and retained messages', async () => {
    const publisher = await connect({ username: 'billing', password: f.tokens.billing })
    await publisher.publishAsync('secret/r', 'retained-secret', { qos: 1, retain: true })
    await publisher.publishAsync('open/r', 'retained-open', { qos: 1, retain: true })
    const reader = await backend()
    const got = collect(reader)
    await reader.subscribeAsync('#', { qos: 1 })
    await waitFor(() => got.includes('open/r retained-open'), 5000, 'the retained message')
    await publisher.publishAsync('secret/a', 'live-secret', { qos: 1 })
    await publisher.publishAsync('open/a', 'live-open', { qos: 1 })
    await waitFor(() => got.includes('open/a live-open'), 5000, 'the live message')
    expect(got.filter(m => m.startsWith('secret/'))).toEqual([])
  })

  it('publishes a will only when its client may publish to its topic', async () => {
    const reader = await backend()
    const got = collect(reader)
    await reader.subscribeAsync('#', { qos: 1 })
    const denied = await sensor({ clientId: 'will-denied', will: { topic: 'commands/sensor-1/x', payload: Buffer.from('will-denied'), qos: 1, retain: false } })
    const allowed = await sensor({ clientId: 'will-allowed', will: { topic: 'sensors/sensor-1/status', payload: Buffer.from('will-allowed'), qos: 1, retain: false } })
    // an unannounced end of the connection: the will is due
    denied.stream.destroy()
    await new Promise(resolve => setTimeout(resolve, 50))
    allowed.stream.destroy()
    await waitFor(() => got.includes('sensors/sensor-1/status will-allowed'), 5000, 'the allowed will')
    expect(got.filter(m => m.includes('will-denied'))).toEqual([])
  })
})

describe.each<Transport>(['tcp', 'ws'])('MQTT revocation and --mqtt-deny-disconnect over %s', transport => {
  let f: Fixture
  const clients: MqttClient[] = []
  const connect = async (options: IClientOptions): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(f.url, { reconnectPeriod: 0, ...f.tlsOptions, ...options })
    clients.push(client)
    return client
  }
  const rewrite = async (spec: AuthSpec): Promise<void> => {
    const before = f.broker.engines.auth.generation
    const old = readFileSync(f.authFile)
    await writeAuthFile(f.authFile.slice(0, f.authFile.lastIndexOf('/')), spec)
    if (readFileSync(f.authFile).equals(old)) return
    await f.broker.reload()
    await waitFor(() => f.broker.engines.auth.generation > before, 5000, 'the reload')
  }
  const spec = (change: (s: AuthSpec) => AuthSpec): AuthSpec => change(structuredClone(SPEC))

  beforeAll(async () => { f = await startAuthBroker(transport, { ...SPEC, users: [...SPEC.users!, { name: 'temp', password: 'pw-temp', roles: ['backend'] }] }) })
  afterAll(async () => {
    await Promise.all(clients.map(async c => await c.endAsync(true)))
    await f.broker.stop()
    f.cleanup()
  })

  it('closes the connections of a user removed from the file; another user\'s connection stays up', async () => {
    const temp = await connect({ username: 'temp', password: 'pw-temp' })
    const other = await connect({ username: 'backend', password: 'pw-backend' })
    const closed = new Promise<void>(resolve => { temp.once('close', () => { resolve() }) })
    await rewrite(spec(s => s))
    await closed
    // the other connection was not dropped: it still publishes and receives
    const got = collect(other)
    await other.subscribeAsync('after/revocation', { qos: 1 })
    await other.publishAsync('after/revocation', 'still-up', { qos: 1 })
    await waitFor(() => got.includes('after/revocation still-up'), 5000, 'a message after the reload')
    expect(other.connected).toBe(true)
    expect(await connackCode(f.url, { ...f.tlsOptions, username: 'temp', password: 'pw-temp' })).toBe(4)
  })

  it('cuts a subscription a role no longer allows, live and in a persistent session, and keeps the connection', async () => {
    await rewrite(spec(s => s))
    const live = await connect({ username: 'viewer', password: 'pw-viewer', clientId: 'viewer-live' })
    await live.subscribeAsync({ 'sensors/#': { qos: 1 }, 'alerts/#': { qos: 1 } })
    const stored = await connect({ username: 'viewer', password: 'pw-viewer', clientId: 'viewer-stored', clean: false })
    await stored.subscribeAsync({ 'sensors/#': { qos: 1 }, 'alerts/#': { qos: 1 } })
    await stored.endAsync()
    const subscriptionsOf = (id: string): string[] => (frontEndOf(f.broker.engines.pubsub)?.subscriptionsOf(id) ?? []).sort()
    expect(subscriptionsOf('viewer-live')).toEqual(['alerts/#', 'sensors/#'])

    // the viewer role loses sensors/#
    await rewrite(spec(s => ({ ...s, roles: { ...s.roles, viewer: [{ resource: 'topic', pattern: 'alerts/#', actions: ['subscribe'] }] } })))
    await waitFor(() => subscriptionsOf('viewer-live').length === 1, 5000, 'the cut subscription')
    expect(subscriptionsOf('viewer-live')).toEqual(['alerts/#'])
    expect(live.connected).toBe(true)

    // the persistent session is checked again when it comes back: sensors/# is gone from it for good
    await rewrite(spec(s => s))
    const publisher = await connect({ username: 'backend', password: 'pw-backend' })
    const back = await connect({ username: 'viewer', password: 'pw-viewer', clientId: 'viewer-stored', clean: false })
    const got = collect(back)
    expect(subscriptionsOf('viewer-stored')).toEqual(['alerts/#', 'sensors/#'])
    await back.endAsync()
    await rewrite(spec(s => ({ ...s, roles: { ...s.roles, viewer: [{ resource: 'topic', pattern: 'alerts/#', actions: ['subscribe'] }] } })))
    // queued while offline under the old rules; delivered under the new ones: the sensors message is not
    // sent, and is gone from the queue (it does not come when sensors/# is allowed again, below)
    await publisher.publishAsync('sensors/q', 'queued-sensor', { qos: 1 })
    await publisher.publishAsync('alerts/q', 'queued-alert', { qos: 1 })
    const again = await connect({ username: 'viewer', password: 'pw-viewer', clientId: 'viewer-stored', clean: false })
    const againGot = collect(again)
    expect(subscriptionsOf('viewer-stored')).toEqual(['alerts/#'])
    await waitFor(() => againGot.includes('alerts/q queued-alert'), 5000, 'the queued alert')
    expect(againGot).toEqual(['alerts/q queued-alert'])
    await again.endAsync()
    // allowed again: the subscription does not come back by itself
    await rewrite(spec(s => s))
    const last = await connect({ username: 'viewer', password: 'pw-viewer', clientId: 'viewer-stored', clean: false })
    const lastGot = collect(last)
    await publisher.publishAsync('sensors/x', 'not-for-viewer', { qos: 1 })
    await publisher.publishAsync('alerts/x', 'for-viewer', { qos: 1 })
    await waitFor(() => lastGot.includes('alerts/x for-viewer'), 5000, 'the alert')
    expect(lastGot).toEqual(['alerts/x for-viewer'])
    expect(got).toEqual([])
  })

  it('closes a token\'s connection when the token expires; a user\'s connection stays up', async () => {
    const expiring = await startAuthBroker(transport, { ...SPEC, tokens: [{ name: 'short', roles: ['backend'], token: 'tetra_short-lived-token-0123456789', expiresAt: Date.now() + 1500 }] })
    try {
      const tokenClient = await mqtt.connectAsync(expiring.url, { reconnectPeriod: 0, username: 'short', password: 'tetra_short-lived-token-0123456789' })
      const userClient = await mqtt.connectAsync(expiring.url, { reconnectPeriod: 0, username: 'backend', password: 'pw-backend' })
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error('the token\'s connection was not closed')) }, 10_000)
        tokenClient.once('close', () => { clearTimeout(timer); resolve() })
      })
      tokenClient.end(true)
      await userClient.publishAsync('still/up', 'yes', { qos: 1 })
      expect(userClient.connected).toBe(true)
      await userClient.endAsync()
    } finally {
      await expiring.broker.stop()
      expiring.cleanup()
    }
  })

  it('with --mqtt-deny-disconnect a denied PUBLISH closes the connection; without anonymous roles a client without credentials gets 0x05', async () => {
    const strict = await startAuthBroker(transport, { ...SPEC, anonymous: undefined }, { mqttDenyDisconnect: true })
    try {
      const device = await mqtt.connectAsync(strict.url, { reconnectPeriod: 0, username: 'sensor-1', password: 'pw-sensor' })
      await device.publishAsync('sensors/sensor-1/ok', 'fine', { qos: 1 })
      const closed = new Promise<void>(resolve => { device.once('close', () => { resolve() }) })
      device.publish('sensors/sensor-2/t', 'denied', { qos: 1 })
      await closed
      device.end(true)
      expect(await connackCode(strict.url, {})).toBe(5)
    } finally {
      await strict.broker.stop()
      strict.cleanup()
    }
  })
})
