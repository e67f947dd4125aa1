import type { Clock } from '../clock.js'
import type { MessageProperties } from '../pubsub/types.js'
import type { Partition, Storage } from '../storage/storage.js'

/** A stream's settings as stored (times in ms). */
export interface StreamSettings {
  /** Entries older than this are removed in the background. */
  maxAgeMs?: number
  /** Oldest entries are removed while the stream holds more bytes than this. */
  maxBytes?: number
  /** Oldest entries are removed while the stream holds more entries than this. */
  maxCount?: number
  /** MQTT topic filters whose publishes are appended to the stream. */
  capture: string[]
  /** How long a dedupId is remembered (0: no deduplication). */
  dedupWindowMs: number
}

/** What is persisted under the stream's meta key, rewritten with every append batch. */
export interface StreamRecord {
  id: number
  createdAt: number
  settings: StreamSettings
  /** The offset the next appended message gets. */
  next: number
  /** The first retained offset (== next when the stream is empty). */
  first: number
  /** Bytes of the retained entries (as stored: payload plus metadata). */
  bytes: number
  /** Timestamp of the last batch: entry timestamps never decrease within a stream. */
  lastTimestamp: number
  /** Timestamp of the last time index point. */
  lastIndexedTimestamp: number
}

/** Payload bytes inside a larger buffer, bytes[start, end): payloads packed in one buffer need no view each. */
export interface PayloadSlice { bytes: Buffer, start: number, end: number }

/**
 * A payload as a caller hands it over: its bytes, text (e.g. the JSON of a value; stored as its UTF-8
 * bytes, without a Buffer first) or a slice of a larger buffer.
 */
export type Payload = Buffer | string | PayloadSlice

/** A message to append. */
export interface AppendMessage {
  payload: Payload
  key?: string
  headers?: Record<string, string>
  dedupId?: string
  topic?: string
  qos?: 0 | 1 | 2
  retain?: boolean
  /** A captured publish's MQTT 5 properties. */
  properties?: MessageProperties
}

/** Engine-wide limits and switches (from the broker configuration). */
export interface StreamLimits {
  /** Appending to a missing stream creates it. */
  autocreate: boolean
  /** Largest message (payload + key + headers) in bytes. */
  maxMessageBytes: number
  /** Most messages in one append batch. */
  maxBatch: number
  /** Default dedup window of new streams, ms. */
  defaultDedupWindowMs: number
  /** Most dedup ids remembered per stream (the oldest are forgotten first). */
  maxDedupIds: number
  /** Background retention: entries removed per storage write. */
  retentionChunk: number
  /** Background retention: how often each stream with limits is checked, ms. */
  retentionIntervalMs: number
  /** Captured messages waiting for storage per stream beyond which QoS 0 captures are dropped (and counted). */
  captureMaxPending: number
  /**
   * Most entries of each in-memory index of a stream: time index points (16 bytes each; beyond it the
   * index is thinned) and chunk offsets (8 bytes each; beyond it the older half is dropped).
   */
  indexPoints: number
}

export const DEFAULT_LIMITS: StreamLimits = {
  autocreate: true,
  maxMessageBytes: 1024 * 1024,
  maxBatch: 1000,
  defaultDedupWindowMs: 120_000,
  maxDedupIds: 200_000,
  retentionChunk: 1000,
  retentionIntervalMs: 1000,
  captureMaxPending: 100_000,
  indexPoints: 65_536
}

/** What a stream and its groups need from the engine around them. */
export interface StreamContext {
  storage: Storage
  partition: Partition
  clock: Clock
  limits: StreamLimits
  /** Hands out a fresh numeric id (streams and groups); the op persisting the sequence goes in the same write. */
  nextId: () => number
  /** The op that persists the id sequence. */
  sequenceOp: () => ReturnType<Partition['put']>
  /** Engine-wide counters for /metrics. */
  stats: StreamStats
}

export interface StreamStats {
  appended: number
  appendBatches: number
  captured: number
  captureDropped: number
  retentionRemoved: number
  deduplicated: number
  groupDelivered: number
  groupAcked: number
  deadLettered: number
}

export interface GroupSettings {
  ackWaitMs: number
  maxDeliveries: number
  /** Most messages delivered and not yet acked at once; beyond it receive hands out only redeliveries. */
  maxPending: number
}

export const DEFAULT_GROUP_SETTINGS: GroupSettings = { ackWaitMs: 30_000, maxDeliveries: 5, maxPending: 10_000 }

/** Where a new group (or a read) starts. */
export type StartPosition = { from: 'start' } | { from: 'end' } | { from: 'offset', offset: number } | { from: 'time', time: number }
