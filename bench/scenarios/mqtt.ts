import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'
import { ROOT, peakRssMb, rssMb, runNodeScript } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { Endpoint } from '../mqtt/client.js'
import type { LoadParams, LoadResult } from '../mqtt/loadgen.js'
import type { HttpPublishParams, HttpPublishResult } from '../mqtt/http-publish.js'
import {
  cpuTimeMs, mosquittoBinary, startAedesTarget, startBareFastifyTarget, startMosquittoTarget, startRelayTarget, startTetraTarget,
  type Target, type TargetName
} from '../mqtt/targets.js'

/**
 * MQTT and HTTP-publish benchmarks of the spine. Every scenario starts Tetra (the built dist/), a plain
 * aedes broker and, when the binary is on PATH, Mosquitto, each in its own process; load generators run
 * in another process. Rounds interleave the brokers (the order rotates each round) and the table shows
 * medians; Tetra's ratio to each baseline is the median of the per-round ratios, which cancels most of
 * the noise of a shared machine.
 */

const GROUP = 'mqtt'
/** The issue's bar: every MQTT scenario at least this fraction of plain aedes in the same run. */
const MIN_RATIO_TO_AEDES = 0.9

interface Sample {
  rate: number
  delivered: number
  published: number
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
  timedOut?: boolean
  duplicates?: number
  acked?: number
  /** CPU time the broker process used during the run, in ms. */
  brokerCpuMs?: number
}

interface Comparison {
  scenario: string
  unit: string
  transport: 'tcp' | 'ws' | 'http'
  rounds: number
  measure: (target: Target) => Promise<Sample>
  /** What the ratio compares (higher is better for Tetra); defaults to the rate. */
  score?: { label: string, of: (s: Sample) => number }
  /** Loss is an error for this scenario (QoS 1/2), not just a number. */
  lossless?: boolean
  /** Also measure the minimal relay (relay.ts), to show the floor the machine allows. */
  withFloor?: boolean
}

const LOADGEN = (): string => join(ROOT, 'dist/bench/mqtt/loadgen.js')
const HTTP_LOADGEN = (): string => join(ROOT, 'dist/bench/mqtt/http-publish.js')

async function load (params: LoadParams): Promise<Sample> {
  return await runNodeScript<LoadResult>(LOADGEN(), [JSON.stringify(params)], { tsx: false })
}

function fmt (n: number): string {
  return n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)
}

function endpointOf (target: Target, transport: 'tcp' | 'ws'): Endpoint {
  const e = transport === 'tcp' ? target.tcp : target.ws
  if (e === undefined) throw new Error(`${target.name} has no ${transport} endpoint`)
  return e
}

/** Starts the MQTT targets one after another (starting them together would skew their start-up peaks). */
async function startMqttTargets (ctx: BenchContext, transport: 'tcp' | 'ws', withFloor: boolean): Promise<{ targets: Target[], skipped: string[] }> {
  const targets: Target[] = []
  const skipped: string[] = []
  try {
    targets.push(await startTetraTarget())
    targets.push(await startAedesTarget())
    const binary = mosquittoBinary()
    if (binary === undefined) skipped.push('mosquitto (not on PATH)')
    else {
      const m = await startMosquittoTarget(binary, transport === 'ws')
      if (m === undefined) skipped.push('mosquitto (this build has no WebSocket listener)')
      else targets.push(m)
    }
    if (withFloor) targets.push(await startRelayTarget())
  } catch (err) {
    await Promise.all(targets.map(t => t.stop()))
    throw err
  }
  for (const s of skipped) ctx.progress(`skipping ${s}`)
  return { targets, skipped }
}

async function startHttpTargets (): Promise<{ targets: Target[], skipped: string[] }> {
  const tetra = await startTetraTarget()
  try {
    return { targets: [tetra, await startBareFastifyTarget()], skipped: [] }
  } catch (err) {
    await tetra.stop()
    throw err
  }
}

/** Broker CPU ms per delivered message (NaN when unknown, so it drops out of medians). */
function cpuPerMessage (s: Sample): number {
  return s.brokerCpuMs !== undefined && s.delivered > 0 ? s.brokerCpuMs / s.delivered : NaN
}

function medianOf (samples: Sample[], pick: (s: Sample) => number | undefined): number | undefined {
  const values = samples.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v))
  return values.length === 0 ? undefined : median(values)
}

