/**
 * In-process stream engine benchmark, run in its own process: `node engine.js '<json params>'`.
 * Appends `messages` messages of `payloadBytes` (batches of 1000, a few in flight), sampling RSS as the
 * stream grows; replays from the start in pages of 1000; then measures seeks by offset and by time at
 * random points of the whole stream. Prints one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createEngines } from '../../engines/index.js'
import { latencySummary } from '../lib/stats.js'

export interface EngineBenchParams { messages: number, payloadBytes: number, seeks: number, replayMessages: number }

export interface EngineBenchResult {
  appended: number
  appendRate: number
  replayed: number
  replayRate: number
  seekOffset: { p50Ms: number, p99Ms: number, p999Ms: number }
  seekTime: { p50Ms: number, p99Ms: number, p999Ms: number }
  seekMismatches: number
  /** RSS in MB when the stream held 10%, 50% and 100% of the messages. */
  rssMb: { at10: number, at50: number, at100: number }
}

const rss = (): number => process.memoryUsage().rss / 2 ** 20

async function main (): Promise<void> {
  const p = JSON.parse(process.argv[2]) as EngineBenchParams
  const dir = mkdtempSync(join(tmpdir(), 'tetra-stream-bench-'))
  const engines = await createEngines({ dataDir: dir, fsync: 'interval', fsyncIntervalMs: 100 })
  try {
    const streams = engines.streams
    await streams.put('big', {})
    const payload = Buffer.alloc(p.payloadBytes, 'x')
    const batch = Array.from({ length: 1000 }, () => ({ payload }))
    const rssAt: Record<'at10' | 'at50' | 'at100', number> = { at10: 0, at50: 0, at100: 0 }
    const inFlight = new Set<Promise<unknown>>()
    const t0 = performance.now()
    let issued = 0
    while (issued < p.messages) {
      const n = Math.min(1000, p.messages - issued)
      const done: Promise<unknown> = streams.append('big', n === 1000 ? batch : batch.slice(0, n)).finally(() => inFlight.delete(done))
      inFlight.add(done)
      issued += n
      if (inFlight.size >= 8) await Promise.race(inFlight)
      if (issued === Math.floor(p.messages / 10 / 1000) * 1000) rssAt.at10 = rss()
      if (issued === Math.floor(p.messages / 2 / 1000) * 1000) rssAt.at50 = rss()
    }
    await Promise.all(inFlight)
    const appendMs = performance.now() - t0
    rssAt.at100 = rss()

    const replayTarget = Math.min(p.replayMessages, p.messages)
    let from = 0
    let replayed = 0
    const r0 = performance.now()
    while (replayed < replayTarget) {
      const page = await streams.read('big', { from, limit: 1000 })
      if (page.messages.length === 0) break
      replayed += page.messages.length
      from = page.next
    }
    const replayMs = performance.now() - r0

    const firstTs = (await streams.read('big', { from: 0, limit: 1 })).messages[0].timestamp
    const lastTs = (await streams.read('big', { from: p.messages - 1, limit: 1 })).messages[0].timestamp
    const byOffset: number[] = []
    const byTime: number[] = []
    let mismatches = 0
    for (let i = 0; i < p.seeks; i++) {
      const offset = Math.floor(Math.random() * p.messages)
      const s0 = performance.now()
      const r = await streams.read('big', { from: offset, limit: 1 })
      byOffset.push(performance.now() - s0)
      if (r.messages[0]?.offset !== offset) mismatches++
      const time = firstTs + Math.floor(Math.random() * (lastTs - firstTs + 1))
      const s1 = performance.now()
      const t = await streams.read('big', { time, limit: 1 })
      byTime.push(performance.now() - s1)
      const m = t.messages[0]
      if (m === undefined || m.timestamp < time) mismatches++
    }
    const result: EngineBenchResult = {
      appended: p.messages,
      appendRate: p.messages / (appendMs / 1000),
      replayed,
      replayRate: replayed / (replayMs / 1000),
      seekOffset: latencySummary(byOffset),
      seekTime: latencySummary(byTime),
      seekMismatches: mismatches,
      rssMb: rssAt
    }
    process.stdout.write(JSON.stringify(result) + '\n')
  } finally {
    await engines.close()
    rmSync(dir, { recursive: true, force: true })
  }
  process.exit(0)
}

void main()
