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

export function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]
}
