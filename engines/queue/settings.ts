import { InvalidArgument } from '../errors.js'
import { validateFilter } from '../pubsub/topics.js'

export type BackoffType = 'fixed' | 'exponential'

export interface Backoff {
  type: BackoffType
  /** fixed: the delay; exponential: the delay after the first failed delivery, doubled after each further one. */
  baseMs: number
  /** Upper bound of the delay. */
  maxMs: number
}

/** A queue's settings as the engine holds them (all durations in ms). */
export interface QueueSettings {
  visibilityTimeoutMs: number
  maxDeliveries: number
  /** Delay before a nacked (without an explicit delay) or expired message is ready again; null = at once. */
  backoff: Backoff | null
  /** Max age of an unconsumed message; null = kept until consumed. */
  retentionMs: number | null
  maxMessageBytes: number
  /** How long a dedupId is remembered; 0 turns deduplication off. */
  dedupWindowMs: number
  /** MQTT topic filters whose publishes are pushed to the queue. */
  capture: string[]
  /**
   * Another queue that dead letters are moved to (as ready messages with x-dead-letter-* headers);
   * null keeps them in this queue's own dead letters.
   */
  deadLetter: string | null
}

/** A change of settings: absent fields keep their value; null removes backoff or retention. */
export type SettingsPatch = Partial<QueueSettings>

export const DEFAULT_SETTINGS: QueueSettings = {
  visibilityTimeoutMs: 30_000,
  maxDeliveries: 5,
  backoff: null,
  retentionMs: null,
  maxMessageBytes: 1024 * 1024,
  dedupWindowMs: 5 * 60_000,
  capture: [],
  deadLetter: null
}

export const LIMITS = {
  maxVisibilityTimeoutMs: 12 * 3600_000,
  maxDeliveries: 1_000_000,
  maxBackoffMs: 7 * 24 * 3600_000,
  maxRetentionMs: 10 * 365 * 24 * 3600_000,
  maxMessageBytes: 64 * 1024 * 1024,
  maxDedupWindowMs: 7 * 24 * 3600_000,
  maxCaptureFilters: 100,
  /** Messages per push and per receive. */
  maxBatch: 1000,
  maxWaitMs: 20_000,
  /** Delays have no practical cap, but must stay a safe timestamp. */
  maxDelayMs: 100 * 365 * 24 * 3600_000,
  maxDedupIdBytes: 1024,
  maxHeaders: 64,
  maxHeaderBytes: 16 * 1024
} as const

export const QUEUE_NAME = /^[A-Za-z0-9._-]{1,200}$/

export function validateQueueName (name: unknown): string {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    throw new InvalidArgument(`queue name ${JSON.stringify(name)} is not valid: use 1 to 200 of A-Z a-z 0-9 . _ -`)
  }
  return name
}

function durationMs (value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgument(`${field} must be a number of ms from ${min} to ${max}`, { field })
  }
  return Math.round(value)
}

function integer (value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgument(`${field} must be an integer from ${min} to ${max}`, { field })
  }
  return value
}

/** Applies a patch to settings, validating every field it names. */
export function applySettings (current: QueueSettings, patch: SettingsPatch): QueueSettings {
  const next: QueueSettings = { ...current, capture: [...current.capture] }
  if (patch.visibilityTimeoutMs !== undefined) next.visibilityTimeoutMs = durationMs(patch.visibilityTimeoutMs, 'visibilityTimeout', 1, LIMITS.maxVisibilityTimeoutMs)
  if (patch.maxDeliveries !== undefined) next.maxDeliveries = integer(patch.maxDeliveries, 'maxDeliveries', 1, LIMITS.maxDeliveries)
  if (patch.backoff !== undefined) {
    const b = patch.backoff
    if (b === null) next.backoff = null
    else {
      if (b.type !== 'fixed' && b.type !== 'exponential') throw new InvalidArgument('backoff.type must be "fixed" or "exponential"')
      const baseMs = durationMs(b.baseMs, 'backoff.base', 0, LIMITS.maxBackoffMs)
      const maxMs = b.maxMs === undefined ? LIMITS.maxBackoffMs : durationMs(b.maxMs, 'backoff.max', 0, LIMITS.maxBackoffMs)
      if (maxMs < baseMs) throw new InvalidArgument('backoff.max must not be smaller than backoff.base')
      next.backoff = { type: b.type, baseMs, maxMs }
    }
  }
  if (patch.retentionMs !== undefined) {
    next.retentionMs = patch.retentionMs === null ? null : durationMs(patch.retentionMs, 'retention', 1000, LIMITS.maxRetentionMs)
  }
  if (patch.maxMessageBytes !== undefined) next.maxMessageBytes = integer(patch.maxMessageBytes, 'maxMessageBytes', 1, LIMITS.maxMessageBytes)
  if (patch.dedupWindowMs !== undefined) next.dedupWindowMs = durationMs(patch.dedupWindowMs, 'dedupWindow', 0, LIMITS.maxDedupWindowMs)
  if (patch.capture !== undefined) {
    if (!Array.isArray(patch.capture) || patch.capture.length > LIMITS.maxCaptureFilters) {
      throw new InvalidArgument(`capture must be a list of at most ${LIMITS.maxCaptureFilters} MQTT topic filters`)
    }
    next.capture = [...new Set(patch.capture.map(f => validateFilter(f)))]
  }
  if (patch.deadLetter !== undefined) next.deadLetter = patch.deadLetter === null ? null : validateQueueName(patch.deadLetter)
  return next
}

/** The delay before the next delivery after `deliveries` failed ones (0 = at once). */
export function backoffDelay (backoff: Backoff | null, deliveries: number): number {
  if (backoff === null) return 0
  if (backoff.type === 'fixed') return Math.min(backoff.baseMs, backoff.maxMs)
  const exponent = Math.min(Math.max(deliveries - 1, 0), 52)
  return Math.min(backoff.baseMs * 2 ** exponent, backoff.maxMs)
}
