import { RateLimiter } from '../rate-limit.js'

/**
 * --mqtt-connect-rate: new MQTT connections per second from one IP address, as a token bucket per address
 * (capacity = the rate: a burst of that many, then the rate). A client over it gets CONNACK 0x03 (server
 * unavailable) before its credentials are even looked at, so a flood of CONNECTs costs no password hashing.
 */
export class ConnectRate {
  private readonly buckets: RateLimiter | null

  /** `perSecond` 0: no cap. */
  constructor (perSecond: number, now: () => number = Date.now) {
    this.buckets = perSecond > 0 ? new RateLimiter(perSecond, now) : null
  }

  /** Takes a token for `address`; false when its bucket is empty (the connection is refused). */
  take (address: string): boolean {
    return this.buckets === null || this.buckets.take(address) === 0
  }
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback (address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}
