/** One line of the benchmark table. */
export interface BenchRow {
  /** e.g. "mqtt", "store", "queue", "stream" */
  group: string
  /** e.g. "qos0 fan-in 10->1" */
  scenario: string
  /** What was measured: "tetra", "aedes", "mosquitto", "fastify (bare)", "engine (in-process)" */
  target: string
  /** Throughput in `unit` per second. */
  rate?: number
  unit?: string
  /** Ratio to the same scenario's baseline in this run, with its name, e.g. { aedes: 0.97 } */
  ratios?: Record<string, number>
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
  /** Messages that arrived / were sent (correctness check of the run). */
  delivered?: number
  published?: number
  /** Peak resident set of the process under test, in MB. */
  peakRssMb?: number
  note?: string
}

export interface BenchContext {
  /** Progress line on stderr (the table goes to stdout). */
  progress: (message: string) => void
  /** Shorter runs for a quick look (`npm run bench -- --quick`). */
  quick: boolean
}

export interface Scenario {
  /** Unique name; `npm run bench -- <name or group>` runs only the matching ones. */
  name: string
  group: string
  run: (ctx: BenchContext) => Promise<BenchRow[]>
}
