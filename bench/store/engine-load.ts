/**
 * In-process Store load, run in its own process so its RSS is the store's: loads N keys of 64-byte values,
 * reads its RSS, then times get, mget of 100, set (overwrites) and mset of 100 of keys picked uniformly
 * at random among them, get and set of keys picked by a Zipfian distribution, and last a Map.get over
 * the uniform keys as an anchor. Prints one JSON line.
 * Usage: engine-load.js <keys> <seconds per phase> [maxMemoryBytes]
 */
import { systemClock } from '../../engines/clock.js'
import { Store } from '../../engines/store/store.js'
import { peakRssMb, rssMb } from '../lib/process.js'
import { ScrambledZipf } from './zipf.js'

const keys = Number(process.argv[2] ?? 1_000_000)
const seconds = Number(process.argv[3] ?? 2)
const maxMemory = Number(process.argv[4] ?? 0)

const store = new Store({ clock: systemClock, maxMemory, eviction: 'lru', maxValueBytes: 1024 * 1024, watchBacklog: 10_000 })
const keyName = (i: number): string => `key:${String(i).padStart(8, '0')}`
const value = Buffer.alloc(64, 'v')
const loadStart = performance.now()
for (let i = 0; i < keys; i++) store.set(keyName(i), value)
const loadMs = performance.now() - loadStart
// the store's own footprint, before the timed phases build their key pool
const residentRss = rssMb(process.pid) ?? 0

/**
 * 65536 key strings picked among the resident keys and made beforehand, so the timed loops measure the
 * store rather than string building, without holding a second copy of every key: `pool` uniformly at
 * random (every key as likely: the worst case for the CPU caches), `zipfPool` as YCSB's default
 * request distribution picks them (a few keys are asked for far more often than most, as in real caches).
 */
const POOL_SIZE = 1 << 16
const pool: string[] = new Array<string>(POOL_SIZE)
for (let i = 0; i < pool.length; i++) pool[i] = keyName(Math.floor(Math.random() * keys))
const zipf = new ScrambledZipf(keys)
const zipfPool: string[] = new Array<string>(POOL_SIZE)
for (let i = 0; i < zipfPool.length; i++) zipfPool[i] = keyName(zipf.next())

function timed (op: (key: string) => void, from: string[] = pool): number {
  let ops = 0
  const start = performance.now()
  const end = start + seconds * 1000
  let now = start
  while (now < end) {
    for (let i = 0; i < 8192; i++) op(from[(ops + i) & (POOL_SIZE - 1)])
    ops += 8192
    now = performance.now()
  }
  return ops / ((now - start) / 1000)
}

/** Keys per second of batches of 100 keys from the same pool. */
function timedBatches (op: (keys: string[]) => void): number {
  const batches: string[][] = []
  for (let i = 0; i + 100 <= pool.length; i += 100) batches.push(pool.slice(i, i + 100))
  let done = 0
  const start = performance.now()
  const end = start + seconds * 1000
  let now = start
  while (now < end) {
    for (let i = 0; i < 64; i++) op(batches[(done + i) % batches.length])
    done += 64
    now = performance.now()
  }
  return done * 100 / ((now - start) / 1000)
}

let found = 0
const getRate = timed(key => { if (store.get(key) !== undefined) found++ })
const mgetRate = timedBatches(keys => { for (const v of store.mget(keys)) if (v !== null) found++ })
const setRate = timed(key => { store.set(key, value) })
const msetRate = timedBatches(keys => { store.mset(keys.map(key => ({ key, value }))) })
const zipfGetRate = timed(key => { if (store.get(key) !== undefined) found++ }, zipfPool)
const zipfSetRate = timed(key => { store.set(key, value) }, zipfPool)
const peakRss = peakRssMb(process.pid) ?? 0

/*
 * The anchor: the same keys in a JavaScript Map (to small integers, so no value is built), looked up
 * in the same order. It is about the least a random lookup among a million keys costs on this machine.
 */
const map = new Map<string, number>()
for (let i = 0; i < keys; i++) map.set(keyName(i), i)
const mapGetRate = timed(key => { if (map.get(key) !== undefined) found++ })

const result = {
  keys: store.size,
  loadMs,
  getRate,
  mgetRate,
  setRate,
  msetRate,
  zipfGetRate,
  zipfSetRate,
  mapGetRate,
  found,
  residentRssMb: residentRss,
  peakRssMb: peakRss,
  accountedBytes: store.stats.bytes
}
process.stdout.write(JSON.stringify(result) + '\n')
