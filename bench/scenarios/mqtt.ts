import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { BenchContext, Scenario } from '../lib/types.js'
import { ROOT, peakRssMb, rssMb, runNodeScript } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { HttpPublishParams, HttpPublishResult } from '../mqtt/http-publish.js'
import { GROUP, compare, endpointOf, load, medianOf, type Sample } from '../mqtt/compare.js'
import { startTetraTarget } from '../mqtt/targets.js'

/**
 * MQTT and HTTP-publish benchmarks of the spine. Every scenario starts Tetra (the built dist/), a plain
 * aedes broker and, when installed, Mosquitto and nats-server, each in its own process; load generators run
 * in another process (see ../mqtt/compare.ts for how rounds interleave and ratios are taken). The `mqtt5-*`
 * scenarios repeat the QoS 0 and QoS 1 ones with MQTT 5 clients, Tetra measured with 3.1.1 clients in the
 * same rounds, so the ratio `tetra (3.1.1)` is what MQTT 5 costs.
 */

const HTTP_LOADGEN = (): string => join(ROOT, 'dist/bench/mqtt/http-publish.js')

/**
 * Rounds per scenario. With four brokers and five MQTT 5 scenarios, 3 rounds keep the whole group near ten
 * minutes on a quiet 2-core machine; a median of 3 interleaved rounds still drops one outlier.
 */
function roundsFor (ctx: BenchContext): number {
  return ctx.quick ? 2 : 3
}

const PAYLOAD_BYTES = 64

/** MQTT 5 variants are named `mqtt5-...` and labelled "(MQTT 5)"; their clients use protocol level 5. */
function v5Name (name: string, version: 4 | 5): string {
  return version === 5 ? name.replace(/^mqtt-/, 'mqtt5-') : name
}

function v5Label (scenario: string, version: 4 | 5): string {
  return version === 5 ? `${scenario} (MQTT 5)` : scenario
}

/** The bars for QoS 0 throughput: at least half of nats-server; with MQTT 5, at most 5% below 3.1.1. */
function qos0Bars (version: 4 | 5): Record<string, number> {
  return version === 5 ? { 'tetra (3.1.1)': 0.95 } : { 'nats-server': 0.5 }
}

function fanInScenario (name: string, transport: 'tcp' | 'ws', version: 4 | 5 = 4): Scenario {
  return {
    name: v5Name(name, version),
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: v5Label(transport === 'tcp' ? 'qos0 fan-in 10->1 (wildcard)' : 'qos0 fan-in 10->1 over WebSocket', version),
      unit: 'msg/s',
      transport,
      rounds: roundsFor(ctx),
      protocolVersion: version,
      bars: transport === 'tcp' ? qos0Bars(version) : {},
      measure: async (t, protocolVersion) => load({
        mode: 'fanin',
        endpoint: endpointOf(t, transport),
        protocolVersion,
        publishers: 10,
        // one packet per frame makes WebSocket rounds slower; fewer messages keep them as short as TCP's
        messagesPerPublisher: transport === 'ws' ? (ctx.quick ? 5_000 : 10_000) : (ctx.quick ? 10_000 : 30_000),
        payloadBytes: PAYLOAD_BYTES,
        // MQTT.js and browsers send one packet per WebSocket frame; over TCP the writes are batched
        batch: transport === 'ws' ? 1 : 32,
        timeoutMs: 30_000
      })
    })
  }
}

function fanOutScenario (subscribers: number, version: 4 | 5 = 4): Scenario {
  const deliveries = (quick: boolean): number => quick ? 100_000 : 300_000
  return {
    name: v5Name(`mqtt-fanout-${subscribers}`, version),
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: v5Label(`qos0 fan-out 1->${subscribers}`, version),
      unit: 'deliveries/s',
      transport: 'tcp',
      rounds: roundsFor(ctx),
      protocolVersion: version,
      bars: qos0Bars(version),
      measure: async (t, protocolVersion) => load({
        mode: 'fanout',
        endpoint: endpointOf(t, 'tcp'),
        protocolVersion,
        subscribers,
        messages: Math.ceil(deliveries(ctx.quick) / subscribers),
        payloadBytes: PAYLOAD_BYTES,
        batch: 8,
        timeoutMs: 30_000
      })
    })
  }
}

