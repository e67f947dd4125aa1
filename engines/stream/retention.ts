import type { WriteOp } from '../storage/storage.js'
import { prefixEnd } from '../storage/keys.js'
import { chunkCount, entryTimestampAt, forEachInChunk, keys, offsetOfKey, TAG, timeKeyParts } from './codec.js'
import type { StreamLog } from './log.js'
import type { StreamContext } from './types.js'

const yieldToIo = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

/** Chunks (append batches, up to 1000 entries each) looked at per retention round. */
const CHUNKS_PER_ROUND = 16

/** True when the stream is over its count or bytes limit (cheap: in-memory counters only). */
export function overLimits (log: StreamLog): boolean {
  const s = log.record.settings
  return (s.maxCount !== undefined && log.count > s.maxCount) || (s.maxBytes !== undefined && log.record.bytes > s.maxBytes)
}

/**
 * Removes the oldest entries while the stream is over maxCount, maxBytes or maxAge, a few chunks per
 * storage write, yielding to I/O between rounds so appends and reads go on. Each round moves the first
 * offset and the byte count in the same atomic write. A chunk is deleted once all of its entries are
 * below the first offset; until then readers skip its removed head.
 */
export async function enforceRetention (log: StreamLog, ctx: StreamContext, isStopped: () => boolean): Promise<number> {
  const { partition, storage, clock } = ctx
  const s = log.record.settings
  if (s.maxAgeMs === undefined && s.maxBytes === undefined && s.maxCount === undefined) return 0
  const prefix = keys.idPrefix(TAG.entry, log.id)
  let removedTotal = 0
  // bounded: every round removes something or stops
  for (let round = 0; round < 10_000_000; round++) {
    if (log.deleted || isStopped()) break
    const first = log.record.first
    const end = log.durableNext
    const cutoff = s.maxAgeMs !== undefined ? clock.now() - s.maxAgeMs : -Infinity
    const rows = await partition.range({ gte: prefix, lt: keys.entry(log.id, end), limit: CHUNKS_PER_ROUND })
    if (log.deleted || log.record.first !== first) break
    const ops: WriteOp[] = []
    let count = log.count
    let bytes = log.record.bytes
    let newFirst = first
    let removedBytes = 0
    let keep = false
    for (const [key, chunk] of rows) {
      const chunkFirst = offsetOfKey(key)
      forEachInChunk(chunkFirst, chunk, first, (offset, data, at, len) => {
        const over = (s.maxCount !== undefined && count > s.maxCount) ||
          (s.maxBytes !== undefined && bytes > s.maxBytes) ||
          entryTimestampAt(data, at) < cutoff
        if (!over) { keep = true; return false }
        count--
        bytes -= len
        removedBytes += len
        newFirst = offset + 1
        return true
      })
      if (chunkFirst + chunkCount(chunk) <= newFirst) ops.push(partition.del(key))
      if (keep) break
    }
    if (newFirst === first && ops.length === 0) break
    // time index points of removed batches (a seek below the first entry answers the first entry anyway)
    const points = await partition.range({ gte: keys.idPrefix(TAG.time, log.id), lt: prefixEnd(keys.idPrefix(TAG.time, log.id)), limit: 1000 })
    for (const [key] of points) {
      if (timeKeyParts(key).offset >= newFirst) break
      ops.push(partition.del(key))
    }
    if (log.deleted || log.record.first !== first) break
    log.record.bytes -= removedBytes
    log.record.first = newFirst
    ops.push(log.metaOp())
    await storage.write(ops)
    const removed = newFirst - first
    removedTotal += removed
    ctx.stats.retentionRemoved += removed
    await yieldToIo()
  }
  return removedTotal
}
