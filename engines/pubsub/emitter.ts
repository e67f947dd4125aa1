import { Qlobber } from 'qlobber'

/**
 * Two repairs to aedes' message router (mqemitter), applied to the instance before aedes registers its
 * own listeners.
 *
 * 1. Its backlog drains without recursion. mqemitter runs at most `concurrency` (100) messages at once
 *    and queues the rest; when one finishes it starts the next from inside the finishing call. A message
 *    that nobody listens to (or whose listeners answer at once) finishes inside its own start, so a
 *    backlog of N such messages drains N frames deep: 20,000 of them (a client stalls the 100 slots,
 *    another floods) overflowed the stack and killed the process (issue 11, found-bug 1). Here a start
 *    made while another is running waits in a list that the outermost call works through, in order.
 * 2. Its topic matcher takes topics as deep as the broker's level limit (qlobber refuses more than 100
 *    levels by default, by a throw nobody catches); the front-ends refuse deeper topics before they
 *    reach it (topics.ts).
 */

/** The parts of an mqemitter instance this module replaces. */
interface MqEmitterInternals {
  _do: (message: unknown, callback: unknown) => unknown
  _matcher: unknown
}

export function repairEmitter (mq: object, maxLevels: number): void {
  const emitter = mq as MqEmitterInternals
  emitter._matcher = new Qlobber({ match_empty_levels: true, separator: '/', wildcard_one: '+', wildcard_some: '#', max_words: maxLevels })
  const start = emitter._do
  const waiting: unknown[] = []
  let running = false
  emitter._do = function flatDo (this: MqEmitterInternals, message: unknown, callback: unknown) {
    waiting.push(message, callback)
    if (running) return this
    running = true
    try {
      // two entries per message; `waiting` grows while a start runs and is consumed here, in order
      for (let i = 0; i < waiting.length; i += 2) start.call(this, waiting[i], waiting[i + 1])
    } finally {
      waiting.length = 0
      running = false
    }
    return this
  }
}
