import { join } from 'node:path'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'
import { ROOT, peakRssMb, runNodeScript, startListening, startTetra, type RunningBroker } from '../lib/process.js'
import { median } from '../lib/stats.js'
import { cpuTimeMs } from '../mqtt/targets.js'
import type { StreamLoadParams, StreamLoadResult } from '../stream/loadgen.js'
import type { EngineBenchParams, EngineBenchResult } from '../stream/engine.js'
import type { CaptureParams, CaptureResult } from '../stream/capture.js'

/**
 * Stream benchmarks. HTTP scenarios run against Tetra (the built dist/, fsync interval) and against a
 * bare fastify server with the same routes and bytes and no storage, in interleaved rounds; the ratio is
 * the median of per-round ratios. Load generators run in their own processes.
 */
const GROUP = 'stream'
const PAYLOAD_BYTES = 64
const HOST = '127.0.0.1'

const script = (name: string): string => join(ROOT, 'dist/bench/stream', name)

async function load (params: StreamLoadParams): Promise<StreamLoadResult> {
  return await runNodeScript<StreamLoadResult>(script('loadgen.js'), [JSON.stringify(params)], { tsx: false })
}

interface Server { name: 'tetra' | 'fastify (bare)', base: string, pid: number, stop: () => Promise<void> }

async function startBare (): Promise<Server> {
  const bare = await startListening<{ httpPort: number }>(script('bare-stream.js'), [String(PAYLOAD_BYTES)])
  return { name: 'fastify (bare)', base: `http://${HOST}:${bare.info.httpPort}`, pid: bare.pid, stop: bare.stop }
}

async function startTetraServer (): Promise<Server & { broker: RunningBroker }> {
  const broker = await startTetra(['--log-level', 'info'])
  return { name: 'tetra', base: `http://${HOST}:${broker.httpPort}`, pid: broker.pid, stop: broker.stop, broker }
}

function fmt (n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)
}

