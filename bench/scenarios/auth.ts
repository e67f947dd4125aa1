import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'
import { ROOT, peakRssMb, runNodeScript, startTetra, stopChild, type RunningBroker } from '../lib/process.js'
import { median } from '../lib/stats.js'
import { cpuTimeMs } from '../mqtt/targets.js'
import { encodePublish } from '../mqtt/client.js'
import { RawClient, type Credentials } from '../mqtt/client.js'
import { KEY_PREFIX, QUEUE, createBenchAuth, type BenchAuth } from '../auth/authfile.js'
import type { AuthLoadParams, AuthLoadResult } from '../auth/mqtt-load.js'
import type { AuthHttpParams, AuthHttpResult } from '../auth/http-load.js'

/**
 * What auth costs (issue 11, "How well"): the same load against two Tetra processes of the same build in
 * the same run, one without an auth file (open, loopback) and one with the bench auth file
 * (bench/auth/authfile.ts: 1,000 users, 10,000 rules, realistic roles), whose clients authenticate (MQTT
 * user/password and token, HTTP Bearer). Rounds interleave the two (the order flips each round) after
 * an untimed warm-up of each; the ratio is the median of the per-round ratios, and the same on broker
 * CPU per message, which the other load on a shared machine disturbs less. The bar: at least 0.9x.
 * The reload scenario rewrites the file and sends SIGHUP while MQTT clients publish, and counts the
 * connections the broker drops.
 */

const GROUP = 'auth'
const HOST = '127.0.0.1'
const MIN_RATIO = 0.9
const WITH = 'tetra, auth'
const WITHOUT = 'tetra, no auth'
const DEVICES = 20
const FILE_SPEC = { devices: DEVICES, fillerUsers: 1000, fillerRules: 10_000 }

const script = (name: string): string => join(ROOT, 'dist/bench/auth', name)
const fmt = (n: number): string => n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)

/** Auth files made during this run, removed when the process exits. */
const made: BenchAuth[] = []
process.once('exit', () => { for (const a of made) a.cleanup() })
function benchAuth (): BenchAuth {
  const a = createBenchAuth(FILE_SPEC)
  made.push(a)
  return a
}

interface Arm {
  name: typeof WITH | typeof WITHOUT
  broker: RunningBroker
  /** Credentials its clients send: none for the broker without auth file. */
  devices: Array<{ name: string, credentials?: Credentials }>
  backend?: Credentials
}

async function startArms (extraArgs: string[]): Promise<{ arms: Arm[], auth: BenchAuth }> {
  const auth = benchAuth()
  const names = auth.devices.map(d => d.username)
  const open = await startTetra([...extraArgs])
  let authed: RunningBroker
  try {
    authed = await startTetra(['--auth-file', auth.file, ...extraArgs])
  } catch (err) {
    await open.stop()
    throw err
  }
  return {
    auth,
    arms: [
      { name: WITH, broker: authed, devices: auth.devices.map(d => ({ name: d.username, credentials: d })), backend: auth.backend },
      { name: WITHOUT, broker: open, devices: names.map(name => ({ name })) }
    ]
  }
}

interface Sample {
  rate: number
  delivered: number
  published: number
  errors?: number
  p50Ms?: number
  p99Ms?: number
  cpuMs?: number
  note?: string
}

interface Comparison {
  scenario: string
  unit: string
  rounds: number
  /** The fraction of the full size a warm-up round runs at (untimed, once per arm). */
  measure: (arm: Arm, warmUp: boolean) => Promise<Sample>
  /** Loss is an error (QoS 1). */
  lossless?: boolean
  extraNote?: string
}

const cpuPer = (s: Sample): number => s.cpuMs !== undefined && s.delivered > 0 ? s.cpuMs / s.delivered : NaN
function medianOf (xs: Sample[], pick: (s: Sample) => number | undefined): number | undefined {
  const v = xs.map(pick).filter((n): n is number => n !== undefined && Number.isFinite(n))
  return v.length === 0 ? undefined : median(v)
}

