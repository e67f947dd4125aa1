import { Storage, type FsyncPolicy } from './storage/storage.js'
import { PubSub } from './pubsub/pubsub.js'
import { systemClock, type Clock } from './clock.js'
import { Store, type EvictionPolicy } from './store/store.js'
import { StreamEngine } from './stream/streams.js'
import { QueueEngine } from './queue/engine.js'
import { Auth, type AuthLog } from './auth/auth.js'
import type { AuthService } from './auth/types.js'

/** What the engine core needs to start; src/config.ts's Config provides all of it. */
export interface EngineOptions {
  dataDir: string
  fsync: FsyncPolicy
  fsyncIntervalMs: number
  /** Tests pass a ManualClock; the broker runs on the system clock. */
  clock?: Clock
  /** Store: memory cap in bytes, 0 = none (default 0). */
  storeMaxMemory?: number
  /** Store: what happens at the cap (default lru). */
  storeEviction?: EvictionPolicy
  /** Store: largest value in bytes (default 1 MiB). */
  storeMaxValue?: number
  /** Store: change events kept for watch resumption (default 10000). */
  storeWatchBacklog?: number
  /** Streams: appending to a missing stream creates it (default true). */
  streamAutocreate?: boolean
  /** Streams: largest message in bytes (default 1 MiB). */
  streamMaxMessageBytes?: number
  /** Streams: default dedup window of new streams in ms (default 120000). */
  streamDedupWindowMs?: number
  /** MQTT: interval in ms of the $SYS/broker/ statistics, 0 = none (default 0). */
  mqttSysIntervalMs?: number
  /** MQTT, HTTP publish, SSE and captures: longest topic name or filter in bytes (default 65535). */
  mqttMaxTopicLength?: number
  /** The same: most levels of a topic name or filter (default 100). */
  mqttMaxTopicLevels?: number
  /** MQTT: most QoS 1/2 messages queued for one offline persistent session, 0 = none (default 0). */
  mqttMaxQueued?: number
  /** The broker's version, as $SYS/broker/version gives it. */
  version?: string
  /** Queues: pushing to a missing queue creates it (default true). */
  queueAutocreate?: boolean
  /** Called when background work nobody waits for (a queue's lease expiry, capture) fails; the broker logs it. */
  onBackgroundError?: (err: unknown, what: string) => void
  /** The auth file (users, tokens, roles); undefined or '' = no auth, everyone allowed everything. */
  authFile?: string
  /** Where the auth engine reports loads, reloads, warnings of the file and failed background reloads. */
  authLog?: AuthLog
}

export interface Engines {
  /** Identity and ACL: the front-ends authenticate with it and ask its principals. */
  auth: AuthService
  storage: Storage
  pubsub: PubSub
  store: Store
  streams: StreamEngine
  queues: QueueEngine
  clock: Clock
  /** True once every engine is open and until close() starts. */
  readonly ready: boolean
  /** Closes the engines in reverse order of dependence and flushes storage. */
  close (): Promise<void>
}

export async function createEngines (options: EngineOptions): Promise<Engines> {
  const clock = options.clock ?? systemClock
  // each engine opened so far, closed in reverse order: on a failed start and on close()
  const opened: Array<() => unknown> = []
  const closeOpened = async (): Promise<void> => {
    while (opened.length > 0) await opened.pop()!()
  }
  try {
    // first: a malformed auth file stops the start before anything is opened
    const auth = await Auth.open({ file: options.authFile, clock, log: options.authLog })
    opened.push(() => { auth.close() })
    const storage = await Storage.open({ dir: options.dataDir, fsync: options.fsync, fsyncIntervalMs: options.fsyncIntervalMs })
    opened.push(async () => { await storage.close() })
    const pubsub = await PubSub.create(storage, {
      sysIntervalMs: options.mqttSysIntervalMs ?? 0,
      version: options.version,
      topicLimits: { maxLength: options.mqttMaxTopicLength ?? 65535, maxLevels: options.mqttMaxTopicLevels ?? 100 },
      maxQueued: options.mqttMaxQueued ?? 0,
      clock,
      ...(options.onBackgroundError !== undefined ? { onError: options.onBackgroundError } : {}),
      start: false
    })
    opened.push(async () => { await pubsub.close() })
    const streams = await StreamEngine.open(storage, pubsub, clock, {
      ...(options.streamAutocreate !== undefined ? { autocreate: options.streamAutocreate } : {}),
      ...(options.streamMaxMessageBytes !== undefined ? { maxMessageBytes: options.streamMaxMessageBytes } : {}),
      ...(options.streamDedupWindowMs !== undefined ? { defaultDedupWindowMs: options.streamDedupWindowMs } : {})
    })
    opened.push(async () => { await streams.close() })
    const queues = await QueueEngine.open({ storage, pubsub, clock, autocreate: options.queueAutocreate ?? true, onError: options.onBackgroundError })
    opened.push(async () => { await queues.close() })
    // the wills a previous run left go once the captures that may keep them listen
    pubsub.start()
    const store = new Store({
      clock,
      maxMemory: options.storeMaxMemory ?? 0,
      eviction: options.storeEviction ?? 'lru',
      maxValueBytes: options.storeMaxValue ?? 1024 * 1024,
      watchBacklog: options.storeWatchBacklog ?? 10_000
    })
    opened.push(() => { store.close() })
    let closing = false
    return {
      auth,
      storage,
      pubsub,
      store,
      streams,
      queues,
      clock,
      get ready () { return !closing && storage.isOpen },
      async close () {
        if (closing) return
        closing = true
        await closeOpened()
      }
    }
  } catch (err) {
    await closeOpened()
    throw err
  }
}
