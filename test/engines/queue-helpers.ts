import { ManualClock } from '../../engines/clock.js'
import { Storage } from '../../engines/storage/storage.js'
import { PubSub } from '../../engines/pubsub/pubsub.js'
import { QueueEngine } from '../../engines/queue/engine.js'
import { tempDir } from '../helpers.js'

export interface QueueHarness {
  clock: ManualClock
  storage: Storage
  pubsub: PubSub
  queues: QueueEngine
  dir: string
  /** Closes everything and opens the same data dir again (the clock keeps its time). */
  restart: () => Promise<QueueHarness>
  close: () => Promise<void>
  /** close() and remove the data dir */
  remove: () => Promise<void>
}

/** A queue engine on a temp data dir with a ManualClock. */
export async function openQueues (options: { autocreate?: boolean, dir?: string, clock?: ManualClock } = {}): Promise<QueueHarness> {
  const tmp = options.dir === undefined ? tempDir('tetra-queue-') : undefined
  const dir = options.dir ?? tmp!.dir
  const clock = options.clock ?? new ManualClock()
  const storage = await Storage.open({ dir, fsync: 'never' })
  const pubsub = await PubSub.create()
  const queues = await QueueEngine.open({ storage, pubsub, clock, autocreate: options.autocreate ?? true })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await queues.close()
    await pubsub.close()
    await storage.close()
  }
  return {
    clock,
    storage,
    pubsub,
    queues,
    dir,
    close,
    restart: async () => {
      await close()
      return await openQueues({ autocreate: options.autocreate, dir, clock })
    },
    remove: async () => {
      await close()
      tmp?.remove()
    }
  }
}

export const text = (s: string): Buffer => Buffer.from(s)
