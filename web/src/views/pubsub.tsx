import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { IClientPublishOptions, MqttClient } from 'mqtt'
import { getCredentials, json, live } from '../api.js'
import { useStats } from '../stats.js'
import { Card, ErrorLine, Field, Payload, errorText, fmtNumber, fmtTime, useAction, useLoad, useSession } from '../ui.js'

interface Client { clientId: string, connected: boolean, subscriptions: number, inflight: number, queued: number, expiryInterval: number, keepAlive?: number, version?: number, address?: string, user?: string | null, transport?: string }
interface BusMessage { topic: string, payload: unknown, encoding?: string, qos: number, retain: boolean, [property: string]: unknown }

export function PubSubView (): JSX.Element {
  return (
    <div class="view pubsub">
      <Clients />
      <div class="grid2">
        <TestClient />
        <TopicTree />
      </div>
      <Retained />
    </div>
  )
}

function Clients (): JSX.Element {
  const { tick } = useStats()
  const { perms } = useSession()
  const act = useAction()
  const { data, error, reload } = useLoad(async () => (await json<{ clients: Client[] }>('/v1/pubsub/clients')).clients, [tick])
  const canKick = perms.write('system', 'admin', 'clients')
  return (
    <Card title={`MQTT clients${data !== undefined ? ` (${data.filter(c => c.connected).length} connected)` : ''}`}>
      <ErrorLine error={error} />
      {data !== undefined && data.length === 0 && <p class="muted">No MQTT session.</p>}
      {data !== undefined && data.length > 0 && <div class="scroll"><table class="clients">
        <thead><tr><th>client id</th><th>state</th><th>protocol</th><th>address</th><th>user</th><th>keep alive</th><th>subscriptions</th><th>in flight</th><th>queued</th><th>session expiry</th>{canKick && <th />}</tr></thead>
        <tbody>{data.map(c => <tr key={c.clientId} data-client={c.clientId}>
          <td class="mono">{c.clientId}</td>
          <td>{c.connected ? 'connected' : 'offline'}</td>
          <td>{c.version === undefined ? '' : c.version === 5 ? 'MQTT 5' : 'MQTT 3.1.1'}{c.transport !== undefined ? ` (${c.transport === 'mqtt_ws' ? 'WebSocket' : c.transport === 'mqtt_tls' ? 'TLS' : 'TCP'})` : ''}</td>
          <td class="mono">{c.address ?? ''}</td><td>{c.user ?? ''}</td><td>{c.keepAlive === undefined ? '' : c.keepAlive === 0 ? 'off' : `${c.keepAlive} s`}</td>
          <td>{c.subscriptions}</td><td>{c.inflight}</td><td>{c.queued}</td>
          <td>{c.expiryInterval === 4294967295 ? 'never' : `${c.expiryInterval} s`}</td>
          {canKick && <td>{c.connected && <button onClick={() => { void act(async () => { await json(`/v1/pubsub/clients/${encodeURIComponent(c.clientId)}`, { method: 'DELETE' }) }, `client ${c.clientId} disconnected`).then(reload) }}>Disconnect</button>}</td>}
        </tr>)}</tbody>
      </table></div>}
    </Card>
  )
}

/** Above this rate over # the topic tree stops following the traffic (Resume takes it up again). */
const MAX_TREE_RATE = 1000

interface TopicStats { count: number, previous: number, rate: number, retained: boolean }
interface TreeRow { path: string, level: number, label: string, rate: number, count: number, retained: boolean, leaf: boolean }

