/**
 * Where Tetra's MQTT path spends its CPU and where its latency tail comes from: starts the built broker
 * (dist/, so `npm run build` first) under `node --cpu-prof` and/or `--trace-gc`, drives one load of the
 * MQTT benchmarks against it (a warm-up fifth first, then the measured run), and prints the broker CPU per
 * message, the load's own figures, the top self-time functions, self time by module, and the scavenges and
 * mark-compacts that ran during the measured run with their pauses.
 *
 *   npx tsx bench/mqtt/profile.ts <fanin|fanout-100|fanout-1000|qos1|qos1-session|latency> [options]
 *     --count N        messages (deliveries for fan-out) of the measured run
 *     --semi MB        --max-semi-space-size for the broker (default 32, what the broker gives itself)
 *     --no-prof        no --cpu-prof (for figures the profiler does not slow down)
 *     --trace-gc       count and time the broker's garbage collections during the measured run
 *     --v5             MQTT 5 clients
 *     --top N          functions listed (default 30)
 *     --interval US    sampling interval of the profiler in µs (default 1000)
 *     --keep DIR       copy the .cpuprofile there (open it in Chrome DevTools)
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ROOT, runNodeScript, startListening } from '../lib/process.js'
import { cpuTimeMs } from './targets.js'
import type { LoadParams, LoadResult } from './loadgen.js'
import type { ProtocolVersion } from './client.js'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

/** Now on the clock a V8 profile's timestamps use (CLOCK_MONOTONIC, µs; so does process.hrtime). */
function monotonicUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/**
 * Hit counts of the samples taken within [fromUs, toUs] only, so that start-up, module loading and the
 * warm-up are left out of the summary.
 */
function windowed (profile: CpuProfile, fromUs: number, toUs: number): CpuProfile {
  const hits = new Map<number, number>()
  let t = profile.startTime
  const kept: number[] = []
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]
    if (t < fromUs || t > toUs) continue
    kept.push(profile.samples[i])
    hits.set(profile.samples[i], (hits.get(profile.samples[i]) ?? 0) + 1)
  }
  return { ...profile, samples: kept, nodes: profile.nodes.map(n => ({ ...n, hitCount: hits.get(n.id) ?? 0 })) }
}

type Mode = 'fanin' | 'fanout-100' | 'fanout-1000' | 'qos1' | 'qos1-session' | 'latency'

const DEFAULT_COUNT: Record<Mode, number> = { fanin: 300_000, 'fanout-100': 300_000, 'fanout-1000': 300_000, qos1: 50_000, 'qos1-session': 50_000, latency: 30_000 }

function paramsOf (mode: Mode, port: number, count: number, protocolVersion: ProtocolVersion): LoadParams {
  const common = { endpoint: { kind: 'tcp' as const, host: '127.0.0.1', port }, payloadBytes: 64, timeoutMs: 60_000, protocolVersion }
  switch (mode) {
    case 'fanin': return { ...common, mode: 'fanin', publishers: 10, messagesPerPublisher: Math.ceil(count / 10), batch: 32 }
    case 'fanout-100': return { ...common, mode: 'fanout', subscribers: 100, messages: Math.ceil(count / 100), batch: 8 }
    case 'fanout-1000': return { ...common, mode: 'fanout', subscribers: 1000, messages: Math.ceil(count / 1000), batch: 8 }
    case 'qos1': return { ...common, mode: 'qos', qos: 1, messages: count, window: 1000 }
    case 'qos1-session': return { ...common, mode: 'qos', qos: 1, session: true, messages: count, window: 1000 }
    // 10k msg/s for count/10k seconds, the first 0.5 s not recorded
    case 'latency': return { ...common, mode: 'latency', ratePerSecond: 10_000, durationMs: Math.ceil(count / 10), warmupMs: 500, timeoutMs: 30_000 }
  }
}

function where (f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').replace(ROOT, '').replace(/^.*node_modules\//, 'node_modules/')
  return `${file === '' ? '(native)' : file}:${f.functionName === '' ? '(anonymous)' : f.functionName}:${f.lineNumber + 1}`
}