/** Warm-up, then interleaved rounds on both arms; rows with the ratio of the authed arm to the open one. */
async function compare (ctx: BenchContext, arms: Arm[], auth: BenchAuth, spec: Comparison): Promise<BenchRow[]> {
  const samples = new Map<string, Sample[]>(arms.map(a => [a.name, []]))
  for (const arm of arms) {
    const s = await spec.measure(arm, true)
    ctx.progress(`warm-up ${arm.name}: ${fmt(s.rate)} ${spec.unit}`)
  }
  for (let round = 0; round < spec.rounds; round++) {
    const order = round % 2 === 0 ? arms : [...arms].reverse()
    for (const arm of order) {
      const before = cpuTimeMs(arm.broker.pid)
      const s = await spec.measure(arm, false)
      const after = cpuTimeMs(arm.broker.pid)
      if (before !== undefined && after !== undefined) s.cpuMs = after - before
      samples.get(arm.name)!.push(s)
      const lat = s.p99Ms === undefined ? '' : `, p50 ${s.p50Ms ?? '?'} ms p99 ${s.p99Ms} ms`
      const cpu = Number.isFinite(cpuPer(s)) ? `, broker CPU ${(1000 * cpuPer(s)).toFixed(1)} µs/op` : ''
      ctx.progress(`round ${round + 1}/${spec.rounds} ${arm.name}: ${fmt(s.rate)} ${spec.unit}${lat}${cpu} (${s.delivered}/${s.published}${s.errors !== undefined && s.errors > 0 ? `, ${s.errors} errors` : ''})`)
    }
  }
  const counters = new Map<string, string>()
  for (const arm of arms) counters.set(arm.name, await securityCounters(arm))
  const withAuth = samples.get(WITH)!
  const without = samples.get(WITHOUT)!
  const ratio = median(withAuth.map((s, i) => s.rate / without[i].rate))
  const cpuRatios = withAuth.map((s, i) => cpuPer(without[i]) / cpuPer(s)).filter(r => Number.isFinite(r))
  return arms.map(arm => {
    const ss = samples.get(arm.name)!
    const delivered = ss.reduce((a, s) => a + s.delivered, 0)
    const published = ss.reduce((a, s) => a + s.published, 0)
    const notes: string[] = []
    const row: BenchRow = {
      group: GROUP,
      scenario: spec.scenario,
      target: arm.name,
      rate: medianOf(ss, s => s.rate),
      unit: spec.unit,
      p50Ms: medianOf(ss, s => s.p50Ms),
      p99Ms: medianOf(ss, s => s.p99Ms),
      delivered,
      published,
      peakRssMb: peakRssMb(arm.broker.pid)
    }
    if (arm.name === WITH) {
      row.ratios = { 'no auth': ratio, ...(cpuRatios.length > 0 ? { 'no auth CPU/op': median(cpuRatios) } : {}) }
      notes.push(ratio < MIN_RATIO ? `BELOW the ${MIN_RATIO}x target` : `target >= ${MIN_RATIO}x`)
      notes.push(`file of ${auth.users} users, ${auth.rules} rules`)
    }
    if (delivered < published) notes.push(spec.lossless === true ? `LOST ${published - delivered}` : `${published - delivered} not delivered`)
    const errors = ss.reduce((a, s) => a + (s.errors ?? 0), 0)
    if (errors > 0) notes.push(`${errors} errors`)
    for (const n of new Set(ss.map(s => s.note).filter((n): n is string => n !== undefined))) notes.push(n)
    const cpu = medianOf(ss, cpuPer)
    if (cpu !== undefined) notes.push(`broker CPU ${(cpu * 1000).toFixed(1)} µs/op`)
    const counted = counters.get(arm.name)
    if (counted !== undefined && counted !== '') notes.push(counted)
    if (spec.extraNote !== undefined && arm.name === WITH) notes.push(spec.extraNote)
    notes.push(`median of ${ss.length}`)
    row.note = notes.join('; ')
    return row
  })
}

/**
 * The broker's non-zero security counters (limit refusals, ACL denials, authentication failures) from
 * /metrics: a denial or a limit in a benchmark means it measured something else than allowed traffic.
 */
