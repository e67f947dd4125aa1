import { join } from 'node:path'
import { peakRssMb, ROOT, runNodeScript, startListening, startTetra } from '../lib/process.js'
import { median } from '../lib/stats.js'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'

const GROUP = 'store'
const KEYS = 1_000_000
const HTTP_KEYS = 10_000
const BARE = 'fastify (bare)'

interface EngineResult { keys: number, getRate: number, mgetRate: number, setRate: number, msetRate: number, zipfGetRate: number, zipfSetRate: number, mapGetRate: number, found: number, residentRssMb: number, peakRssMb: number, loadMs: number }
interface SweepResult { loaded: number, remaining: number, expired: number, clearedMs: number, maxDelayMs: number, p99DelayMs: number, p50DelayMs: number, peakRssMb: number }
interface LoadResult { rps: number, total: number, ok: number, non2xx: number, errors: number, p50Ms: number, p99Ms: number, keysPerRequest: number }

const script = (name: string): string => join(ROOT, 'dist/bench/store', name)

async function engine (ctx: BenchContext): Promise<BenchRow[]> {
  const seconds = ctx.quick ? 1 : 3
  ctx.progress(`${KEYS} keys of 64 B, random get then set for ${seconds}s each`)
  const r = await runNodeScript<EngineResult>(script('engine-load.js'), [String(KEYS), String(seconds)], { tsx: false })
  const note = `${r.keys} keys resident, keys uniformly at random; RSS ${r.residentRssMb.toFixed(0)} MB after load (target <= 250)`
  return [
    { group: GROUP, scenario: 'engine get 64 B, 1M keys', target: 'engine (in-process)', rate: r.getRate, unit: 'ops/s', peakRssMb: r.peakRssMb, ratios: { 'Map.get (anchor)': r.getRate / r.mapGetRate }, note: `${note}; target >= 3M/s` },
    { group: GROUP, scenario: 'engine get 64 B, 1M keys', target: 'Map.get (anchor)', rate: r.mapGetRate, unit: 'ops/s', note: 'the same keys in a JavaScript Map to integers, same order: the cost of a random lookup alone' },
    { group: GROUP, scenario: 'engine mget 100 x 64 B, 1M keys', target: 'engine (in-process)', rate: r.mgetRate, unit: 'keys/s', peakRssMb: r.peakRssMb, note: `${note}; batched lookups` },
    { group: GROUP, scenario: 'engine set 64 B, 1M keys', target: 'engine (in-process)', rate: r.setRate, unit: 'ops/s', peakRssMb: r.peakRssMb, note: `${note}; target >= 1.5M/s` },
    { group: GROUP, scenario: 'engine mset 100 x 64 B, 1M keys', target: 'engine (in-process)', rate: r.msetRate, unit: 'keys/s', peakRssMb: r.peakRssMb, note: `${note}; batched lookups` },
    { group: GROUP, scenario: 'engine get 64 B, 1M keys, Zipfian keys', target: 'engine (in-process)', rate: r.zipfGetRate, unit: 'ops/s', peakRssMb: r.peakRssMb, note: 'keys drawn as YCSB draws them by default (scrambled Zipfian, theta 0.99)' },
    { group: GROUP, scenario: 'engine set 64 B, 1M keys, Zipfian keys', target: 'engine (in-process)', rate: r.zipfSetRate, unit: 'ops/s', peakRssMb: r.peakRssMb, note: 'keys drawn as YCSB draws them by default (scrambled Zipfian, theta 0.99)' }
  ]
}

async function expiry (ctx: BenchContext): Promise<BenchRow[]> {
  ctx.progress(`${KEYS} keys expiring at the same moment`)
  const r = await runNodeScript<SweepResult>(script('expiry-sweep.js'), [String(KEYS)], { tsx: false })
  return [{
    group: GROUP,
    scenario: 'expiry sweep, 1M keys at once',
    target: 'engine (in-process)',
    rate: r.expired / (r.clearedMs / 1000),
    unit: 'keys/s',
    p50Ms: r.p50DelayMs,
    p99Ms: r.p99DelayMs,
    delivered: r.expired,
    published: r.loaded,
    peakRssMb: r.peakRssMb,
    note: `event-loop delay max ${r.maxDelayMs.toFixed(1)} ms (target <= 20; p50/p99 columns are loop delay); all gone in ${(r.clearedMs / 1000).toFixed(1)} s, ${r.remaining} left`
  }]
}

