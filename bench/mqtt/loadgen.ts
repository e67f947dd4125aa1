/**
 * MQTT load generator, run in its own process: `node loadgen.js '<json params>'`. Connects raw clients
 * (see client.ts), drives one scenario, counts every message at the receiver and prints one JSON line
 * with the result. Every loop is bounded by a message count and by `timeoutMs`.
 */
import { performance } from 'node:perf_hooks'
import type { Packet } from 'mqtt-packet'
import { RawClient, encodeAck, encodePublish, afterTopicOffset, pump, settle, stampAck, type Endpoint } from './client.js'
import { latencySummary } from '../lib/stats.js'

interface Common {
  endpoint: Endpoint
  payloadBytes: number
  /** Upper bound on the whole measurement; what has not arrived by then counts as lost. */
  timeoutMs: number
  /** Pre-encoded messages written per write() call (1 = one packet per write / WebSocket frame). */
  batch?: number
}

export type LoadParams = Common & (
  | { mode: 'fanin', publishers: number, messagesPerPublisher: number }
  | { mode: 'fanout', subscribers: number, messages: number }
  | { mode: 'qos', qos: 1 | 2, messages: number, window: number, session?: boolean }
  | { mode: 'latency', ratePerSecond: number, durationMs: number, warmupMs: number }
)

export interface LoadResult {
  published: number
  delivered: number
  /** Messages per second that arrived at subscribers (all subscribers together). */
  rate: number
  elapsedMs: number
  timedOut: boolean
  /** QoS scenarios: publisher acknowledgements completed, and duplicate deliveries seen. */
  acked?: number
  duplicates?: number
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
}

const PREFIX = `bench${process.pid}`
const CONNECT_PARALLELISM = 50

function payloadOf (bytes: number): Buffer {
  return Buffer.alloc(Math.max(bytes, 8), 'x')
}

async function connectMany (endpoint: Endpoint, count: number, name: string): Promise<RawClient[]> {
  const clients: RawClient[] = []
  for (let i = 0; i < count; i += CONNECT_PARALLELISM) {
    const n = Math.min(CONNECT_PARALLELISM, count - i)
    clients.push(...await Promise.all(Array.from({ length: n }, (_, k) => RawClient.connect(endpoint, `${PREFIX}-${name}-${i + k}`))))
  }
  return clients
}

