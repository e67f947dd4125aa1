import { Counter, Gauge, type Registry } from 'prom-client'
import type { StreamEngine } from '../engines/stream/index.js'

/** Prometheus figures of the stream engine, read from its counters at scrape time. */
export function registerStreamMetrics (registry: Registry, streams: StreamEngine): void {
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
  }
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers: [registry], collect () { this.reset(); this.inc(read()) } })
  }
  gauge('tetra_streams', 'Streams', () => streams.totals().streams)
  gauge('tetra_stream_groups', 'Consumer groups of all streams', () => streams.totals().groups)
  new Gauge({
    name: 'tetra_stream_messages',
    help: 'Retained messages per stream',
    labelNames: ['stream'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of streams.list()) this.set({ stream: s.name }, s.count)
    }
  })
  new Gauge({
    name: 'tetra_stream_bytes',
    help: 'Retained bytes per stream (payload and metadata as stored)',
    labelNames: ['stream'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of streams.list()) this.set({ stream: s.name }, s.bytes)
    }
  })
  const st = streams.stats
  counter('tetra_stream_appended_total', 'Messages appended to streams (captured ones included)', () => st.appended)
  counter('tetra_stream_append_batches_total', 'Append batches written', () => st.appendBatches)
  counter('tetra_stream_captured_total', 'Publishes captured into streams', () => st.captured)
  counter('tetra_stream_capture_dropped_total', 'Captured publishes dropped (QoS 0 beyond the capture backlog, or over the message size limit)', () => st.captureDropped)
  counter('tetra_stream_deduplicated_total', 'Appends answered from the dedup window', () => st.deduplicated)
  counter('tetra_stream_retention_removed_total', 'Messages removed by retention', () => st.retentionRemoved)
  counter('tetra_stream_group_delivered_total', 'Messages handed to consumer group readers (redeliveries included)', () => st.groupDelivered)
  counter('tetra_stream_group_acked_total', 'Messages acknowledged in consumer groups', () => st.groupAcked)
  counter('tetra_stream_dead_lettered_total', 'Messages set aside as dead letters', () => st.deadLettered)
}