async function securityCounters (arm: Arm): Promise<string> {
  try {
    const headers: Record<string, string> = arm.backend === undefined ? {} : { authorization: `Bearer ${arm.backend.password}` }
    const res = await fetch(`${urlOf(arm)}/metrics`, { headers })
    if (res.status !== 200) return `/metrics answered ${res.status}`
    const text = await res.text()
    return text.split('\n')
      .filter(l => /^tetra_(limit_refusals|acl_denied|auth_failures)_total\{/.test(l) && !/ 0$/.test(l))
      .map(l => l.replace(/^tetra_/, '').replace(/_total/, ''))
      .join(', ')
  } catch (err) {
    return `/metrics: ${(err as Error).message}`
  }
}

async function withArms (extraArgs: string[], body: (arms: Arm[], auth: BenchAuth) => Promise<BenchRow[]>): Promise<BenchRow[]> {
  const { arms, auth } = await startArms(extraArgs)
  try {
    return await body(arms, auth)
  } finally {
    for (const a of arms) await a.broker.stop()
  }
}

async function mqttLoad (params: AuthLoadParams): Promise<AuthLoadResult> {
  return await runNodeScript<AuthLoadResult>(script('mqtt-load.js'), [JSON.stringify(params)], { tsx: false })
}

function mqttSample (r: AuthLoadResult): Sample {
  const notes: string[] = []
  if (r.timedOut) notes.push('a round timed out')
  if ((r.duplicates ?? 0) > 0) notes.push(`${r.duplicates} duplicates`)
  if (r.acked !== undefined && r.acked < r.published) notes.push(`${r.published - r.acked} unacknowledged`)
  return { rate: r.rate, delivered: r.delivered, published: r.published, ...(notes.length > 0 ? { note: notes.join(', ') } : {}) }
}

const PAYLOAD_BYTES = 64
/**
 * QoS 1 scenarios run without a cap on messages waiting behind a client's in-flight window (the default, as
 * bench/mqtt runs Mosquitto), said explicitly: with --mqtt-max-waiting a subscriber that falls behind on a
 * busy machine loses the oldest, in both arms, which is that limit at work, not auth.
 */
const NO_QUEUE_CAP = ['--mqtt-max-waiting', '0']

const fanIn: Scenario = {
  name: 'auth-mqtt-fanin',
  group: GROUP,
  run: async ctx => await withArms([], async (arms, auth) => await compare(ctx, arms, auth, {
    scenario: 'qos0 fan-in 10->1 (sensors/+/in), auth vs none',
    unit: 'msg/s',
    rounds: ctx.quick ? 3 : 5,
    measure: async (arm, warmUp) => mqttSample(await mqttLoad({
      mode: 'fanin',
      host: HOST,
      port: arm.broker.mqttPort,
      devices: arm.devices.slice(0, 10),
      ...(arm.backend === undefined ? {} : { subscriber: arm.backend }),
      messagesPerPublisher: warmUp ? 5_000 : ctx.quick ? 10_000 : 30_000,
      batch: 32,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 30_000
    })),
    extraNote: 'devices user/password (sensors/%u/# with a deny inside), subscriber a token (sensors/# with denies inside)'
  }))
}

/** The fan-in from a fleet's many topics: 10 devices × 4096 topics, more than a principal's decision cache holds. */
const fanInTopics: Scenario = {
  name: 'auth-mqtt-fanin-topics',
  group: GROUP,
  run: async ctx => await withArms([], async (arms, auth) => await compare(ctx, arms, auth, {
    scenario: 'qos0 fan-in 10->1 over 40,960 topics (sensors/#), auth vs none',
    unit: 'msg/s',
    rounds: ctx.quick ? 3 : 5,
    measure: async (arm, warmUp) => mqttSample(await mqttLoad({
      mode: 'fanin',
      host: HOST,
      port: arm.broker.mqttPort,
      devices: arm.devices.slice(0, 10),
      ...(arm.backend === undefined ? {} : { subscriber: arm.backend }),
      messagesPerPublisher: warmUp ? 4_096 : ctx.quick ? 12_288 : 28_672,
      topicsPerPublisher: 4_096,
      batch: 32,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 30_000
    })),
    extraNote: 'each device cycles over 4,096 topics sensors/%u/t<k>/in; the subscriber (a token) takes sensors/# with denies inside'
  }))
}

const qos1: Scenario = {
  name: 'auth-mqtt-qos1',
  group: GROUP,
  run: async ctx => await withArms(NO_QUEUE_CAP, async (arms, auth) => await compare(ctx, arms, auth, {
    scenario: 'qos1 1->1, window 1000, auth vs none',
    unit: 'msg/s',
    rounds: ctx.quick ? 3 : 5,
    lossless: true,
    measure: async (arm, warmUp) => mqttSample(await mqttLoad({
      mode: 'qos1',
      host: HOST,
      port: arm.broker.mqttPort,
      devices: arm.devices.slice(0, 1),
      ...(arm.backend === undefined ? {} : { subscriber: arm.backend }),
      messages: warmUp ? 10_000 : ctx.quick ? 20_000 : 50_000,
      window: 1000,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 30_000
    }))
  }))
}

async function httpLoad (params: AuthHttpParams): Promise<AuthHttpResult> {
  return await runNodeScript<AuthHttpResult>(script('http-load.js'), [JSON.stringify(params)], { tsx: false })
}

function httpSample (r: AuthHttpResult, requests: number): Sample {
  return {
    rate: r.rate,
    delivered: r.ok,
    published: requests,
    errors: r.errors,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    ...(r.firstBadStatus === undefined ? {} : { note: `first non-2xx status ${r.firstBadStatus}` })
  }
}

const urlOf = (arm: Arm): string => `http://${HOST}:${arm.broker.httpPort}`
const tokenOf = (arm: Arm): { token?: string } => arm.backend === undefined ? {} : { token: arm.backend.password }

async function send (arm: Arm, method: string, path: string, body: unknown): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (arm.backend !== undefined) headers.authorization = `Bearer ${arm.backend.password}`
  const res = await fetch(`${urlOf(arm)}${path}`, { method, headers, body: JSON.stringify(body) })
  if (res.status < 200 || res.status > 299) throw new Error(`${method} ${path} on ${arm.name}: ${res.status} ${await res.text()}`)
}

