import { ConnectionError, TetraError, UnavailableError } from './errors.js'
import { sleep } from './http.js'

/** Where a worker takes its jobs from and how it settles them (a queue, a stream's consumer group). */
export interface WorkSource<M> {
  /** Up to `max` jobs, long-polling; [] when none came within the wait. */
  receive: (max: number, signal: AbortSignal) => Promise<M[]>
  /** Settles the jobs that succeeded, in one call. */
  ack: (jobs: M[]) => Promise<void>
  /** A job whose handler threw: back to the source (with its back-off), if the source can. */
  fail?: (job: M, error: unknown) => Promise<void>
  /** Ms left on the job's lease, and how to extend it; absent: leases are not extended. */
  leaseLeft?: (job: M) => number
  extend?: (jobs: M[]) => Promise<void>
}

export interface WorkerOptions {
  /** Jobs handled at once (default 1). */
  concurrency?: number
  /** Most jobs taken per receive (default: concurrency). */
  batch?: number
  /** Called with errors the worker recovered from (a failed ack, a lost connection); default: ignored. */
  onError?: (error: unknown) => void
  /** First back-off after a failed receive, ms (default 200), doubled up to 5 s. */
  retryDelay?: number
}

/**
 * A worker, in the shape of BullMQ's Worker: it receives jobs in batches, runs up to `concurrency`
 * handlers at once, extends the lease of a job still running at half its lease, acks the jobs that
 * succeeded (gathered into one call per turn of the event loop: one round trip for a whole batch rather
 * than one per job) and hands a job whose handler threw back to its source, which applies its back-off.
 * close() stops receiving, waits for the running handlers and their acks, then resolves.
 */
export class Worker<M> {
  private active = 0
  private closing = false
  private readonly controller = new AbortController()
  private readonly running = new Set<Promise<void>>()
  private pendingAcks: M[] = []
  private flushScheduled: Promise<void> | undefined
  private slotFreed: (() => void) | undefined
  private readonly loop: Promise<void>
  /** Jobs handled so far: succeeded (acked) and failed. */
  completed = 0
  failed = 0

  constructor (private readonly source: WorkSource<M>, private readonly handler: (job: M) => unknown, private readonly options: WorkerOptions = {}) {
    this.loop = this.run()
  }

  private get concurrency (): number { return Math.max(1, this.options.concurrency ?? 1) }

  private report (error: unknown): void {
    try { this.options.onError?.(error) } catch {}
  }

  private async run (): Promise<void> {
    let failures = 0
    while (!this.closing) {
      if (this.active >= this.concurrency) {
        await new Promise<void>(resolve => { this.slotFreed = resolve })
        continue
      }
      const max = Math.min(this.options.batch ?? this.concurrency, this.concurrency - this.active)
      let jobs: M[]
      try {
        jobs = await this.source.receive(max, this.controller.signal)
        failures = 0
      } catch (err) {
        if (this.closing) break
        this.report(err)
        // a 4xx other than 429 will not heal by itself, but a worker keeps trying like BullMQ's: it says why through onError
        const transient = err instanceof ConnectionError || err instanceof UnavailableError || !(err instanceof TetraError)
        await sleep(Math.min(5000, (this.options.retryDelay ?? 200) * 2 ** Math.min(failures++, 5)) * (transient ? 1 : 2), this.controller.signal).catch(() => {})
        continue
      }
      for (const job of jobs) this.start(job)
    }
  }

  private start (job: M): void {
    this.active++
    const task = this.handle(job).finally(() => {
      this.active--
      this.running.delete(task)
      const freed = this.slotFreed
      this.slotFreed = undefined
      freed?.()
    })
    this.running.add(task)
  }

  private async handle (job: M): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    let settled = false
    const { leaseLeft, extend } = this.source
    if (leaseLeft !== undefined && extend !== undefined) {
      const schedule = (): void => {
        // an extension answered after the job ended schedules nothing more
        if (settled) return
        timer = setTimeout(() => {
          extend([job]).then(schedule, err => { this.report(err) })
        }, Math.max(100, leaseLeft(job) / 2))
      }
      schedule()
    }
    let ok = true
    let error: unknown
    try {
      await this.handler(job)
    } catch (err) {
      ok = false
      error = err
    } finally {
      settled = true
      clearTimeout(timer)
    }
    if (ok) {
      this.completed++
      await this.queueAck(job)
    } else {
      this.failed++
      await this.source.fail?.(job, error).catch(err => { this.report(err) })
    }
  }

  /** Acks gathered over one turn of the event loop go in one call. */
  private async queueAck (job: M): Promise<void> {
    this.pendingAcks.push(job)
    if (this.flushScheduled === undefined) {
      this.flushScheduled = new Promise<void>(resolve => { setTimeout(resolve, 0) }).then(async () => {
        const jobs = this.pendingAcks
        this.pendingAcks = []
        this.flushScheduled = undefined
        await this.source.ack(jobs).catch(err => { this.report(err) })
      })
    }
    await this.flushScheduled
  }

  /** Stops receiving, lets the running jobs finish and be acked. */
  async close (): Promise<void> {
    this.closing = true
    this.controller.abort()
    const freed = this.slotFreed
    this.slotFreed = undefined
    freed?.()
    await this.loop
    while (this.running.size > 0) await Promise.all([...this.running])
    if (this.flushScheduled !== undefined) await this.flushScheduled
  }

  /** Jobs being handled now. */
  get inFlight (): number { return this.active }
}
