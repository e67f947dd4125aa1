import { useEffect, useRef, useState } from 'preact/hooks'
import { json, pathOf } from '../api.js'
import { useStats } from '../stats.js'
import { Card, Confirm, ErrorLine, Field, Payload, fmtNumber, fmtTime, useAction, useLoad, useSession } from '../ui.js'

interface QueueStats { ready: number, leased: number, delayed: number, dead: number, pushed: number, acked: number, deadLettered: number, expired: number, waiting: number }
interface QueueSettings { visibilityTimeout: number, maxDeliveries: number, backoff: { type: string, base: number, max?: number } | null, retention: number | null, maxMessageBytes: number, dedupWindow: number, capture: string[], deadLetter: string | null }
interface Queue { name: string, createdAt: number, settings: QueueSettings, stats: QueueStats }
interface Message { id: string, payload: unknown, encoding?: string, headers: Record<string, string>, topic?: string, priority: number, deliveries: number, enqueuedAt: number }
interface Dead extends Message { deadAt: number, reason: string, lastError?: string }

const q = (name: string): string => `/v1/queues/${pathOf(name)}`

/** Rates per second of pushed and acked, from the last two answers of the list. */
function useRates (queues: Queue[] | undefined): Map<string, { pushed: number, acked: number }> {
  const last = useRef<{ t: number, byName: Map<string, QueueStats> } | null>(null)
  const [rates, setRates] = useState(new Map<string, { pushed: number, acked: number }>())
  useEffect(() => {
    if (queues === undefined) return
    const t = Date.now()
    const prev = last.current
    const byName = new Map(queues.map(x => [x.name, x.stats]))
    if (prev !== null && t > prev.t) {
      const dt = (t - prev.t) / 1000
      const next = new Map<string, { pushed: number, acked: number }>()
      for (const x of queues) {
        const p = prev.byName.get(x.name)
        if (p !== undefined) next.set(x.name, { pushed: Math.max(0, x.stats.pushed - p.pushed) / dt, acked: Math.max(0, x.stats.acked - p.acked) / dt })
      }
      setRates(next)
    }
    last.current = { t, byName }
  }, [queues])
  return rates
}

export function QueuesView ({ name }: { name?: string }): JSX.Element {
  return name === undefined ? <QueueList /> : <QueueDetail name={name} />
}

function QueueList (): JSX.Element {
  const { tick } = useStats()
  const { perms } = useSession()
  const { data, error, reload } = useLoad(async () => (await json<{ queues: Queue[] }>('/v1/queues')).queues, [tick])
  const rates = useRates(data)
  const [creating, setCreating] = useState('')
  const act = useAction()
  return (
    <div class="view">
      <Card title="Queues" actions={perms.write('queue', 'admin') && <form class="inline" onSubmit={e => {
        e.preventDefault()
        void act(async () => { await json(q(creating), { method: 'PUT', body: {} }); location.hash = `#/queues/${encodeURIComponent(creating)}` }, `queue ${creating} created`).then(reload)
      }}><input name="new-queue" placeholder="new queue name" pattern="[A-Za-z0-9._\-]{1,200}" value={creating} onInput={e => { setCreating((e.target as HTMLInputElement).value) }} required /><button type="submit">Create</button></form>}>
        <ErrorLine error={error} />
        {data !== undefined && data.length === 0 && <p class="muted">No queue yet. A push creates one (unless --queue-autocreate false), or create one here.</p>}
        {data !== undefined && data.length > 0 && <div class="scroll"><table class="queues">
          <thead><tr><th>name</th><th>ready</th><th>leased</th><th>delayed</th><th>dead</th><th>pushed/s</th><th>acked/s</th><th>waiting receivers</th></tr></thead>
          <tbody>{data.map(x => <tr key={x.name} data-queue={x.name}>
            <td><a href={`#/queues/${encodeURIComponent(x.name)}`}>{x.name}</a></td>
            <td>{fmtNumber(x.stats.ready)}</td><td>{fmtNumber(x.stats.leased)}</td><td>{fmtNumber(x.stats.delayed)}</td>
            <td class={x.stats.dead > 0 ? 'warn' : ''}>{fmtNumber(x.stats.dead)}</td>
            <td>{fmtNumber(rates.get(x.name)?.pushed ?? 0)}</td><td>{fmtNumber(rates.get(x.name)?.acked ?? 0)}</td><td>{x.stats.waiting}</td>
          </tr>)}</tbody>
        </table></div>}
      </Card>
    </div>
  )
}

