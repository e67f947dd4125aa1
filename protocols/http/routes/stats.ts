import type { FastifyInstance, FastifyRequest } from 'fastify'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { HttpContext } from '../app.js'
import { SseStream } from '../sse.js'
import type { StatsSample, StatsWarning } from './stats-sample.js'

/** One sample every 2 s: a chart point per 2 s, and one SSE event per 2 s to each open dashboard. */
export const SAMPLE_MS = 2000
/** 15 minutes of samples, what the overview's charts show. */
const HISTORY = (15 * 60 * 1000) / SAMPLE_MS
const DISK_EVERY_MS = 30_000
/** Up to this many connected MQTT clients, a sample counts them by transport (one lookup each, every 2 s). */
const MAX_SPLIT = 10_000
/** A consumer group this many messages behind is reported. */
export const LAG_WARNING = 1000
/** The store above this share of --store-max-memory is reported. */
const STORE_WARNING = 0.9

async function directoryBytes (dir: string): Promise<number> {
  let total = 0
  try {
    for (const name of await readdir(dir)) {
      const s = await stat(join(dir, name)).catch(() => undefined)
      if (s?.isFile() === true) total += s.size
    }
  } catch { /* not there (yet) */ }
  return total
}

/**
 * GET /v1/stats (one sample, its history and the warnings) and GET /v1/stats/stream (SSE: the same at
 * once, then a sample every 2 s): the dashboard's overview reads one stream for all of its figures.
 */
