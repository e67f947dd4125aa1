/**
 * MQTT load generator, run in its own process: `node loadgen.js '<json params>'`. Connects raw clients
 * (see client.ts), drives one scenario, counts every message at the receiver and prints one JSON line
 * with the result. Every loop is bounded by a message count and by `timeoutMs`.
 */
import { performance } from 'node:perf_hooks'
import type { Packet } from 'mqtt-packet'
import { RawClient, encodeAck, encodePublish, afterTopicOffset, payloadOffset, pump, settle, stampAck, type Endpoint, type ProtocolVersion } from './client.js'
import { latencySummary } from '../lib/stats.js'
import { rssMb } from '../lib/process.js'

interface Common {
  endpoint: Endpoint
  payloadBytes: number
  /** Upper bound on the whole measurement; what has not arrived by then counts as lost. */
  timeoutMs: number
  /** Pre-encoded messages written per write() call (1 = one packet per write / WebSocket frame). */
  batch?: number
  /** MQTT protocol level of every client (4 = 3.1.1, the default; 5 = 5.0). */
  protocolVersion?: ProtocolVersion
}

export type LoadParams = Common & (
  | { mode: 'fanin', publishers: number, messagesPerPublisher: number }
  | { mode: 'fanout', subscribers: number, messages: number }
  | { mode: 'qos', qos: 1 | 2, messages: number, window: number, session?: boolean }
  | { mode: 'latency', ratePerSecond: number, durationMs: number, warmupMs: number }
  | { mode: 'idle', connections: number, parallelism: number, holdMs: number, brokerPid?: number }
  | { mode: 'subscribe', clients: number, filtersPerClient: number }
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
  /** idle: the broker's resident set with every connection open, and connections it closed during the hold. */
  brokerRssMb?: number
  dropped?: number
  /** Connections that were refused or timed out, with the first error. */
  failed?: number
  firstError?: string
}

const PREFIX = `bench${process.pid}`
const CONNECT_PARALLELISM = 50

function payloadOf (bytes: number): Buffer {
  return Buffer.alloc(Math.max(bytes, 8), 'x')
}

function versionOf (p: Common): ProtocolVersion {
  return p.protocolVersion ?? 4
}

/**
 * Connects `count` clients, at most `parallelism` handshakes at a time (a new one starts as one completes);
 * stops starting new ones at the deadline. Failures are counted, not thrown, unless `strict`.
 */
async function connectMany (p: Common, count: number, name: string, options: { parallelism?: number, strict?: boolean, deadline?: number } = {}): Promise<{ clients: RawClient[], failed: number, firstError?: string }> {
  const clients: RawClient[] = new Array<RawClient>(count)
  let next = 0
  let failed = 0
  let firstError: string | undefined
  const deadline = options.deadline ?? Infinity
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      const i = next++
      try {
        clients[i] = await RawClient.connect(p.endpoint, `${PREFIX}-${name}-${i}`, true, undefined, versionOf(p))
      } catch (err) {
        if (options.strict !== false) throw err
        failed++
        firstError ??= (err as Error).message
      }
    }
  }
  const workers = Math.min(count, options.parallelism ?? CONNECT_PARALLELISM)
  try {
    await Promise.all(Array.from({ length: workers }, worker))
  } catch (err) {
    for (const c of clients) c?.close()
    throw err
  }
  return { clients: clients.filter(c => c !== undefined), failed, firstError }
}

