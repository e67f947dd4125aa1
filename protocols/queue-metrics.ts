import { Counter, Gauge, type Registry } from 'prom-client'
import type { QueueEngine } from '../engines/queue/engine.js'

/** Queue depths by state and per-queue totals, read from the engine at scrape time. */
export function registerQueueMetrics (registry: Registry, queues: QueueEngine): void {
  new Gauge({
    name: 'tetra_queue_messages',
    help: 'Messages in a queue, by state (ready, leased, delayed, dead)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    collect () {
      this.reset()
      for (const { name, stats } of queues.snapshot()) {
        this.set({ queue: name, state: 'ready' }, stats.ready)
        this.set({ queue: name, state: 'leased' }, stats.leased)
        this.set({ queue: name, state: 'delayed' }, stats.delayed)
        this.set({ queue: name, state: 'dead' }, stats.dead)
      }
    }
  })
  new Gauge({
    name: 'tetra_queue_waiting_receivers',
    help: 'Long-polling receivers waiting on a queue',
    labelNames: ['queue'],
    registers: [registry],
    collect () {
      this.reset()
      for (const { name, stats } of queues.snapshot()) this.set({ queue: name }, stats.waiting)
    }
  })
  const total = (name: string, help: string, pick: (s: ReturnType<QueueEngine['snapshot']>[number]['stats']) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['queue'],
      registers: [registry],
      collect () {
        this.reset()
        for (const { name: queue, stats } of queues.snapshot()) this.inc({ queue }, pick(stats))
      }
    })
  }
  total('tetra_queue_pushed_total', 'Messages pushed to a queue (duplicates not counted)', s => s.pushed)
  total('tetra_queue_acked_total', 'Messages acknowledged', s => s.acked)
  total('tetra_queue_dead_lettered_total', 'Messages moved to the dead letters', s => s.deadLettered)
  total('tetra_queue_expired_total', 'Unconsumed messages dropped after the retention', s => s.expired)
  new Counter({
    name: 'tetra_queue_capture_dropped_total',
    help: 'Captured MQTT publishes that could not be pushed (too large, storage error)',
    registers: [registry],
    collect () { this.reset(); this.inc(queues.captureDropped) }
  })
}