/** Every topic seen on `#` while the view is open (retained ones first), with rates per 2 s window. */
function TopicTree (): JSX.Element {
  const { perms } = useSession()
  const topics = useRef(new Map<string, TopicStats>())
  const [version, setVersion] = useState(0)
  const [state, setState] = useState('')
  const [paused, setPaused] = useState(false)
  const allowed = perms.can('topic', 'subscribe', '#')
  useEffect(() => {
    if (!allowed || paused) return
    const stop = live('/v1/pubsub/subscribe', 'filter=%23', {
      onEvent: (_e, data) => {
        const m = JSON.parse(data) as BusMessage
        let t = topics.current.get(m.topic)
        if (t === undefined) {
          if (topics.current.size >= 5000) return
          t = { count: 0, previous: 0, rate: 0, retained: false }
          topics.current.set(m.topic, t)
        }
        t.count++
        if (m.retain) t.retained = !(m.payload === '' && m.encoding !== undefined)
      },
      onState: (st, detail) => { setState(st === 'open' ? '' : `${st}${detail !== undefined ? ': ' + detail : ''}`) }
    })
    const timer = setInterval(() => {
      let total = 0
      for (const t of topics.current.values()) { t.rate = (t.count - t.previous) / 2; t.previous = t.count; total += t.rate }
      setVersion(v => v + 1)
      // every message of # goes to this page: on a busy broker that is load for both, so the tree stops
      if (total > MAX_TREE_RATE) {
        setPaused(true)
        setState(`paused: more than ${MAX_TREE_RATE} messages/s; the tree keeps what it saw`)
      }
    }, 2000)
    return () => { stop(); clearInterval(timer) }
  }, [allowed, paused])
  const rows = useMemo(() => {
    // a node per level prefix, its rate the sum of the topics under it
    const nodes = new Map<string, TreeRow>()
    for (const [topic, t] of topics.current) {
      const levels = topic.split('/')
      for (let i = 0; i < levels.length; i++) {
        const path = levels.slice(0, i + 1).join('/')
        let n = nodes.get(path)
        if (n === undefined) { n = { path, level: i, label: levels[i] === '' ? '(empty)' : levels[i], rate: 0, count: 0, retained: false, leaf: false }; nodes.set(path, n) }
        n.rate += t.rate
        n.count += t.count
        if (i === levels.length - 1) { n.leaf = true; n.retained = t.retained }
      }
    }
    return [...nodes.values()].sort((a, b) => a.path < b.path ? -1 : 1)
  }, [version])
  if (!allowed) return <Card title="Topics"><p class="muted">This principal may not subscribe to #.</p></Card>
  return (
    <Card title="Topics (live traffic)" actions={<button onClick={() => { setPaused(!paused); setState('') }}>{paused ? 'Resume' : 'Pause'}</button>}>
      {state !== '' && <p class="muted">{state}</p>}
      {rows.length === 0 ? <p class="muted">No message seen yet since this view opened.</p> : <div class="scroll tree"><table class="topics">
        <thead><tr><th>topic</th><th>msg/s</th><th>seen</th></tr></thead>
        <tbody>{rows.map(r => <tr key={r.path} data-topic={r.path}>
          <td style={{ paddingLeft: `${0.4 + r.level * 1.1}rem` }} title={r.path}>{r.label}{r.retained && <span class="badge" title="retained message">R</span>}</td>
          <td>{fmtNumber(r.rate)}</td><td>{fmtNumber(r.count)}</td>
        </tr>)}</tbody>
      </table></div>}
    </Card>
  )
}

