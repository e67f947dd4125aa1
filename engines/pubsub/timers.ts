import type { Clock, TimerHandle } from '../clock.js'

/**
 * Node's timers fire at once, with a warning, past 2^31 - 1 ms (24.8 days), and MQTT intervals go up to
 * 2^32 - 1 seconds: a timer for a far time is re-armed in steps until it is due.
 */
const LONGEST_TIMER_MS = 2 ** 31 - 1

/** Runs fn at the clock's time `at` (ms since the epoch), or at once if that has passed. */
export function setTimerAt (clock: Clock, at: number, fn: () => void): TimerHandle {
  let current: TimerHandle
  let cancelled = false
  const arm = (): void => {
    const wait = at - clock.now()
    if (wait > LONGEST_TIMER_MS) {
      current = clock.setTimer(() => { if (!cancelled) arm() }, LONGEST_TIMER_MS)
    } else {
      current = clock.setTimer(() => { if (!cancelled) fn() }, Math.max(0, wait))
    }
  }
  arm()
  return {
    cancel () {
      cancelled = true
      current.cancel()
    }
  }
}
