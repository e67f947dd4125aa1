/**
 * MQTT load generator of the auth benchmarks, run in its own process: `node mqtt-load.js '<json params>'`.
 * The same load with or without credentials, on the topics of the bench auth file (authfile.ts): devices
 * publish on `sensors/<user>/...`, the backend subscribes to `sensors/+/...` (a wildcard with a deny
 * inside it). Modes:
 *  - fanin:  QoS 0, one publisher per device → one subscriber on `sensors/+/in` (bench/mqtt's fan-in)
 *  - qos1:   one device publishing QoS 1 with a window of in-flight messages → a QoS 1 subscriber that
 *            acknowledges everything; loss and duplicates counted by sequence number
 *  - steady: every device publishes at a fixed rate (odd ones QoS 1) until "stop" arrives on stdin, for
 *            the reload scenario; prints `{"event":"ready"}` once all are connected and counts every
 *            connection the broker closes
 * Prints one JSON line with the result. Every loop is bounded by a count and by `timeoutMs`.
 */
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import type { Packet } from 'mqtt-packet'
import { RawClient, afterTopicOffset, encodeAck, encodePublish, pump, settle, stampAck, type Credentials, type Endpoint } from '../mqtt/client.js'

interface Common {
  host: string
  port: number
  /** One per device; a device without credentials connects anonymously (the broker without auth file). */
  devices: Array<{ name: string, credentials?: Credentials }>
  /** The subscriber's credentials (the backend token), absent for the broker without auth file. */
  subscriber?: Credentials
  payloadBytes: number
  timeoutMs: number
}

export type AuthLoadParams = Common & (
  /**
   * fanin: with `topicsPerPublisher`, each device cycles over that many topics `sensors/<user>/t<k>/in`
   * (a multiple of `batch`) and the subscriber takes `sensors/#`: a fleet's many topics, more than the
   * per-principal decision caches hold.
   */
  | { mode: 'fanin', messagesPerPublisher: number, batch: number, topicsPerPublisher?: number }
  | { mode: 'qos1', messages: number, window: number }
  | { mode: 'steady', ratePerDevice: number }
)

export interface AuthLoadResult {
  published: number
  delivered: number
  /** Messages per second that arrived at the subscriber. */
  rate: number
  elapsedMs: number
  timedOut: boolean
  acked?: number
  duplicates?: number
  /** steady: connections the broker closed (or that failed) while the load ran. */
  disconnects?: number
  /** steady: connections in all (devices + subscriber). */
  connections?: number
}

const PREFIX = `authbench${process.pid}`

function payloadOf (bytes: number): Buffer {
  return Buffer.alloc(Math.max(bytes, 8), 'x')
}

const endpointOf = (p: Common): Endpoint => ({ kind: 'tcp', host: p.host, port: p.port })

async function connectDevices (p: Common): Promise<RawClient[]> {
  return await Promise.all(p.devices.map(async (d, i) => await RawClient.connect(endpointOf(p), `${PREFIX}-pub-${i}`, true, d.credentials)))
}

async function subscriberOf (p: Common, filter: string, qos: 0 | 1): Promise<RawClient> {
  const s = await RawClient.connect(endpointOf(p), `${PREFIX}-sub`, true, p.subscriber)
  await s.subscribe(filter, qos)
  return s
}

/**
 * Writes `count` packets cycling over `chunks` (each `batch` pre-encoded packets of different topics),
 * waiting for 'drain' when the socket buffer is full. Resolves with the number written.
 */
async function pumpCycle (client: RawClient, chunks: Buffer[], count: number, batch: number, deadline: number): Promise<number> {
  let sent = 0
  for (let i = 0; sent < count && !client.isClosed; i = (i + 1) % chunks.length) {
    const ok = client.write(chunks[i])
    sent += batch
    if (!ok) {
      await client.drained()
      if (performance.now() > deadline) break
    }
  }
  return sent
}