const STORE_KEYS = 10_000

const storeHttp: Scenario = {
  name: 'auth-store-http',
  group: GROUP,
  run: async ctx => await withArms([], async (arms, auth) => {
    for (const arm of arms) {
      for (let i = 0; i < STORE_KEYS; i += 100) {
        const entries = Array.from({ length: 100 }, (_, j) => ({ key: `${KEY_PREFIX}${i + j}`, value: 'v'.repeat(64), encoding: 'utf8' }))
        await send(arm, 'POST', '/v1/store/mset', { entries })
      }
    }
    const rows: BenchRow[] = []
    const requests = ctx.quick ? 20_000 : 120_000
    for (const mode of ['get', 'put'] as const) {
      rows.push(...await compare(ctx, arms, auth, {
        scenario: `HTTP ${mode.toUpperCase()} key (64 B), Bearer token, auth vs none`,
        unit: 'req/s',
        rounds: ctx.quick ? 3 : 5,
        measure: async (arm, warmUp) => {
          const n = warmUp ? 20_000 : requests
          return httpSample(await httpLoad({ url: urlOf(arm), mode, ...tokenOf(arm), keys: STORE_KEYS, connections: 32, requests: n, timeoutSeconds: 60 }), n)
        },
        extraNote: 'keys cache/bench-* (backend role: cache/* read/write, cache/private/* denied); 32 connections'
      }))
    }
    return rows
  })
}

const queuePush: Scenario = {
  name: 'auth-queue-push',
  group: GROUP,
  run: async ctx => await withArms(['--fsync', 'interval'], async (arms, auth) => {
    for (const arm of arms) await send(arm, 'PUT', `/v1/queues/${QUEUE}`, {})
    const requests = ctx.quick ? 30_000 : 100_000
    return await compare(ctx, arms, auth, {
      scenario: 'queue push, 1 message per request, Bearer token, auth vs none',
      unit: 'req/s',
      rounds: ctx.quick ? 3 : 5,
      measure: async (arm, warmUp) => {
        const n = warmUp ? 30_000 : requests
        return httpSample(await httpLoad({ url: urlOf(arm), mode: 'push', ...tokenOf(arm), keys: 1, connections: 64, requests: n, timeoutSeconds: 60 }), n)
      },
      extraNote: `queue ${QUEUE} (backend role: jobs-* push/receive/admin); 64 connections; --fsync interval`
    })
  })
}

/**
 * Reload under load: 20 devices publish (half at QoS 1) to a token subscriber on the authed broker while
 * the file is rewritten `reloads` times, odd ones followed by SIGHUP, even ones left to the file watch.
 * After each, a probe publishes to the topic the new file just granted until it arrives: when it does,
 * the reload has taken effect. Every connection the broker closes meanwhile is a failure.
 */
