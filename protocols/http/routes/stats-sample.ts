/**
 * The shapes GET /v1/stats and its SSE stream send, in a module of their own (no imports): the broker's
 * route and the dashboard (web/src/stats.ts) both read them from here.
 */

/**
 * The broker's counters as one object, sampled every SAMPLE_MS (stats.ts): what the dashboard's overview charts.
 * Counters are cumulative since start (a reader derives rates from two samples); gauges are current.
 */
export interface StatsSample {
  /** ms since the epoch. */
  t: number
  /** seconds since start. */
  uptime: number
  /** mqttTransports: connected MQTT clients by transport (mqtt_tcp, mqtt_tls, mqtt_ws); absent past MAX_SPLIT clients. */
  connections: { mqtt: number, mqttTransports?: Record<string, number>, http: number, sse: number }
  /** Cumulative message counts per engine, in and out. */
  pubsub: { in: number, out: number }
  store: { changes: number, reads: number, keys: number, bytes: number, cap: number }
  queues: { pushed: number, acked: number, ready: number, leased: number, dead: number }
  streams: { appended: number, delivered: number, messages: number, bytes: number }
  memory: { rss: number, heapUsed: number }
  /** Bytes of the LevelDB files (measured every DISK_EVERY_MS, stats.ts). */
  disk: number
}

export interface StatsWarning { kind: 'dead-letters' | 'group-lag' | 'store-memory', name?: string, stream?: string, text: string }
