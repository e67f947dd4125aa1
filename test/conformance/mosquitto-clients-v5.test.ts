import { describe, expect, it } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import { fresh, useBroker } from './support.js'

/**
 * Debian's mosquitto_pub / mosquitto_sub (mosquitto-clients) against Tetra with -V mqttv311 and
 * -V mqttv5: publish and subscribe at QoS 0, 1 and 2, retained messages, MQTT 5 properties given with -D
 * (user property, content type, session expiry interval), a persistent session, and 3.1.1 and 5.0
 * clients side by side. Skipped, visibly, when the binaries are not installed (apt-get install
 * mosquitto-clients); .ci/run installs them, and test/e2e/mosquitto-clients.test.ts fails under CI
 * without them.
 */

const hasClients = spawnSync('sh', ['-c', 'command -v mosquitto_pub && command -v mosquitto_sub && command -v stdbuf']).status === 0
const s = useBroker()

type V = 'mqttv311' | 'mqttv5'
const VERSIONS: V[] = ['mqttv311', 'mqttv5']
/** One line per message: topic, payload, user properties (v5), content type (v5), retain, qos. */
const FORMAT = 'MSG|%t|%p|%P|%C|%r|%q'

interface Sub { lines: string[], subscribed: Promise<void>, exited: Promise<number | null> }

/** mosquitto_sub in the background (the broker runs in this process: never spawnSync a client). */
function sub (version: V, args: string[]): Sub {
  // stdbuf: mosquitto_sub's debug lines (the SUBACK) are block-buffered on a pipe otherwise
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(s.port), '-V', version, '-d', '-F', FORMAT, '-W', '20', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const errors: string[] = []
  child.stderr.on('data', (d: Buffer) => { errors.push(d.toString()) })
  let buffer = ''
  let onSubscribed: () => void = () => {}
  const subscribed = new Promise<void>(resolve => { onSubscribed = resolve })
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString()
    let at
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at)
      buffer = buffer.slice(at + 1)
      if (line.startsWith('MSG|')) lines.push(line.slice(4))
      else if (line.includes('received SUBACK')) onSubscribed()
    }
  })
  // 'close', not 'exit': the output may still be in the pipe when the process has exited
  const exited = new Promise<number | null>(resolve => {
    child.on('close', code => {
      if (code !== 0) lines.push(`exit ${String(code)}: ${errors.join('')}`)
      resolve(code)
    })
  })
  return { lines, subscribed, exited }
}

async function pub (version: V, args: string[]): Promise<void> {
  const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(s.port), '-V', version, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
  const code = await new Promise<number | null>(resolve => { child.on('exit', c => { resolve(c) }) })
  clearTimeout(timer)
  expect(code, `mosquitto_pub ${args.join(' ')}: ${err}`).toBe(0)
}