function QueueDetail ({ name }: { name: string }): JSX.Element {
  const { tick } = useStats()
  const { perms } = useSession()
  const act = useAction()
  const { data: queue, error, reload } = useLoad(async () => await json<Queue>(q(name)), [name, tick])
  const canRead = perms.can('queue', 'receive', name) || perms.can('queue', 'admin', name)
  const admin = perms.write('queue', 'admin', name)
  const dead = useLoad(async () => canRead ? (await json<{ messages: Dead[], cursor: string | null }>(`${q(name)}/dead?limit=50`)) : { messages: [], cursor: null }, [name, queue?.stats.dead])
  const [peeked, setPeeked] = useState<Message[] | null>(null)
  const [confirm, setConfirm] = useState<null | 'delete' | 'purge' | 'purge-dead'>(null)
  const [payload, setPayload] = useState('')
  const peek = (): void => { void act(async () => { setPeeked((await json<{ messages: Message[] }>(`${q(name)}/peek?limit=20`)).messages) }) }
  const afterChange = (): void => { reload(); dead.reload(); if (peeked !== null) peek() }

  if (queue === undefined) return <div class="view"><p><a href="#/queues">← Queues</a></p><ErrorLine error={error} />{error === null && <p class="muted">Loading…</p>}</div>
  const s = queue.stats
  return (
    <div class="view">
      <p><a href="#/queues">← Queues</a></p>
      <Card title={<>Queue <span class="name">{name}</span></>} actions={admin && <>
        <button onClick={() => { setConfirm('purge') }}>Purge</button>
        <button class="danger" onClick={() => { setConfirm('delete') }}>Delete</button>
      </>}>
        <div class="figures">
          {(['ready', 'leased', 'delayed', 'dead', 'pushed', 'acked', 'deadLettered', 'expired', 'waiting'] as const).map(k =>
            <div class="figure" key={k} data-figure={k}><span class="value">{fmtNumber(s[k])}</span><span class="label">{k}</span></div>)}
        </div>
        <ErrorLine error={error} />
      </Card>
      {canRead && <Card title={`Dead letters (${s.dead})`} class="dead" actions={admin && s.dead > 0 && <>
        <button onClick={() => { void act(async () => { await json(`${q(name)}/dead/redrive`, { method: 'POST', body: {} }) }, 'every dead letter redriven').then(afterChange) }}>Redrive all</button>
        <button class="danger" onClick={() => { setConfirm('purge-dead') }}>Purge dead letters</button>
      </>}>
        <ErrorLine error={dead.error} />
        {dead.data !== undefined && dead.data.messages.length === 0 && <p class="muted">None.</p>}
        {dead.data !== undefined && dead.data.messages.length > 0 && <MessageTable messages={dead.data.messages} dead action={admin ? (m => <button onClick={() => { void act(async () => { await json(`${q(name)}/dead/redrive`, { method: 'POST', body: { ids: [m.id] } }) }, `message ${m.id} redriven`).then(afterChange) }}>Redrive</button>) : undefined} />}
      </Card>}
      {canRead && <Card title="Next messages" actions={<button onClick={peek}>{peeked === null ? 'Peek' : 'Refresh'}</button>}>
        <p class="muted">Peeking shows the next ready messages in delivery order without leasing them.</p>
        {peeked !== null && (peeked.length === 0 ? <p class="muted">No ready message.</p> : <MessageTable messages={peeked} />)}
      </Card>}
      <div class="grid2">
        <Settings name={name} settings={queue.settings} editable={admin} onSaved={reload} />
        {perms.write('queue', 'push', name) && <Card title="Push a message">
          <form onSubmit={e => {
            e.preventDefault()
            let body: unknown
            try { body = { payload: JSON.parse(payload) } } catch { body = { payload, encoding: 'utf8' } }
            void act(async () => { await json(`${q(name)}/messages`, { method: 'POST', body }) }, 'pushed').then(afterChange)
          }}>
            <label>Payload (JSON, or text) <textarea name="payload" rows={3} value={payload} onInput={e => { setPayload((e.target as HTMLTextAreaElement).value) }} /></label>
            <button type="submit">Push</button>
          </form>
        </Card>}
      </div>
      {confirm === 'delete' && <Confirm text={`Delete queue ${name} with every message it holds? This cannot be undone.`} name={name} action="Delete queue" onCancel={() => { setConfirm(null) }}
        onConfirm={() => {
          // leave the view first: its refreshes would ask for a queue that is going
          location.hash = '#/queues'
          void act(async () => { await json(q(name), { method: 'DELETE' }) }, `queue ${name} deleted`)
        }} />}
      {confirm === 'purge' && <Confirm text={`Purge every waiting message of queue ${name}?`} name={name} action="Purge" onCancel={() => { setConfirm(null) }}
        onConfirm={() => { setConfirm(null); void act(async () => { const r = await json<{ purged: number }>(`${q(name)}/messages`, { method: 'DELETE' }); return r }, 'purged').then(afterChange) }} />}
      {confirm === 'purge-dead' && <Confirm text={`Purge the dead letters of queue ${name}?`} name={name} action="Purge dead letters" onCancel={() => { setConfirm(null) }}
        onConfirm={() => { setConfirm(null); void act(async () => { await json(`${q(name)}/dead`, { method: 'DELETE' }) }, 'dead letters purged').then(afterChange) }} />}
    </div>
  )
}

