import { afterAll, describe, expect, it } from 'vitest'
import { spawnBroker, tempDir, type ChildBroker } from '../helpers.js'

/**
 * At-least-once across kill -9: the broker runs as a child process, producers push 100k messages in
 * batches while consumers receive and ack, the process is killed at a random moment and restarted on the
 * same data dir. Every push the producer got an answer for must be either acked (ack answered) or still
 * in the queue, exactly once (an ack in flight at the kill may have gone either way); no message whose
 * ack was answered may come back.
 */

const TOTAL = 100_000
const BATCH = 500
const PRODUCERS = 4
const CONSUMERS = 4

const dir = tempDir('tetra-queue-crash-')
let child: ChildBroker | undefined
afterAll(async () => {
  if (child !== undefined && child.child.exitCode === null && child.child.signalCode === null) {
    child.child.kill('SIGKILL')
    await child.exited
  }
  dir.remove()
})

async function post (url: string, body: unknown): Promise<{ status: number, json: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) }
}

interface Received { messages: Array<{ payload: number, receipt: string }> }
interface AckResults { results: Array<{ status: string }> }

describe('queue survives kill -9', () => {
  it('keeps every acknowledged push exactly once, loses no ack', async () => {
    child = await spawnBroker(['--data-dir', dir.dir, '--fsync', 'interval'])
    const base = `${child.url}/v1/queues/crash`
    expect((await fetch(base, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ visibilityTimeout: 300, maxDeliveries: 1000 }) })).status).toBe(201)

    const confirmed = new Set<number>()
    const acked = new Set<number>()
    // acks sent whose answer may have been cut by the kill: durable or not, both outcomes are right
    const ackSent = new Set<number>()
    let crashed = false
    let next = 0

    const producer = async (): Promise<void> => {
      while (!crashed && next < TOTAL) {
        const from = next
        next += BATCH
        const messages = Array.from({ length: Math.min(BATCH, TOTAL - from) }, (_, i) => ({ payload: from + i }))
        try {
          const res = await post(`${base}/messages`, { messages })
          if (res.status === 200) for (const m of messages) confirmed.add(m.payload)
        } catch { return }
      }
    }
    const consumer = async (): Promise<void> => {
      for (let round = 0; round < 100_000 && !crashed; round++) {
        try {
          const got = await post(`${base}/receive`, { max: 100, wait: 0.2 })
          if (got.status !== 200) return
          const ms = (got.json as Received).messages
          if (ms.length === 0) continue
          for (const m of ms) ackSent.add(m.payload)
          const res = await post(`${base}/ack`, { receipts: ms.map(m => m.receipt) })
          if (res.status === 200) {
            (res.json as AckResults).results.forEach((r, i) => { if (r.status === 'acked') acked.add(ms[i].payload) })
          }
        } catch { return }
      }
    }

    const running = Promise.all([...Array.from({ length: PRODUCERS }, producer), ...Array.from({ length: CONSUMERS }, consumer)])
    // kill at a random moment while both sides are busy: after 5%..60% of the pushes were answered
    const killAt = Math.floor(TOTAL * (0.05 + Math.random() * 0.55))
    const deadline = Date.now() + 30_000
    while (confirmed.size < killAt && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 2))
    child.child.kill('SIGKILL')
    crashed = true
    expect(await child.exited).toBe('SIGKILL')
    await running
    expect(confirmed.size).toBeGreaterThan(0)

    child = await spawnBroker(['--data-dir', dir.dir])
    const after = `${child.url}/v1/queues/crash`
    const stats = ((await (await fetch(after)).json()) as { stats: { ready: number, leased: number, delayed: number } }).stats
    expect(stats.leased).toBe(0)
    expect(stats.delayed).toBe(0)

    const remaining = new Map<number, number>()
    for (let round = 0; round < 1000; round++) {
      const got = await post(`${after}/receive`, { max: 1000 })
      const ms = (got.json as Received).messages
      if (ms.length === 0) break
      for (const m of ms) remaining.set(m.payload, (remaining.get(m.payload) ?? 0) + 1)
    }
    const total = [...remaining.values()].reduce((a, b) => a + b, 0)
    expect(total).toBe(stats.ready)

    const duplicated = [...remaining].filter(([, n]) => n > 1).map(([p]) => p)
    expect(duplicated).toEqual([])
    const lost = [...confirmed].filter(p => !ackSent.has(p) && !remaining.has(p))
    expect(lost).toEqual([])
    const resurrected = [...acked].filter(p => remaining.has(p))
    expect(resurrected).toEqual([])
    // nothing that was never pushed
    expect([...remaining.keys()].every(p => Number.isInteger(p) && p >= 0 && p < TOTAL)).toBe(true)
    console.log(`queue crash: killed after ${confirmed.size} confirmed pushes, ${acked.size} confirmed acks (${ackSent.size - acked.size} in flight); ${remaining.size} left after restart`)

    child.child.kill('SIGTERM')
    await child.exited
  }, 60_000)
})
