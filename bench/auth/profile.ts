/**
 * Where auth spends its CPU: runs one load of the auth benchmarks against Tetra started with
 * `node --cpu-prof`, once without and once with the bench auth file, and prints for each the broker CPU
 * per operation, the top self-time functions, and the self time of Tetra's auth code (engines/auth,
 * protocols/http/auth, protocols/mqtt) as a share of all samples. Build first (`npm run build`).
 *
 *   npx tsx bench/auth/profile.ts <fanin|fanin-topics|qos1|get|put|push> [requests-or-messages] [top]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, runNodeScript, startListening } from '../lib/process.js'
import { cpuTimeMs } from '../mqtt/targets.js'
import { KEY_PREFIX, QUEUE, createBenchAuth, type BenchAuth } from './authfile.js'
import type { AuthLoadParams, AuthLoadResult } from './mqtt-load.js'
import type { AuthHttpParams, AuthHttpResult } from './http-load.js'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[] }

const AUTH_PATHS = ['/engines/auth/', '/protocols/http/auth/', '/protocols/mqtt/']

type Mode = 'fanin' | 'fanin-topics' | 'qos1' | 'get' | 'put' | 'push'

function where (f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').replace(ROOT, '').replace(/^.*node_modules\//, 'node_modules/')
  return `${file === '' ? '(native)' : file}:${f.functionName === '' ? '(anonymous)' : f.functionName}:${f.lineNumber + 1}`
}

/** Self samples per function (idle left out). */
function selfSamples (profile: CpuProfile): Map<string, number> {
  const self = new Map<string, number>()
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0 || n.callFrame.functionName === '(idle)') continue
    const key = where(n.callFrame)
    self.set(key, (self.get(key) ?? 0) + hits)
  }
  return self
}

/**
 * The functions whose self samples grew most from the run without auth to the run with it (both runs
 * serve the same number of operations), in samples per 1000 operations: what auth adds, wherever it is.
 */
function difference (without: CpuProfile, withAuth: CpuProfile, ops: number, top: number): string {
  const a = selfSamples(without)
  const b = selfSamples(withAuth)
  const keys = new Set([...a.keys(), ...b.keys()])
  const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0)
  const per = (n: number): string => (1000 * n / ops).toFixed(2).padStart(7)
  const rows = [...keys].map(k => [k, (b.get(k) ?? 0) - (a.get(k) ?? 0)] as const).sort((x, y) => y[1] - x[1])
  const lines = [`busy samples per 1000 ops: no auth ${per(total(a))}, auth ${per(total(b))}; largest increases (samples per 1000 ops):`]
  for (const [k, d] of rows.slice(0, top)) lines.push(`  ${per(d)}  ${k}`)
  return lines.join('\n')
}

/** Self samples per function and the share of auth code, from a .cpuprofile. */
function summarize (profile: CpuProfile, top: number): string {
  const total = profile.samples.length
  const self = new Map<string, number>()
  let authSelf = 0
  let idle = 0
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    const key = where(n.callFrame)
    self.set(key, (self.get(key) ?? 0) + hits)
    if (AUTH_PATHS.some(p => n.callFrame.url.includes(p))) authSelf += hits
    if (n.callFrame.functionName === '(idle)') idle += hits
  }
  const busy = total - idle
  const pct = (h: number): string => `${(100 * h / busy).toFixed(1)}%`
  const lines = [`${busy} busy samples of ${total}; Tetra auth code (engines/auth, protocols/http/auth, protocols/mqtt) self time: ${pct(authSelf)} of busy`]
  const ranked = [...self.entries()].filter(([k]) => !k.includes('(idle)')).sort((a, b) => b[1] - a[1])
  for (const [k, h] of ranked.slice(0, top)) lines.push(`  ${pct(h).padStart(6)}  ${k}`)
  const authFns = ranked.filter(([k]) => AUTH_PATHS.some(p => k.includes(p.slice(1))))
  if (authFns.length > 0) {
    lines.push('  auth code, by self time:')
    for (const [k, h] of authFns.slice(0, 15)) lines.push(`  ${pct(h).padStart(6)}  ${k}`)
  }
  // only the engine's functions: a front-end hook calls `done()`, and with it the rest of the request
  const inclusive = [...inclusiveTimes(profile).entries()]
    .filter(([k]) => k.includes('engines/auth/'))
    .sort((a, b) => b[1] - a[1])
  if (inclusive.length > 0) {
    lines.push('  engines/auth, inclusive (self + callees):')
    for (const [k, h] of inclusive.slice(0, 15)) lines.push(`  ${pct(h).padStart(6)}  ${k}`)
  }
  return lines.join('\n')
}

/** Samples in each function and everything it called (a recursive call counted once). */
function inclusiveTimes (profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const childIds = new Set(profile.nodes.flatMap(n => n.children ?? []))
  const totals = new Map<string, number>()
  const subtree = new Map<number, number>()
  const sizeOf = (id: number): number => {
    const known = subtree.get(id)
    if (known !== undefined) return known
    const n = byId.get(id)!
    let sum = n.hitCount ?? 0
    for (const c of n.children ?? []) sum += sizeOf(c)
    subtree.set(id, sum)
    return sum
  }
  // depth-first with the keys on the path, so a function inside itself is not counted twice
  const walk = (id: number, onPath: Set<string>): void => {
    const n = byId.get(id)!
    const key = where(n.callFrame)
    const fresh = !onPath.has(key)
    if (fresh) {
      totals.set(key, (totals.get(key) ?? 0) + sizeOf(id))
      onPath.add(key)
    }
    for (const c of n.children ?? []) walk(c, onPath)
    if (fresh) onPath.delete(key)
  }
  for (const n of profile.nodes) if (!childIds.has(n.id)) walk(n.id, new Set())
  return totals
}

