import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { hashPassword } from '../../engines/auth/hash.js'
import { checkSafeDefaults, isLoopbackHost } from '../../src/safe-defaults.js'
import { runCli, spawnBroker, tempDir, type ChildBroker } from '../helpers.js'

/**
 * Mosquitto 2's safe default (README "Security"): without an auth file the broker is anonymous and
 * loopback-only; a non-loopback --host without --auth-file refuses to start (exit 2) unless
 * --allow-anonymous. Only 127.0.0.1 is ever connected to: 0.0.0.0 is bound on ephemeral ports.
 */

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function dataDir (): string {
  const tmp = tempDir()
  cleanups.push(tmp.remove)
  // a directory that does not exist yet: a refused start must not create it
  return join(tmp.dir, 'data')
}

async function started (args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildBroker> {
  const broker = await spawnBroker(args, env)
  cleanups.push(async () => {
    if (broker.child.exitCode === null) {
      broker.child.kill('SIGTERM')
      await broker.exited
    }
  })
  return broker
}

function warnings (broker: ChildBroker): Array<{ event?: string, msg: string }> {
  return broker.output.flatMap(line => {
    try {
      const entry = JSON.parse(line) as { level: number, event?: string, msg: string }
      return entry.level === 40 ? [entry] : []
    } catch { return [] }
  })
}

/** The broker answers on 127.0.0.1 over MQTT and HTTP. */
async function answers (broker: ChildBroker): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 5000 })
  await client.endAsync()
  expect((await fetch(`${broker.url}/healthz`)).status).toBe(200)
}

describe('safe defaults: start refusal', () => {
  it('--host 0.0.0.0 without --auth-file: exit 2, a message naming --auth-file and --allow-anonymous, no data dir made', async () => {
    const dir = dataDir()
    const { code, stderr } = await runCli(['--host', '0.0.0.0', '--data-dir', dir])
    expect(code).toBe(2)
    expect(stderr).toMatch(/^tetra: refusing to start: --host 0\.0\.0\.0 is not a loopback address/)
    expect(stderr).toContain('--auth-file')
    expect(stderr).toContain('--allow-anonymous')
    expect(existsSync(dir)).toBe(false)
  })

  it.each([['::'], ['192.0.2.1'], ['example.invalid']])('--host %s without --auth-file is refused too (before any bind)', async host => {
    const { code, stderr } = await runCli(['--host', host, '--data-dir', dataDir()])
    expect(code).toBe(2)
    expect(stderr).toContain('--allow-anonymous')
  })

  it('TETRA_HOST from the environment is checked the same way', async () => {
    const { code, stderr } = await runCli(['--data-dir', dataDir()], { TETRA_HOST: '0.0.0.0' })
    expect(code).toBe(2)
    expect(stderr).toContain('--auth-file')
  })

  it('--host 0.0.0.0 --allow-anonymous starts, with a warning that anyone may do everything', async () => {
    const broker = await started(['--host', '0.0.0.0', '--allow-anonymous', '--data-dir', dataDir()])
    await answers(broker)
    expect(warnings(broker)).toContainEqual(expect.objectContaining({ event: 'anonymous_access', msg: expect.stringMatching(/--allow-anonymous: anyone who reaches 0\.0\.0\.0 may do everything/) }))
  })

  it('TETRA_ALLOW_ANONYMOUS=true does what --allow-anonymous does', async () => {
    const broker = await started(['--host', '0.0.0.0', '--data-dir', dataDir()], { TETRA_ALLOW_ANONYMOUS: 'true' })
    await answers(broker)
  })

  it('on loopback without --auth-file it starts, anonymous, and says so at warn', async () => {
    const broker = await started(['--data-dir', dataDir()])
    await answers(broker)
    expect(warnings(broker)).toContainEqual(expect.objectContaining({ event: 'anonymous_access', msg: expect.stringMatching(/no --auth-file: anonymous clients may do everything, on loopback \(127\.0\.0\.1\) only/) }))
  })

  it('--host 0.0.0.0 with an --auth-file starts, without the anonymous warning', async () => {
    const tmp = tempDir()
    cleanups.push(tmp.remove)
    const authFile = join(tmp.dir, 'auth.json')
    writeFileSync(authFile, JSON.stringify({
      users: [{ name: 'sensor-1', password: await hashPassword('pw', { ln: 4, r: 8, p: 1 }), roles: ['device'] }],
      roles: { device: [{ resource: 'topic', pattern: 'sensors/%u/#', actions: ['publish'] }] }
    }))
    const broker = await started(['--host', '0.0.0.0', '--auth-file', authFile, '--data-dir', dataDir()])
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200)
    expect(warnings(broker).filter(w => w.event === 'anonymous_access')).toEqual([])
  })
})

describe('isLoopbackHost / checkSafeDefaults', () => {
  it('loopback: 127.0.0.0/8, ::1 in its spellings, IPv4-mapped 127/8, localhost', () => {
    for (const host of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LocalHost']) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
    for (const host of ['0.0.0.0', '::', '128.0.0.1', '126.255.255.255', '10.0.0.1', '::ffff:10.0.0.1', '::2', 'example.com', '127.0.0.1.nip.io', 'localhost.example']) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })

  it('property: an IPv4 address is loopback exactly when its first byte is 127', () => {
    fc.assert(fc.property(fc.ipV4(), ip => isLoopbackHost(ip) === ip.startsWith('127.')))
  })

  it('property: a non-loopback host without an auth file starts only with allowAnonymous', () => {
    fc.assert(fc.property(fc.ipV4(), fc.boolean(), fc.boolean(), (host, hasAuth, allowAnonymous) => {
      const verdict = checkSafeDefaults({ host, authFile: hasAuth ? '/etc/tetra/auth.json' : '', allowAnonymous })
      return verdict.start === (hasAuth || allowAnonymous || host.startsWith('127.'))
    }))
  })
})
