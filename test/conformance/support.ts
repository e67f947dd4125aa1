import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
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
  /** A raw client after a successful CONNECT/CONNACK (defaults: clean, keep alive 0, a random client id). */
  raw: (version: Version, connect?: Parameters<typeof RawClient.connect>[2]) => Promise<RawClient>
  /** A raw socket with nothing sent yet. */
  rawOpen: (version: Version) => Promise<RawClient>
}

export function useBroker (overrides: Partial<Config> = {}): Suite {
  let broker: TestBroker | undefined
  const clients: MqttClient[] = []
  const raws: RawClient[] = []
  beforeAll(async () => { broker = await startTestBroker({ mqttConnectRate: 0, ...overrides }) })
  // every packet the server sent in a test parsed (its format, [MQTT-2.2.2-1] property lengths...)
  let checked = 0
  afterEach(() => {
    const added = raws.slice(checked)
    checked = raws.length
    for (const r of added) expect(r.parseError, 'a packet from the server that mqtt-packet could not parse').toBeUndefined()
  })
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

let n = 0
/** A topic (or client id) prefix of its own for each test. */
export function fresh (prefix: string): string {
  n++
  return `${prefix}${n}x${Math.random().toString(36).slice(2, 8)}`
}

/** The DISCONNECT reason codes of MQTT 5.0 §3.14.2.1. */
export const DISCONNECT_CODES = [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]

/**
 * Sends the bytes on a fresh v5 connection and waits for the close: no CONNACK accepted it (a refusing one,
 * if sent, carries one of `allowed`), and no DISCONNECT came before a successful CONNACK [MQTT-3.14.0-1].
 */
export async function refusedConnect (suite: Suite, bytes: Buffer, allowed: number[] = [0x80, 0x81, 0x82]): Promise<RawClient> {
  const c = await suite.rawOpen(5)
  c.sendBytes(bytes)
  await c.awaitClose()
  const acks = c.received.filter((p): p is IConnackPacket => p.cmd === 'connack')
  expect(acks.length).toBeLessThanOrEqual(1)
  for (const a of acks) expect(allowed, `CONNACK 0x${(a.reasonCode ?? 0).toString(16)}`).toContain(a.reasonCode)
  expect(c.received.filter(p => p.cmd === 'disconnect')).toEqual([])
  return c
}

/**
 * After a malformed packet or protocol error on an open v5 connection: the connection is closed
 * [MQTT-4.13.1-1], and a DISCONNECT, if sent, carries one of `codes`, a DISCONNECT reason code
 * [MQTT-3.14.2-1] and no Session Expiry Interval [MQTT-3.14.2-2].
 */
export async function closedWith (c: RawClient, codes: number[], timeoutMs?: number): Promise<void> {
  await c.awaitClose(timeoutMs)
  for (const d of c.received.filter((p): p is IDisconnectPacket => p.cmd === 'disconnect')) {
    expect(codes, `DISCONNECT 0x${(d.reasonCode ?? 0).toString(16)}`).toContain(d.reasonCode ?? 0)
    expect(DISCONNECT_CODES).toContain(d.reasonCode ?? 0)
    expect(d.properties?.sessionExpiryInterval).toBeUndefined()
  }
}