function MessageTable (props: { messages: Array<Message | Dead>, dead?: boolean, action?: (m: Message) => JSX.Element }): JSX.Element {
  return (
    <div class="scroll"><table class="messages">
      <thead><tr><th>id</th><th>payload</th><th>priority</th><th>deliveries</th><th>enqueued</th>{props.dead === true && <th>reason</th>}{props.action !== undefined && <th />}</tr></thead>
      <tbody>{props.messages.map(m => <tr key={m.id} data-id={m.id}>
        <td class="mono">{m.id}</td>
        <td><Payload payload={m.payload} encoding={m.encoding} />{m.topic !== undefined && <div class="muted">topic {m.topic}</div>}</td>
        <td>{m.priority}</td><td>{m.deliveries}</td><td>{fmtTime(m.enqueuedAt)}</td>
        {props.dead === true && <td class="reason">{(m as Dead).reason}{(m as Dead).lastError !== undefined && !(m as Dead).reason.includes((m as Dead).lastError as string) && <div class="muted">{(m as Dead).lastError}</div>}</td>}
        {props.action !== undefined && <td>{props.action(m)}</td>}
      </tr>)}</tbody>
    </table></div>
  )
}

function Settings (props: { name: string, settings: QueueSettings, editable: boolean, onSaved: () => void }): JSX.Element {
  const s = props.settings
  const [form, setForm] = useState({
    visibilityTimeout: String(s.visibilityTimeout), maxDeliveries: String(s.maxDeliveries), retention: s.retention === null ? '' : String(s.retention),
    deadLetter: s.deadLetter ?? '', capture: s.capture.join(', ')
  })
  const act = useAction()
  const set = (k: keyof typeof form) => (v: string) => { setForm(f => ({ ...f, [k]: v })) }
  if (!props.editable) {
    return <Card title="Settings"><pre class="payload json">{JSON.stringify(s, null, 2)}</pre></Card>
  }
  return (
    <Card title="Settings">
      <form class="settings" onSubmit={e => {
        e.preventDefault()
        const body = {
          visibilityTimeout: Number(form.visibilityTimeout),
          maxDeliveries: Number(form.maxDeliveries),
          retention: form.retention === '' ? null : Number(form.retention),
          deadLetter: form.deadLetter === '' ? null : form.deadLetter,
          capture: form.capture.split(',').map(x => x.trim()).filter(x => x !== '')
        }
        void act(async () => { await json(`/v1/queues/${pathOf(props.name)}`, { method: 'PUT', body }) }, 'settings saved').then(props.onSaved)
      }}>
        <Field label="Visibility timeout (s)" name="visibilityTimeout" value={form.visibilityTimeout} onInput={set('visibilityTimeout')} type="number" />
        <Field label="Max deliveries" name="maxDeliveries" value={form.maxDeliveries} onInput={set('maxDeliveries')} type="number" />
        <Field label="Retention (s, empty: none)" name="retention" value={form.retention} onInput={set('retention')} type="number" />
        <Field label="Dead-letter queue (empty: its own)" name="deadLetter" value={form.deadLetter} onInput={set('deadLetter')} />
        <Field label="Capture MQTT filters (comma-separated)" name="capture" value={form.capture} onInput={set('capture')} />
        <button type="submit">Save settings</button>
      </form>
    </Card>
  )
}
