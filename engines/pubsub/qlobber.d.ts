// The parts of qlobber (the topic matcher aedes' own persistence uses) that the MQTT persistence calls.

declare module 'qlobber' {
  interface QlobberOptions { separator?: string, wildcard_one?: string, wildcard_some?: string }
  /** Tests whether a topic matches any of the filters added. */
  export class QlobberTrue {
    constructor (options?: QlobberOptions)
    add (filter: string): this
    test (topic: string): boolean
  }
}

declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberOptions { separator?: string, wildcard_one?: string, wildcard_some?: string }
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
