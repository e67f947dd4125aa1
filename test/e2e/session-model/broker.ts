import mqtt, { type MqttClient } from 'mqtt'
import { spawnBroker, tempDir, waitFor, type ChildBroker } from '../../helpers.js'

/**
 * The broker of the session model test: the real CLI in a child process on one data directory, which a
 * crash kills with SIGKILL and starts again on the same directory (new ephemeral ports).
 */
export class BrokerUnderTest {
  private child!: ChildBroker
  private readonly dir = tempDir('tetra-session-model-')
  restarts = 0

  get port (): number { return this.child.mqttPort }
  get mqttUrl (): string { return `mqtt://127.0.0.1:${this.child.mqttPort}` }

  async start (): Promise<void> {
    // no cap on offline queues (the default drops the oldest past 1000): every acknowledged message must stay
    this.child = await spawnBroker(['--data-dir', this.dir.dir, '--mqtt-max-queued', '0'])
  }

  async crash (): Promise<void> {
    this.child.child.kill('SIGKILL')
    const how = await this.child.exited
    if (how !== 'SIGKILL') throw new Error(`the broker exited with ${how} instead of being killed`)
    this.restarts++
    await this.start()
  }

  /** MQTT connections the broker counts (tetra_mqtt_connections). */
  async connections (): Promise<number> {
    const text = await (await fetch(`${this.child.url}/metrics`)).text()
    const line = /^tetra_mqtt_connections (\d+)$/m.exec(text)
    if (line === null) throw new Error('no tetra_mqtt_connections in /metrics')
    return Number(line[1])
  }

  /**
   * Waits (bounded) until the broker counts `n` connections: a connection closed from the client's side is
   * gone, and its session detached, before the next command.
   */
  async settle (n: number): Promise<void> {
    await waitFor(async () => await this.connections() === n, 5000, `the broker to count ${n} MQTT connection(s)`)
  }

  /** Whether CONNECT with protocol level 5 is accepted. */
  async speaksMqtt5 (): Promise<boolean> {
    let client: MqttClient | undefined
    try {
      client = await mqtt.connectAsync(this.mqttUrl, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 })
      return true
    } catch {
      return false
    } finally {
      client?.end(true)
    }
  }

  async stop (): Promise<void> {
    if (this.child !== undefined) {
      this.child.child.kill('SIGTERM')
      await this.child.exited
    }
    this.dir.remove()
  }
}
