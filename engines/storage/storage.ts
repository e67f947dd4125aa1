import { Level } from 'level'
import { open as openFile, readdir } from 'node:fs/promises'
import type { AbstractSublevel } from 'abstract-level'
import { Unavailable } from '../errors.js'

export type FsyncPolicy = 'always' | 'interval' | 'never'
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'interval', 'never']

export interface StorageOptions {
  /** The data directory; LevelDB lives in `<dir>/db`. */
  dir: string
  fsync: FsyncPolicy
  /** With fsync `interval`: at most this many ms between fsyncs while there are unsynced writes. */
  fsyncIntervalMs?: number
}

type Db = Level<Buffer, Buffer>
type Sub = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>

/**
 * A put's value, or a function that gives it when the put's group commit is assembled into its batch:
 * until then, writes of the same group can still add to what the record will hold (one record instead
 * of one per write). The function is called once, synchronously, and must not throw.
 */
export type PutValue = Buffer | (() => Buffer)
export interface PutOp { type: 'put', partition: Partition, key: Buffer, value: PutValue }
export interface DelOp { type: 'del', partition: Partition, key: Buffer }
export type WriteOp = PutOp | DelOp

export interface RangeOptions {
  gt?: Buffer
  gte?: Buffer
  lt?: Buffer
  lte?: Buffer
  reverse?: boolean
  limit?: number
}

const BUFFER_ENCODING = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const

/** One engine's part of the database: a LevelDB sublevel with binary keys and values. */
export class Partition {
  constructor (readonly name: string, readonly sublevel: Sub) {}

  async get (key: Buffer): Promise<Buffer | undefined> {
    return await this.sublevel.get(key)
  }

  async getMany (keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    return await this.sublevel.getMany(keys)
  }

  /** Ordered [key, value] pairs in a range; reads a consistent snapshot taken when iteration starts. */
  async * entries (range: RangeOptions = {}): AsyncGenerator<[Buffer, Buffer]> {
    const it = this.sublevel.iterator({ ...range, limit: range.limit ?? -1 })
    try {
      for (;;) {
        const batch = await it.nextv(1000)
        if (batch.length === 0) return
        for (const entry of batch) yield entry
      }
    } finally {
      await it.close()
    }
  }

  /** Up to `limit` entries of a range, in one call (the hot path for paged reads). */
  async range (range: RangeOptions & { limit: number }): Promise<Array<[Buffer, Buffer]>> {
    // all() closes the iterator itself, also on error
    return await this.sublevel.iterator(range).all()
  }

  put (key: Buffer, value: PutValue): PutOp {
    return { type: 'put', partition: this, key, value }
  }

  del (key: Buffer): DelOp {
    return { type: 'del', partition: this, key }
  }
}

interface PendingWrite { ops: WriteOp[], resolve: () => void, reject: (err: Error) => void }

/**
 * The one LevelDB handle of a data directory. Writes go through write(): every write requested in the
 * same tick (and while the previous batch is in flight) goes into ONE LevelDB batch (group commit), and
 * write() resolves once that batch is durable under the fsync policy:
 *  - always:   the batch is written with sync (fsync) before anyone is told.
 *  - interval: the batch is in the OS (survives kill -9); an fsync follows within fsyncIntervalMs
 *              (power loss can take at most that window, like Redis's appendfsync everysec). The fsync
 *              runs on LevelDB's write-ahead log file in the thread pool, so writers never wait for it.
 *  - never:    the OS decides when to flush (survives kill -9, not power loss).
 */
export class Storage {
  private readonly partitions = new Map<string, Partition>()
  private pending: PendingWrite[] = []
  private scheduled = false
  private inFlight: Promise<void> | null = null
  private unsynced = false
  /** Bumped by every unsynced batch; a background fsync only clears `unsynced` if none came in meanwhile. */
  private writeGeneration = 0
  private backgroundSync: Promise<void> | null = null
  private syncTimer: NodeJS.Timeout | null = null
  private closing = false
  private readonly meta: Partition
  private readonly intervalMs: number
  /** Counters for /metrics: batches written and ops in them. */
  readonly stats = { batches: 0, ops: 0, syncs: 0 }

  private constructor (private readonly db: Db, private readonly dbDir: string, readonly options: StorageOptions) {
    this.intervalMs = options.fsyncIntervalMs ?? 100
    this.meta = this.partition('_meta')
    if (options.fsync === 'interval') {
      this.syncTimer = setInterval(() => { this.syncIfDirty() }, this.intervalMs)
      this.syncTimer.unref()
    }
  }

