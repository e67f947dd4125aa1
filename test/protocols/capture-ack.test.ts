import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'

/**
 * The order of a capture's write and the publisher's acknowledgement, made visible: every storage write
 * is held back for a while, and each acknowledgement (MQTT QoS 1 PUBACK, QoS 2 handshake, the answer to
 * an HTTP publish with qos 1) must come only after the capturing queue's and stream's writes are done,
 * and after a retained message or a message queued for a persistent session is stored. QoS 0 publishes
 * are not held up by their capture.
 */
let broker: TestBroker
/** Writes requested and not yet durable. */
let unfinished = 0
/** Every write requested: its ops as partition:kind:type, and whether it is durable yet. */
const writes: Array<{ ops: string[], finished: boolean }> = []
const HOLD_MS = 200

beforeAll(async () => {
  // no $SYS statistics: their retained writes would count as writes under way
  broker = await startTestBroker({ mqttSysIntervalMs: 0 })
  const storage = broker.engines.storage
  const write = storage.write.bind(storage)
  storage.write = async ops => {
    const record = { ops: ops.map(op => `${op.partition.name}:${String.fromCharCode(op.key[0])}:${op.type}`), finished: false }
    writes.push(record)
    unfinished++
    try {
      await write(ops)
      await new Promise(resolve => setTimeout(resolve, HOLD_MS))
    } finally {
      unfinished--
      record.finished = true
    }
  }
  for (const what of ['queues', 'streams']) {
    const res = await fetch(`${broker.url}/v1/${what}/held`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ capture: ['held/#'] }) })
    expect(res.status).toBe(201)
  }
  await broker.engines.streams.get('held').captureReady
})

afterAll(async () => { await broker.stop() })

const count = async (): Promise<{ queued: number, streamed: number }> => ({
  queued: broker.engines.queues.info('held').stats.ready,
  streamed: (await (await fetch(`${broker.url}/v1/streams/held`)).json() as { count: number }).count
})

describe('capture and the publisher\'s acknowledgement', () => {
  it('MQTT QoS 1 and QoS 2: acknowledged only once the captures are durable', async () => {
    const client = await mqtt.connectAsync(broker.mqttUrl)
    try {
      for (const qos of [1, 2] as const) {
        const before = await count()
        await client.publishAsync(`held/mqtt/${qos}`, `q${qos}`, { qos })
        expect(unfinished).toBe(0)
        expect(await count()).toEqual({ queued: before.queued + 1, streamed: before.streamed + 1 })
      }
    } finally {
      await client.endAsync()
    }
  })

  it('MQTT QoS 1 and 2: a retained message and a message queued for an offline persistent session are durable before the acknowledgement', async () => {
    const device = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'held-device', clean: false })
    await device.subscribeAsync('kept/#', { qos: 1 })
    await device.endAsync()
    const client = await mqtt.connectAsync(broker.mqttUrl)
    try {
      for (const qos of [1, 2] as const) {
        await client.publishAsync(`kept/state/${qos}`, `on${qos}`, { qos, retain: true })
        expect(unfinished).toBe(0)
      }
    } finally {
      await client.endAsync()
    }
    const back = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'held-device', clean: false })
    const got: string[] = []
    back.on('message', (_topic, payload) => { got.push(payload.toString()) })
    await waitFor(() => got.length >= 2, 5000, 'the queued messages')
    expect(got.sort()).toEqual(['on1', 'on2'])
    await back.endAsync()
  })

  it('MQTT QoS 1: a message for a shared group with a persistent-session member is stored before the PUBACK', async () => {
    const member = await mqtt.connectAsync(broker.mqttUrl, { clientId: 'held-worker', clean: false })
    const got: string[] = []
    member.on('message', (_topic, payload) => { got.push(payload.toString()) })
    await member.subscribeAsync('$share/held/shared/jobs', { qos: 1 })
    const client = await mqtt.connectAsync(broker.mqttUrl)
    try {
      const from = writes.length
      await client.publishAsync('shared/jobs', 'job-1', { qos: 1 })
      // the copy queued for the member's session (an outgoing record) is durable; the member's own PUBACK
      // may already be removing it, which the publisher's PUBACK does not wait for
      const queued = writes.slice(from).filter(w => w.ops.includes('mqtt:o:put'))
      expect(queued).toHaveLength(1)
      expect(queued[0].finished).toBe(true)
      await waitFor(() => got.length === 1, 5000, 'the job')
    } finally {
      await client.endAsync()
      await member.endAsync()
    }
  })

  it('HTTP publish with qos 1: answered only once the captures are durable; qos 0 is not held up', async () => {
    const publish = async (qos: number): Promise<number> => (await fetch(`${broker.url}/v1/pubsub/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: `held/http/${qos}`, payload: 'x', encoding: 'utf8', qos })
    })).status
    expect(await publish(1)).toBe(200)
    expect(unfinished).toBe(0)
    expect(await publish(0)).toBe(200)
    // answered while the capture's writes are still held back
    expect(unfinished).toBeGreaterThan(0)
  })
})