export function registerStatsRoutes (app: FastifyInstance, ctx: HttpContext): void {
  const { pubsub, store, queues, streams, storage } = ctx.engines
  const started = Date.now()
  const history: StatsSample[] = []
  let disk = 0
  let diskAt = 0

  const sseOpen = async (): Promise<number> => {
    const got = await ctx.metrics.sseClients.get()
    return got.values.reduce((sum, v) => sum + v.value, 0)
  }
  const httpConnections = async (): Promise<number> => await new Promise(resolve => {
    app.server.getConnections((err, count) => { resolve(err === null ? count : 0) })
  })

  /** Connected MQTT clients by transport, from the front-end's connections. */
  const mqttTransports = (): Record<string, number> | undefined => {
    const directory = ctx.mqtt
    if (directory === undefined || pubsub.connectedClients > MAX_SPLIT) return undefined
    const out: Record<string, number> = {}
    for (const s of pubsub.clients()) {
      if (!s.connected) continue
      const transport = directory.details(s.clientId)?.transport ?? 'unknown'
      out[transport] = (out[transport] ?? 0) + 1
    }
    return out
  }

  /** `detail`: a dashboard looks at it now, so count the MQTT clients by transport too (a walk over the sessions). */
  const sample = async (detail: boolean): Promise<StatsSample> => {
    const now = Date.now()
    if (now - diskAt >= DISK_EVERY_MS) {
      diskAt = now
      disk = await directoryBytes(join(storage.options.dir, 'db'))
    }
    const q = { pushed: 0, acked: 0, ready: 0, leased: 0, dead: 0 }
    for (const { stats } of queues.snapshot()) {
      q.pushed += stats.pushed
      q.acked += stats.acked
      q.ready += stats.ready
      q.leased += stats.leased
      q.dead += stats.dead
    }
    const st = store.stats
    const totals = streams.totals()
    const mem = process.memoryUsage()
    return {
      t: now,
      uptime: Math.round((now - started) / 1000),
      connections: { mqtt: pubsub.connectedClients, ...(detail ? { mqttTransports: mqttTransports() } : {}), http: await httpConnections(), sse: await sseOpen() },
      pubsub: {
        in: pubsub.stats.published.mqtt + pubsub.stats.published.http,
        out: pubsub.stats.deliveredMqtt + pubsub.stats.deliveredInternal
      },
      // every set, delete and expiry takes the next revision of the change log
      store: { changes: store.latestRevision, reads: st.hits + st.misses, keys: st.keys, bytes: st.bytes, cap: store.memoryCap },
      queues: q,
      streams: { appended: streams.stats.appended, delivered: streams.stats.groupDelivered, messages: totals.entries, bytes: totals.bytes },
      memory: { rss: mem.rss, heapUsed: mem.heapUsed },
      disk
    }
  }

  /** What needs an operator, cut to what the principal may see. */
  const warnings = (request: FastifyRequest): StatsWarning[] => {
    const p = request.principal
    const out: StatsWarning[] = []
    for (const { name, stats } of queues.snapshot()) {
      if (stats.dead > 0 && (p === null || p.can('queue', name, 'receive') || p.can('queue', name, 'admin'))) {
        out.push({ kind: 'dead-letters', name, text: `${stats.dead} dead letter${stats.dead === 1 ? '' : 's'} waiting in queue ${name}` })
      }
    }
    for (const s of streams.list()) {
      if (s.groups.length === 0 || (p !== null && !p.can('stream', s.name, 'read'))) continue
      for (const g of streams.listGroups(s.name)) {
        if (g.lag >= LAG_WARNING) out.push({ kind: 'group-lag', name: g.name, stream: s.name, text: `group ${g.name} of stream ${s.name} is ${g.lag} messages behind` })
      }
    }
    const cap = store.memoryCap
    if (cap > 0 && store.stats.bytes >= STORE_WARNING * cap) {
      out.push({ kind: 'store-memory', text: `the store uses ${Math.round(100 * store.stats.bytes / cap)}% of --store-max-memory` })
    }
    return out
  }

  const info = { version: ctx.options.version ?? 'unknown', fsync: storage.options.fsync, fsyncIntervalMs: storage.options.fsyncIntervalMs ?? 100, sampleMs: SAMPLE_MS }
  const listeners = new Set<(s: StatsSample) => void>()
  let sampling = false
  const timer = setInterval(() => {
    if (sampling) return
    sampling = true
    sample(listeners.size > 0).then(s => {
      history.push(s)
      if (history.length > HISTORY) history.shift()
      for (const l of listeners) l(s)
    }, () => {}).finally(() => { sampling = false })
  }, SAMPLE_MS)
  timer.unref()
  app.addHook('onClose', (_app, done) => { clearInterval(timer); done() })

  const acl = { resource: 'system', action: 'dashboard', name: { fixed: 'dashboard' } } as const
  const tags = ['operations']

  app.get('/v1/stats', {
    config: { acl },
    schema: {
      tags,
      summary: 'The broker\'s counters: connections, messages in and out per engine, memory, disk; 15 minutes of samples; warnings',
      description: 'Counters (pubsub.in/out, store.changes/reads, queues.pushed/acked, streams.appended/delivered) are cumulative since start: rates are the difference of two samples. history holds one sample per sampleMs over the last 15 minutes. warnings: dead letters waiting, consumer groups 1000 or more messages behind, the store above 90% of --store-max-memory (only those the principal may see).'
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store')
    return { ...info, now: await sample(true), history, warnings: warnings(request) }
  })

  app.get('/v1/stats/stream', {
    config: { acl: { ...acl, ticket: true } },
    schema: {
      tags,
      summary: 'The counters of GET /v1/stats over Server-Sent Events: one event with the history, then a sample every 2 s',
      description: 'Event `history`: GET /v1/stats\'s answer. Then event `sample` every 2 s: {sample, warnings}. Accepts ?ticket= (POST /v1/auth/ticket) for EventSource.',
      querystring: { type: 'object', properties: { ticket: { type: 'string' } } },
      produces: ['text/event-stream']
    }
  }, async (request, reply) => {
    const first = { ...info, now: await sample(true), history, warnings: warnings(request) }
    const sse = new SseStream(request, reply, ctx.options.sseHeartbeatMs)
    ctx.metrics.sseClients.inc({ feed: 'stats' })
    sse.send({ event: 'history', data: JSON.stringify(first) })
    const listener = (s: StatsSample): void => {
      if (reply.raw.writableLength > 64 * 1024) return
      sse.send({ event: 'sample', data: JSON.stringify({ sample: s, warnings: warnings(request) }) })
    }
    listeners.add(listener)
    sse.onClose(() => { listeners.delete(listener); ctx.metrics.sseClients.dec({ feed: 'stats' }) })
  })
}
