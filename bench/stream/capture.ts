/**
 * Capture load generator, run in its own process: `node capture.js '<json params>'`. Creates a stream
 * capturing `sensors/#`, then drives the fan-in shape of the MQTT benchmark (publishers -> one
 * subscriber of `sensors/+/in`, QoS 0, raw pre-encoded publishes) and counts what the stream captured;
 * then publishes QoS 1 messages with MQTT.js and checks every one of them was captured.
 */
import { performance } from 'node:perf_hooks'
import mqtt from 'mqtt'
import { RawClient, encodePublish, pump, type Endpoint } from '../mqtt/client.js'
import { httpCall, makeAgent } from './http.js'

export interface CaptureParams { base: string, endpoint: Endpoint, mqttUrl: string, publishers: number, messagesPerPublisher: number, payloadBytes: number, qos1Messages: number, timeoutMs: number }

export interface CaptureResult {
  published: number
  /** Messages the subscriber of the fan-in received (the plain MQTT path, for comparison). */
  deliveredToSubscriber: number
  /** The subscriber's receive rate over the same run (msg/s). */
  subscriberRate: number
  captured: number
  /** Captured messages per second, from the first publish to the last captured one. */
  rate: number
  elapsedMs: number
  dropped: number
  qos1Published: number
  qos1Captured: number
}

const agent = makeAgent(1)

async function streamCount (base: string): Promise<number> {
  const res = await httpCall(agent, base, 'GET', '/v1/streams/telemetry')
  return (JSON.parse(res.body.toString()) as { count: number }).count
}

async function droppedCount (base: string): Promise<number> {
  const res = await httpCall(agent, base, 'GET', '/metrics')
  const m = /^tetra_stream_capture_dropped_total (\d+)/m.exec(res.body.toString())
  return m === null ? 0 : Number(m[1])
}

/** Polls the captured count until it reaches target or stops moving for idleMs. */
async function settleCount (base: string, target: number, idleMs: number, deadline: number): Promise<{ count: number, lastChangeAt: number }> {
  let count = await streamCount(base)
  let lastChangeAt = performance.now()
  while (count < target && performance.now() < deadline && performance.now() - lastChangeAt < idleMs) {
    await new Promise(resolve => setTimeout(resolve, 5))
    const c = await streamCount(base)
    if (c !== count) { count = c; lastChangeAt = performance.now() }
  }
  return { count, lastChangeAt }
}

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2]) as CaptureParams
  const put = await httpCall(agent, p.base, 'PUT', '/v1/streams/telemetry', JSON.stringify({ capture: ['sensors/#'] }))
  if (put.status !== 201) throw new Error(`PUT stream: ${put.status} ${put.body.toString()}`)
  const subscriber = await RawClient.connect(p.endpoint, 'capture-sub')
  await subscriber.subscribe('sensors/+/in', 0)
  let deliveredToSubscriber = 0
  let subscriberLastAt = 0
  subscriber.onPacket = packet => {
    if (packet.cmd === 'publish') { deliveredToSubscriber++; subscriberLastAt = performance.now() }
  }
  const publishers = await Promise.all(Array.from({ length: p.publishers }, async (_, i) => await RawClient.connect(p.endpoint, `capture-pub-${i}`)))
  const payload = Buffer.alloc(p.payloadBytes, 'x')
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sent = await Promise.all(publishers.map(async (c, i) => await pump(c, encodePublish(`sensors/${i}/in`, payload), p.messagesPerPublisher, 32)))
  const published = sent.reduce((a, b) => a + b, 0)
  const { count: captured, lastChangeAt } = await settleCount(p.base, published, 2000, deadline)
  const elapsedMs = lastChangeAt - start
  for (const c of [subscriber, ...publishers]) c.close()
  const dropped = await droppedCount(p.base)

  // QoS 1: every acknowledged publish must be captured
  const client = await mqtt.connectAsync(p.mqttUrl, { clientId: 'capture-qos1' })
  let qos1Published = 0
  const window = 100
  const inFlight = new Set<Promise<unknown>>()
  for (let i = 0; i < p.qos1Messages; i++) {
    const done: Promise<unknown> = client.publishAsync(`sensors/q1/${i % 10}`, payload, { qos: 1 }).then(() => { qos1Published++ }).finally(() => inFlight.delete(done))
    inFlight.add(done)
    if (inFlight.size >= window) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  await client.endAsync()
  const { count: total } = await settleCount(p.base, captured + qos1Published, 3000, performance.now() + p.timeoutMs)
  const result: CaptureResult = {
    published,
    deliveredToSubscriber,
    subscriberRate: deliveredToSubscriber / ((subscriberLastAt - start) / 1000),
    captured,
    rate: captured / (elapsedMs / 1000),
    elapsedMs,
    dropped,
    qos1Published,
    qos1Captured: total - captured
  }
  agent.destroy()
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

void main()