function Retained (): JSX.Element {
  const { perms } = useSession()
  const act = useAction()
  const [filter, setFilter] = useState('#')
  const [messages, setMessages] = useState<BusMessage[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const load = async (): Promise<void> => {
    try {
      setMessages((await json<{ messages: BusMessage[] }>(`/v1/pubsub/retained?filter=${encodeURIComponent(filter)}`)).messages)
      setError(null)
    } catch (err) { setError(errorText(err)) }
  }
  return (
    <Card title="Retained messages">
      <form class="inline" onSubmit={e => { e.preventDefault(); void load() }}>
        <input name="retained-filter" value={filter} onInput={e => { setFilter((e.target as HTMLInputElement).value) }} />
        <button type="submit">Show</button>
      </form>
      <ErrorLine error={error} />
      {messages !== null && (messages.length === 0 ? <p class="muted">None.</p> : <div class="scroll"><table>
        <thead><tr><th>topic</th><th>payload</th><th>QoS</th><th /></tr></thead>
        <tbody>{messages.map(m => <tr key={m.topic} data-retained={m.topic}>
          <td class="mono">{m.topic}</td><td><Payload payload={m.payload} encoding={m.encoding} /></td><td>{m.qos}</td>
          <td>{perms.write('topic', 'publish', m.topic) && <button onClick={() => {
            void act(async () => { await json('/v1/pubsub/publish', { method: 'POST', body: { topic: m.topic, payload: '', encoding: 'utf8', retain: true } }) }, `retained message of ${m.topic} cleared`).then(load)
          }}>Clear</button>}</td>
        </tr>)}</tbody>
      </table></div>)}
    </Card>
  )
}

interface Received { topic: string, payload: string, qos: number, retain: boolean, at: number, properties?: Record<string, unknown> }

/** An MQTT client in the page, over MQTT over WebSocket at /mqtt (MQTT.js, loaded when first used). */
function TestClient (): JSX.Element {
  const { who, perms } = useSession()
  const client = useRef<MqttClient | null>(null)
  const [state, setState] = useState<'off' | 'connecting' | 'connected'>('off')
  const [version, setVersion] = useState<'5' | '4'>('5')
  const [error, setError] = useState<string | null>(null)
  const [filter, setFilter] = useState('#')
  const [subscribed, setSubscribed] = useState<string[]>([])
  const [received, setReceived] = useState<Received[]>([])
  const [pub, setPub] = useState({ topic: '', payload: '', qos: '0', retain: false, contentType: '', responseTopic: '', correlationData: '', userProperties: '', messageExpiry: '', utf8: false })
  useEffect(() => () => { client.current?.end(true) }, [])

  const connect = async (): Promise<void> => {
    setState('connecting')
    setError(null)
    const mqtt = (await import('mqtt')).default
    const c = getCredentials()
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`
    const m = mqtt.connect(url, {
      protocolVersion: version === '5' ? 5 : 4,
      clientId: `dashboard-${Math.random().toString(36).slice(2, 10)}`,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
      ...(c !== null ? { username: c.kind === 'basic' ? c.user : (who?.name ?? ''), password: c.secret } : {})
    })
    client.current = m
    m.on('connect', () => { setState('connected'); setError(null) })
    m.on('reconnect', () => { setState('connecting') })
    m.on('error', err => { setError(err.message) })
    m.on('close', () => { setState(s => (s === 'off' ? 'off' : 'connecting')) })
    m.on('message', (topic, payload, packet) => {
      const text = new TextDecoder().decode(payload)
      const properties = packet.properties !== undefined && Object.keys(packet.properties).length > 0 ? { ...packet.properties } as Record<string, unknown> : undefined
      setReceived(list => [{ topic, payload: text, qos: packet.qos, retain: packet.retain, at: Date.now(), properties }, ...list].slice(0, 200))
    })
  }
  const disconnect = (): void => { client.current?.end(true); client.current = null; setState('off'); setSubscribed([]) }
  const subscribe = (): void => {
    const c = client.current
    if (c === null) return
    c.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (err != null) { setError(err.message); return }
      const refused = granted?.find(g => g.qos === 128 || g.qos >= 0x80)
      if (refused !== undefined) setError(`subscription to ${filter} refused (reason ${refused.qos})`)
      else setSubscribed(s => [...s.filter(f => f !== filter), filter])
    })
  }
  const publish = (): void => {
    const c = client.current
    if (c === null) return
    const options: IClientPublishOptions = { qos: Number(pub.qos) as 0 | 1 | 2, retain: pub.retain }
    if (version === '5') {
      const properties: NonNullable<IClientPublishOptions['properties']> = {}
      if (pub.contentType !== '') properties.contentType = pub.contentType
      if (pub.responseTopic !== '') properties.responseTopic = pub.responseTopic
      if (pub.correlationData !== '') properties.correlationData = new TextEncoder().encode(pub.correlationData) as unknown as Buffer
      if (pub.messageExpiry !== '') properties.messageExpiryInterval = Number(pub.messageExpiry)
      if (pub.utf8) properties.payloadFormatIndicator = true
      const user: Record<string, string> = {}
      for (const line of pub.userProperties.split('\n')) {
        const at = line.indexOf('=')
        if (at > 0) user[line.slice(0, at).trim()] = line.slice(at + 1).trim()
      }
      if (Object.keys(user).length > 0) properties.userProperties = user
      if (Object.keys(properties).length > 0) options.properties = properties
    }
    c.publish(pub.topic, pub.payload, options, err => { if (err != null) setError(errorText(err)) })
  }
  const set = (k: keyof typeof pub) => (v: string) => { setPub(p => ({ ...p, [k]: v })) }
  return (
    <Card title="Test client (MQTT over WebSocket)" class="test-client" actions={<span class={`state ${state}`} data-state={state}>{state}</span>}>
      <div class="inline">
        {state === 'off'
          ? <><select name="protocol" value={version} onChange={e => { setVersion((e.target as HTMLSelectElement).value as '5' | '4') }}><option value="5">MQTT 5</option><option value="4">MQTT 3.1.1</option></select>
            <button onClick={() => { void connect() }}>Connect</button></>
          : <button onClick={disconnect}>Disconnect</button>}
      </div>
      <ErrorLine error={error} />
      {state === 'connected' && <>
        <form class="inline" onSubmit={e => { e.preventDefault(); subscribe() }}>
          <input name="subscribe-filter" value={filter} onInput={e => { setFilter((e.target as HTMLInputElement).value) }} placeholder="topic filter" />
          <button type="submit">Subscribe</button>
          {subscribed.length > 0 && <span class="muted">subscribed: {subscribed.join(', ')}</span>}
        </form>
        {!perms.readonly && perms.can('topic', 'publish') && <form class="publish" onSubmit={e => { e.preventDefault(); publish() }}>
          <Field label="Topic" name="publish-topic" value={pub.topic} onInput={set('topic')} required />
          <label>Payload <textarea name="publish-payload" rows={2} value={pub.payload} onInput={e => { set('payload')((e.target as HTMLTextAreaElement).value) }} /></label>
          <div class="inline">
            <label>QoS <select name="publish-qos" value={pub.qos} onChange={e => { set('qos')((e.target as HTMLSelectElement).value) }}><option>0</option><option>1</option><option>2</option></select></label>
            <label class="check"><input type="checkbox" name="publish-retain" checked={pub.retain} onChange={e => { setPub(p => ({ ...p, retain: (e.target as HTMLInputElement).checked })) }} /> retain</label>
          </div>
          {version === '5' && <details>
            <summary>MQTT 5 properties</summary>
            <Field label="Content type" name="publish-content-type" value={pub.contentType} onInput={set('contentType')} />
            <Field label="Response topic" name="publish-response-topic" value={pub.responseTopic} onInput={set('responseTopic')} />
            <Field label="Correlation data" name="publish-correlation" value={pub.correlationData} onInput={set('correlationData')} />
            <Field label="Message expiry (s)" name="publish-expiry" value={pub.messageExpiry} onInput={set('messageExpiry')} type="number" />
            <label class="check"><input type="checkbox" name="publish-utf8" checked={pub.utf8} onChange={e => { setPub(p => ({ ...p, utf8: (e.target as HTMLInputElement).checked })) }} /> payload is UTF-8 text (payload format indicator)</label>
            <label>User properties (name=value per line) <textarea name="publish-user-properties" rows={2} value={pub.userProperties} onInput={e => { set('userProperties')((e.target as HTMLTextAreaElement).value) }} /></label>
          </details>}
          <button type="submit" class="primary">Publish</button>
        </form>}
      </>}
      {received.length > 0 && <div class="scroll received"><table>
        <thead><tr><th>time</th><th>topic</th><th>payload</th><th>QoS</th></tr></thead>
        <tbody>{received.map((r, i) => <tr key={`${r.at}-${i}`} data-received={r.topic}>
          <td>{fmtTime(r.at).slice(11)}</td><td class="mono">{r.topic}{r.retain && <span class="badge">R</span>}</td>
          <td><pre class="payload text">{r.payload}</pre>{r.properties !== undefined && <pre class="muted props">{JSON.stringify(r.properties)}</pre>}</td><td>{r.qos}</td>
        </tr>)}</tbody>
      </table></div>}
    </Card>
  )
}

