import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Peak resident set (VmHWM) of a live process in MB, from /proc. */
export function peakRssMb (pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = /VmHWM:\s+(\d+) kB/.exec(status)
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

/** Current resident set (VmRSS) in MB. */
export function rssMb (pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

export interface RunningBroker {
  child: ChildProcess
  pid: number
  mqttPort: number
  httpPort: number
  stop: () => Promise<void>
}

/**
 * Starts the built broker (dist/, so `npm run build` first; run.ts does) on ephemeral ports with a fresh
 * data dir, and waits for its listening line. `root`: another checkout's built broker (a before/after run).
 */
export async function startTetra (extraArgs: string[] = [], root = ROOT): Promise<RunningBroker> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tetra-bench-'))
  const tetra = await startListening<{ mqttPort: number, httpPort: number }>(join(root, 'dist/src/cli.js'),
    // started as the image starts it: `node dist/src/cli.js`, no V8 flags (the broker applies them itself)
    ['--mqtt-port', '0', '--http-port', '0', '--data-dir', dataDir, '--log-level', 'info', ...extraArgs])
  return {
    child: tetra.child,
    pid: tetra.pid,
    mqttPort: tetra.info.mqttPort,
    httpPort: tetra.info.httpPort,
    stop: async () => {
      await tetra.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/**
 * Runs a node script (a load generator) in its own process and returns the JSON it prints last. Its stderr
 * is passed through; when it fails, the error names the first line of its last complaint (e.g. a refused
 * CONNACK).
 */
export async function runNodeScript<T> (script: string, args: string[], options: { tsx?: boolean } = {}): Promise<T> {
  const child = spawn(process.execPath, [...(options.tsx !== false ? ['--import', 'tsx'] : []), script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => {
    process.stderr.write(d)
    err = (err + d.toString()).slice(-4000)
  })
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  if (code !== 0) {
    const complaint = /(?:^|\n)([^\n]*(?:Error|error)[^\n]*)/.exec(err)?.[1]?.trim()
    throw new Error(`${script.replace(ROOT, '')} exited with ${code}${complaint === undefined ? '' : `: ${complaint}`}`)
  }
  const lines = out.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]) as T
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the child is gone. */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

export interface ListeningScript<T> {
  child: ChildProcess
  pid: number
  /** The fields of the script's `{"event":"listening",...}` line (its ports). */
  info: T
  stop: () => Promise<void>
}

/**
 * Runs a built bench server script (a baseline broker or a bare fastify server) in its own process and
 * waits, at most 15 s, for the `{"event":"listening",...}` line it prints (see announceListening).
 */
export async function startListening<T extends Record<string, unknown>> (script: string, args: string[] = [], nodeArgs: string[] = []): Promise<ListeningScript<T>> {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const info = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${script} did not start within 15 s`)) }, 15_000)
    createInterface({ input: child.stdout! }).on('line', line => {
      try {
        const e = JSON.parse(line) as T & { event?: string }
        if (e.event === 'listening') { clearTimeout(timer); resolve(e) }
      } catch { /* not ours */ }
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${script} exited early (${code})`)) })
  })
  // the process that serves: a broker that re-spawned itself with its V8 flags logs the child's pid
  const served = (info as { pid?: unknown }).pid
  return { child, pid: typeof served === 'number' ? served : child.pid!, info, stop: async () => { await stopChild(child) } }
}
