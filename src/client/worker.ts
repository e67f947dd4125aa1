import { ConnectionError, TetraError, UnavailableError } from './errors.js'
import { sleep } from './http.js'

/**
 * The next turn of the event loop: setImmediate in Node (setTimeout(0) waits at least 1 ms, which per
 * receive/ack round trip of a worker is a fifth of the time here), setTimeout elsewhere.
 */
const nextTurn: (f: () => void) => void = typeof setImmediate === 'function' ? f => { setImmediate(f) } : f => { setTimeout(f, 0) }

/** Where a worker takes its jobs from and how it settles them (a queue, a stream's consumer group). */
export interface WorkSource<M> {
  /** Up to `max` jobs, long-polling; [] when none came within the wait. */
  receive: (max: number, signal: AbortSignal) => Promise<M[]>
  /** Settles the jobs that succeeded, in one call. */
  ack: (jobs: M[]) => Promise<void>
  /** A job whose handler threw: back to the source (with its back-off), if the source can. */
  fail?: (job: M, error: unknown) => Promise<void>
  /** The length in ms of a job's lease, and how to extend leases; absent: leases are not extended. */
  leaseMs?: (job: M) => number
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
 * than one per job, sent while the next batch is being received) and hands a job whose handler threw back
 * to its source, which applies its back-off. close() stops receiving, waits for the running handlers and
 * their acks, then resolves.
 *
 * Per job it does as little as it can (a worker's cost per message is the client's cost on the wire): a
 * handler that returns without a promise settles the job at once; running jobs share one lease timer.
 */
export class Worker<M> {
  private active = 0
  private closing = false
  private readonly controller = new AbortController()
  /** Jobs whose handler returned a promise still pending, with the time their lease needs extending. */
  private readonly running = new Map<M, number>()
  private drained: (() => void) | undefined
  private pendingAcks: M[] = []
  private flushScheduled = false
  /** Ack and nack calls under way. */
  private readonly settling = new Set<Promise<void>>()
  private slotFreed: (() => void) | undefined
  private leaseTimer: ReturnType<typeof setTimeout> | undefined
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
        // the jobs of a batch often end together: let them all free their slots, then receive one batch
        // for all of them rather than one message for the first
        await new Promise<void>(resolve => { nextTurn(resolve) })
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
    let result: unknown
    try {
      result = this.handler(job)
    } catch (err) {
      this.finish(job, false, err)
      return
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') {
      this.finish(job, true)
      return
    }
    const leaseMs = this.source.leaseMs?.(job)
    this.running.set(job, leaseMs === undefined ? Infinity : Date.now() + leaseMs / 2)
    if (leaseMs !== undefined) this.armLeaseTimer(leaseMs)
    ;(result as PromiseLike<unknown>).then(() => { this.finish(job, true) }, (err: unknown) => { this.finish(job, false, err) })
  }

  private finish (job: M, ok: boolean, error?: unknown): void {
    this.running.delete(job)
    this.active--
    if (ok) {
      this.completed++
      this.pendingAcks.push(job)
      if (!this.flushScheduled) {
        this.flushScheduled = true
        nextTurn(() => { this.flushAcks() })
      }
    } else {
      this.failed++
      if (this.source.fail !== undefined) this.track(this.source.fail(job, error))
    }
    if (this.active === 0) this.drained?.()
    const freed = this.slotFreed
    this.slotFreed = undefined
    freed?.()
  }

  /** The acks gathered over one turn of the event loop, in one call, while the next batch is received. */
  private flushAcks (): void {
    this.flushScheduled = false
    const jobs = this.pendingAcks
    this.pendingAcks = []
    if (jobs.length > 0) this.track(this.source.ack(jobs))
  }

  private track (call: Promise<void>): void {
    const settled: Promise<void> = call.catch(err => { this.report(err) }).finally(() => { this.settling.delete(settled) })
    this.settling.add(settled)
  }

  /** One timer for every running job: leases due for extension are extended together. */
  private armLeaseTimer (leaseMs: number): void {
    if (this.leaseTimer !== undefined || this.source.extend === undefined) return
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = undefined
      const now = Date.now()
      const due: M[] = []
      let next = Infinity
      for (const [job, at] of this.running) {
        if (at <= now) due.push(job)
        else next = Math.min(next, at)
      }
      if (due.length > 0) {
        for (const job of due) this.running.set(job, now + (this.source.leaseMs?.(job) ?? Infinity) / 2)
        this.source.extend!(due).catch(err => { this.report(err) })
      }
      if (this.running.size > 0) this.armLeaseTimer(Math.min(leaseMs, Number.isFinite(next) ? 2 * (next - now) : leaseMs))
    }, Math.max(50, leaseMs / 4))
  }

  /** Stops receiving, lets the running jobs finish and be acked. */
  async close (): Promise<void> {
    this.closing = true
    this.controller.abort()
    const freed = this.slotFreed
    this.slotFreed = undefined
    freed?.()
    await this.loop
    if (this.active > 0) await new Promise<void>(resolve => { this.drained = resolve })
    clearTimeout(this.leaseTimer)
    if (this.flushScheduled) this.flushAcks()
    while (this.settling.size > 0) await Promise.all([...this.settling])
  }

  /** Jobs being handled now. */
  get inFlight (): number { return this.active }
}