/** Interleaved rounds of one HTTP measurement on Tetra and the bare baseline -> two rows. */
async function compareHttp (ctx: BenchContext, scenario: string, rounds: number, servers: Server[], measure: (s: Server) => Promise<StreamLoadResult>, target: number): Promise<BenchRow[]> {
  const samples = new Map<string, StreamLoadResult[]>(servers.map(s => [s.name, []]))
  // server CPU per message: steadier than the rate on a shared machine
  const cpuPerMsg = new Map<string, number[]>(servers.map(s => [s.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (const [i] of servers.entries()) {
      const s = servers[(i + round) % servers.length]
      const cpu0 = cpuTimeMs(s.pid)
      const r = await measure(s)
      const cpu1 = cpuTimeMs(s.pid)
      if (cpu0 !== undefined && cpu1 !== undefined && r.delivered > 0) cpuPerMsg.get(s.name)!.push((cpu1 - cpu0) * 1000 / r.delivered)
      samples.get(s.name)!.push(r)
      ctx.progress(`${scenario} round ${round + 1}/${rounds} ${s.name}: ${fmt(r.rate)} msg/s (${r.delivered}/${r.published})${r.p99Ms !== undefined ? `, p99 ${r.p99Ms.toFixed(2)} ms` : ''}`)
    }
  }
  const tetra = samples.get('tetra')!
  return servers.map(s => {
    const ss = samples.get(s.name)!
    const row: BenchRow = {
      group: GROUP,
      scenario,
      target: s.name,
      rate: median(ss.map(x => x.rate)),
      unit: 'msg/s',
      p50Ms: ss[0].p50Ms !== undefined ? median(ss.map(x => x.p50Ms!)) : undefined,
      p99Ms: ss[0].p99Ms !== undefined ? median(ss.map(x => x.p99Ms!)) : undefined,
      delivered: ss.reduce((a, x) => a + x.delivered, 0),
      published: ss.reduce((a, x) => a + x.published, 0),
      peakRssMb: peakRssMb(s.pid)
    }
    const notes = [`median of ${ss.length}`]
    const cpu = cpuPerMsg.get(s.name)!
    if (cpu.length > 0) notes.push(`server CPU ${median(cpu).toFixed(2)} µs/msg`)
    const errors = ss.reduce((a, x) => a + (x.errors ?? 0), 0)
    if (errors > 0) notes.push(`${errors} errors`)
    if (s.name === 'tetra') {
      const base = samples.get('fastify (bare)')
      if (base !== undefined) row.ratios = { 'fastify (bare)': median(tetra.map((x, i) => x.rate / base[i].rate)) }
      notes.push(row.rate! >= target ? `meets ${fmt(target)} msg/s` : `BELOW ${fmt(target)} msg/s`)
    }
    row.note = notes.join('; ')
    return row
  })
}

const appendScenario: Scenario = {
  name: 'stream-append',
  group: GROUP,
  run: async ctx => {
    const servers: Server[] = [await startTetraServer(), await startBare()]
    try {
      const durationMs = ctx.quick ? 3000 : 10_000
      return await compareHttp(ctx, 'append over HTTP, batches of 100 x 64 B, 4 connections', ctx.quick ? 2 : 3, servers, async s => await load({
        mode: 'append', base: s.base, stream: `append${Math.floor(Math.random() * 1e9)}`, connections: 4, batch: 100, payloadBytes: PAYLOAD_BYTES, durationMs
      }), 300_000)
    } finally {
      await Promise.all(servers.map(async s => await s.stop()))
    }
  }
}

const readScenario: Scenario = {
  name: 'stream-read',
  group: GROUP,
  run: async ctx => {
    const messages = ctx.quick ? 300_000 : 1_000_000
    const tetra = await startTetraServer()
    const servers: Server[] = [tetra, await startBare()]
    try {
      ctx.progress(`filling a stream with ${fmt(messages)} messages over HTTP`)
      const filled = await load({ mode: 'fill', base: tetra.base, stream: 'replay', connections: 4, payloadBytes: PAYLOAD_BYTES, messages })
      ctx.progress(`filled at ${fmt(filled.rate)} msg/s (batches of 1000)`)
      const rounds = ctx.quick ? 2 : 3
      const replay = await compareHttp(ctx, `replay over HTTP, pages of 1000 (${fmt(messages)} messages)`, rounds, servers, async s => await load({
        mode: 'replay', base: s.base, stream: 'replay', page: 1000, messages, timeoutMs: 120_000
      }), 300_000)
      const tail = await compareHttp(ctx, `SSE tail from start to one reader (${fmt(messages)} messages)`, rounds, servers, async s => await load({
        mode: 'tail', base: s.base, stream: 'replay', messages, timeoutMs: 120_000
      }), 200_000)
      return [...replay, ...tail]
    } finally {
      await Promise.all(servers.map(async s => await s.stop()))
    }
  }
}

const engineScenario: Scenario = {
  name: 'stream-engine',
  group: GROUP,
  run: async ctx => {
    const messages = ctx.quick ? 1_000_000 : 10_000_000
    ctx.progress(`in-process: appending ${fmt(messages)} messages of ${PAYLOAD_BYTES} B, then replay and seeks`)
    const params: EngineBenchParams = { messages, payloadBytes: PAYLOAD_BYTES, seeks: 2000, replayMessages: Math.min(messages, 3_000_000) }
    const r = await runNodeScript<EngineBenchResult>(script('engine.js'), [JSON.stringify(params)], { tsx: false })
    ctx.progress(`append ${fmt(r.appendRate)} msg/s, replay ${fmt(r.replayRate)} msg/s, seek offset p99 ${r.seekOffset.p99Ms.toFixed(3)} ms, time p99 ${r.seekTime.p99Ms.toFixed(3)} ms, RSS ${r.rssMb.at10.toFixed(0)}/${r.rssMb.at50.toFixed(0)}/${r.rssMb.at100.toFixed(0)} MB`)
    const rss = `RSS at 10/50/100% of the stream: ${r.rssMb.at10.toFixed(0)}/${r.rssMb.at50.toFixed(0)}/${r.rssMb.at100.toFixed(0)} MB`
    const base = { group: GROUP, target: 'engine (in-process)' }
    return [
      { ...base, scenario: `append in-process, batches of 1000 (${fmt(messages)} messages)`, rate: r.appendRate, unit: 'msg/s', delivered: r.appended, published: messages, peakRssMb: r.rssMb.at100, note: rss },
      { ...base, scenario: `replay in-process, pages of 1000 (${fmt(r.replayed)} messages)`, rate: r.replayRate, unit: 'msg/s', delivered: r.replayed, published: params.replayMessages, note: r.replayRate >= 1_000_000 ? 'meets 1M msg/s' : 'BELOW 1M msg/s' },
      { ...base, scenario: `seek by offset in ${fmt(messages)} messages`, p50Ms: r.seekOffset.p50Ms, p99Ms: r.seekOffset.p99Ms, p999Ms: r.seekOffset.p999Ms, delivered: params.seeks * 2 - r.seekMismatches, published: params.seeks * 2, note: `${params.seeks} random seeks${r.seekMismatches > 0 ? `; ${r.seekMismatches} WRONG` : ''}` },
      { ...base, scenario: `seek by time in ${fmt(messages)} messages`, p50Ms: r.seekTime.p50Ms, p99Ms: r.seekTime.p99Ms, p999Ms: r.seekTime.p999Ms, note: `${params.seeks} random seeks` }
    ]
  }
}

const captureScenario: Scenario = {
  name: 'stream-capture',
  group: GROUP,
  run: async ctx => {
    const rounds = ctx.quick ? 1 : 3
    const samples: CaptureResult[] = []
    let peak: number | undefined
    for (let round = 0; round < rounds; round++) {
      const tetra = await startTetraServer()
      try {
        const params: CaptureParams = {
          base: tetra.base,
          endpoint: { kind: 'tcp', host: HOST, port: tetra.broker.mqttPort },
          mqttUrl: `mqtt://${HOST}:${tetra.broker.mqttPort}`,
          publishers: 10,
          messagesPerPublisher: ctx.quick ? 10_000 : 40_000,
          payloadBytes: PAYLOAD_BYTES,
          qos1Messages: ctx.quick ? 5000 : 20_000,
          timeoutMs: 60_000
        }
        const r = await runNodeScript<CaptureResult>(script('capture.js'), [JSON.stringify(params)], { tsx: false })
        samples.push(r)
        peak = Math.max(peak ?? 0, peakRssMb(tetra.pid) ?? 0)
        ctx.progress(`round ${round + 1}/${rounds}: captured ${r.captured}/${r.published} at ${fmt(r.rate)} msg/s (subscriber got ${r.deliveredToSubscriber} at ${fmt(r.subscriberRate)} msg/s, dropped ${r.dropped}); QoS 1 ${r.qos1Captured}/${r.qos1Published}`)
      } finally {
        await tetra.stop()
      }
    }
    const captured = samples.reduce((a, s) => a + s.captured, 0)
    const published = samples.reduce((a, s) => a + s.published, 0)
    const q1c = samples.reduce((a, s) => a + s.qos1Captured, 0)
    const q1p = samples.reduce((a, s) => a + s.qos1Published, 0)
    const sub = samples.reduce((a, s) => a + s.deliveredToSubscriber, 0)
    return [{
      group: GROUP,
      scenario: 'capture sensors/# under qos0 fan-in 10->1',
      target: 'tetra',
      rate: median(samples.map(s => s.rate)),
      unit: 'msg/s',
      delivered: captured,
      published,
      ratios: { 'captured/published': captured / published, 'capture rate/subscriber rate': median(samples.map(s => s.rate / s.subscriberRate)) },
      peakRssMb: peak,
      note: `subscriber of the same fan-in got ${sub}; dropped ${samples.reduce((a, s) => a + s.dropped, 0)}; QoS 1 captured ${q1c}/${q1p}${q1c < q1p ? ' LOST' : ''}; median of ${samples.length}`
    }]
  }
}

export const streamScenarios: Scenario[] = [appendScenario, readScenario, engineScenario, captureScenario]
