/**
 * Active expiry under the worst case: N keys that all expire at the same moment, nobody reading them.
 * Measures the event loop's delay (perf_hooks.monitorEventLoopDelay) from just before the expiry moment
 * until the sweep has removed every key, and how long that took. Prints one JSON line.
 * Usage: expiry-sweep.js <keys>
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { systemClock } from '../../engines/clock.js'
import { Store } from '../../engines/store/store.js'
import { peakRssMb } from '../lib/process.js'

const keys = Number(process.argv[2] ?? 1_000_000)
const store = new Store({ clock: systemClock, maxMemory: 0, eviction: 'lru', maxValueBytes: 1024 * 1024, watchBacklog: 10_000 })
const value = Buffer.alloc(64, 'v')

async function main (): Promise<void> {
  // every key gets the same absolute expiry, far enough ahead for the load to finish first
  const expiresAt = Date.now() + 4000 + keys / 200
  for (let i = 0; i < keys; i++) store.set(`key:${String(i).padStart(8, '0')}`, value, { ttlMs: expiresAt - Date.now() })
  const loaded = store.size
  await new Promise(resolve => setTimeout(resolve, Math.max(0, expiresAt - Date.now() - 500)))
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  await new Promise(resolve => setTimeout(resolve, Math.max(0, expiresAt - Date.now())))
  const started = Date.now()
  // bounded wait: the sweep must empty the store well within a minute
  while (store.size > 0 && Date.now() - started < 60_000) await new Promise(resolve => setTimeout(resolve, 10))
  const clearedMs = Date.now() - started
  histogram.disable()
  process.stdout.write(JSON.stringify({
    loaded,
    remaining: store.size,
    expired: store.stats.expirations,
    clearedMs,
    maxDelayMs: histogram.max / 1e6,
    p99DelayMs: histogram.percentile(99) / 1e6,
    p50DelayMs: histogram.percentile(50) / 1e6,
    peakRssMb: peakRssMb(process.pid) ?? 0
  }) + '\n')
  store.close()
}

void main()
