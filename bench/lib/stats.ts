/** Percentile (0..100) of a sample, nearest-rank on a sorted copy. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

export function latencySummary (samplesMs: number[]): { p50Ms: number, p99Ms: number, p999Ms: number } {
  const sorted = Float64Array.from(samplesMs).sort()
  return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), p999Ms: percentile(sorted, 99.9) }
}

/** The middle value; of an even count, the mean of the two middle ones (2 rounds: their mean, not the larger). */
export function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
