/**
 * Time as the engines see it. Engines take a Clock instead of calling Date.now()/setTimeout directly so
 * tests can drive leases, TTLs and delays with a ManualClock instead of sleeping.
 */
export interface TimerHandle { cancel (): void }

export interface Clock {
  /** Milliseconds since the epoch. */
  now (): number
  /** Runs fn after ms milliseconds (unref'd: a pending timer never keeps the process alive). */
  setTimer (fn: () => void, ms: number): TimerHandle
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer (fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms))
    t.unref()
    return { cancel: () => clearTimeout(t) }
  }
}

interface PendingTimer { at: number, seq: number, fn: () => void, cancelled: boolean }

/** A clock that only moves when told to; timers fire in due order during advance(). */
export class ManualClock implements Clock {
  private current: number
  private seq = 0
  private timers: PendingTimer[] = []

  constructor (start = 1_700_000_000_000) { this.current = start }

  now (): number { return this.current }

  setTimer (fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.timers.push(timer)
    return { cancel: () => { timer.cancelled = true } }
  }

  /** Moves time forward by ms, firing every timer that falls due, in order of due time. */
  advance (ms: number): void {
    const target = this.current + ms
    for (;;) {
      this.timers = this.timers.filter(t => !t.cancelled)
      let next: PendingTimer | undefined
      for (const t of this.timers) {
        if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
      }
      if (next === undefined) break
      this.current = Math.max(this.current, next.at)
      next.cancelled = true
      next.fn()
    }
    this.current = target
  }

  pendingTimers (): number { return this.timers.filter(t => !t.cancelled).length }
}
