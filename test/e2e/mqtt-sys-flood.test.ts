import net from 'node:net'
import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import mqemitter from 'mqemitter'
import { repairEmitter } from '../../engines/pubsub/emitter.js'
import { spawnBroker, tempDir, waitFor } from '../helpers.js'

/**
 * Found against the broker by hostile input (issue 11, found-bug 1): a client subscribed to `$SYS/#` that
 * stops reading, while a second client sends 20,000 SUBSCRIBE packets and disconnects, killed the process
 * with `RangeError: Maximum call stack size exceeded` (mqemitter drained its backlog of per-client
 * `$SYS/<id>/new/subscribes` notifications by recursion). The broker runs in a child process so that a
 * crash is an exit, not a dead test runner; afterwards an ordinary client must still publish and receive.
 */

const SUBSCRIBES = 20_000

function rawClient (port: number, clientId: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('error', reject)
    const parser = mqttPacket.parser()
    parser.on('packet', (packet: mqttPacket.Packet) => {
      if (packet.cmd === 'connack') resolve(socket)
    })
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
  })
}

async function withChildBroker (body: (port: number) => Promise<void>): Promise<void> {
  const tmp = tempDir()
  const broker = await spawnBroker(['--data-dir', tmp.dir, '--log-level', 'info'])
  let exitCode: number | string | undefined
  void broker.exited.then(code => { exitCode = code })
  try {
    await body(broker.mqttPort)
    // an ordinary client still works (and the process did not die meanwhile)
    const url = `mqtt://127.0.0.1:${broker.mqttPort}`
    const probe = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 10_000 })
    const got: string[] = []
    probe.on('message', (_topic, payload) => { got.push(payload.toString()) })
    await probe.subscribeAsync('probe/#', { qos: 1 })
    await probe.publishAsync('probe/1', 'alive', { qos: 1 })
    await waitFor(() => got.includes('alive'), 10_000, 'the probe message')
    await probe.endAsync()
    // a last check after the backlog had time to drain: still running
    await new Promise(resolve => setTimeout(resolve, 500))
    expect(exitCode).toBeUndefined()
    expect(broker.output.join('\n')).not.toContain('Maximum call stack size exceeded')
  } finally {
    broker.child.kill('SIGKILL')
    await broker.exited
    tmp.remove()
  }
}

describe('$SYS flood: a stalled $SYS/# reader and a SUBSCRIBE storm', () => {
  it('keeps the broker up (MQTT-4.7.2: $SYS is the broker\'s; a client must not be able to kill it)', async () => {
    await withChildBroker(async port => {
      // the reader: subscribes to everything under $SYS, then never reads again
      const reader = await rawClient(port, 'sys-reader')
      reader.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$SYS/#', qos: 0 }] }))
      await new Promise(resolve => setTimeout(resolve, 100))
      reader.pause()

      // the storm: 20,000 SUBSCRIBE packets, then a disconnect
      const storm = await rawClient(port, 'storm')
      storm.resume() // its SUBACKs are read and thrown away
      const chunks: Buffer[] = []
      for (let i = 0; i < SUBSCRIBES; i++) {
        chunks.push(mqttPacket.generate({ cmd: 'subscribe', messageId: (i % 65535) + 1, subscriptions: [{ topic: `storm/${i}`, qos: 0 }] }))
      }
      await new Promise<void>(resolve => { storm.write(Buffer.concat(chunks), () => { resolve() }) })
      storm.end(mqttPacket.generate({ cmd: 'disconnect' }))
      await new Promise<void>(resolve => { storm.once('close', () => { resolve() }) })
      // the reader goes away too: its stalled deliveries are released and the backlog drains
      reader.destroy()
    })
  }, 60_000)

  it('drains a backlog of messages nobody receives without recursion (the router repaired by emitter.ts)', async () => {
    // mqemitter as aedes builds it, with one slot: the first message holds it, 20,000 more queue up behind it
    const mq = mqemitter({ concurrency: 1, matchEmptyLevels: true })
    repairEmitter(mq, 100)
    let release: () => void = () => {}
    mq.on('held', (_message: unknown, cb: () => void) => { release = cb })
    mq.emit({ topic: 'held' })
    let delivered = 0
    for (let i = 0; i < 20_000; i++) mq.emit({ topic: 'nobody/listens' }, () => { delivered++ })
    expect(delivered).toBe(0)
    // without the repair this drains 20,000 calls deep: RangeError: Maximum call stack size exceeded
    release()
    expect(delivered).toBe(20_000)
  })
})
