import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client'
import { DurationHistogram, type DurationSeries } from './duration-histogram.js'
import type { Engines } from '../engines/index.js'
import { registerStreamMetrics } from './stream-metrics.js'
import { registerQueueMetrics } from './queue-metrics.js'
import { SecurityCounters } from './security-metrics.js'
import { frontEndOf } from './mqtt/front-end.js'

/**
 * The Prometheus registry of one broker. Engine figures (connections, messages, storage) are read from
 * the engines' own counters at scrape time, so the hot paths only bump plain numbers.
 */
export class Metrics {
  readonly registry = new Registry()
  /** Request durations by method, route and status (see DurationHistogram for why not prom-client's). */
  readonly httpDuration = new DurationHistogram(
    'tetra_http_request_duration_seconds',
    'HTTP request duration by route',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
  )
  /** Events sent to SSE clients by feed: plain numbers bumped per event, read at scrape time. */
  readonly sseEvents = { pubsub: 0, store: 0, stream: 0 }
  readonly sseClients: Gauge<'feed'>

  /**
   * The observer of one route's requests: it holds that route's series by method and status, so a
   * request costs a lookup in a small map rather than building and hashing a labels object.
   */
  httpRouteObserver (route: string): (method: string, status: number, seconds: number) => void {
    const byMethodStatus = new Map<string, DurationSeries>()
    return (method, status, seconds) => {
      const key = method + status
      let series = byMethodStatus.get(key)
      if (series === undefined) {
        series = this.httpDuration.series({ method, route, status: String(status) })
        byMethodStatus.set(key, series)
      }
      series.observe(seconds)
    }
  }

  /** The Prometheus text of the registry and the request durations. */
  async text (): Promise<string> {
    return (await this.registry.metrics()) + '\n' + this.httpDuration.exposition()
  }

  constructor (engines: Engines, readonly security: SecurityCounters = new SecurityCounters()) {
    const registry = this.registry
    collectDefaultMetrics({ register: registry })
    security.register(registry)
    const { pubsub, storage } = engines
    registerStreamMetrics(registry, engines.streams)
    registerQueueMetrics(registry, engines.queues)
    const sseEvents = this.sseEvents
    new Counter({
      name: 'tetra_sse_events_total',
      help: 'Events sent to SSE clients, by feed',
      labelNames: ['feed'],
      registers: [registry],
      collect () {
        this.reset()
        for (const [feed, count] of Object.entries(sseEvents)) this.inc({ feed }, count)
      }
    })
    this.sseClients = new Gauge({ name: 'tetra_sse_clients', help: 'Open SSE streams, by feed', labelNames: ['feed'], registers: [registry] })
    new Gauge({
      name: 'tetra_mqtt_connections',
      help: 'Connected MQTT clients (TCP, TLS and WebSocket)',
      registers: [registry],
      collect () { this.set(pubsub.connectedClients) }
    })
    new Counter({
      name: 'tetra_mqtt_dropped_total',
      help: 'Messages not sent to an MQTT client, by reason (send_buffer: QoS 0 to a subscriber over its send buffer; packet_size: over the client\'s Maximum Packet Size)',
      labelNames: ['reason'],
      registers: [registry],
      collect () {
        this.reset()
        const stats = frontEndOf(pubsub)?.stats
        this.inc({ reason: 'send_buffer' }, stats?.droppedQos0 ?? 0)
        this.inc({ reason: 'packet_size' }, stats?.droppedTooLarge ?? 0)
      }
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
