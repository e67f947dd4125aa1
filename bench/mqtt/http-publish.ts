/**
 * HTTP publish load generator, run in its own process: `node http-publish.js '<json params>'`. Drives
 * POST /v1/pubsub/publish with autocannon; when `mqttPort` is given, a raw MQTT subscriber on the
 * same broker counts what reached MQTT. Prints one JSON line with the result.
 */
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { IDLE_LIMIT_MS, RawClient } from './client.js'

export interface HttpPublishParams {
  url: string
  connections: number
  /** Requests to send in all; a fixed count (not a duration) so every answered request is counted. */
  requests: number
  /** Upper bound on the run. */
  timeoutSeconds: number
  /** Set for Tetra: subscribe over MQTT and count deliveries. */
  mqttPort?: number
}

export interface HttpPublishResult {
  /** Requests answered 2xx per second. */
  rate: number
  published: number
  errors: number
  delivered?: number
  /** autocannon records latency in whole milliseconds, so only the tail is worth showing. */
  p99Ms: number
  p999Ms: number
}

/** The part of autocannon's result this script reads (autocannon ships no typings). */
interface AutocannonResult {
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  latency: { p99: number, p99_9: number }
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: AutocannonResult) => void) => unknown

const TOPIC = `benchhttp${process.pid}/publish`

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2] ?? '') as HttpPublishParams
  setTimeout(() => {
    process.stderr.write('http-publish: hard timeout\n')
    process.exit(3)
  }, (p.timeoutSeconds + 20) * 1000).unref()
  let delivered = 0
  let subscriber: RawClient | undefined
  if (p.mqttPort !== undefined) {
    subscriber = await RawClient.connect({ kind: 'tcp', host: '127.0.0.1', port: p.mqttPort }, `benchhttp${process.pid}`)
    await subscriber.subscribe(TOPIC, 0)
    subscriber.onPacket = packet => { if (packet.cmd === 'publish') delivered++ }
  }
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
  const body = JSON.stringify({ topic: TOPIC, payload: { sensor: 'bench', value: 21.5, tags: ['a', 'b'] } })
  // autocannon's own duration is in whole seconds, too coarse for runs of a few seconds
  const started = performance.now()
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon({
      url: `${p.url}/v1/pubsub/publish`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections: p.connections,
      amount: p.requests,
      // autocannon stops at whichever comes first; a run cut short shows as published < requests
      duration: p.timeoutSeconds
    }, (err, res) => { err !== null ? reject(err) : resolve(res) })
  })
  const elapsedSeconds = (performance.now() - started) / 1000
  const published = result['2xx']
  if (subscriber !== undefined) {
    // bounded wait for the last deliveries to arrive
    let last = delivered
    let lastChange = performance.now()
    while (delivered < published && performance.now() - lastChange < IDLE_LIMIT_MS) {
      await new Promise(resolve => setTimeout(resolve, 10))
      if (delivered !== last) { last = delivered; lastChange = performance.now() }
    }
    subscriber.close()
  }
  const out: HttpPublishResult = {
    rate: published / elapsedSeconds,
    published,
    errors: result.errors + result.timeouts + result.non2xx,
    ...(subscriber !== undefined ? { delivered } : {}),
    p99Ms: result.latency.p99,
    p999Ms: result.latency.p99_9
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`http-publish: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
