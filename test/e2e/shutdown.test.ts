import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { openSse, spawnBroker, tempDir, waitFor } from '../helpers.js'

describe('graceful shutdown of the real process', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal}: closes clients, releases the data dir and exits 0 within 10 s`, async () => {
      const tmp = tempDir()
      const broker = await spawnBroker(['--data-dir', tmp.dir])
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { reconnectPeriod: 0 })
      await client.subscribeAsync('x/#', { qos: 1 })
      const mqttClosed = new Promise<void>(resolve => client.once('close', () => { resolve() }))
      const sse = openSse(`${broker.url}/v1/pubsub/subscribe?filter=x/%23`)
      await sse.opened
      await waitFor(() => sse.comments.includes('connected'))
      const started = Date.now()
      broker.child.kill(signal)
      const code = await broker.exited
      const took = Date.now() - started
      expect(code).toBe(0)
      expect(took).toBeLessThan(10_000)
      await mqttClosed
      expect(broker.output.some(l => l.includes('"msg":"stopped"'))).toBe(true)
      client.end(true)
      sse.close()
      // the LevelDB lock is released: a new broker opens the same data dir
      const again = await spawnBroker(['--data-dir', tmp.dir])
      again.child.kill('SIGTERM')
      expect(await again.exited).toBe(0)
      tmp.remove()
    })
  }
})
