import { useMemo } from 'preact/hooks'
import { Chart } from '../chart.js'
import { rates, useStats } from '../stats.js'
import { Card, fmtBytes, fmtDuration, fmtNumber } from '../ui.js'

const COLORS = { in: '#2f81f7', out: '#3fb950', third: '#d29922' }

function Figure ({ label, value, id }: { label: string, value: string, id?: string }): JSX.Element {
  return <div class="figure" data-figure={id}><span class="value">{value}</span><span class="label">{label}</span></div>
}

const TRANSPORTS: Record<string, string> = { mqtt_tcp: 'TCP', mqtt_tls: 'TLS', mqtt_ws: 'WebSocket' }

/** ' (TCP 3, WebSocket 1)' from the counts by transport. */
function transports (by: Record<string, number> | undefined): string {
  if (by === undefined) return ''
  const parts = Object.entries(by).filter(([, n]) => n > 0).map(([t, n]) => `${TRANSPORTS[t] ?? t} ${n}`)
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`
}

/** Version, uptime, connections, live rates per engine (15 minutes), memory, disk, fsync; warnings. */
export function Overview (): JSX.Element {
  const stats = useStats()
  const { samples, info, warnings } = stats
  const now = samples[samples.length - 1]
  const charts = useMemo(() => {
    const times = samples.slice(1).map(s => s.t / 1000)
    const r = (f: (s: typeof samples[number]) => number): number[] => rates(samples, f)
    return {
      times,
      pubsub: [{ label: 'in/s', values: r(s => s.pubsub.in), color: COLORS.in }, { label: 'out/s', values: r(s => s.pubsub.out), color: COLORS.out }],
      store: [{ label: 'changes/s', values: r(s => s.store.changes), color: COLORS.in }, { label: 'reads/s', values: r(s => s.store.reads), color: COLORS.out }],
      queues: [{ label: 'pushed/s', values: r(s => s.queues.pushed), color: COLORS.in }, { label: 'acked/s', values: r(s => s.queues.acked), color: COLORS.out }],
      streams: [{ label: 'appended/s', values: r(s => s.streams.appended), color: COLORS.in }, { label: 'delivered/s', values: r(s => s.streams.delivered), color: COLORS.out }]
    }
  }, [samples])
  if (now === undefined || info === null) return <p class="muted">Waiting for the broker's counters…</p>
  return (
    <div class="view overview">
      {warnings.length > 0 && <Card title="Warnings" class="warnings">
        <ul>{warnings.map(w => <li key={w.text}>
          {w.kind === 'dead-letters' && w.name !== undefined ? <a href={`#/queues/${encodeURIComponent(w.name)}`}>{w.text}</a>
            : w.kind === 'group-lag' && w.stream !== undefined ? <a href={`#/streams/${encodeURIComponent(w.stream)}`}>{w.text}</a> : w.text}
        </li>)}</ul>
      </Card>}
      <Card title="Broker" actions={<span class={stats.live ? 'live' : 'muted'}>{stats.live ? '● live' : 'reconnecting'}</span>}>
        <div class="figures">
          <Figure label="version" value={info.version} />
          <Figure label="uptime" value={fmtDuration(now.uptime)} id="uptime" />
          <Figure label={`MQTT clients${transports(now.connections.mqttTransports)}`} value={fmtNumber(now.connections.mqtt)} id="mqtt" />
          <Figure label="HTTP connections" value={fmtNumber(now.connections.http)} />
          <Figure label="SSE streams" value={fmtNumber(now.connections.sse)} />
          <Figure label="messages in (total)" value={fmtNumber(now.pubsub.in)} id="pubsub-in" />
          <Figure label="memory (RSS)" value={fmtBytes(now.memory.rss)} />
          <Figure label="data on disk" value={fmtBytes(now.disk)} />
          <Figure label="fsync" value={info.fsync === 'interval' ? `every ${info.fsyncIntervalMs} ms` : info.fsync} />
          <Figure label="store keys" value={fmtNumber(now.store.keys)} />
          <Figure label="store memory" value={now.store.cap > 0 ? `${fmtBytes(now.store.bytes)} / ${fmtBytes(now.store.cap)}` : fmtBytes(now.store.bytes)} />
          <Figure label="queued (ready)" value={fmtNumber(now.queues.ready)} />
          <Figure label="dead letters" value={fmtNumber(now.queues.dead)} />
          <Figure label="stream messages" value={fmtNumber(now.streams.messages)} />
        </div>
      </Card>
      <div class="grid2">
        <Card title="Pub/Sub messages"><Chart title="per second, last 15 minutes" times={charts.times} series={charts.pubsub} /></Card>
        <Card title="Store"><Chart title="per second" times={charts.times} series={charts.store} /></Card>
        <Card title="Queues"><Chart title="per second" times={charts.times} series={charts.queues} /></Card>
        <Card title="Streams"><Chart title="per second" times={charts.times} series={charts.streams} /></Card>
      </div>
    </div>
  )
}
