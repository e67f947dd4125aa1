/**
 * --mqtt-connect-rate: new MQTT connections per second from one IP address, as a token bucket per address
 * (capacity = the rate: a burst of that many, then the rate). A client over it gets CONNACK 0x03 (server
 * unavailable) before its credentials are even looked at, so a flood of CONNECTs costs no password hashing.
 */

interface Bucket { tokens: number, at: number }

/** Buckets kept before full ones (idle addresses) are forgotten. */
const PRUNE_AT = 10_000

export class ConnectRate {
  private readonly buckets = new Map<string, Bucket>()

  /** `perSecond` 0: no cap. */
  constructor (private readonly perSecond: number, private readonly now: () => number = Date.now) {}

  /** Takes a token for `address`; false when its bucket is empty (the connection is refused). */
  take (address: string): boolean {
    if (this.perSecond <= 0) return true
    const now = this.now()
    let bucket = this.buckets.get(address)
    if (bucket === undefined) {
      if (this.buckets.size >= PRUNE_AT) this.prune(now)
      bucket = { tokens: this.perSecond, at: now }
      this.buckets.set(address, bucket)
    } else {
      bucket.tokens = Math.min(this.perSecond, bucket.tokens + (now - bucket.at) * this.perSecond / 1000)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  /** Forgets addresses whose bucket has filled up again: they are as good as new. */
  private prune (now: number): void {
    for (const [address, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * this.perSecond / 1000 >= this.perSecond) this.buckets.delete(address)
    }
  }
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback (address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}
