import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterEach } from 'vitest'
import { ManualClock } from '../engines/clock.js'
import { createEngines, type EngineOptions, type Engines } from '../engines/index.js'
import { PubSub } from '../engines/pubsub/pubsub.js'
import { Storage } from '../engines/storage/storage.js'
import { StreamEngine } from '../engines/stream/streams.js'
import type { StreamLimits } from '../engines/stream/types.js'
import { loadConfig, type Config } from '../src/config.js'
import { startBroker, type Broker } from '../src/server.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

export function tempDir (prefix = 'tetra-test-'): { dir: string, remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

export interface TestBroker extends Broker {
  config: Config
  dataDir: string
  /** http://127.0.0.1:port */
  url: string
  mqttUrl: string
  wsUrl: string
  /** With tlsCert set: mqtts://127.0.0.1:port, https://127.0.0.1:port, wss://127.0.0.1:port/mqtt. */
  mqttsUrl?: string
  httpsUrl?: string
  wssUrl?: string
  /** close() and remove the data directory */
  stop: () => Promise<void>
}

/** A broker in this process on ephemeral ports with its own temp data dir. */
export async function startTestBroker (overrides: Partial<Config> = {}, dataDir?: string): Promise<TestBroker> {
  const tmp = dataDir === undefined ? tempDir() : undefined
  const { config: defaults } = loadConfig([], {})
  const config: Config = { ...defaults, mqttPort: 0, httpPort: 0, logLevel: 'silent', dataDir: dataDir ?? tmp!.dir, ...overrides }
  const broker = await startBroker(config, pino({ level: config.logLevel }))
  const url = `http://127.0.0.1:${broker.httpAddress.port}`
  return Object.assign(broker, {
    config,
    dataDir: config.dataDir,
    url,
    mqttUrl: `mqtt://127.0.0.1:${broker.mqtt.port}`,
    wsUrl: `ws://127.0.0.1:${broker.httpAddress.port}/mqtt`,
    ...(broker.mqtts !== undefined
      ? { mqttsUrl: `mqtts://127.0.0.1:${broker.mqtts.port}`, httpsUrl: `https://127.0.0.1:${broker.httpAddress.port}`, wssUrl: `wss://127.0.0.1:${broker.httpAddress.port}/mqtt` }
      : {}),
    stop: async () => {
      await broker.close()
      tmp?.remove()
    }
  })
}

export interface ChildBroker {
  child: ChildProcess
  mqttPort: number
  httpPort: number
  url: string
  /** Every line the child printed on stdout so far. */
  output: string[]
  /** Resolves with the exit code (or signal name) when the child exits. */
  exited: Promise<number | string>
}

/**
 * The real CLI in a child process (sources run through tsx), for crash and shutdown tests.
 * Resolves once the child logged its listening line.
 */
export async function spawnBroker (args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildBroker> {
  const child = spawn(process.execPath, ['--max-semi-space-size=32', '--import', 'tsx', join(ROOT, 'src/cli.ts'), '--mqtt-port', '0', '--http-port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output: string[] = []
  const exited = new Promise<number | string>(resolve => {
    child.on('exit', (code, signal) => { resolve(code ?? signal ?? 'unknown') })
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const lines = createInterface({ input: child.stdout! })
  const ports = await new Promise<{ mqttPort: number, httpPort: number }>((resolve, reject) => {
    lines.on('line', line => {
      output.push(line)
      try {
        const entry = JSON.parse(line) as { event?: string, mqttPort?: number, httpPort?: number }
        if (entry.event === 'listening') {
          // started: the start-up deadline below must not kill it later
          clearTimeout(timer)
          resolve({ mqttPort: entry.mqttPort!, httpPort: entry.httpPort! })
        }
      } catch { /* not a JSON log line */ }
    })
    void exited.then(code => { reject(new Error(`broker exited (${code}) before listening: ${stderr}`)) })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`broker did not log its listening line within 20 s: ${stderr}`))
    }, 20_000)
    timer.unref()
    void exited.finally(() => { clearTimeout(timer) })
    lines.once('close', () => { clearTimeout(timer) })
  })
  return { child, ...ports, url: `http://127.0.0.1:${ports.httpPort}`, output, exited }
}

/**
 * The real CLI in a child process, run to its exit (killed after 20 s): for starts that must fail.
 * Ports are 0 unless `args` say otherwise.
 */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--max-semi-space-size=32', '--import', 'tsx', join(ROOT, 'src/cli.ts'), '--mqtt-port', '0', '--http-port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 20_000)
  const code = await new Promise<number | string>(resolve => { child.on('exit', (c, signal) => { resolve(c ?? signal ?? 'unknown') }) })
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Polls a condition (bounded) instead of sleeping for a fixed time. */
export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export interface SseEventRecord { id?: string, event?: string, data: string }

/** A minimal SSE client over fetch: collects events, can be closed; `ended` resolves when the stream ends (either side). */
export function openSse (url: string, headers: Record<string, string> = {}): { events: SseEventRecord[], opened: Promise<Response>, ended: Promise<void>, close: () => void, comments: string[] } {
  const controller = new AbortController()
  const events: SseEventRecord[] = []
  const comments: string[] = []
  const opened = fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
  const ended = opened.then(async res => {
    if (res.body === null) return
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true })
        let idx
        while ((idx = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, idx)
          buffer = buffer.slice(idx + 2)
          const ev: SseEventRecord = { data: '' }
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim())
            else if (line.startsWith('id: ')) ev.id = line.slice(4)
            else if (line.startsWith('event: ')) ev.event = line.slice(7)
            else if (line.startsWith('data: ')) data.push(line.slice(6))
          }
          if (data.length > 0) {
            ev.data = data.join('\n')
            events.push(ev)
          }
        }
      }
    } catch { /* aborted */ }
  }, () => { /* aborted */ })
  return { events, opened, ended, comments, close: () => { controller.abort() } }
}