function qosScenario (qos: 1 | 2, session = false, version: 4 | 5 = 4): Scenario {
  return {
    name: v5Name(`mqtt-qos${qos}${session ? '-session' : ''}`, version),
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: v5Label(`qos${qos} 1->1, window 1000${session ? ', subscriber with a persistent session' : ''}`, version),
      unit: 'msg/s',
      transport: 'tcp',
      rounds: roundsFor(ctx),
      lossless: true,
      protocolVersion: version,
      needsQos2: qos === 2,
      bars: version === 5 ? { 'tetra (3.1.1)': 0.95 } : {},
      measure: async (t, protocolVersion) => load({
        mode: 'qos',
        endpoint: endpointOf(t, 'tcp'),
        protocolVersion,
        qos,
        session,
        messages: ctx.quick ? 20_000 : 50_000,
        window: 1000,
        payloadBytes: PAYLOAD_BYTES,
        timeoutMs: 30_000
      })
    })
  }
}

const latencyScenario: Scenario = {
  name: 'mqtt-latency',
  group: GROUP,
  run: async ctx => compare(ctx, {
    scenario: 'qos0 latency at 10k msg/s',
    unit: 'msg/s',
    transport: 'tcp',
    rounds: roundsFor(ctx),
    // a ratio above 1 means Tetra's p99 is lower than the baseline's; the bar: p99 <= Mosquitto's
    score: { label: 'p99', of: s => 1 / (s.p99Ms ?? NaN) },
    bars: { mosquitto: 1 },
    withFloor: true,
    measure: async (t, protocolVersion) => load({
      mode: 'latency',
      endpoint: endpointOf(t, 'tcp'),
      protocolVersion,
      ratePerSecond: 10_000,
      durationMs: ctx.quick ? 1500 : 3000,
      warmupMs: 500,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 20_000
    })
  })
}

const IDLE_CONNECTIONS = 10_000

/**
 * 10k idle connections: time until all are connected (the rate is connections per second) and the broker's
 * resident set with all of them open. Bars: all within 10 s, RSS under 500 MB.
 */
const idleScenario: Scenario = {
  name: 'mqtt-idle-10k',
  group: GROUP,
  run: async ctx => compare(ctx, {
    scenario: `${IDLE_CONNECTIONS / 1000}k idle connections`,
    unit: 'conn/s',
    transport: 'tcp',
    // each round opens 10k sockets per broker (5-15 s each on this machine)
    rounds: ctx.quick ? 1 : 3,
    cpuPer: 'connection',
    extraNote: samples => {
      const ms = medianOf(samples, s => s.elapsedMs)
      const rss = medianOf(samples, s => s.brokerRssMb)
      const dropped = samples.reduce((a, s) => a + (s.dropped ?? 0), 0)
      return [
        ms === undefined ? undefined : `all connected in ${(ms / 1000).toFixed(2)} s (bar < 10 s)`,
        rss === undefined ? undefined : `RSS with all open ${rss.toFixed(0)} MB (bar < 500)`,
        dropped > 0 ? `${dropped} closed by the broker` : undefined
      ].filter(x => x !== undefined).join(', ')
    },
    measure: async (t, protocolVersion) => load({
      mode: 'idle',
      endpoint: endpointOf(t, 'tcp'),
      protocolVersion,
      connections: IDLE_CONNECTIONS,
      // about what a fleet reconnecting through a load balancer offers at once
      parallelism: 200,
      holdMs: 1000,
      brokerPid: t.pid,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 60_000
    })
  })
}

