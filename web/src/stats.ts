import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { StatsSample, StatsWarning } from '../../protocols/http/routes/stats-sample.js'

/** One sample of GET /v1/stats, and a warning beside it: the broker's own types. */
export type Sample = StatsSample
export type Warning = StatsWarning

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
