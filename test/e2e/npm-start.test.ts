import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import mqtt from 'mqtt'
import { ROOT, tempDir } from '../helpers.js'

describe('npm start', () => {
  it('builds, passes flags through and serves MQTT and HTTP', async () => {
    const tmp = tempDir()
    const child = spawn('npm', ['start', '--silent', '--', '--mqtt-port', '0', '--http-port', '0', '--data-dir', tmp.dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    const exited = new Promise<number | null>(resolve => child.on('exit', resolve))
    const lines: string[] = []
    const outputDone = new Promise<void>(resolve => child.stdout.on('end', resolve))
    const listening = await new Promise<{ mqttPort: number, httpPort: number }>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', line => {
        lines.push(line)
        try {
          const e = JSON.parse(line) as { event?: string, mqttPort: number, httpPort: number }
          if (e.event === 'listening') resolve(e)
        } catch { /* npm's own output */ }
      })
      void exited.then(code => { reject(new Error(`npm start exited with ${code}`)) })
    })
    expect(listening.mqttPort).toBeGreaterThan(0)
    expect(listening.httpPort).toBeGreaterThan(0)
    const health = await fetch(`http://127.0.0.1:${listening.httpPort}/healthz`)
    expect(health.status).toBe(200)
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${listening.mqttPort}`, { reconnectPeriod: 0 })
    await client.endAsync()
    // Ctrl-C in a terminal: SIGINT to the whole foreground process group (npm, its shell, the broker)
    process.kill(-child.pid!, 'SIGINT')
    await exited
    await outputDone
    expect(lines.some(l => l.includes('"msg":"stopped"'))).toBe(true)
    await expect(fetch(`http://127.0.0.1:${listening.httpPort}/healthz`)).rejects.toThrow()
    tmp.remove()
  }, 90_000)
})
