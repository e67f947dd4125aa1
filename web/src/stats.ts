import { createContext } from 'preact'
import { useContext } from 'preact/hooks'

/** One sample of GET /v1/stats (protocols/http/routes/stats.ts StatsSample). */
export interface Sample {
  t: number
  uptime: number
  connections: { mqtt: number, mqttTransports?: Record<string, number>, http: number, sse: number }
  pubsub: { in: number, out: number }
  store: { changes: number, reads: number, keys: number, bytes: number, cap: number }
  queues: { pushed: number, acked: number, ready: number, leased: number, dead: number }
  streams: { appended: number, delivered: number, messages: number, bytes: number }
  memory: { rss: number, heapUsed: number }
  disk: number
}
export interface Warning { kind: string, name?: string, stream?: string, text: string }
export interface StatsMessage { version: string, fsync: string, fsyncIntervalMs: number, sampleMs: number, now: Sample, history: Sample[], warnings: Warning[] }
export interface SampleMessage { sample: Sample, warnings: Warning[] }

export interface StatsState {
  info: StatsMessage | null
  samples: Sample[]
  warnings: Warning[]
  /** Bumped by every sample: the lists of the other views refresh on it. */
  tick: number
  live: boolean
}

export const emptyStats: StatsState = { info: null, samples: [], warnings: [], tick: 0, live: false }
export const StatsContext = createContext<StatsState>(emptyStats)
export const useStats = (): StatsState => useContext(StatsContext)

/** Per-second rates of a counter between consecutive samples (a restart's drop counts as 0). */
export function rates (samples: Sample[], read: (s: Sample) => number): number[] {
  const out: number[] = []
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000
    const d = read(samples[i]) - read(samples[i - 1])
    out.push(dt > 0 && d >= 0 ? d / dt : 0)
  }
  return out
}
