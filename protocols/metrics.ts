import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { Engines } from '../engines/index.js'
import { registerStreamMetrics } from './stream-metrics.js'
import { registerQueueMetrics } from './queue-metrics.js'

/**
 * The Prometheus registry of one broker. Engine figures (connections, messages, storage) are read from
 * the engines' own counters at scrape time, so the hot paths only bump plain numbers.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>
  readonly sseEvents: Counter<'feed'>
  readonly sseClients: Gauge<'feed'>

  /** The histogram's child per method + route + status, so a request does not hash a labels object. */
  private readonly httpChildren = new Map<string, { observe: (seconds: number) => void }>()

  observeHttp (method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${status} ${route}`
    let child = this.httpChildren.get(key)
    if (child === undefined) {
      child = this.httpDuration.labels(method, route, String(status))
      this.httpChildren.set(key, child)
    }
    child.observe(seconds)
  }

  constructor (engines: Engines) {
    const registry = this.registry
    collectDefaultMetrics({ register: registry })
    const { pubsub, storage } = engines
    registerStreamMetrics(registry, engines.streams)
    registerQueueMetrics(registry, engines.queues)
    this.httpDuration = new Histogram({
      name: 'tetra_http_request_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry]
    })
    this.sseEvents = new Counter({ name: 'tetra_sse_events_total', help: 'Events sent to SSE clients, by feed', labelNames: ['feed'], registers: [registry] })
    this.sseClients = new Gauge({ name: 'tetra_sse_clients', help: 'Open SSE streams, by feed', labelNames: ['feed'], registers: [registry] })
    new Gauge({
      name: 'tetra_mqtt_connections',
      help: 'Connected MQTT clients (TCP and WebSocket)',
      registers: [registry],
      collect () { this.set(pubsub.connectedClients) }
    })
    new Counter({
      name: 'tetra_messages_in_total',
      help: 'Messages published to the bus, by protocol',
      labelNames: ['protocol'],
      registers: [registry],
      collect () {
        this.reset()
        this.inc({ protocol: 'mqtt' }, pubsub.stats.published.mqtt)
        this.inc({ protocol: 'http' }, pubsub.stats.published.http)
        this.inc({ protocol: 'internal' }, pubsub.stats.published.internal)
      }
    })
    new Counter({
      name: 'tetra_messages_out_total',
      help: 'Messages delivered from the bus, by protocol (mqtt: to MQTT clients; internal: to SSE readers and captures)',
      labelNames: ['protocol'],
      registers: [registry],
      collect () {
        this.reset()
        this.inc({ protocol: 'mqtt' }, pubsub.stats.deliveredMqtt)
        this.inc({ protocol: 'internal' }, pubsub.stats.deliveredInternal)
      }
    })
    new Counter({
      name: 'tetra_storage_batches_total',
      help: 'LevelDB write batches (group commits)',
      registers: [registry],
      collect () { this.reset(); this.inc(storage.stats.batches) }
    })
    new Counter({
      name: 'tetra_storage_ops_total',
      help: 'LevelDB operations written',
      registers: [registry],
      collect () { this.reset(); this.inc(storage.stats.ops) }
    })
    new Counter({
      name: 'tetra_storage_fsyncs_total',
      help: 'fsyncs of the LevelDB log',
      registers: [registry],
      collect () { this.reset(); this.inc(storage.stats.syncs) }
    })
    const store = engines.store
    new Gauge({ name: 'tetra_store_keys', help: 'Keys in the store (expired keys not yet swept included)', registers: [registry], collect () { this.set(store.stats.keys) } })
    new Gauge({ name: 'tetra_store_bytes', help: 'Bytes accounted against --store-max-memory (keys, values, per-key overhead)', registers: [registry], collect () { this.set(store.stats.bytes) } })
    new Counter({ name: 'tetra_store_hits_total', help: 'Store reads that found a live key', registers: [registry], collect () { this.reset(); this.inc(store.stats.hits) } })
    new Counter({ name: 'tetra_store_misses_total', help: 'Store reads of a missing or expired key', registers: [registry], collect () { this.reset(); this.inc(store.stats.misses) } })
    new Counter({ name: 'tetra_store_evictions_total', help: 'Keys evicted at the store memory cap (LRU)', registers: [registry], collect () { this.reset(); this.inc(store.stats.evictions) } })
    new Counter({ name: 'tetra_store_expirations_total', help: 'Keys removed because their TTL ran out (on read or by the sweep)', registers: [registry], collect () { this.reset(); this.inc(store.stats.expirations) } })
  }
}