  static async open (options: StorageOptions): Promise<Storage> {
    const dbDir = `${options.dir}/db`
    const db: Db = new Level<Buffer, Buffer>(dbDir, BUFFER_ENCODING)
    try {
      await db.open({ createIfMissing: true })
    } catch (err) {
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new Unavailable(`the data directory ${options.dir} is in use by another process (LevelDB lock held); stop it or choose another --data-dir`)
      }
      throw new Unavailable(`cannot open the database in ${options.dir}: ${cause?.message ?? (err as Error).message}`)
    }
    return new Storage(db, dbDir, options)
  }

  /** The partition (sublevel) of one engine; the same name always gives the same partition. */
  partition (name: string): Partition {
    let p = this.partitions.get(name)
    if (p === undefined) {
      p = new Partition(name, this.db.sublevel<Buffer, Buffer>(name, BUFFER_ENCODING))
      this.partitions.set(name, p)
    }
    return p
  }

  /** Writes ops atomically (all or none) in the next group commit; resolves when durable under the policy. */
  write (ops: WriteOp[]): Promise<void> {
    if (this.closing) return Promise.reject(new Unavailable('storage is closing'))
    if (ops.length === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, resolve, reject })
      this.schedule()
    })
  }

  private schedule (): void {
    if (this.scheduled || this.inFlight !== null) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.flushPending()
    })
  }

  private flushPending (): void {
    if (this.pending.length === 0 || this.inFlight !== null) return
    const group = this.pending
    this.pending = []
    const sync = this.options.fsync === 'always'
    const batch = []
    for (const w of group) {
      for (const op of w.ops) {
        batch.push(op.type === 'put'
          ? { type: 'put' as const, sublevel: op.partition.sublevel, key: op.key, value: typeof op.value === 'function' ? op.value() : op.value }
          : { type: 'del' as const, sublevel: op.partition.sublevel, key: op.key })
      }
    }
    // options are copied onto every op by abstract-level; a `sync` key on each op costs ~7x per op in
    // classic-level, so the options object is only passed for the (rare) synced batch
    this.inFlight = (sync ? this.db.batch(batch, { sync: true }) : this.db.batch(batch)).then(() => {
      this.stats.batches++
      this.stats.ops += batch.length
      if (sync) this.markSynced()
      else {
        this.unsynced = true
        this.writeGeneration++
      }
      for (const w of group) w.resolve()
    }, (err: Error) => {
      for (const w of group) w.reject(new Unavailable(`write failed: ${err.message}`))
    }).finally(() => {
      this.inFlight = null
      // writes that arrived while this batch was in flight form the next group, at once
      if (this.pending.length > 0) this.flushPending()
    })
  }

  private markSynced (): void {
    this.unsynced = false
    this.stats.syncs++
  }

  /**
   * With fsync `interval`: fdatasync of LevelDB's current write-ahead log (the newest *.log) from the
   * thread pool. fsync works per file, not per descriptor, so this flushes what LevelDB wrote through its
   * own descriptor without holding up its writers. Older logs are no concern: LevelDB turns a full log into
   * a table file and syncs that itself before it drops the log.
   */
  private syncIfDirty (): void {
    if (!this.unsynced || this.backgroundSync !== null || this.closing) return
    const generation = this.writeGeneration
    this.backgroundSync = this.syncWriteAheadLog().then(() => {
      if (this.writeGeneration === generation) this.unsynced = false
      this.stats.syncs++
    }, () => { /* the log was rotated away meanwhile: the next tick syncs the new one */ }).finally(() => {
      this.backgroundSync = null
    })
  }

  private async syncWriteAheadLog (): Promise<void> {
    const logs = (await readdir(this.dbDir)).filter(f => /^\d+\.log$/.test(f)).sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    const newest = logs[logs.length - 1]
    if (newest === undefined) return
    const file = await openFile(`${this.dbDir}/${newest}`, 'r')
    try {
      await file.datasync()
    } finally {
      await file.close()
    }
  }

  /** Resolves when every write requested so far is written and fsynced. */
  async flush (): Promise<void> {
    if (this.backgroundSync !== null) await this.backgroundSync
    while (this.inFlight !== null || this.pending.length > 0 || this.scheduled) {
      if (this.inFlight !== null) await this.inFlight
      else if (this.pending.length > 0) this.flushPending()
      else await new Promise(resolve => setImmediate(resolve))
    }
    if (this.unsynced) {
      await this.db.batch([{ type: 'put', sublevel: this.meta.sublevel, key: Buffer.from('sync'), value: Buffer.alloc(0) }], { sync: true })
      this.markSynced()
    }
  }

  get isOpen (): boolean { return this.db.status === 'open' && !this.closing }

  async close (): Promise<void> {
    if (this.closing) return
    await this.flush()
    this.closing = true
    if (this.syncTimer !== null) clearInterval(this.syncTimer)
    await this.db.close()
  }
}
