import { join } from 'node:path'
import type { BenchContext, BenchRow } from '../lib/types.js'
import { ROOT, peakRssMb, runNodeScript } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { Endpoint, ProtocolVersion } from './client.js'
import type { LoadParams, LoadResult } from './loadgen.js'
import { natsBinary, natsLimits, natsVersion, startNatsTarget } from './nats.js'
import {
  beforeCheckout, cpuTimeMs, mosquittoBinary, startAedesTarget, startBareFastifyTarget, startMosquittoTarget, startRelayTarget, startTetraTarget,
  type Target, type TargetName
} from './targets.js'

/**
 * The machinery of the MQTT comparisons: start every broker of a scenario (Tetra from dist/, plain aedes,
 * Mosquitto and nats-server when installed), run interleaved rounds of one load against each (the order
 * rotates each round), and turn the samples into table rows: medians, Tetra's ratio to each baseline as the
 * median of the per-round ratios (which cancels most of the drift of a shared machine), and notes.
 */

export const GROUP = 'mqtt'

export interface Sample extends Partial<Omit<LoadResult, 'rate' | 'delivered' | 'published'>> {
  rate: number
  delivered: number
  published: number
  /** CPU time the broker process used during the run, in ms. */
  brokerCpuMs?: number
  /** The round failed (a refused connection, a crash): its message. */
  error?: string
}

export interface Comparison {
  scenario: string
  unit: string
  transport: 'tcp' | 'ws' | 'http'
  rounds: number
  /** Drives one round against `target` with clients of protocol level `version`. */
  measure: (target: Target, version: ProtocolVersion) => Promise<Sample>
  /** What the ratio compares (higher is better for Tetra); defaults to the rate. */
  score?: { label: string, of: (s: Sample) => number }
  /** Loss is an error for this scenario (QoS 1/2), not just a number. */
  lossless?: boolean
  /** Also measure the minimal relay (relay.ts), to show the floor the machine allows. */
  withFloor?: boolean
  /** MQTT 5 clients: brokers that do not speak it are left out, and Tetra is measured with 3.1.1 clients too. */
  protocolVersion?: ProtocolVersion
  /** The scenario needs QoS 2 (nats-server before 2.10 has none). */
  needsQos2?: boolean
  /** Bars of the issue: Tetra's median ratio to a baseline below this gets a note. */
  bars?: Partial<Record<TargetName, number>>
  /** What broker CPU is counted per (default "msg": per delivered message). */
  cpuPer?: string
  /** Extra words for a row's note from its samples (e.g. RSS with all connections open). */
  extraNote?: (samples: Sample[]) => string | undefined
}

/** The issue's bar for every MQTT scenario: at least this fraction of plain aedes in the same run. */
export const MIN_RATIO_TO_AEDES = 0.9

const LOADGEN = (): string => join(ROOT, 'dist/bench/mqtt/loadgen.js')

export async function load (params: LoadParams): Promise<Sample> {
  return await runNodeScript<LoadResult>(LOADGEN(), [JSON.stringify(params)], { tsx: false })
}

export function endpointOf (target: Target, transport: 'tcp' | 'ws'): Endpoint {
  const e = transport === 'tcp' ? target.tcp : target.ws
  if (e === undefined) throw new Error(`${target.name} has no ${transport} endpoint`)
  return e
}

function fmt (n: number): string {
  return n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)
}

/**
 * Starts the MQTT targets one after another (starting them together would skew their start-up peaks),
 * leaving out, with a note, those not installed or unable to run the scenario.
 */
