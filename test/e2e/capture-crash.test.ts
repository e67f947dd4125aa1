import { describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import { spawnBroker, tempDir } from '../helpers.js'

/**
 * A publisher's acknowledgement (MQTT QoS 1 PUBACK, QoS 2 PUBREC, the answer to an HTTP publish with
 * qos 1) for a topic that a queue and a stream capture is a promise that both have the message: after
 * kill -9 and a restart, every acknowledged publish is in the queue and in the stream.
 */
async function put (url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 201 && res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`)
}

async function post<T> (url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  return await res.json() as T
}

async function queuePayloads (url: string): Promise<string[]> {
  const out: string[] = []
  for (let page = 0; page < 1000; page++) {
    const { messages } = await post<{ messages: Array<{ payload: string }> }>(`${url}/v1/queues/captured/receive`, { max: 1000, visibilityTimeout: 600 })
    if (messages.length === 0) break
    out.push(...messages.map(m => m.payload))
  }
  return out
}

async function streamPayloads (url: string): Promise<string[]> {
  const out: string[] = []
  let from = 0
  for (let page = 0; page < 1000; page++) {
    const res = await (await fetch(`${url}/v1/streams/captured/messages?from=${from}&limit=1000`)).json() as { messages: Array<{ payload: string }>, next: number }
    if (res.messages.length === 0) break
    out.push(...res.messages.map(m => m.payload))
    from = res.next
  }
  return out
}

describe('capture crash safety', () => {
  it('keeps every QoS 1 and QoS 2 publish (MQTT and HTTP) the publisher had acknowledged, in the capturing queue and stream, across kill -9', async () => {
    const tmp = tempDir()
    const acknowledged: string[] = []
    try {
      // several crashes: each kill lands at another moment of the publish/capture cycle
      for (let round = 0; round < 4; round++) {
        const broker = await spawnBroker(['--data-dir', tmp.dir])
        if (round === 0) {
          await put(`${broker.url}/v1/queues/captured`, { capture: ['plant/#'] })
          await put(`${broker.url}/v1/streams/captured`, { capture: ['plant/#'] })
        }
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, { reconnectPeriod: 0 })
        client.on('error', () => { /* the broker is killed under it */ })
        const killAfter = acknowledged.length + 100 + Math.floor(Math.random() * 400)
        let killed = false
        let onKilled: () => void = () => {}
        // publishes in flight when the broker dies never settle (MQTT.js keeps them to resend): stop waiting
        const killedNow = new Promise<void>(resolve => { onKilled = resolve })
        // many publishes in flight at once, as a device with a backlog sends them
        const publisher = async (qos: 1 | 2, topic: string): Promise<void> => {
          const inFlight = new Set<Promise<void>>()
          for (let i = 0; i < 20_000 && !killed; i++) {
            const payload = `r${round}-q${qos}-${i}-x`
            const sent = client.publishAsync(topic, payload, { qos }).then(() => {
              if (killed) return
              acknowledged.push(payload)
              if (acknowledged.length >= killAfter) {
                killed = true
                broker.child.kill('SIGKILL')
                onKilled()
              }
            }, () => { /* never acknowledged */ }).finally(() => { inFlight.delete(sent) })
            inFlight.add(sent)
            if (inFlight.size >= 64) await Promise.race([...inFlight, killedNow])
          }
          await Promise.race([Promise.allSettled([...inFlight]), killedNow])
        }
        // and over HTTP: the answer to a publish with qos 1 is the acknowledgement
        const httpPublisher = async (): Promise<void> => {
          for (let i = 0; i < 20_000 && !killed; i++) {
            const payload = `r${round}-http-${i}-x`
            let status: number
            try {
              status = (await fetch(`${broker.url}/v1/pubsub/publish`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ topic: 'plant/line3/count', payload, encoding: 'utf8', qos: 1 })
              })).status
            } catch {
              return // the broker was killed: never acknowledged
            }
            if (killed) return
            expect(status).toBe(200)
            acknowledged.push(payload)
          }
        }
        await Promise.all([publisher(1, 'plant/line1/temp'), publisher(2, 'plant/line2/alarm'), httpPublisher()])
        expect(await broker.exited).toBe('SIGKILL')
        client.end(true)
        expect(acknowledged.length).toBeGreaterThanOrEqual(killAfter)
      }

      const restarted = await spawnBroker(['--data-dir', tmp.dir])
      try {
        const inQueue = new Set(await queuePayloads(restarted.url))
        const inStream = new Set(await streamPayloads(restarted.url))
        expect(acknowledged.filter(p => !inQueue.has(p))).toEqual([])
        expect(acknowledged.filter(p => !inStream.has(p))).toEqual([])
      } finally {
        restarted.child.kill('SIGTERM')
        await restarted.exited
      }
    } finally {
      tmp.remove()
    }
  }, 60_000)
})