const reload: Scenario = {
  name: 'auth-reload',
  group: GROUP,
  run: async ctx => {
    const reloads = ctx.quick ? 4 : 10
    const auth = benchAuth()
    const broker = await startTetra(['--auth-file', auth.file, ...NO_QUEUE_CAP])
    const params: AuthLoadParams = {
      mode: 'steady',
      host: HOST,
      port: broker.mqttPort,
      devices: auth.devices.map(d => ({ name: d.username, credentials: d })),
      subscriber: auth.backend,
      ratePerDevice: 500,
      payloadBytes: PAYLOAD_BYTES,
      timeoutMs: 120_000
    }
    const load = spawn(process.execPath, [script('mqtt-load.js'), JSON.stringify(params)], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: load.stdout! })
    let result: AuthLoadResult | undefined
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('the load generator was not ready within 30 s')) }, 30_000)
      lines.on('line', line => {
        const msg = JSON.parse(line) as { event?: string } & AuthLoadResult
        if (msg.event === 'ready') { clearTimeout(timer); resolve() } else result = msg
      })
      load.once('exit', code => { clearTimeout(timer); reject(new Error(`the load generator exited with ${code}`)) })
    })
    const exited = new Promise<number | null>(resolve => load.once('exit', resolve))
    const probeSub = await RawClient.connect({ kind: 'tcp', host: HOST, port: broker.mqttPort }, 'reload-probe-sub', true, auth.backend)
    const probePub = await RawClient.connect({ kind: 'tcp', host: HOST, port: broker.mqttPort }, 'reload-probe-pub', true, auth.prober)
    const effectMs: Array<{ ms: number, via: string }> = []
    const missed: string[] = []
    try {
      await ready
      await probeSub.subscribe('probe/#', 0)
      const arrived = new Set<string>()
      probeSub.onPacket = packet => { if (packet.cmd === 'publish') arrived.add(packet.topic) }
      await new Promise(resolve => setTimeout(resolve, 1000))
      for (let k = 1; k <= reloads; k++) {
        const viaSignal = k % 2 === 1
        const t0 = performance.now()
        const topic = auth.rewrite(k)
        if (viaSignal) broker.child.kill('SIGHUP')
        const packet = encodePublish(topic, Buffer.from('probe'))
        let signalled = viaSignal
        // bounded: 5 s (10 s when a file change had to be followed by SIGHUP)
        while (!arrived.has(topic) && performance.now() - t0 < 10_000 && !probePub.isClosed) {
          if (!signalled && performance.now() - t0 > 5_000) {
            missed.push(`reload ${k}: file change not applied within 5 s, SIGHUP sent`)
            broker.child.kill('SIGHUP')
            signalled = true
          }
          probePub.write(packet)
          await new Promise(resolve => setTimeout(resolve, 10))
        }
        if (arrived.has(topic)) effectMs.push({ ms: performance.now() - t0, via: viaSignal ? 'SIGHUP' : 'file change' })
        else missed.push(`reload ${k}: never applied`)
        ctx.progress(`reload ${k}/${reloads} (${viaSignal ? 'SIGHUP' : 'file change'}): ${arrived.has(topic) ? `in effect after ${(performance.now() - t0).toFixed(0)} ms` : 'NOT in effect'}`)
        await new Promise(resolve => setTimeout(resolve, 500))
      }
      load.stdin!.write('stop\n')
      const code = await exited
      if (code !== 0 || result === undefined) throw new Error(`the load generator exited with ${code}`)
    } finally {
      if (load.exitCode === null) await stopChild(load)
      probeSub.close()
      probePub.close()
    }
    const probesDropped = [probeSub, probePub].filter(c => c.droppedByPeer).length
    const peak = peakRssMb(broker.pid)
    const counted = await securityCounters({ name: WITH, broker, devices: [], backend: auth.backend })
    await broker.stop()
    const r = result
    const disconnects = (r.disconnects ?? 0) + probesDropped
    const bySignal = effectMs.filter(e => e.via === 'SIGHUP').map(e => e.ms)
    const byFile = effectMs.filter(e => e.via === 'file change').map(e => e.ms)
    const show = (xs: number[]): string => xs.length === 0 ? 'none' : `median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`
    const notes = [
      `disconnects: ${disconnects}`,
      `${reloads} reloads of a file of ${auth.users} users, ${auth.rules} rules`,
      `in effect after SIGHUP ${show(bySignal)}; after a file change ${show(byFile)}`,
      `${(r.connections ?? 0) + 2} connections, ${DEVICES} devices at 500 msg/s each (half QoS 1)`,
      `QoS 1 acked ${r.acked}`,
      ...(r.duplicates !== undefined && r.duplicates > 0 ? [`${r.duplicates} duplicates`] : []),
      ...(r.delivered < r.published ? [`LOST ${r.published - r.delivered}`] : []),
      ...(r.timedOut ? ['timed out waiting for the last messages'] : []),
      ...missed,
      ...(counted === '' ? [] : [counted]),
      ...(counted.includes('acl_denied') ? ['(the ACL denials are the probe\'s publishes before each reload took effect)'] : [])
    ]
    return [{
      group: GROUP,
      scenario: 'reload under load (MQTT clients publishing)',
      target: WITH,
      rate: r.rate,
      unit: 'msg/s',
      delivered: r.delivered,
      published: r.published,
      peakRssMb: peak,
      note: notes.join('; ')
    }]
  }
}

/** auth-file-load (bench/auth/load.ts) is registered beside these in index.ts. */
export const authScenarios: Scenario[] = [fanIn, fanInTopics, qos1, storeHttp, queuePush, reload]
