import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import mqtt from 'mqtt'
import { ROOT } from '../helpers.js'

/**
 * The package installed the way the image installs it: `npm pack` of the built tree, then a production
 * install of that tarball (no dev dependencies) in another directory, started with `node .../dist/src/cli.js`
 * (no V8 flags, no tsx) and the env a chart sets, with the data dir where the chart mounts its volume.
 */

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

interface Started { child: ChildProcess, output: string[], pid: number, mqttPort: number, httpPort: number, exited: Promise<number | string> }

let tmp: string
let app: string
let cli: string

function start (): Promise<Started> {
  const child = spawn(process.execPath, [cli], {
    cwd: app,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TETRA_HOST: '127.0.0.1',
      TETRA_MQTT_PORT: '0',
      TETRA_HTTP_PORT: '0',
      TETRA_DATA_DIR: join(tmp, 'data'),
      TETRA_LOG_LEVEL: 'info'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output: string[] = []
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | string>(resolve => { child.on('exit', (code, signal) => { resolve(code ?? signal ?? 'unknown') }) })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no listening line within 30 s: ${stderr}`)) }, 30_000)
    void exited.then(code => { clearTimeout(timer); reject(new Error(`broker exited (${code}) before listening: ${stderr}`)) })
    createInterface({ input: child.stdout! }).on('line', line => {
      output.push(line)
      try {
        const entry = JSON.parse(line) as { event?: string, pid: number, mqttPort: number, httpPort: number }
        if (entry.event === 'listening') {
          clearTimeout(timer)
          resolve({ child, output, pid: entry.pid, mqttPort: entry.mqttPort, httpPort: entry.httpPort, exited })
        }
      } catch { /* not JSON */ }
    })
  })
}

async function waitForLine (output: string[], match: (entry: Record<string, unknown>) => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (output.some(line => { try { return match(JSON.parse(line) as Record<string, unknown>) } catch { return false } })) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error('log line not seen')
}

describe('the package installed without dev dependencies', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tetra-pkg-'))
    const packDir = join(tmp, 'pack')
    app = join(tmp, 'app')
    execFileSync('mkdir', ['-p', packDir, app])
    // prepack builds dist/ first
    execFileSync(NPM, ['pack', '--silent', '--pack-destination', packDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], timeout: 120_000 })
    const tarball = join(packDir, readdirSync(packDir).find(f => f.endsWith('.tgz'))!)
    execFileSync(NPM, ['init', '-y'], { cwd: app, stdio: 'ignore' })
    execFileSync(NPM, ['install', '--omit=dev', '--no-audit', '--no-fund', '--silent', tarball], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'], timeout: 200_000 })
    cli = join(app, 'node_modules/tetra/dist/src/cli.js')
  }, 240_000)

  afterAll(() => { if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true }) })

  it('ships the build, the dashboard and the license, and nothing of the tests, the benchmarks or dev dependencies', () => {
    const pkg = join(app, 'node_modules/tetra')
    expect(existsSync(cli)).toBe(true)
    expect(existsSync(join(pkg, 'web/index.html'))).toBe(true)
    expect(readFileSync(join(pkg, 'LICENSE'), 'utf8')).toContain('Apache License')
    expect(existsSync(join(pkg, 'test'))).toBe(false)
    expect(existsSync(join(pkg, 'bench'))).toBe(false)
    expect(existsSync(join(pkg, 'dist/bench'))).toBe(false)
    expect(existsSync(join(pkg, 'src'))).toBe(false)
    for (const dev of ['vitest', 'typescript', 'tsx', 'mqtt', 'autocannon', 'fast-check']) {
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false)
    }
  })

  it('starts with the chart env, serves MQTT, queues and the dashboard, drains on SIGTERM and finds its data again', async () => {
    const first = await start()
    try {
      const base = `http://127.0.0.1:${first.httpPort}`
      expect((await fetch(`${base}/readyz`)).status).toBe(200)
      const page = await fetch(`${base}/`)
      expect(page.status).toBe(200)
      expect(await page.text()).toContain('Tetra')

      // started without V8 flags, the serving process runs with them anyway
      if (process.platform === 'linux') {
        expect(readFileSync(`/proc/${first.pid}/cmdline`, 'utf8').split('\0')).toContain('--max-semi-space-size=32')
      }

      // MQTT round trip
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 5000 })
      try {
        await client.subscribeAsync('pkg/test', { qos: 1 })
        const got = new Promise<string>(resolve => { client.on('message', (_t, payload) => { resolve(payload.toString()) }) })
        await client.publishAsync('pkg/test', 'hello', { qos: 1 })
        expect(await got).toBe('hello')
      } finally {
        await client.endAsync()
      }

      // queue push and receive; a second message stays queued over the restart
      const post = async (path: string, body: unknown): Promise<Response> =>
        await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      expect((await post('/v1/queues/jobs/messages', { payload: 'job-1' })).status).toBeLessThan(300)
      const received = await (await post('/v1/queues/jobs/receive', { max: 1 })).json() as { messages: Array<{ payload: unknown, receipt: string }> }
      expect(received.messages.map(m => m.payload)).toEqual(['job-1'])
      expect((await post('/v1/queues/jobs/ack', { receipts: [received.messages[0].receipt] })).status).toBe(200)
      expect((await post('/v1/queues/jobs/messages', { payload: 'job-2' })).status).toBeLessThan(300)

      // SIGHUP reaches the broker
      first.child.kill('SIGHUP')
      await waitForLine(first.output, e => e.msg === 'reloaded')
    } finally {
      first.child.kill('SIGTERM')
    }
    expect(await first.exited).toBe(0)
    expect(first.output.some(line => line.includes('"msg":"stopped"'))).toBe(true)

    const second = await start()
    try {
      const res = await fetch(`http://127.0.0.1:${second.httpPort}/v1/queues/jobs/receive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ max: 10 }) })
      const again = await res.json() as { messages: Array<{ payload: unknown }> }
      expect(again.messages.map(m => m.payload)).toEqual(['job-2'])
    } finally {
      second.child.kill('SIGTERM')
    }
    expect(await second.exited).toBe(0)
  }, 60_000)

  it.runIf(process.platform === 'linux')('a SIGKILL of the process that was started takes the re-spawned broker down too', async () => {
    const broker = await start()
    expect(broker.pid).not.toBe(broker.child.pid)
    broker.child.kill('SIGKILL')
    expect(await broker.exited).toBe('SIGKILL')
    // gone (or a zombie waiting to be reaped), not left holding the data directory
    const alive = (): boolean => {
      try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${broker.pid}/stat`, 'utf8')) } catch { return false }
    }
    await waitForCondition(() => !alive(), 10_000)
    const again = await start()
    again.child.kill('SIGTERM')
    expect(await again.exited).toBe(0)
  }, 60_000)

  it('exports tetra/client with its types, usable without dev dependencies, and the tetra commands use it', async () => {
    const pkg = join(app, 'node_modules/tetra')
    expect(existsSync(join(pkg, 'dist/src/client/index.d.ts'))).toBe(true)
    const broker = await start()
    try {
      const url = `http://127.0.0.1:${broker.httpPort}`
      const script = "import { Tetra, NotFoundError } from 'tetra/client'\n" +
        'const tetra = new Tetra({ url: process.argv[2] })\n' +
        "await tetra.store.set('pkg/key', { ok: true })\n" +
        "const missing = await tetra.queue('none').info().catch(e => e instanceof NotFoundError)\n" +
        "console.log(JSON.stringify({ value: await tetra.store.get('pkg/key'), missing }))\n"
      const file = join(app, 'client-check.mjs')
      execFileSync('sh', ['-c', `cat > ${file}`], { input: script })
      const out = execFileSync(process.execPath, [file, url], { cwd: app, encoding: 'utf8', timeout: 30_000 })
      expect(JSON.parse(out)).toEqual({ value: { ok: true }, missing: true })
      const get = execFileSync(process.execPath, [cli, 'get', 'pkg/key'], { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH, TETRA_URL: url }, timeout: 30_000 })
      expect(JSON.parse(get)).toMatchObject({ key: 'pkg/key', value: { ok: true } })
    } finally {
      broker.child.kill('SIGTERM')
    }
    expect(await broker.exited).toBe(0)
  }, 60_000)
})

async function waitForCondition (condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (condition()) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error('condition not met')
}