async function run (mode: Mode, count: number, auth: BenchAuth | undefined): Promise<{ cpuPerOpUs: number, rate: number, ops: number, profile: CpuProfile }> {
  const profDir = mkdtempSync(join(tmpdir(), 'tetra-prof-'))
  const dataDir = mkdtempSync(join(tmpdir(), 'tetra-bench-'))
  const broker = await startListening<{ mqttPort: number, httpPort: number }>(join(ROOT, 'dist/src/cli.js'),
    ['--mqtt-port', '0', '--http-port', '0', '--data-dir', dataDir, '--log-level', 'info', '--fsync', 'interval', ...(auth === undefined ? [] : ['--auth-file', auth.file])],
    ['--max-semi-space-size=32', '--cpu-prof', '--cpu-prof-dir', profDir])
  const url = `http://127.0.0.1:${broker.info.httpPort}`
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: `Bearer ${auth.backend.password}` }) }
  let ops = 0
  let rate = 0
  let cpu = 0
  try {
    if (mode === 'fanin' || mode === 'fanin-topics' || mode === 'qos1') {
      const devices = Array.from({ length: mode === 'qos1' ? 1 : 10 }, (_, i) => auth === undefined ? { name: `sensor-${i}` } : { name: `sensor-${i}`, credentials: auth.devices[i] })
      const base = { host: '127.0.0.1', port: broker.info.mqttPort, devices, ...(auth === undefined ? {} : { subscriber: auth.backend }), payloadBytes: 64, timeoutMs: 60_000 }
      // fanin-topics: each device cycles over 4096 topics (auth-mqtt-fanin-topics)
      const perPublisher = (n: number): number => mode === 'fanin-topics' ? Math.max(1, Math.round(n / 10 / 4096)) * 4096 : Math.ceil(n / 10)
      const params = (n: number): AuthLoadParams => mode === 'qos1'
        ? { ...base, mode, messages: n, window: 1000 }
        : { ...base, mode: 'fanin', messagesPerPublisher: perPublisher(n), batch: 32, ...(mode === 'fanin-topics' ? { topicsPerPublisher: 4096 } : {}) }
      await runNodeScript<AuthLoadResult>(join(ROOT, 'dist/bench/auth/mqtt-load.js'), [JSON.stringify(params(Math.ceil(count / 5)))], { tsx: false })
      const before = cpuTimeMs(broker.pid) ?? 0
      const r = await runNodeScript<AuthLoadResult>(join(ROOT, 'dist/bench/auth/mqtt-load.js'), [JSON.stringify(params(count))], { tsx: false })
      cpu = (cpuTimeMs(broker.pid) ?? 0) - before
      ops = r.delivered
      rate = r.rate
    } else {
      if (mode === 'get') {
        for (let i = 0; i < 10_000; i += 100) {
          const entries = Array.from({ length: 100 }, (_, j) => ({ key: `${KEY_PREFIX}${i + j}`, value: 'v'.repeat(64), encoding: 'utf8' }))
          await fetch(`${url}/v1/store/mset`, { method: 'POST', headers, body: JSON.stringify({ entries }) })
        }
      }
      if (mode === 'push') await fetch(`${url}/v1/queues/${QUEUE}`, { method: 'PUT', headers, body: '{}' })
      const params = (n: number): AuthHttpParams => ({ url, mode, ...(auth === undefined ? {} : { token: auth.backend.password }), keys: 10_000, connections: mode === 'push' ? 64 : 32, requests: n, timeoutSeconds: 120 })
      await runNodeScript<AuthHttpResult>(join(ROOT, 'dist/bench/auth/http-load.js'), [JSON.stringify(params(Math.ceil(count / 5)))], { tsx: false })
      const before = cpuTimeMs(broker.pid) ?? 0
      const r = await runNodeScript<AuthHttpResult>(join(ROOT, 'dist/bench/auth/http-load.js'), [JSON.stringify(params(count))], { tsx: false })
      cpu = (cpuTimeMs(broker.pid) ?? 0) - before
      ops = r.ok
      rate = r.rate
    }
  } finally {
    await broker.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  const file = readdirSync(profDir).find(f => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no profile written in ${profDir}`)
  const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile
  rmSync(profDir, { recursive: true, force: true })
  return { cpuPerOpUs: 1000 * cpu / ops, rate, ops, profile }
}

async function main (): Promise<void> {
  const mode = (process.argv[2] ?? 'get') as Mode
  const defaults: Record<Mode, number> = { fanin: 300_000, 'fanin-topics': 286_720, qos1: 50_000, get: 60_000, put: 60_000, push: 60_000 }
  const count = Number(process.argv[3] ?? defaults[mode])
  const top = Number(process.argv[4] ?? 25)
  const auth = createBenchAuth({ devices: 10, fillerUsers: 1000, fillerRules: 10_000 })
  try {
    const profiles: CpuProfile[] = []
    let ops = 0
    for (const withAuth of [false, true]) {
      const r = await run(mode, count, withAuth ? auth : undefined)
      profiles.push(r.profile)
      ops = r.ops
      process.stdout.write(`\n== ${mode}, ${withAuth ? 'auth' : 'no auth'}: ${r.rate.toFixed(0)}/s, broker CPU ${r.cpuPerOpUs.toFixed(1)} µs/op (profiled: slower than unprofiled)\n`)
      process.stdout.write(summarize(r.profile, top) + '\n')
    }
    // the profiles cover the warm-up (a fifth of the count) too
    process.stdout.write(`\n== ${mode}: auth minus no auth\n${difference(profiles[0], profiles[1], ops * 1.2, top)}\n`)
  } finally {
    auth.cleanup()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