async function startMqttTargets (ctx: BenchContext, spec: Comparison): Promise<{ targets: Target[], skipped: string[] }> {
  const targets: Target[] = []
  const skipped: string[] = []
  const v5 = spec.protocolVersion === 5
  const transport = spec.transport === 'ws' ? 'ws' : 'tcp'
  try {
    const tetra = await startTetraTarget()
    targets.push(tetra)
    // the same broker process with 3.1.1 clients: what MQTT 5 costs, measured in the same rounds
    if (v5) targets.push({ ...tetra, name: 'tetra (3.1.1)', protocolVersion: 4, stop: async () => {} })
    const before = beforeCheckout()
    if (before !== undefined) targets.push(await startTetraTarget(before))
    if (v5) skipped.push('aedes (aedes 1.2 refuses MQTT 5)')
    else targets.push(await startAedesTarget())
    const binary = mosquittoBinary()
    if (binary === undefined) skipped.push('mosquitto (not on PATH)')
    else {
      const m = await startMosquittoTarget(binary, transport === 'ws')
      if (m === undefined) skipped.push('mosquitto (this build has no WebSocket listener)')
      else targets.push(m)
    }
    const nats = natsBinary()
    if (nats === undefined) skipped.push('nats-server (not installed)')
    else {
      const limits = natsLimits(natsVersion(nats))
      if (transport === 'ws') skipped.push('nats-server (measured over TCP only)')
      else if (v5) skipped.push(`nats-server (${limits.v5})`)
      else if (spec.needsQos2 === true && limits.qos2 !== undefined) skipped.push(`nats-server (${limits.qos2})`)
      else targets.push(await startNatsTarget(nats))
    }
    if (spec.withFloor === true) targets.push(await startRelayTarget())
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

export function medianOf (samples: Sample[], pick: (s: Sample) => number | undefined): number | undefined {
  const values = samples.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v))
  return values.length === 0 ? undefined : median(values)
}

/** Runs `spec.rounds` interleaved rounds over the targets and turns the samples into table rows. */
export async function compare (ctx: BenchContext, spec: Comparison): Promise<BenchRow[]> {
  const { targets, skipped } = spec.transport === 'http' ? await startHttpTargets() : await startMqttTargets(ctx, spec)
  const samples = new Map<TargetName, Sample[]>(targets.map(t => [t.name, []]))
  const peaks = new Map<TargetName, number | undefined>()
  try {
    for (let round = 0; round < spec.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length])
      for (const target of order) {
        const cpuBefore = cpuTimeMs(target.pid)
        let s: Sample
        try {
          s = await spec.measure(target, target.protocolVersion ?? spec.protocolVersion ?? 4)
        } catch (err) {
          s = { rate: NaN, delivered: 0, published: 0, error: (err as Error).message }
        }
        const cpuAfter = cpuTimeMs(target.pid)
        if (cpuBefore !== undefined && cpuAfter !== undefined) s.brokerCpuMs = cpuAfter - cpuBefore
        samples.get(target.name)!.push(s)
        if (s.error !== undefined) {
          ctx.progress(`round ${round + 1}/${spec.rounds} ${target.name}: FAILED ${s.error}`)
          continue
        }
        const lat = [['p50', s.p50Ms], ['p99', s.p99Ms]].filter(([, v]) => v !== undefined).map(([k, v]) => `${k as string} ${(v as number).toFixed(3)} ms`).join(' ')
        const cpu = s.brokerCpuMs !== undefined && s.delivered > 0 ? `, broker CPU ${(1000 * s.brokerCpuMs / s.delivered).toFixed(1)} µs/${spec.cpuPer ?? 'msg'}` : ''
        const rss = s.brokerRssMb !== undefined ? `, broker RSS ${s.brokerRssMb.toFixed(0)} MB` : ''
        ctx.progress(`round ${round + 1}/${spec.rounds} ${target.name}: ${fmt(s.rate)} ${spec.unit}${lat === '' ? '' : `, ${lat}`}${cpu}${rss} (${s.delivered}/${s.published}${s.timedOut === true ? ', timed out' : ''})`)
      }
    }
    for (const t of targets) peaks.set(t.name, peakRssMb(t.pid))
  } finally {
    await Promise.all(targets.map(t => t.stop()))
  }
  return rowsOf(spec, targets, samples, peaks, skipped)
}

