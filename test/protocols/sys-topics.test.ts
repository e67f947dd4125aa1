import { afterAll, describe, expect, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { SysTopics, type SysSource } from '../../engines/pubsub/sys-topics.js'

const brokers: TestBroker[] = []
const clients: MqttClient[] = []
afterAll(async () => {
  await Promise.all(clients.map(async c => await c.endAsync(true)))
  for (const b of brokers) await b.stop()
})

async function connect (broker: TestBroker, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.mqttUrl, { reconnectPeriod: 0, ...options })
  clients.push(client)
  return client
}

/**
 * The latest payload of every $SYS/broker/ topic a client has seen. A retained message (sent on subscribe)
 * does not replace a live one: a tick's live message can arrive before the retained value it replaced.
 */
function sysValues (client: MqttClient): Map<string, string> {
  const values = new Map<string, string>()
  const live = new Set<string>()
  client.on('message', (topic, payload, packet) => {
    if (!topic.startsWith('$SYS/broker/')) return
    if (packet.retain && live.has(topic)) return
    if (!packet.retain) live.add(topic)
    values.set(topic, payload.toString())
  })
  return values
}

describe('$SYS/broker/ statistics', () => {
  it('publishes Mosquitto\'s statistics topics, retained, and follows clients, sessions, retained and queued messages', async () => {
    const broker = await startTestBroker({ mqttSysIntervalMs: 100 })
    brokers.push(broker)
    // a persistent session with a subscription, then offline with a queued message
    const device = await connect(broker, { clientId: 'sys-device', clean: false })
    await device.subscribeAsync('sys/cmd/#', { qos: 1 })
    await device.endAsync()
    const publisher = await connect(broker)
    await publisher.publishAsync('sys/cmd/reboot', 'now', { qos: 1 })
    await publisher.publishAsync('sys/state', 'up', { qos: 1, retain: true })

    const watcher = await connect(broker)
    const values = sysValues(watcher)
    await watcher.subscribeAsync('$SYS/broker/#')
    // what a tick after these changes says (the values of one tick arrive one by one: wait for all of them):
    // 2 connected (publisher, watcher) and the device's session offline, 3 in all; subscriptions: sys/cmd/#
    // of the offline session and $SYS/broker/# of the watcher; stored: the retained messages (sys/state and
    // the $SYS topics themselves) and the message queued for the device
    const count = (topic: string): number => Number(values.get(`$SYS/broker/${topic}`))
    await waitFor(() => count('clients/connected') === 2 && count('clients/disconnected') === 1 && count('clients/total') === 3 &&
      count('subscriptions/count') === 2 && count('retained messages/count') >= 1 &&
      count('store/messages/count') === count('retained messages/count') + 1, 5000, '$SYS values')
    expect(values.get('$SYS/broker/version')).toMatch(/^tetra \d+\.\d+\.\d+/)
    expect(values.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/)
    expect(count('publish/messages/received')).toBeGreaterThanOrEqual(2)

    // the device comes back: its message is delivered, its session is connected
    const back = await connect(broker, { clientId: 'sys-device', clean: false })
    const got: string[] = []
    back.on('message', (_t, payload) => { got.push(payload.toString()) })
    await waitFor(() => got.includes('now'), 5000, 'the queued message')
    await waitFor(() => count('clients/disconnected') === 0 && count('clients/connected') === 3 && count('clients/maximum') === 3 &&
      count('store/messages/count') === count('retained messages/count'), 5000, '$SYS after the reconnect')

    // '#' does not match $SYS/ topics; a later subscriber gets the retained values at once
    const late = await connect(broker)
    const all: string[] = []
    late.on('message', topic => { all.push(topic) })
    await late.subscribeAsync('#')
    const lateValues = sysValues(late)
    await late.subscribeAsync('$SYS/broker/clients/+')
    await waitFor(() => lateValues.has('$SYS/broker/clients/connected'), 2000, 'retained $SYS values')
    expect(all.filter(t => t.startsWith('$SYS/') && !t.startsWith('$SYS/broker/clients/'))).toEqual([])
  })

  it('publishes nothing with an interval of 0', async () => {
    const broker = await startTestBroker({ mqttSysIntervalMs: 0 })
    brokers.push(broker)
    const watcher = await connect(broker)
    const values = sysValues(watcher)
    await watcher.subscribeAsync('$SYS/broker/#')
    await new Promise(resolve => setTimeout(resolve, 300))
    // the SUBACK came back after any retained message would have
    await watcher.subscribeAsync('sync')
    expect([...values.keys()]).toEqual([])
  })
})

describe('SysTopics', () => {
  it('publishes a value again only when it changed, uptime every tick', () => {
    let connected = 1
    const source: SysSource = {
      version: '1.2.3',
      connectedClients: () => connected,
      sessions: () => ({ disconnected: 0, subscriptions: 4 }),
      retainedMessages: () => 2,
      queuedMessages: () => 5,
      publishesReceived: () => 10,
      publishesSent: () => 20
    }
    const published: Array<[string, string]> = []
    const sys = new SysTopics(source, (topic, payload) => { published.push([topic, payload]) })
    const tick = (): Map<string, string> => {
      published.length = 0
      ;(sys as unknown as { tick: () => void }).tick()
      return new Map(published)
    }
    const first = tick()
    expect(first.get('$SYS/broker/version')).toBe('tetra 1.2.3')
    expect(first.get('$SYS/broker/store/messages/count')).toBe('7')
    expect(first.get('$SYS/broker/clients/total')).toBe('1')
    expect(first.size).toBe(11)
    connected = 3
    const second = tick()
    // (uptime too if its second changed in between)
    expect([...second.keys()].filter(t => t !== '$SYS/broker/uptime').sort()).toEqual(['$SYS/broker/clients/connected', '$SYS/broker/clients/maximum', '$SYS/broker/clients/total'])
    connected = 2
    const third = tick()
    expect(third.get('$SYS/broker/clients/maximum')).toBeUndefined() // still 3
    expect(third.get('$SYS/broker/clients/connected')).toBe('2')
  })
})