async function fanIn (p: Common & { messagesPerPublisher: number, batch: number, topicsPerPublisher?: number }): Promise<AuthLoadResult> {
  const topics = p.topicsPerPublisher
  if (topics !== undefined && (topics % p.batch !== 0 || p.messagesPerPublisher % p.batch !== 0)) throw new Error('topicsPerPublisher and messagesPerPublisher must be multiples of batch')
  const subscriber = await subscriberOf(p, topics === undefined ? 'sensors/+/in' : 'sensors/#', 0)
  const publishers = await connectDevices(p)
  const total = publishers.length * p.messagesPerPublisher
  let delivered = 0
  let lastAt = 0
  subscriber.onPacket = packet => {
    if (packet.cmd === 'publish') { delivered++; lastAt = performance.now() }
  }
  const payload = payloadOf(p.payloadBytes)
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const chunksOf = (name: string, n: number): Buffer[] => Array.from({ length: n / p.batch }, (_, c) =>
    Buffer.concat(Array.from({ length: p.batch }, (_, j) => encodePublish(`sensors/${name}/t${c * p.batch + j}/in`, payload))))
  const cycles = topics === undefined ? undefined : publishers.map((_, i) => chunksOf(p.devices[i].name, topics))
  const sending = Promise.all(publishers.map(async (c, i) => cycles === undefined
    ? await pump(c, encodePublish(`sensors/${p.devices[i].name}/in`, payload), p.messagesPerPublisher, p.batch, deadline)
    : await pumpCycle(c, cycles[i], p.messagesPerPublisher, p.batch, deadline)))
  const timedOut = await settle(() => delivered >= total, () => delivered, sending, deadline)
  const published = (await sending).reduce((a, b) => a + b, 0)
  for (const c of [subscriber, ...publishers]) c.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return { published, delivered, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

async function qos1 (p: Common & { messages: number, window: number }): Promise<AuthLoadResult> {
  const device = p.devices[0]
  const topic = `sensors/${device.name}/qos`
  const subscriber = await subscriberOf(p, 'sensors/+/qos', 1)
  const publisher = await RawClient.connect(endpointOf(p), `${PREFIX}-pub`, true, device.credentials)
  const seen = new Uint8Array(p.messages)
  let delivered = 0
  let duplicates = 0
  let lastAt = 0
  const puback = encodeAck('puback')
  subscriber.onPacket = (packet: Packet) => {
    if (packet.cmd !== 'publish') return
    const seq = (packet.payload as Buffer).readUInt32BE(0)
    if (seq < seen.length && seen[seq] === 0) { seen[seq] = 1; delivered++; lastAt = performance.now() } else duplicates++
    subscriber.write(stampAck(puback, packet.messageId!))
  }
  const template = encodePublish(topic, payloadOf(p.payloadBytes), 1, 1)
  const idOffset = afterTopicOffset(template, topic)
  let next = 0
  let inFlight = 0
  let acked = 0
  let blocked = false
  const start = performance.now()
  const deadline = start + p.timeoutMs
  const fill = (): void => {
    while (!blocked && inFlight < p.window && next < p.messages && !publisher.isClosed) {
      const b = Buffer.allocUnsafe(template.length)
      template.copy(b)
      b.writeUInt16BE((next % 65535) + 1, idOffset)
      b.writeUInt32BE(next, idOffset + 2)
      next++
      inFlight++
      if (!publisher.write(b)) {
        blocked = true
        void publisher.drained().then(() => { blocked = false; fill() })
      }
    }
  }
  publisher.onPacket = (packet: Packet) => {
    if (packet.cmd === 'puback') { acked++; inFlight--; fill() }
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
 * Every device publishes `ratePerDevice` msg/s (paced every 10 ms; odd devices at QoS 1) to the one
 * subscriber until "stop" on stdin or the deadline; then waits for what is still in flight.
 */
async function steady (p: Common & { ratePerDevice: number }): Promise<AuthLoadResult> {
  const subscriber = await subscriberOf(p, 'sensors/+/steady', 1)
  const devices = await connectDevices(p)
  const all = [subscriber, ...devices]
  let disconnects = 0
  for (const [i, c] of all.entries()) {
    c.onClose = () => {
      if (c.droppedByPeer) {
        disconnects++
        process.stderr.write(`steady: ${i === 0 ? 'subscriber' : p.devices[i - 1].name} disconnected by the broker\n`)
      }
    }
  }
  let delivered = 0
  let duplicates = 0
  let lastAt = 0
  const seen = new Set<number>()
  const puback = encodeAck('puback')
  subscriber.onPacket = packet => {
    if (packet.cmd !== 'publish') return
    const id = (packet.payload as Buffer).readUInt32BE(0)
    if (seen.has(id)) duplicates++
    else { seen.add(id); delivered++; lastAt = performance.now() }
    if (packet.qos === 1) subscriber.write(stampAck(puback, packet.messageId!))
  }
  let acked = 0
  const templates = devices.map((_, i) => {
    const topic = `sensors/${p.devices[i].name}/steady`
    const qos = i % 2 === 1 ? 1 : 0
    const template = encodePublish(topic, payloadOf(p.payloadBytes), qos, 1)
    return { qos, template, offset: afterTopicOffset(template, topic) }
  })
  for (const d of devices) d.onPacket = packet => { if (packet.cmd === 'puback') acked++ }

  process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n')
  const start = performance.now()
  const deadline = start + p.timeoutMs
  let stopRequested = false
  createInterface({ input: process.stdin }).on('line', line => { if (line.trim() === 'stop') stopRequested = true })
  let published = 0
  let sent = 0
  let qos1Sent = 0
  await new Promise<void>(resolve => {
    const timer = setInterval(() => {
      const now = performance.now()
      if (stopRequested || now > deadline) { clearInterval(timer); resolve(); return }
      const due = Math.floor((now - start) * p.ratePerDevice / 1000)
      for (; sent < due; sent++) {
        for (const [i, d] of devices.entries()) {
          if (d.isClosed) continue
          const t = templates[i]
          const b = Buffer.allocUnsafe(t.template.length)
          t.template.copy(b)
          let at = t.offset
          if (t.qos === 1) { b.writeUInt16BE((sent % 65535) + 1, at); at += 2; qos1Sent++ }
          // a message id unique across devices: sequence × devices + device
          b.writeUInt32BE(sent * devices.length + i, at)
          d.write(b)
          published++
        }
      }
    }, 10)
  })
  const timedOut = await settle(() => delivered >= published && acked >= qos1Sent, () => delivered + acked, Promise.resolve(), deadline + 10_000)
  for (const c of all) c.close()
  const elapsedMs = (lastAt > 0 ? lastAt : performance.now()) - start
  return { published, delivered, acked, duplicates, disconnects, connections: all.length, rate: delivered / (elapsedMs / 1000), elapsedMs, timedOut }
}

async function main (): Promise<void> {
  const params = JSON.parse(process.argv[2] ?? '') as AuthLoadParams
  setTimeout(() => {
    process.stderr.write('auth mqtt-load: hard timeout\n')
    process.exit(3)
  }, params.timeoutMs + 30_000).unref()
  let result: AuthLoadResult
  switch (params.mode) {
    case 'fanin': result = await fanIn(params); break
    case 'qos1': result = await qos1(params); break
    case 'steady': result = await steady(params); break
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`auth mqtt-load: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
