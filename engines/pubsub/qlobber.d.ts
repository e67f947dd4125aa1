// The parts of qlobber (the topic matcher of aedes' router and persistence) that the MQTT engine calls.

declare module 'qlobber' {
  interface QlobberOptions {
    separator?: string
    wildcard_one?: string
    wildcard_some?: string
    match_empty_levels?: boolean
    /** Most levels of a topic; more throws (default 100). */
    max_words?: number
  }
  /** Values by filter, matched against topics (mqemitter's matcher). */
  export class Qlobber {
    constructor (options?: QlobberOptions)
  }
  /** Tests whether a topic matches any of the filters added. */
  export class QlobberTrue {
    constructor (options?: QlobberOptions)
    add (filter: string): this
    test (topic: string): boolean
  }
}

declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberOptions { separator?: string, wildcard_one?: string, wildcard_some?: string, max_words?: number }
  export interface TrieSubscription { clientId: string, topic: string, qos: number, rh?: number, rap?: number, nl?: boolean }
  /** Subscriptions by filter, matched against topics; one entry per (filter, client). */
  class QlobberSub {
    constructor (options?: QlobberOptions)
    readonly subscriptionsCount: number
    add (filter: string, sub: TrieSubscription): this
    remove (filter: string, sub: { clientId: string, topic: string }): this
    match (topic: string): TrieSubscription[]
  }
  export default QlobberSub
}
