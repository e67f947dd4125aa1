import { Storage, type FsyncPolicy } from './storage/storage.js'
import { PubSub } from './pubsub/pubsub.js'
import { systemClock, type Clock } from './clock.js'

/** What the engine core needs to start; src/config.ts's Config provides all of it. */
export interface EngineOptions {
  dataDir: string
  fsync: FsyncPolicy
  fsyncIntervalMs: number
  /** Tests pass a ManualClock; the broker runs on the system clock. */
  clock?: Clock
}

export interface Engines {
  storage: Storage
  pubsub: PubSub
  clock: Clock
  /** True once every engine is open and until close() starts. */
  readonly ready: boolean
  /** Closes the engines in reverse order of dependence and flushes storage. */
  close (): Promise<void>
}

export async function createEngines (options: EngineOptions): Promise<Engines> {
  const clock = options.clock ?? systemClock
  const storage = await Storage.open({ dir: options.dataDir, fsync: options.fsync, fsyncIntervalMs: options.fsyncIntervalMs })
  let pubsub: PubSub
  try {
    pubsub = await PubSub.create()
  } catch (err) {
    await storage.close()
    throw err
  }
  let closing = false
  return {
    storage,
    pubsub,
    clock,
    get ready () { return !closing && storage.isOpen },
    async close () {
      if (closing) return
      closing = true
      await pubsub.close()
      await storage.close()
    }
  }
}