/**
 * For engine tests: `open(dir?, clock?, extra?)` creates the engines on a temp (or given) data dir with a
 * ManualClock; every set opened in a test is closed, and its temp dir removed, after that test.
 */
export interface OpenedEngines {
  engines: Engines
  dir: string
  clock: ManualClock
  /** Closes them and removes their temp dir now rather than after the test (e.g. once per property run). */
  dispose: () => Promise<void>
}

export function engineOpener (): (dir?: string, clock?: ManualClock, extra?: Partial<EngineOptions>) => Promise<OpenedEngines> {
  const opened: Array<{ engines: Engines, remove?: () => void }> = []
  afterEach(async () => {
    for (const o of opened.splice(0)) {
      await o.engines.close()
      o.remove?.()
    }
  })
  return async (dir, clock = new ManualClock(), extra = {}) => {
    const tmp = dir === undefined ? tempDir() : undefined
    const d = dir ?? tmp!.dir
    const engines = await createEngines({ dataDir: d, fsync: 'never', fsyncIntervalMs: 100, clock, ...extra })
    const entry = { engines, remove: tmp?.remove }
    opened.push(entry)
    const dispose = async (): Promise<void> => {
      const at = opened.indexOf(entry)
      if (at >= 0) opened.splice(at, 1)
      await engines.close()
      entry.remove?.()
    }
    return { engines, dir: d, clock, dispose }
  }
}

/**
 * Opens a stream engine alone, on storage and a bus of its own, with engine-only limits the broker's
 * settings do not expose (such as small in-memory index bounds). Each one is closed after its test, or
 * earlier by its close() (to reopen the same dir, as a restart).
 */
export function streamEngineOpener (): (dir: string, limits: Partial<StreamLimits>, clock?: ManualClock) => Promise<{ streams: StreamEngine, close: () => Promise<void> }> {
  const open: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close()
  })
  return async (dir, limits, clock = new ManualClock()) => {
    const storage = await Storage.open({ dir, fsync: 'never' })
    const pubsub = await PubSub.create()
    const streams = await StreamEngine.open(storage, pubsub, clock, limits)
    let closed = false
    const close = async (): Promise<void> => {
      if (closed) return
      closed = true
      await streams.close()
      await pubsub.close()
      await storage.close()
    }
    open.push(close)
    return { streams, close }
  }
}