async function fanIn (p: Common & { publishers: number, messagesPerPublisher: number }): Promise<LoadResult> {
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`, true, undefined, versionOf(p))
  await subscriber.subscribe(`${PREFIX}/+/in`, 0)
  const { clients: publishers } = await connectMany(p, p.publishers, 'pub')
  const total = p.publishers * p.messagesPerPublisher
  let delivered = 0
  let lastAt = 0
  subscriber.onPacket = packet => {
    if (packet.cmd === 'publish') { delivered++; lastAt = performance.now() }
  }
  const payload = payloadOf(p.payloadBytes)
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sending = Promise.all(publishers.map((c, i) => pump(c, encodePublish(`${PREFIX}/${i}/in`, payload, 0, undefined, versionOf(p)), p.messagesPerPublisher, p.batch ?? 32, deadline)))
  const timedOut = await settle(() => delivered >= total, () => delivered, sending, deadline)
  const published = (await sending).reduce((a, b) => a + b, 0)
  for (const c of [subscriber, ...publishers]) c.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return { published, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

async function fanOut (p: Common & { subscribers: number, messages: number }): Promise<LoadResult> {
  const topic = `${PREFIX}/out`
  const { clients: subscribers } = await connectMany(p, p.subscribers, 'sub')
  let delivered = 0
  let lastAt = 0
  for (const s of subscribers) {
    await s.subscribe(topic, 0)
    s.onPacket = packet => {
      if (packet.cmd === 'publish') { delivered++; lastAt = performance.now() }
    }
  }
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`, true, undefined, versionOf(p))
  const total = p.messages * p.subscribers
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const sending = pump(publisher, encodePublish(topic, payloadOf(p.payloadBytes), 0, undefined, versionOf(p)), p.messages, p.batch ?? 32, deadline)
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
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`, p.session !== true, undefined, versionOf(p))
  await subscriber.subscribe(topic, p.qos)
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`, true, undefined, versionOf(p))
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

  const payload = payloadOf(p.payloadBytes)
  const template = encodePublish(topic, payload, p.qos, 1, versionOf(p))
  const idOffset = afterTopicOffset(template, topic)
  const seqOffset = payloadOffset(template, payload)
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
      b.writeUInt32BE(next, seqOffset)
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
  const subscriber = await RawClient.connect(p.endpoint, `${PREFIX}-sub`, true, undefined, versionOf(p))
  await subscriber.subscribe(topic, 0)
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`, true, undefined, versionOf(p))
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
  const payload = payloadOf(Math.max(p.payloadBytes, 12))
  const template = encodePublish(topic, payload, 0, undefined, versionOf(p))
  const stampOffset = payloadOffset(template, payload)
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
        b.writeUInt32BE(sent, stampOffset)
        b.writeDoubleBE(performance.now(), stampOffset + 4)
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

/**
 * `connections` idle clients (clean session, keep alive 0, nothing subscribed), at most `parallelism`
 * handshakes at a time: how long until all are connected (the rate is connections per second), then, with
 * all of them still open after `holdMs`, the broker's resident set and how many it closed meanwhile.
 */
async function idle (p: Common & { connections: number, parallelism: number, holdMs: number, brokerPid?: number }): Promise<LoadResult> {
  const start = performance.now()
  const { clients, failed, firstError } = await connectMany(p, p.connections, 'idle', { parallelism: p.parallelism, strict: false, deadline: start + p.timeoutMs })
  const elapsedMs = performance.now() - start
  await new Promise(resolve => setTimeout(resolve, p.holdMs))
  const brokerRss = p.brokerPid === undefined ? undefined : rssMb(p.brokerPid)
  const dropped = clients.filter(c => c.droppedByPeer).length
  for (const c of clients) c.close()
  return {
    published: p.connections,
    delivered: clients.length,
    rate: clients.length / (elapsedMs / 1000),
    elapsedMs,
    timedOut: clients.length + failed < p.connections,
    dropped,
    failed,
    ...(firstError === undefined ? {} : { firstError }),
    ...(brokerRss === undefined ? {} : { brokerRssMb: brokerRss })
  }
}

/**
 * `clients` connected clients (connected before the clock starts) each send one SUBSCRIBE of
 * `filtersPerClient` filters at once, as a fleet does when it reconnects: 8 exact topics of its own, one with
 * a `+` wildcard and one `#` filter shared by all. As each SUBACK arrives, a publisher (in this process, on
 * one clock) publishes to a topic that client's `+` filter matches. Per client, the time from writing its
 * SUBSCRIBE to its first delivery; p50/p99 of those, and the rate is subscriptions per second until the
 * last client has its first message.
 */
async function subscribe (p: Common & { clients: number, filtersPerClient: number }): Promise<LoadResult> {
  const { clients } = await connectMany(p, p.clients, 'sub')
  const publisher = await RawClient.connect(p.endpoint, `${PREFIX}-pub`, true, undefined, versionOf(p))
  const exact = Math.max(0, p.filtersPerClient - 2)
  const filtersOf = (i: number): string[] => [
    ...Array.from({ length: exact }, (_, k) => `${PREFIX}/dev/${i}/cmd/${k}`),
    `${PREFIX}/dev/${i}/+/set`,
    `${PREFIX}/all/#`
  ].slice(0, p.filtersPerClient)
  const probes = clients.map((_, i) => encodePublish(`${PREFIX}/dev/${i}/probe/set`, payloadOf(p.payloadBytes), 0, undefined, versionOf(p)))
  const sentAt = new Float64Array(clients.length)
  const firstAt = new Float64Array(clients.length)
  let delivered = 0
  let subscribed = 0
  let failed = 0
  let firstError: string | undefined
  let lastAt = 0
  clients.forEach((c, i) => {
    c.onPacket = packet => {
      if (packet.cmd !== 'publish' || firstAt[i] !== 0) return
      firstAt[i] = lastAt = performance.now()
      delivered++
    }
  })
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const subscribing = Promise.all(clients.map(async (c, i) => {
    sentAt[i] = performance.now()
    try {
      await c.subscribeMany(filtersOf(i), 0)
      subscribed++
      publisher.write(probes[i])
    } catch (err) {
      failed++
      firstError ??= (err as Error).message
    }
  }))
  const timedOut = await settle(() => delivered >= clients.length, () => delivered + subscribed, subscribing, deadline)
  await subscribing
  for (const c of [publisher, ...clients]) c.close()
  const times: number[] = []
  for (let i = 0; i < clients.length; i++) if (firstAt[i] !== 0) times.push(firstAt[i] - sentAt[i])
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return {
    published: clients.length,
    delivered,
    rate: (delivered * p.filtersPerClient) / (elapsedMs / 1000),
    elapsedMs,
    timedOut,
    failed,
    ...(firstError === undefined ? {} : { firstError }),
    ...latencySummary(times)
  }
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
    case 'idle': result = await idle(params); break
    case 'subscribe': result = await subscribe(params); break
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
