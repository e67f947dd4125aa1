import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { Engines } from '../engines/index.js'

/**
 * The Prometheus registry of one broker. Engine figures (connections, messages, storage) are read from
 * the engines' own counters at scrape time, so the hot paths only bump plain numbers.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>
  readonly sseEvents: Counter<'feed'>
  readonly sseClients: Gauge<'feed'>

  constructor (engines: Engines) {
    const registry = this.registry
    collectDefaultMetrics({ register: registry })
    const { pubsub, storage } = engines
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
  }
}