/** The module a function belongs to, for the by-module summary. */
function moduleOf (f: CallFrame): string {
  if (f.functionName === '(garbage collector)') return '(garbage collector)'
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : '(native)'
  const url = f.url.replace(/^file:\/\//, '')
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm !== null) return `node_modules/${nm[1]}`
  if (url.startsWith('node:')) return 'node: internals'
  const inRoot = url.replace(ROOT, '')
  const m = /^dist\/((?:src|engines|protocols|bench)\/(?:[^/]+\/)?)/.exec(inRoot)
  return m === null ? inRoot : m[1]
}

function summarize (profile: CpuProfile, top: number): string {
  const total = profile.samples.length
  const self = new Map<string, number>()
  const modules = new Map<string, number>()
  let idle = 0
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    if (n.callFrame.functionName === '(idle)') { idle += hits; continue }
    const key = where(n.callFrame)
    self.set(key, (self.get(key) ?? 0) + hits)
    const mod = moduleOf(n.callFrame)
    modules.set(mod, (modules.get(mod) ?? 0) + hits)
  }
  const busy = total - idle
  const pct = (h: number): string => `${(100 * h / busy).toFixed(1)}%`
  const lines = [`${busy} busy samples of ${total} in the measured run`, 'self time by module:']
  for (const [k, h] of [...modules.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(h).padStart(6)}  ${k}`)
  lines.push('top self-time functions:')
  const ranked = [...self.entries()].sort((a, b) => b[1] - a[1])
  for (const [k, h] of ranked.slice(0, top)) lines.push(`  ${pct(h).padStart(6)}  ${k}`)
  // who calls the heaviest ones (Buffer copies, writes and the collector are only actionable with their callers)
  const callers = callersOf(profile)
  lines.push('callers of the top 10 (share of that function\'s self time):')
  for (const [k, h] of ranked.slice(0, 10)) {
    const by = [...(callers.get(k) ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1]).slice(0, 3)
    lines.push(`  ${k}: ${by.map(([c, n]) => `${(100 * n / h).toFixed(0)}% ${c}`).join('; ')}`)
  }
  return lines.join('\n')
}

/** For each function, the self hits it had under each direct caller (the garbage collector: where it interrupted). */
function callersOf (profile: CpuProfile): Map<string, Map<string, number>> {
  const parent = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n)
  const out = new Map<string, Map<string, number>>()
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    const p = parent.get(n.id)
    const key = where(n.callFrame)
    const caller = p === undefined ? '(root)' : where(p.callFrame)
    const m = out.get(key) ?? new Map<string, number>()
    m.set(caller, (m.get(caller) ?? 0) + hits)
    out.set(key, m)
  }
  return out
}

/** `--trace-gc` lines of the broker: kind and pause of each collection. */
interface GcEvent { kind: string, pauseMs: number }

function parseGcLine (line: string): GcEvent | undefined {
  // e.g. "[123:0x5a..]     5012 ms: Scavenge 40.1 (52.3) -> 39.2 (60.3) MB, 1.23 / 0.00 ms  (average mu = ..."
  const m = /ms: (Scavenge|Mark-Compact|Mark-sweep|Mark-Compact \(reduce\)|Minor Mark-Compact)[^,]*, ([\d.]+) \/ ([\d.]+) ms/.exec(line)
  return m === null ? undefined : { kind: m[1], pauseMs: Number(m[2]) }
}

function gcSummary (events: GcEvent[], seconds: number): string {
  const kinds = new Map<string, number[]>()
  for (const e of events) kinds.set(e.kind, [...(kinds.get(e.kind) ?? []), e.pauseMs])
  if (kinds.size === 0) return 'GC: none during the measured run'
  const lines = ['GC during the measured run:']
  for (const [kind, pauses] of kinds) {
    const sorted = [...pauses].sort((a, b) => a - b)
    const sum = sorted.reduce((a, b) => a + b, 0)
    lines.push(`  ${kind}: ${sorted.length} (${(sorted.length / seconds).toFixed(1)}/s), pause median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms, max ${sorted[sorted.length - 1].toFixed(2)} ms, total ${sum.toFixed(0)} ms (${(100 * sum / (seconds * 1000)).toFixed(1)}% of the run)`)
  }
  return lines.join('\n')
}

function option (args: string[], name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const mode = (args[0] ?? 'fanout-100') as Mode
  if (!(mode in DEFAULT_COUNT)) throw new Error(`unknown mode ${mode}; one of ${Object.keys(DEFAULT_COUNT).join(', ')}`)
  const count = Number(option(args, '--count') ?? DEFAULT_COUNT[mode])
  const semi = Number(option(args, '--semi') ?? 32)
  const top = Number(option(args, '--top') ?? 30)
  const keep = option(args, '--keep')
  const prof = !args.includes('--no-prof')
  const traceGc = args.includes('--trace-gc')
  const version: ProtocolVersion = args.includes('--v5') ? 5 : 4
  const profDir = mkdtempSync(join(tmpdir(), 'tetra-prof-'))
  const dataDir = mkdtempSync(join(tmpdir(), 'tetra-bench-'))
  // the semi-space flag given on the command line, so the broker does not re-spawn itself and this is the process that serves
  const interval = option(args, '--interval')
  const nodeArgs = [`--max-semi-space-size=${semi}`, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', profDir, ...(interval === undefined ? [] : ['--cpu-prof-interval', interval])] : []), ...(traceGc ? ['--trace-gc'] : [])]
  const broker = await startListening<{ mqttPort: number, httpPort: number }>(join(ROOT, 'dist/src/cli.js'),
    ['--mqtt-port', '0', '--http-port', '0', '--data-dir', dataDir, '--log-level', 'info'], nodeArgs)
  const gc: GcEvent[] = []
  let counting = false
  createInterface({ input: broker.child.stdout! }).on('line', line => {
    if (!counting) return
    const e = parseGcLine(line)
    if (e !== undefined) gc.push(e)
  })
  let result: LoadResult
  let cpuMs: number
  let fromUs = 0
  let toUs = 0
  try {
    const loadgen = join(ROOT, 'dist/bench/mqtt/loadgen.js')
    await runNodeScript<LoadResult>(loadgen, [JSON.stringify(paramsOf(mode, broker.info.mqttPort, Math.ceil(count / 5), version))], { tsx: false })
    const before = cpuTimeMs(broker.pid) ?? 0
    counting = true
    fromUs = monotonicUs()
    result = await runNodeScript<LoadResult>(loadgen, [JSON.stringify(paramsOf(mode, broker.info.mqttPort, count, version))], { tsx: false })
    toUs = monotonicUs()
    counting = false
    cpuMs = (cpuTimeMs(broker.pid) ?? 0) - before
  } finally {
    await broker.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  const lat = result.p99Ms === undefined ? '' : `, p50 ${result.p50Ms?.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms, p99.9 ${result.p999Ms?.toFixed(3)} ms`
  process.stdout.write(`== ${mode}${version === 5 ? ' (MQTT 5)' : ''}, semi-space ${semi} MB${prof ? ', profiled (slower than unprofiled)' : ''}: ${result.rate.toFixed(0)} msg/s${lat}, ` +
    `${result.delivered}/${result.published} delivered, broker CPU ${(1000 * cpuMs / Math.max(1, result.delivered)).toFixed(2)} µs/msg\n`)
  if (traceGc) process.stdout.write(gcSummary(gc, result.elapsedMs / 1000) + '\n')
  if (prof) {
    const file = readdirSync(profDir).find(f => f.endsWith('.cpuprofile'))
    if (file === undefined) throw new Error(`no profile written in ${profDir}`)
    if (keep !== undefined) copyFileSync(join(profDir, file), join(keep, `tetra-${mode}.cpuprofile`))
    const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile
    process.stdout.write(summarize(windowed(profile, fromUs, toUs), top) + '\n')
  }
  rmSync(profDir, { recursive: true, force: true })
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