async function fanIn (p: Common & { publishers: number, messagesPerPublisher: number }): Promise<LoadResult> {
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`)
  await subscriber.subscribe(`${PREFIX}/+/in`, 0)
  const publishers = await connectMany(p.endpoint, p.publishers, 'pub')
  const total = p.publishers * p.messagesPerPublisher
  let delivered = 0
  let lastAt = 0
  subscriber.onPacket = packet => {
    if (packet.cmd === 'publish') { delivered++; lastAt = performance.now() }
  }
  const payload = payloadOf(p.payloadBytes)
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sending = Promise.all(publishers.map((c, i) => pump(c, encodePublish(`${PREFIX}/${i}/in`, payload), p.messagesPerPublisher, p.batch ?? 32, deadline)))
  const timedOut = await settle(() => delivered >= total, () => delivered, sending, deadline)
  const published = (await sending).reduce((a, b) => a + b, 0)
  for (const c of [subscriber, ...publishers]) c.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return { published, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

async function fanOut (p: Common & { subscribers: number, messages: number }): Promise<LoadResult> {
  const topic = `${PREFIX}/out`
  const subscribers = await connectMany(p.endpoint, p.subscribers, 'sub')
  let delivered = 0
  let lastAt = 0
  for (const s of subscribers) {
    await s.subscribe(topic, 0)
    s.onPacket = packet => {
      if (packet.cmd === 'publish') { delivered++; lastAt = performance.now() }
    }
  }
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`)
  const total = p.messages * p.subscribers
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sending = pump(publisher, encodePublish(topic, payloadOf(p.payloadBytes)), p.messages, p.batch ?? 32, deadline)
  const timedOut = await settle(() => delivered >= total, () => delivered, sending, deadline)
  const sent = await sending
  for (const c of [publisher, ...subscribers]) c.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  // published counts deliveries owed: every message sent, once per subscriber
  return { published: sent * p.subscribers, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

/**
 * QoS 1/2 publisher keeping `window` messages in flight, and a subscriber at the same QoS that acknowledges
 * everything. Each payload carries a sequence number so the subscriber can tell loss from duplicates.
 */
async function qosFlow (p: Common & { qos: 1 | 2, messages: number, window: number, session?: boolean }): Promise<LoadResult> {
  const topic = `${PREFIX}/qos`
  // session: the subscriber has a persistent session, so the broker keeps every message for it until acked
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`, p.session !== true)
  await subscriber.subscribe(topic, p.qos)
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`)
  const seen = new Uint8Array(p.messages)
  let delivered = 0
  let duplicates = 0
  let lastAt = 0
  const puback = encodeAck('puback')
  const pubrec = encodeAck('pubrec')
  const pubrel = encodeAck('pubrel')
  const pubcomp = encodeAck('pubcomp')
  subscriber.onPacket = (packet: Packet) => {
    if (packet.cmd === 'publish') {
      const seq = (packet.payload as Buffer).readUInt32BE(0)
      if (seq < seen.length && seen[seq] === 0) { seen[seq] = 1; delivered++; lastAt = performance.now() } else duplicates++
      if (packet.qos === 1) subscriber.write(stampAck(puback, packet.messageId!))
      else if (packet.qos === 2) subscriber.write(stampAck(pubrec, packet.messageId!))
    } else if (packet.cmd === 'pubrel') subscriber.write(stampAck(pubcomp, packet.messageId!))
  }

  const template = encodePublish(topic, payloadOf(p.payloadBytes), p.qos, 1)
  const idOffset = afterTopicOffset(template, topic)
  const payloadOffset = idOffset + 2
  let next = 0
  let inFlight = 0
  let acked = 0
  let blocked = false
  const start = performance.now()
  const deadline = start + p.timeoutMs
  // sends until the window is full, the buffer is full, or every message is out
  const fill = (): void => {
    while (!blocked && inFlight < p.window && next < p.messages && !publisher.isClosed) {
      const b = Buffer.allocUnsafe(template.length)
      template.copy(b)
      b.writeUInt16BE((next % 65535) + 1, idOffset)
      b.writeUInt32BE(next, payloadOffset)
      next++
      inFlight++
      if (!publisher.write(b)) {
        blocked = true
        void publisher.drained().then(() => { blocked = false; fill() })
      }
    }
  }
  publisher.onPacket = (packet: Packet) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') { acked++; inFlight--; fill() } else if (packet.cmd === 'pubrec') publisher.write(stampAck(pubrel, packet.messageId!))
  }
  fill()
  const allSent = new Promise<void>(resolve => {
    const check = (): void => { if (next >= p.messages || performance.now() > deadline || publisher.isClosed) resolve(); else setTimeout(check, 5) }
    check()
  })
  const timedOut = await settle(() => delivered >= p.messages && acked >= p.messages, () => delivered + acked, allSent, deadline)
  publisher.close()
  subscriber.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return { published: next, delivered, acked, duplicates, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

/**
 * One publisher at a fixed rate (paced every millisecond, catching up on timer drift), one subscriber;
 * each payload carries the send time, so latency is measured on one clock. Samples from the warm-up
 * period are not recorded.
 */
async function latency (p: Common & { ratePerSecond: number, durationMs: number, warmupMs: number }): Promise<LoadResult> {
  const topic = `${PREFIX}/lat`
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`)
  await subscriber.subscribe(topic, 0)
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`)
  const totalMs = p.warmupMs + p.durationMs
  const total = Math.floor(p.ratePerSecond * totalMs / 1000)
  const warmupCount = Math.floor(p.ratePerSecond * p.warmupMs / 1000)
  const samples = new Float64Array(total)
  let delivered = 0
  let recorded = 0
  let lastAt = 0
  subscriber.onPacket = packet => {
    if (packet.cmd !== 'publish') return
    const now = performance.now()
    const payload = packet.payload as Buffer
    const seq = payload.readUInt32BE(0)
    delivered++
    lastAt = now
    if (seq >= warmupCount && recorded < samples.length) samples[recorded++] = now - payload.readDoubleBE(4)
  }
  const template = encodePublish(topic, payloadOf(Math.max(p.payloadBytes, 12)))
  const payloadOffset = afterTopicOffset(template, topic)
  let sent = 0
  let skippedTicks = 0
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sending = new Promise<void>(resolve => {
    const timer = setInterval(() => {
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - start) * p.ratePerSecond / 1000))
      if (sent >= total || now > deadline || publisher.isClosed) { clearInterval(timer); resolve(); return }
      if (publisher.stream.writableNeedDrain) { skippedTicks++; return } // backpressure: wait for the next tick
      publisher.stream.cork()
      while (sent < due) {
        const b = Buffer.allocUnsafe(template.length)
        template.copy(b)
        b.writeUInt32BE(sent, payloadOffset)
        b.writeDoubleBE(performance.now(), payloadOffset + 4)
        sent++
        if (!publisher.write(b)) break
      }
      publisher.stream.uncork()
    }, 1)
  })
  const timedOut = await settle(() => sent >= total && delivered >= total, () => delivered, sending, deadline)
  await sending
  publisher.close()
  subscriber.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  const lat = latencySummary(Array.from(samples.subarray(0, recorded)))
  if (skippedTicks > 0) process.stderr.write(`latency: ${skippedTicks} ticks waited for drain\n`)
  return { published: sent, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut, ...lat }
}

async function main (): Promise<void> {
  const params = JSON.parse(process.argv[2] ?? '') as LoadParams
  // a hard stop in case something below does not honour its own deadline
  setTimeout(() => {
    process.stderr.write('loadgen: hard timeout\n')
    process.exit(3)
  }, params.timeoutMs + 30_000).unref()
  let result: LoadResult
  switch (params.mode) {
    case 'fanin': result = await fanIn(params); break
    case 'fanout': result = await fanOut(params); break
    case 'qos': result = await qosFlow(params); break
    case 'latency': result = await latency(params); break
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