interface Server { name: string, url: string, pid: number, stop: () => Promise<void> }

async function startBare (): Promise<Server> {
  const bare = await startListening<{ httpPort: number }>(script('bare-fastify.js'))
  return { name: BARE, url: `http://127.0.0.1:${bare.info.httpPort}`, pid: bare.pid, stop: bare.stop }
}

async function startServers (): Promise<Server[]> {
  const tetra = await startTetra(['--log-level', 'info'])
  const bare = await startBare()
  return [{ name: 'tetra', url: `http://127.0.0.1:${tetra.httpPort}`, pid: tetra.pid, stop: tetra.stop }, bare]
}

/** The same keys on every server, so GET and mget read existing values. */
async function preload (server: Server): Promise<void> {
  const value = 'v'.repeat(64)
  for (let i = 0; i < HTTP_KEYS; i += 100) {
    const entries = Array.from({ length: 100 }, (_, j) => ({ key: `bench/k${i + j}`, value, encoding: 'utf8' }))
    const res = await fetch(`${server.url}/v1/store/mset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entries }) })
    if (res.status !== 200) throw new Error(`preload on ${server.name}: ${res.status} ${await res.text()}`)
  }
}

/**
 * Runs each mode against Tetra and the bare baseline in interleaved rounds (the order flips each round)
 * and reports medians, with Tetra's ratio as the median of the per-round ratios.
 */
async function compare (ctx: BenchContext, modes: Array<{ mode: string, scenario: string, unit: string }>): Promise<BenchRow[]> {
  const rounds = ctx.quick ? 2 : 3
  const seconds = ctx.quick ? 2 : 5
  const connections = 32
  const servers = await startServers()
  const rows: BenchRow[] = []
  try {
    for (const s of servers) await preload(s)
    for (const { mode, scenario, unit } of modes) {
      const results = new Map<string, LoadResult[]>(servers.map(s => [s.name, []]))
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? servers : [...servers].reverse()
        for (const s of order) {
          ctx.progress(`${mode} round ${round + 1}/${rounds} on ${s.name}`)
          results.get(s.name)!.push(await runNodeScript<LoadResult>(script('http-load.js'), [s.url, mode, String(HTTP_KEYS), String(seconds), String(connections)], { tsx: false }))
        }
      }
      const tetra = results.get('tetra')!
      const bare = results.get(BARE)!
      const ratios = tetra.map((t, i) => t.rps / bare[i].rps)
      for (const s of servers) {
        const runs = results.get(s.name)!
        const row: BenchRow = {
          group: GROUP,
          scenario,
          target: s.name,
          rate: median(runs.map(r => r.rps * r.keysPerRequest)),
          unit,
          p50Ms: median(runs.map(r => r.p50Ms)),
          p99Ms: median(runs.map(r => r.p99Ms)),
          delivered: runs.reduce((sum, r) => sum + r.ok, 0),
          published: runs.reduce((sum, r) => sum + r.total, 0),
          peakRssMb: peakRssMb(s.pid),
          note: `${connections} connections, ${rounds} x ${seconds}s, median; errors ${runs.reduce((sum, r) => sum + r.errors + r.non2xx, 0)}`
        }
        if (s.name === 'tetra') row.ratios = { [BARE]: median(ratios) }
        rows.push(row)
      }
    }
  } finally {
    for (const s of servers) await s.stop()
  }
  return rows
}

export const storeScenarios: Scenario[] = [
  { name: 'store-engine', group: GROUP, run: engine },
  { name: 'store-expiry', group: GROUP, run: expiry },
  {
    name: 'store-http',
    group: GROUP,
    run: async ctx => await compare(ctx, [
      { mode: 'get', scenario: 'HTTP GET key (64 B)', unit: 'req/s' },
      { mode: 'put', scenario: 'HTTP PUT key (64 B)', unit: 'req/s' }
    ])
  },
  {
    name: 'store-batch',
    group: GROUP,
    run: async ctx => await compare(ctx, [
      { mode: 'mget', scenario: 'HTTP mget 100 keys/request', unit: 'keys/s' },
      { mode: 'mset', scenario: 'HTTP mset 100 keys/request', unit: 'keys/s' }
    ])
  }
]
