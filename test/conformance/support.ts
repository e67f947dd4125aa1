import { afterAll, beforeAll } from 'vitest'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import type { Config } from '../../src/config.js'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { RawClient, type Version } from './raw-client.js'

/**
 * What every conformance file shares: one broker per file (started in beforeAll, stopped in afterAll),
 * MQTT.js and raw clients that are all closed after the file, and message collectors that wait with a
 * bound instead of sleeping.
 */

export interface Received { topic: string, payload: Buffer, packet: IPublishPacket }

export interface Suite {
  readonly broker: TestBroker
  readonly port: number
  /** An MQTT.js client over TCP (reconnect off), closed after the file. */
  client: (options?: IClientOptions) => Promise<MqttClient>
  /** A raw client after CONNECT/CONNACK (defaults: clean, keep alive 0, empty client id for v4 unless given). */
  raw: (version: Version, connect?: Parameters<typeof RawClient.connect>[2]) => Promise<RawClient>
  /** A raw socket with nothing sent yet. */
  rawOpen: (version: Version) => Promise<RawClient>
}

export function useBroker (overrides: Partial<Config> = {}): Suite {
  let broker: TestBroker | undefined
  const clients: MqttClient[] = []
  const raws: RawClient[] = []
  beforeAll(async () => { broker = await startTestBroker({ mqttConnectRate: 0, ...overrides }) })
  afterAll(async () => {
    for (const r of raws) r.destroy()
    await Promise.all(clients.map(async c => { await c.endAsync(true) }))
    await broker?.stop()
  })
  const suite: Suite = {
    get broker () { return broker! },
    get port () { return broker!.mqtt.port },
    client: async (options = {}) => {
      const c = await mqtt.connectAsync(broker!.mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
      clients.push(c)
      return c
    },
    raw: async (version, connect = {}) => {
      const { client, connack } = await RawClient.connect(broker!.mqtt.port, version, { clientId: `raw${Math.random().toString(36).slice(2, 12)}`, ...connect })
      raws.push(client)
      const code = version === 5 ? connack.reasonCode : connack.returnCode
      if (code !== 0) throw new Error(`CONNACK ${String(code)}`)
      return client
    },
    rawOpen: async version => {
      const r = await RawClient.open(broker!.mqtt.port, version)
      raws.push(r)
      return r
    }
  }
  return suite
}

/** Collects every message a client receives, with its packet. */
export function collect (client: MqttClient): Received[] {
  const got: Received[] = []
  client.on('message', (topic, payload, packet) => { got.push({ topic, payload, packet }) })
  return got
}

/** Waits (bounded) until a message on `topic` arrived; returns everything received before it, marker excluded. */
export async function untilMarker (got: Received[], topic: string, timeoutMs = 5000): Promise<Received[]> {
  await waitFor(() => got.some(m => m.topic === topic), timeoutMs, `the marker message on ${topic}`)
  const at = got.findIndex(m => m.topic === topic)
  return got.slice(0, at)
}

/** Waits (bounded) until at least n messages arrived. */
export async function atLeast (got: Received[], n: number, timeoutMs = 5000): Promise<Received[]> {
  await waitFor(() => got.length >= n, timeoutMs, `${n} messages (got ${got.length})`)
  return got
}

/** Resolves when the client's connection closes; rejects after the bound. */
export async function closeOf (client: MqttClient, timeoutMs = 5000): Promise<void> {
  if (!client.connected && client.disconnected) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('the connection stayed open')) }, timeoutMs)
    client.once('close', () => { clearTimeout(timer); resolve() })
  })
}

let n = 0
/** A topic (or client id) prefix of its own for each test. */
export function fresh (prefix: string): string {
  n++
  return `${prefix}${n}x${Math.random().toString(36).slice(2, 8)}`
}
