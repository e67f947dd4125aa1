import { describe, expect, it } from 'vitest'
import { spawnBroker, tempDir, type ChildBroker } from '../helpers.js'

/**
 * kill -9 during concurrent appends: every append acknowledged to a producer must be readable after a
 * restart, at the offset it was given, with its payload; offsets stay dense; nothing is duplicated; a
 * group's committed offset is at least what was last acknowledged.
 */
async function post (url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`)
  return await res.json()
}

async function readAll (url: string): Promise<Array<{ offset: number, payload: string }>> {
  const out: Array<{ offset: number, payload: string }> = []
  let from = 0
  for (let page = 0; page < 100_000; page++) {
    const res = await (await fetch(`${url}/v1/streams/crash/messages?from=${from}&limit=1000`)).json() as { messages: Array<{ offset: number, payload: string }>, next: number }
    out.push(...res.messages)
    if (res.messages.length === 0) break
    from = res.next
  }
  return out
}

describe('stream crash safety', () => {
  it('keeps every acknowledged append, dense and without duplicates, across kill -9 at random moments', async () => {
    const tmp = tempDir()
    const acked = new Map<number, string>()
    let committed = 0
    let writerSeq = 0
    try {
      for (let round = 0; round < 3; round++) {
        const broker: ChildBroker = await spawnBroker(['--data-dir', tmp.dir])
        const url = broker.url
        if (round === 0) {
          const res = await fetch(`${url}/v1/streams/crash`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
          expect(res.status).toBe(201)
        }
        // what survived the previous crash, and the group's committed offset
        const before = await readAll(url)
        checkLog(before, acked)
        if (round > 0) {
          const group = await (await fetch(`${url}/v1/streams/crash/groups/g`)).json() as { committed: number }
          expect(group.committed).toBeGreaterThanOrEqual(committed)
        }
        const killAfter = 20 + Math.floor(Math.random() * 200)
        let batches = 0
        let killed = false
        const writer = async (w: number): Promise<void> => {
          for (let i = 0; i < 100_000 && !killed; i++) {
            const size = 1 + Math.floor(Math.random() * 20)
            const payloads = Array.from({ length: size }, () => `w${w}-${writerSeq++}`)
            let offsets: number[]
            try {
              ({ offsets } = await post(`${url}/v1/streams/crash/messages`, { messages: payloads.map(p => ({ payload: p, encoding: 'utf8' })) }))
            } catch {
              return // the broker was killed: this batch was never acknowledged
            }
            offsets.forEach((o, j) => acked.set(o, payloads[j]))
            if (++batches === killAfter) {
              killed = true
              broker.child.kill('SIGKILL')
            }
          }
        }
        const committer = async (): Promise<void> => {
          for (let i = 0; i < 100_000 && !killed; i++) {
            try {
              const got = await post(`${url}/v1/streams/crash/groups/g/receive`, { max: 50, wait: 0.2, consumer: 'c' }) as { messages: Array<{ offset: number }> }
              if (got.messages.length === 0) continue
              const last = got.messages[got.messages.length - 1].offset
              const r = await post(`${url}/v1/streams/crash/groups/g/commit`, { offset: last }) as { committed: number }
              committed = Math.max(committed, r.committed)
            } catch {
              return
            }
          }
        }
        await Promise.all([writer(0), writer(1), writer(2), writer(3), committer()])
        expect(await broker.exited).toBe('SIGKILL')
      }
      const broker = await spawnBroker(['--data-dir', tmp.dir])
      const after = await readAll(broker.url)
      checkLog(after, acked)
      expect(after.length).toBeGreaterThan(0)
      broker.child.kill('SIGTERM')
      await broker.exited
    } finally {
      tmp.remove()
    }
  }, 90_000)
})

function checkLog (log: Array<{ offset: number, payload: string }>, acked: Map<number, string>): void {
  // dense from 0
  log.forEach((m, i) => { if (m.offset !== i) expect(m.offset).toBe(i) })
  // every acknowledged offset is there with its payload
  for (const [offset, payload] of acked) {
    if (log[offset]?.payload !== payload) expect({ offset, payload: log[offset]?.payload }).toEqual({ offset, payload })
  }
  // no payload twice
  const payloads = new Set(log.map(m => m.payload))
  expect(payloads.size).toBe(log.length)
}