function rowsOf (spec: Comparison, targets: Target[], samples: Map<TargetName, Sample[]>, peaks: Map<TargetName, number | undefined>, skipped: string[]): BenchRow[] {
  const score = spec.score?.of ?? ((s: Sample) => s.rate)
  const tetraSamples = samples.get('tetra')!
  const bars: Partial<Record<TargetName, number>> = { ...(spec.transport === 'http' ? {} : { aedes: MIN_RATIO_TO_AEDES }), ...spec.bars }
  return targets.map(t => {
    const ss = samples.get(t.name)!
    const ok = ss.filter(s => s.error === undefined)
    const delivered = ok.reduce((a, s) => a + s.delivered, 0)
    const published = ok.reduce((a, s) => a + s.published, 0)
    const notes: string[] = []
    const row: BenchRow = {
      group: GROUP,
      scenario: spec.scenario,
      target: t.name,
      rate: medianOf(ok, s => s.rate),
      unit: spec.unit,
      p50Ms: medianOf(ok, s => s.p50Ms),
      p99Ms: medianOf(ok, s => s.p99Ms),
      p999Ms: medianOf(ok, s => s.p999Ms),
      delivered,
      published,
      peakRssMb: peaks.get(t.name)
    }
    if (t.name === 'tetra') {
      const ratios: Record<string, number> = {}
      for (const base of targets) {
        if (base.name === 'tetra' || base.name === 'relay (floor)') continue
        const baseSamples = samples.get(base.name)!
        const key = spec.score === undefined ? base.name : `${base.name} ${spec.score.label}`
        const perRound = tetraSamples.map((s, i) => score(s) / score(baseSamples[i])).filter(r => Number.isFinite(r))
        if (perRound.length === 0) continue
        ratios[key] = median(perRound)
        const bar = bars[base.name]
        if (bar !== undefined && ratios[key] < bar) notes.push(`below ${bar}x ${base.name}`)
        // the same comparison on broker CPU per delivered message (above 1 = Tetra spends less)
        const cpuRatios = tetraSamples
          .map((s, i) => cpuPerMessage(baseSamples[i]) / cpuPerMessage(s))
          .filter(r => Number.isFinite(r))
        if ((base.name === 'aedes' || base.name.startsWith('tetra') || spec.transport === 'http') && cpuRatios.length > 0) ratios[`${base.name} CPU/msg`] = median(cpuRatios)
      }
      row.ratios = ratios
    }
    const failures = ss.filter(s => s.error !== undefined)
    if (failures.length > 0) notes.push(`FAILED ${failures.length} round(s): ${failures[0].error ?? ''}`)
    if (delivered < published) notes.push(spec.lossless === true ? `LOST ${published - delivered}` : `${published - delivered} not delivered`)
    const dups = ok.reduce((a, s) => a + (s.duplicates ?? 0), 0)
    if (dups > 0) notes.push(`${dups} duplicates`)
    const acked = ok.reduce((a, s) => a + (s.acked ?? 0), 0)
    if (spec.lossless === true && acked < published) notes.push(`${published - acked} unacknowledged`)
    const timeouts = ok.filter(s => s.timedOut === true).length
    if (timeouts > 0) notes.push(`${timeouts} round(s) timed out`)
    const refused = ok.reduce((a, s) => a + (s.failed ?? 0), 0)
    if (refused > 0) notes.push(`${refused} connections or subscriptions failed (${ok.find(s => s.firstError !== undefined)?.firstError ?? ''})`)
    const extra = spec.extraNote?.(ok)
    if (extra !== undefined) notes.push(extra)
    const cpu = medianOf(ok, cpuPerMessage)
    if (cpu !== undefined) notes.push(`broker CPU ${(cpu * 1000).toFixed(1)} µs/${spec.cpuPer ?? 'msg'}`)
    if (t.name === 'tetra' && skipped.length > 0) notes.push(`skipped ${skipped.join(', ')}`)
    notes.push(`median of ${ok.length}`)
    row.note = notes.join('; ')
    return row
  })
}
