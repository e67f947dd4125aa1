import net from 'node:net'
import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { PubSub } from '../../engines/pubsub/pubsub.js'
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

  it('routes a burst of messages nobody receives, while a subscriber holds the first one, without recursion or a backlog', async () => {
    // the router of the aedes days queued messages behind a stalled one and drained them by recursion
    // (20,000 deep: RangeError); the bus routes each message synchronously: nothing queues behind a holder
    const bus = await PubSub.create()
    try {
      let release: () => void = () => {}
      const held = new Promise<void>(resolve => { release = resolve })
      await bus.subscribe(['held'], () => held, { durable: true })
      const first = bus.route({ topic: 'held', payload: Buffer.from('x'), qos: 1, retain: false }, 'internal')
      let routed = 0
      for (let i = 0; i < 20_000; i++) {
        if (bus.route({ topic: 'nobody/listens', payload: Buffer.from('x'), qos: 0, retain: false }, 'internal') === undefined) routed++
      }
      expect(routed).toBe(20_000)
      release()
      await first
    } finally {
      await bus.close()
    }
  })
})