/** 1k connections each subscribing to 10 filters at once; per client, time to its first delivery (bar: < 1 s). */
const subscribeScenario: Scenario = {
  name: 'mqtt-subscribe-1k',
  group: GROUP,
  run: async ctx => compare(ctx, {
    scenario: '1k clients x 10 subscriptions: subscribe to first delivery',
    unit: 'subs/s',
    transport: 'tcp',
    rounds: roundsFor(ctx),
    cpuPer: 'client',
    extraNote: samples => {
      const ms = medianOf(samples, s => s.elapsedMs)
      return ms === undefined ? undefined : `all 1k clients had a message ${ms.toFixed(0)} ms after subscribing (bar < 1000)`
    },
    measure: async (t, protocolVersion) => load({
      mode: 'subscribe',
      endpoint: endpointOf(t, 'tcp'),
      protocolVersion,
      clients: 1000,
      filtersPerClient: 10,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 30_000
    })
  })
}

const httpPublishScenario: Scenario = {
  name: 'mqtt-http-publish',
  group: GROUP,
  run: async ctx => compare(ctx, {
    scenario: 'HTTP POST /v1/pubsub/publish (10 connections)',
    unit: 'req/s',
    transport: 'http',
    rounds: roundsFor(ctx),
    measure: async (t): Promise<Sample> => {
      const params: HttpPublishParams = {
        url: t.http!,
        connections: 10,
        requests: ctx.quick ? 40_000 : 100_000,
        timeoutSeconds: 30,
        ...(t.name === 'tetra' && t.tcp?.kind === 'tcp' ? { mqttPort: t.tcp.port } : {})
      }
      const r = await runNodeScript<HttpPublishResult>(HTTP_LOADGEN(), [JSON.stringify(params)], { tsx: false })
      // the bare route publishes nothing, so what it "delivered" is what it answered
      return { ...r, delivered: r.delivered ?? r.published }
    }
  })
}

/**
 * Time from spawning `node dist/src/cli.js` to its listening log line, and the resident set one second
 * later with nobody connected.
 */
const startupScenario: Scenario = {
  name: 'mqtt-startup',
  group: GROUP,
  run: async ctx => {
    const rounds = roundsFor(ctx)
    const startMs: number[] = []
    const idleMb: number[] = []
    const peakMb: number[] = []
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now()
      const tetra = await startTetraTarget()
      const ms = performance.now() - t0
      await new Promise(resolve => setTimeout(resolve, 1000))
      const idle = rssMb(tetra.pid)
      const peak = peakRssMb(tetra.pid)
      await tetra.stop()
      startMs.push(ms)
      if (idle !== undefined) idleMb.push(idle)
      if (peak !== undefined) peakMb.push(peak)
      ctx.progress(`round ${i + 1}/${rounds}: listening after ${ms.toFixed(0)} ms, idle RSS ${idle?.toFixed(0) ?? '?'} MB`)
    }
    const start = median(startMs)
    const idle = median(idleMb)
    return [{
      group: GROUP,
      scenario: 'start to listening, idle RSS',
      target: 'tetra',
      peakRssMb: median(peakMb),
      note: `spawn to listening ${start.toFixed(0)} ms (target < 2000); idle RSS ${idle.toFixed(0)} MB (target < 100); median of ${rounds}`
    }]
  }
}

export const mqttScenarios: Scenario[] = [
  startupScenario,
  fanInScenario('mqtt-fanin', 'tcp'),
  fanOutScenario(100),
  fanOutScenario(1000),
  qosScenario(1),
  qosScenario(1, true),
  qosScenario(2),
  latencyScenario,
  idleScenario,
  subscribeScenario,
  fanInScenario('mqtt-fanin', 'tcp', 5),
  fanOutScenario(100, 5),
  fanOutScenario(1000, 5),
  qosScenario(1, false, 5),
  qosScenario(1, true, 5),
  fanInScenario('mqtt-ws-fanin', 'ws'),
  httpPublishScenario
]