describe.runIf(hasClients)('mosquitto_pub / mosquitto_sub against Tetra', () => {
  for (const version of VERSIONS) {
    it(`-V ${version}: mosquitto_sub receives mosquitto_pub's messages at QoS 0, 1 and 2, each at its QoS`, async () => {
      const base = fresh('mosq/')
      const s1 = sub(version, ['-t', `${base}/#`, '-q', '2', '-C', '3'])
      await s1.subscribed
      for (const qos of ['0', '1', '2']) await pub(version, ['-t', `${base}/q${qos}`, '-m', `hello ${qos}`, '-q', qos])
      expect(await s1.exited, s1.lines.join('\n')).toBe(0)
      expect(s1.lines.map(l => l.split('|')).map(f => [f[0], f[1], f[5]]).sort()).toEqual([
        [`${base}/q0`, 'hello 0', '0'], [`${base}/q1`, 'hello 1', '1'], [`${base}/q2`, 'hello 2', '2']
      ])
    })

    it(`-V ${version}: a retained message reaches a later mosquitto_sub with the retain flag, and -r with an empty message clears it`, async () => {
      const topic = fresh('mosq-r/')
      await pub(version, ['-t', topic, '-m', 'kept', '-r', '-q', '1'])
      const s1 = sub(version, ['-t', topic, '-C', '1'])
      expect(await s1.exited, s1.lines.join('\n')).toBe(0)
      expect(s1.lines.map(l => l.split('|')).map(f => [f[0], f[1], f[4]])).toEqual([[topic, 'kept', '1']])
      await pub(version, ['-t', topic, '-n', '-r', '-q', '1'])
      const s2 = sub(version, ['-t', topic, '-t', `${topic}/marker`, '-C', '1'])
      await s2.subscribed
      await pub(version, ['-t', `${topic}/marker`, '-m', 'm'])
      expect(await s2.exited, s2.lines.join('\n')).toBe(0)
      expect(s2.lines.map(l => l.split('|')[0])).toEqual([`${topic}/marker`])
    })
  }

  it('-V mqttv5: -D publish user-property and content-type reach a v5 mosquitto_sub; a v3.1.1 mosquitto_sub gets the message without them', async () => {
    const topic = fresh('mosq-p/')
    const v5 = sub('mqttv5', ['-t', topic, '-C', '1'])
    const v4 = sub('mqttv311', ['-t', topic, '-C', '1'])
    await Promise.all([v5.subscribed, v4.subscribed])
    await pub('mqttv5', ['-t', topic, '-m', 'with props', '-q', '1', '-D', 'publish', 'user-property', 'a', 'b', '-D', 'publish', 'content-type', 'text/plain'])
    expect(await v5.exited, v5.lines.join('\n')).toBe(0)
    expect(await v4.exited, v4.lines.join('\n')).toBe(0)
    expect(v5.lines.map(l => l.split('|').slice(0, 4))).toEqual([[topic, 'with props', 'a:b', 'text/plain']])
    expect(v4.lines.map(l => l.split('|').slice(0, 4))).toEqual([[topic, 'with props', '', '']])
  })

  it('-V mqttv5: -D connect session-expiry-interval keeps the session: a QoS 1 message sent while away is received at the next connection', async () => {
    const topic = fresh('mosq-s/')
    const id = fresh('mosqsess')
    // clean start 1, and a session that outlives the connection by 60 s
    const first = sub('mqttv5', ['-i', id, '-D', 'connect', 'session-expiry-interval', '60', '-t', topic, '-q', '1', '-E'])
    expect(await first.exited, first.lines.join('\n')).toBe(0)
    await pub('mqttv5', ['-t', topic, '-m', 'while away', '-q', '1'])
    // clean start 0 (-c), the session ends with this connection (-x 0)
    const again = sub('mqttv5', ['-i', id, '-c', '-x', '0', '-t', topic, '-q', '1', '-C', '1'])
    expect(await again.exited, again.lines.join('\n')).toBe(0)
    expect(again.lines.map(l => l.split('|').slice(0, 2))).toEqual([[topic, 'while away']])
  })

  it('-V mqttv311: -c keeps the session: a QoS 1 message sent while away is received at the next connection', async () => {
    const topic = fresh('mosq-s4/')
    const id = fresh('mosqsess4')
    const first = sub('mqttv311', ['-i', id, '-c', '-t', topic, '-q', '1', '-E'])
    expect(await first.exited, first.lines.join('\n')).toBe(0)
    await pub('mqttv311', ['-t', topic, '-m', 'while away', '-q', '1'])
    const again = sub('mqttv311', ['-i', id, '-c', '-t', topic, '-q', '1', '-C', '1'])
    expect(await again.exited, again.lines.join('\n')).toBe(0)
    expect(again.lines.map(l => l.split('|').slice(0, 2))).toEqual([[topic, 'while away']])
  })

  it('-V mqttv5 subscriber, MQTT.js 5 publisher: user properties in order of names and the content type arrive', async () => {
    const topic = fresh('mosq-js/')
    const v5 = sub('mqttv5', ['-t', topic, '-C', '1'])
    await v5.subscribed
    const client = await s.client({ protocolVersion: 5 })
    await client.publishAsync(topic, 'from js', { qos: 1, properties: { userProperties: { x: '1', y: '2' }, contentType: 'application/x' } })
    expect(await v5.exited, v5.lines.join('\n')).toBe(0)
    expect(v5.lines.map(l => l.split('|').slice(0, 4)), v5.lines.join('\n')).toEqual([[topic, 'from js', 'x:1 y:2', 'application/x']])
  })
})

describe.skipIf(hasClients)('mosquitto-clients not installed', () => {
  it.skip('apt-get install mosquitto-clients to run the mosquitto_pub / mosquitto_sub conformance tests', () => {})
})