/** Runs `spec.rounds` interleaved rounds over the targets and turns the samples into table rows. */
async function compare (ctx: BenchContext, spec: Comparison): Promise<BenchRow[]> {
  const { targets, skipped } = spec.transport === 'http' ? await startHttpTargets() : await startMqttTargets(ctx, spec.transport, spec.withFloor === true)
  const samples = new Map<TargetName, Sample[]>(targets.map(t => [t.name, []]))
  const peaks = new Map<TargetName, number | undefined>()
  try {
    for (let round = 0; round < spec.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length])
      for (const target of order) {
        const cpuBefore = cpuTimeMs(target.pid)
        const s = await spec.measure(target)
        const cpuAfter = cpuTimeMs(target.pid)
        if (cpuBefore !== undefined && cpuAfter !== undefined) s.brokerCpuMs = cpuAfter - cpuBefore
        samples.get(target.name)!.push(s)
        const lat = [['p50', s.p50Ms], ['p99', s.p99Ms]].filter(([, v]) => v !== undefined).map(([k, v]) => `${k as string} ${(v as number).toFixed(3)} ms`).join(' ')
        const cpu = s.brokerCpuMs !== undefined && s.delivered > 0 ? `, broker CPU ${(1000 * s.brokerCpuMs / s.delivered).toFixed(1)} µs/msg` : ''
        ctx.progress(`round ${round + 1}/${spec.rounds} ${target.name}: ${fmt(s.rate)} ${spec.unit}${lat === '' ? '' : `, ${lat}`}${cpu} (${s.delivered}/${s.published}${s.timedOut === true ? ', timed out' : ''})`)
      }
    }
    for (const t of targets) peaks.set(t.name, peakRssMb(t.pid))
  } finally {
    await Promise.all(targets.map(t => t.stop()))
  }

  const score = spec.score?.of ?? ((s: Sample) => s.rate)
  const tetraSamples = samples.get('tetra')!
  const rows: BenchRow[] = targets.map(t => {
    const ss = samples.get(t.name)!
    const delivered = ss.reduce((a, s) => a + s.delivered, 0)
    const published = ss.reduce((a, s) => a + s.published, 0)
    const notes: string[] = []
    const row: BenchRow = {
      group: GROUP,
      scenario: spec.scenario,
      target: t.name,
      rate: medianOf(ss, s => s.rate),
      unit: spec.unit,
      p50Ms: medianOf(ss, s => s.p50Ms),
      p99Ms: medianOf(ss, s => s.p99Ms),
      p999Ms: medianOf(ss, s => s.p999Ms),
      delivered,
      published,
      peakRssMb: peaks.get(t.name)
    }
    if (t.name === 'tetra') {
      const ratios: Record<string, number> = {}
      for (const base of targets) {
        if (base.name === 'tetra') continue
        const baseSamples = samples.get(base.name)!
        const key = spec.score === undefined ? base.name : `${base.name} ${spec.score.label}`
        ratios[key] = median(tetraSamples.map((s, i) => score(s) / score(baseSamples[i])))
        if (base.name === 'aedes' && spec.transport !== 'http' && ratios[key] < MIN_RATIO_TO_AEDES) notes.push(`below ${MIN_RATIO_TO_AEDES}x aedes`)
        // the same comparison on broker CPU per delivered message (above 1 = Tetra spends less)
        const cpuRatios = tetraSamples
          .map((s, i) => cpuPerMessage(baseSamples[i]) / cpuPerMessage(s))
          .filter(r => Number.isFinite(r))
        if ((base.name === 'aedes' || spec.transport === 'http') && cpuRatios.length > 0) ratios[`${base.name} CPU/msg`] = median(cpuRatios)
      }
      row.ratios = ratios
    }
    if (delivered < published) notes.push(spec.lossless === true ? `LOST ${published - delivered}` : `${published - delivered} not delivered`)
    const dups = ss.reduce((a, s) => a + (s.duplicates ?? 0), 0)
    if (dups > 0) notes.push(`${dups} duplicates`)
    const acked = ss.reduce((a, s) => a + (s.acked ?? 0), 0)
    if (spec.lossless === true && acked < published) notes.push(`${published - acked} unacknowledged`)
    const timeouts = ss.filter(s => s.timedOut === true).length
    if (timeouts > 0) notes.push(`${timeouts} round(s) timed out`)
    const cpu = medianOf(ss, cpuPerMessage)
    if (cpu !== undefined) notes.push(`broker CPU ${(cpu * 1000).toFixed(1)} µs/msg`)
    if (t.name === 'tetra' && skipped.length > 0) notes.push(`skipped ${skipped.join(', ')}`)
    notes.push(`median of ${ss.length}`)
    row.note = notes.join('; ')
    return row
  })
  return rows
}

function roundsFor (ctx: BenchContext): number {
  return ctx.quick ? 3 : 5
}

const PAYLOAD_BYTES = 64

function fanInScenario (name: string, transport: 'tcp' | 'ws'): Scenario {
  return {
    name,
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: transport === 'tcp' ? 'qos0 fan-in 10->1 (wildcard)' : 'qos0 fan-in 10->1 over WebSocket',
      unit: 'msg/s',
      transport,
      rounds: roundsFor(ctx),
      measure: async t => load({
        mode: 'fanin',
        endpoint: endpointOf(t, transport),
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

function fanOutScenario (subscribers: number): Scenario {
  const deliveries = (quick: boolean): number => quick ? 100_000 : 300_000
  return {
    name: `mqtt-fanout-${subscribers}`,
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: `qos0 fan-out 1->${subscribers}`,
      unit: 'deliveries/s',
      transport: 'tcp',
      rounds: roundsFor(ctx),
      measure: async t => load({
        mode: 'fanout',
        endpoint: endpointOf(t, 'tcp'),
        subscribers,
        messages: Math.ceil(deliveries(ctx.quick) / subscribers),
        payloadBytes: PAYLOAD_BYTES,
        batch: 8,
        timeoutMs: 30_000
      })
    })
  }
}

function qosScenario (qos: 1 | 2, session = false): Scenario {
  return {
    name: `mqtt-qos${qos}${session ? '-session' : ''}`,
    group: GROUP,
    run: async ctx => compare(ctx, {
      scenario: `qos${qos} 1->1, window 1000${session ? ', subscriber with a persistent session' : ''}`,
      unit: 'msg/s',
      transport: 'tcp',
      rounds: roundsFor(ctx),
      lossless: true,
      measure: async t => load({
        mode: 'qos',
        endpoint: endpointOf(t, 'tcp'),
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
    // a ratio above 1 means Tetra's p99 is lower than the baseline's
    score: { label: 'p99', of: s => 1 / (s.p99Ms ?? NaN) },
    withFloor: true,
    measure: async t => load({
      mode: 'latency',
      endpoint: endpointOf(t, 'tcp'),
      ratePerSecond: 10_000,
      durationMs: ctx.quick ? 1500 : 3000,
      warmupMs: 500,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 20_000
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
    measure: async t => {
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
  fanInScenario('mqtt-ws-fanin', 'ws'),
  httpPublishScenario
]
