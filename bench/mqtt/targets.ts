import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, startListening, startTetra, stopChild } from '../lib/process.js'
import type { Endpoint } from './client.js'

/** A broker (or HTTP server) under test, running in its own process. */
export interface Target {
  name: TargetName
  pid: number
  /** MQTT over TCP, if the target speaks it. */
  tcp?: Endpoint
  /** MQTT over WebSocket, if the target offers it. */
  ws?: Endpoint
  /** Base URL for HTTP publish. */
  http?: string
  /** The MQTT protocol levels it speaks (4 = 3.1.1, 5 = 5.0); a scenario with MQTT 5 clients leaves out the others. */
  speaks?: ReadonlyArray<4 | 5>
  /** The protocol level the load generator's clients use against it (default: the scenario's). */
  protocolVersion?: 4 | 5
  stop: () => Promise<void>
}

export type TargetName = 'tetra' | 'tetra (3.1.1)' | 'tetra (before)' | 'aedes' | 'mosquitto' | 'nats-server' | 'fastify (bare)' | 'relay (floor)'

const HOST = '127.0.0.1'
const START_TIMEOUT_MS = 15_000

/**
 * TETRA_BENCH_BEFORE=<dir>: another checkout of Tetra, built (`npm run build` there), is measured in the same
 * rounds as target `tetra (before)`, so a change's before/after ratio comes from interleaved rounds of one run.
 */
export function beforeCheckout (): string | undefined {
  const dir = process.env.TETRA_BENCH_BEFORE
  return dir === undefined || dir === '' ? undefined : dir
}

/** Tetra from this checkout's dist/, or, with `before`, from that checkout's (named `tetra (before)`). */
export async function startTetraTarget (before?: string): Promise<Target> {
  // the listening line is logged at info level; the last --log-level wins
  const tetra = await startTetra(['--log-level', 'info'], before)
  return {
    name: before === undefined ? 'tetra' : 'tetra (before)',
    pid: tetra.pid,
    tcp: { kind: 'tcp', host: HOST, port: tetra.mqttPort },
    ws: { kind: 'ws', url: `ws://${HOST}:${tetra.httpPort}/mqtt` },
    http: `http://${HOST}:${tetra.httpPort}`,
    speaks: [4, 5],
    stop: tetra.stop
  }
}


/** Spawns a built bench script of this folder and waits for its `{"event":"listening",...}` line. */
async function startScript<T extends Record<string, unknown>> (script: string): Promise<{ child: ChildProcess, info: T }> {
  return await startListening<T>(join(ROOT, 'dist/bench/mqtt', script))
}

export async function startAedesTarget (): Promise<Target> {
  const { child, info } = await startScript<{ mqttPort: number, wsPort: number }>('aedes-broker.js')
  return {
    name: 'aedes',
    pid: child.pid!,
    tcp: { kind: 'tcp', host: HOST, port: info.mqttPort },
    ws: { kind: 'ws', url: `ws://${HOST}:${info.wsPort}/mqtt` },
    // aedes 1.2 refuses protocol level 5
    speaks: [4],
    stop: async () => { await stopChild(child) }
  }
}

/** The minimal MQTT relay of relay.ts: the latency floor of the machine and the load generator. */
export async function startRelayTarget (): Promise<Target> {
  const { child, info } = await startScript<{ mqttPort: number }>('relay.js')
  return { name: 'relay (floor)', pid: child.pid!, tcp: { kind: 'tcp', host: HOST, port: info.mqttPort }, speaks: [4], stop: async () => { await stopChild(child) } }
}

export async function startBareFastifyTarget (): Promise<Target> {
  const { child, info } = await startScript<{ httpPort: number }>('bare-fastify.js')
  return { name: 'fastify (bare)', pid: child.pid!, http: `http://${HOST}:${info.httpPort}`, stop: async () => { await stopChild(child) } }
}

/** The mosquitto binary on PATH, or undefined (the mosquitto rows are then skipped). */
export function mosquittoBinary (): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' })
  const path = r.stdout.trim()
  return r.status === 0 && path !== '' ? path : undefined
}

/** A free port: bind port 0, read it, release it. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, HOST, resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

export async function waitForPort (port: number, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline && child.exitCode === null) {
    const ok = await new Promise<boolean>(resolve => {
      const s = net.connect({ host: HOST, port }, () => { s.destroy(); resolve(true) })
      s.on('error', () => { resolve(false) })
    })
    if (ok) return true
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return false
}

/**
 * Mosquitto with a temporary config: 127.0.0.1 only, anonymous, no persistence, TCP_NODELAY, and no
 * per-client queue or in-flight caps (aedes has none either, so QoS 1/2 runs lose nothing on either).
 * With `websocket`, a WebSocket listener too; a build without WebSocket support fails to start with it,
 * and then this resolves to undefined.
 */
export async function startMosquittoTarget (binary: string, websocket: boolean): Promise<Target | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'tetra-bench-mosquitto-'))
  const tcpPort = await freePort()
  const wsPort = websocket ? await freePort() : undefined
  const conf = [
    'per_listener_settings false',
    'allow_anonymous true',
    'persistence false',
    'set_tcp_nodelay true',
    'max_queued_messages 0',
    'max_inflight_messages 0',
    'log_dest stderr',
    'log_type error',
    `listener ${tcpPort} ${HOST}`,
    ...(wsPort !== undefined ? [`listener ${wsPort} ${HOST}`, 'protocol websockets'] : [])
  ].join('\n') + '\n'
  const confFile = join(dir, 'mosquitto.conf')
  writeFileSync(confFile, conf)
  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const cleanup = async (): Promise<void> => {
    await stopChild(child)
    rmSync(dir, { recursive: true, force: true })
  }
  const up = await waitForPort(tcpPort, child) && (wsPort === undefined || await waitForPort(wsPort, child))
  if (!up) {
    await cleanup()
    if (websocket) return undefined
    throw new Error(`mosquitto did not start: ${stderr.trim()}`)
  }
  return {
    name: 'mosquitto',
    pid: child.pid!,
    tcp: { kind: 'tcp', host: HOST, port: tcpPort },
    speaks: [4, 5],
    ...(wsPort !== undefined ? { ws: { kind: 'ws', url: `ws://${HOST}:${wsPort}/mqtt` } } : {}),
    stop: cleanup
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc. The difference across a run
 * is the broker's CPU cost, which other load on a shared machine disturbs far less than its throughput.
 */
export function cpuTimeMs (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is the state (field 3 of stat), so utime (14) and stime (15) are at 11 and 12
    return (Number(fields[11]) + Number(fields[12])) * 1000 / USER_HZ
  } catch {
    return undefined
  }
}
