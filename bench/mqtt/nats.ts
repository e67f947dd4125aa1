import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopChild } from '../lib/process.js'
import { RawClient } from './client.js'
import { freePort, waitForPort, type Target } from './targets.js'

const HOST = '127.0.0.1'
/** Where Debian's `nats-server` package puts the binary (/usr/sbin is not on every user's PATH). */
const DEBIAN_BINARY = '/usr/sbin/nats-server'

/** The nats-server binary on PATH or at Debian's place, or undefined (the nats-server rows are then skipped). */
export function natsBinary (): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' })
  const path = r.stdout.trim()
  if (r.status === 0 && path !== '') return path
  return existsSync(DEBIAN_BINARY) ? DEBIAN_BINARY : undefined
}

/** `nats-server --version`, e.g. "v2.9.10", for the notes. */
export function natsVersion (binary: string): string {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  return /v\d+\.\d+\.\d+/.exec(r.stdout)?.[0] ?? 'unknown version'
}

/**
 * What nats-server's MQTT listener does not do, so a scenario that needs it leaves nats-server out with this
 * note. nats-server speaks MQTT 3.1.1 only (protocol level 4; its maintainers have said it will not add 5).
 * Before 2.10 it has no QoS 2: a QoS 2 subscription is granted QoS 1, and a QoS 2 PUBLISH closes the
 * connection.
 */
export function natsLimits (version: string): { v5: string, qos2?: string } {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number)
  const old = major < 2 || (major === 2 && minor < 10)
  return {
    v5: `nats-server speaks MQTT 3.1.1 only`,
    ...(old ? { qos2: `nats-server ${version} has no MQTT QoS 2` } : {})
  }
}

/**
 * nats-server with its MQTT listener, both on 127.0.0.1 and free ports, with a temporary config: a server
 * name and JetStream with a store in a temporary directory, which its MQTT support requires (sessions,
 * retained messages and QoS 1 messages are JetStream streams; a QoS 1 subscription is a JetStream consumer,
 * at most `max_ack_pending` (1024 by default, above the QoS 1 scenarios' window of 1000) unacknowledged).
 * No auth, no persistence beyond the temporary directory. The first MQTT connection of an account creates
 * those streams (a few hundred ms), so one throw-away connection is made here, before any timing.
 */
export async function startNatsTarget (binary: string): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'tetra-bench-nats-'))
  const store = join(dir, 'jetstream')
  mkdirSync(store)
  const clientPort = await freePort()
  const mqttPort = await freePort()
  const conf = [
    'server_name: tetra_bench',
    `host: ${HOST}`,
    `port: ${clientPort}`,
    'jetstream {',
    `  store_dir: "${store}"`,
    '}',
    'mqtt {',
    `  host: ${HOST}`,
    `  port: ${mqttPort}`,
    '}'
  ].join('\n') + '\n'
  const confFile = join(dir, 'nats.conf')
  writeFileSync(confFile, conf)
  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  const cleanup = async (): Promise<void> => {
    await stopChild(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    if (!await waitForPort(mqttPort, child)) throw new Error(`nats-server did not start: ${stderr.trim()}`)
    const tcp = { kind: 'tcp' as const, host: HOST, port: mqttPort }
    const first = await RawClient.connect(tcp, `tetra-bench-nats-warmup-${process.pid}`)
    first.close()
    return { name: 'nats-server', pid: child.pid!, tcp, speaks: [4], stop: cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}
