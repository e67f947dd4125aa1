/**
 * A Prometheus histogram of durations counted in typed arrays, for the per-request hot path. prom-client's
 * Histogram hashes a labels object on every observation, which costs a few microseconds a request; here
 * a caller keeps the series of its label set and an observation is a bucket search and three additions.
 * The text exposition is written at scrape time.
 */
export class DurationHistogram {
  private readonly all: DurationSeries[] = []
  private readonly byKey = new Map<string, DurationSeries>()

  constructor (readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {}

  /** The series of one label set (made on first use; the same object on every call). */
  series (labels: Readonly<Record<string, string>>): DurationSeries {
    const key = JSON.stringify(labels)
    let s = this.byKey.get(key)
    if (s === undefined) {
      s = new DurationSeries(labels, this.bounds)
      this.byKey.set(key, s)
      this.all.push(s)
    }
    return s
  }

  /** The Prometheus text format of every series: cumulative buckets, +Inf, sum and count. */
  exposition (): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    for (const s of this.all) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')
      let cumulative = 0
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i]
        lines.push(`${this.name}_bucket{le="${this.bounds[i]}",${labels}} ${cumulative}`)
      }
      lines.push(`${this.name}_bucket{le="+Inf",${labels}} ${s.count}`)
      lines.push(`${this.name}_sum{${labels}} ${s.sum}`)
      lines.push(`${this.name}_count{${labels}} ${s.count}`)
    }
    return lines.join('\n') + '\n'
  }
}

export class DurationSeries {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly labels: Readonly<Record<string, string>>, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    this.counts[i]++
    this.sum += value
    this.count++
  }
}

/** Label values escape backslash, double quote and newline (Prometheus text format). */
function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
