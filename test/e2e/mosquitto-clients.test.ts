import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'

// .ci/run installs Debian's mosquitto-clients, so under CI their absence is a failure; elsewhere the
// interop tests are skipped (visibly) until `apt-get install mosquitto-clients`
const hasClients = spawnSync('sh', ['-c', 'command -v mosquitto_pub && command -v mosquitto_sub']).status === 0
const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

const run = promisify(execFile)
let broker: TestBroker
beforeAll(async () => { broker = await startTestBroker() })
afterAll(async () => { await broker.stop() })

describe('Debian mosquitto-clients against Tetra', () => {
  it('the clients are installed (required under CI)', ctx => {
    if (!hasClients && !inCi) ctx.skip()
    expect(hasClients, 'mosquitto_pub/mosquitto_sub missing: apt-get install mosquitto-clients').toBe(true)
  })

  it.runIf(hasClients)('mosquitto_sub receives what mosquitto_pub and HTTP publish, at QoS 0, 1 and 2', async () => {
    const port = String(broker.mqtt.port)
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', 'mosq/#', '-q', '2', '-v', '-C', '4', '-W', '20'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
    // 'close', not 'exit': stdout may still hold output when the process has exited
    const exited = new Promise<number | null>(resolve => sub.on('close', resolve))
    // the broker runs in this process: the clients must run asynchronously, never with spawnSync
    await waitFor(() => broker.engines.pubsub.clients().some(c => c.connected && c.subscriptions > 0), 10_000, 'mosquitto_sub\'s subscription')
    for (const qos of ['0', '1', '2']) {
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', `mosq/q${qos}`, '-m', `hello ${qos}`, '-q', qos], { timeout: 10_000 })
    }
    const res = await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'mosq/http', payload: 'from http', encoding: 'utf8', qos: 1 }) })
    expect(res.status).toBe(200)
    expect(await exited).toBe(0)
    const lines = out.trim().split('\n').sort()
    expect(lines).toEqual(['mosq/http from http', 'mosq/q0 hello 0', 'mosq/q1 hello 1', 'mosq/q2 hello 2'])
  })

  it.runIf(hasClients)('mosquitto_sub gets a retained message published over HTTP', async () => {
    await fetch(`${broker.url}/v1/pubsub/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'mosq-r/state', payload: { on: true }, retain: true }) })
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.mqtt.port), '-t', 'mosq-r/+', '-v', '-C', '1', '-W', '10'], { timeout: 15_000 })
    expect(sub.stdout.trim()).toBe('mosq-r/state {"on":true}')
  })
})
