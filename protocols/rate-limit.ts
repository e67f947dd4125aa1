/** Buckets kept at most; when full, the ones already refilled to the brim are dropped (they hold no state). */
const MAX_BUCKETS = 100_000

interface Bucket { tokens: number, at: number }

/**
 * Token buckets, one per key: `rate` per second, bursts of up to `rate`. The HTTP rate limit keys them by
 * principal (or address for anonymous clients), the MQTT connect rate by IP address. take() is a Map lookup
 * and a few arithmetic operations.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor (private readonly rate: number, private readonly now: () => number = Date.now) {}

  /** 0 when the request may go; else the seconds (at least 1) until a token is back, for Retry-After. */
  take (key: string): number {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(now)
      bucket = { tokens: this.rate, at: now }
      this.buckets.set(key, bucket)
    } else {
      bucket.tokens = Math.min(this.rate, bucket.tokens + (now - bucket.at) * this.rate / 1000)
      bucket.at = now
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.rate))
  }

  private prune (now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.rate / 1000 >= this.rate) this.buckets.delete(key)
    }
    // every client is busy: start over rather than grow without bound
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear()
  }
}
