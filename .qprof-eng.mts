import { Storage } from './engines/storage/storage.js'
import { PubSub } from './engines/pubsub/pubsub.js'
import { QueueEngine } from './engines/queue/engine.js'
import { systemClock } from './engines/clock.js'
import { mkdtempSync } from 'node:fs'
const dir = mkdtempSync('/tmp/qprof/eng-')
const storage = await Storage.open({ dir, fsync: 'interval' })
const pubsub = await PubSub.create()
const q = await QueueEngine.open({ storage, pubsub, clock: systemClock, autocreate: true })
const N = 100_000
const payload = Buffer.from(JSON.stringify({ n: 1, t: 0, job: 'resize', size: 1024 }))
let t = performance.now()
const pushes = []
for (let i = 0; i < N; i += 100) pushes.push(q.push('b', Array.from({ length: 100 }, () => ({ payload }))))
await Promise.all(pushes)
console.log('push msg/s', (N / (performance.now() - t) * 1000).toFixed(0))
t = performance.now()
let acked = 0
await Promise.all(Array.from({ length: 4 }, async () => {
  for (;;) {
    const got = await q.receive('b', { max: 100 })
    if (got.length === 0) return
    await q.ack('b', got.map(d => d.receipt))
    acked += got.length
  }
}))
console.log('receive+ack msg/s', (acked / (performance.now() - t) * 1000).toFixed(0))
await q.close(); await pubsub.close(); await storage.close()
