import { useEffect, useState } from 'preact/hooks'
import { ApiError, json, live, pathOf } from '../api.js'
import { useStats } from '../stats.js'
import { Card, Confirm, ErrorLine, Field, Payload, errorText, fmtBytes, fmtNumber, fmtTime, useAction, useLoad, useSession } from '../ui.js'

interface StreamSettings { maxAge?: number, maxBytes?: number, maxCount?: number, capture: string[], dedupWindow: number }
interface Stream { name: string, settings: StreamSettings, createdAt: number, firstOffset: number, lastOffset: number, nextOffset: number, count: number, bytes: number, groups: string[] }
interface Entry { offset: number, timestamp: number, topic?: string, key?: string, headers?: Record<string, string>, payload: unknown, encoding?: string }
interface Group { name: string, committed: number, pending: number, lag: number, dead: number, delivered: number, ackWait: number, maxDeliveries: number, maxPending: number, readers: Array<{ consumer: string, lastSeen: number }> }

const s = (name: string): string => `/v1/streams/${pathOf(name)}`

function retention (x: StreamSettings): string {
  const parts: string[] = []
  if (x.maxAge !== undefined) parts.push(`${x.maxAge} s`)
  if (x.maxBytes !== undefined) parts.push(fmtBytes(x.maxBytes))
  if (x.maxCount !== undefined) parts.push(`${fmtNumber(x.maxCount)} messages`)
  return parts.length === 0 ? 'kept forever' : parts.join(', ')
}

/** A time as the API takes it: epoch ms, or an ISO 8601 string; a datetime-local value is local time. */
function timeParam (v: string): string {
  if (/^\d+$/.test(v)) return v
  const d = new Date(v)
  return Number.isNaN(d.getTime()) ? v : String(d.getTime())
}

export function StreamsView ({ name }: { name?: string }): JSX.Element {
  return name === undefined ? <StreamList /> : <StreamDetail name={name} />
}

function StreamList (): JSX.Element {
  const { tick } = useStats()
  const { perms } = useSession()
  const act = useAction()
  const { data, error, reload } = useLoad(async () => (await json<{ streams: Stream[] }>('/v1/streams')).streams, [tick])
  const [creating, setCreating] = useState('')
  return (
    <div class="view">
      <Card title="Streams" actions={perms.write('stream', 'admin') && <form class="inline" onSubmit={e => {
        e.preventDefault()
        void act(async () => { await json(s(creating), { method: 'PUT', body: {} }); location.hash = `#/streams/${encodeURIComponent(creating)}` }, `stream ${creating} created`).then(reload)
      }}><input name="new-stream" placeholder="new stream name" pattern="[A-Za-z0-9._\-]{1,200}" value={creating} onInput={e => { setCreating((e.target as HTMLInputElement).value) }} required /><button type="submit">Create</button></form>}>
        <ErrorLine error={error} />
        {data !== undefined && data.length === 0 && <p class="muted">No stream yet.</p>}
        {data !== undefined && data.length > 0 && <div class="scroll"><table>
          <thead><tr><th>name</th><th>first</th><th>last</th><th>messages</th><th>size</th><th>retention</th><th>capture</th><th>groups</th></tr></thead>
          <tbody>{data.map(x => <tr key={x.name} data-stream={x.name}>
            <td><a href={`#/streams/${encodeURIComponent(x.name)}`}>{x.name}</a></td>
            <td>{x.firstOffset}</td><td>{x.lastOffset}</td><td>{fmtNumber(x.count)}</td><td>{fmtBytes(x.bytes)}</td>
            <td>{retention(x.settings)}</td><td class="mono">{x.settings.capture.join(' ')}</td><td>{x.groups.length}</td>
          </tr>)}</tbody>
        </table></div>}
      </Card>
    </div>
  )
}

function StreamDetail ({ name }: { name: string }): JSX.Element {
  const { tick } = useStats()
  const { perms } = useSession()
  const act = useAction()
  const { data: stream, error, reload } = useLoad(async () => await json<Stream>(s(name)), [name, tick])
  const [confirm, setConfirm] = useState(false)
  if (stream === undefined) return <div class="view"><p><a href="#/streams">← Streams</a></p><ErrorLine error={error} /></div>
  const admin = perms.write('stream', 'admin', name)
  return (
    <div class="view">
      <p><a href="#/streams">← Streams</a></p>
      <Card title={<>Stream <span class="name">{name}</span></>} actions={admin && <button class="danger" onClick={() => { setConfirm(true) }}>Delete</button>}>
        <div class="figures">
          <div class="figure" data-figure="first"><span class="value">{stream.firstOffset}</span><span class="label">first offset</span></div>
          <div class="figure" data-figure="last"><span class="value">{stream.lastOffset}</span><span class="label">last offset</span></div>
          <div class="figure"><span class="value">{fmtNumber(stream.count)}</span><span class="label">messages</span></div>
          <div class="figure"><span class="value">{fmtBytes(stream.bytes)}</span><span class="label">size</span></div>
          <div class="figure"><span class="value">{retention(stream.settings)}</span><span class="label">retention</span></div>
          <div class="figure"><span class="value mono">{stream.settings.capture.length === 0 ? 'none' : stream.settings.capture.join(' ')}</span><span class="label">capture</span></div>
        </div>
        <ErrorLine error={error} />
      </Card>
      <Browse name={name} />
      <Tail name={name} />
      <Groups name={name} tick={tick} admin={admin} />
      {admin && <StreamSettingsForm name={name} settings={stream.settings} onSaved={reload} />}
      {confirm && <Confirm text={`Delete stream ${name}, its messages and its consumer groups? This cannot be undone.`} name={name} action="Delete stream" onCancel={() => { setConfirm(false) }}
        onConfirm={() => {
          // leave the view first: its refreshes would ask for a stream that is going
          location.hash = '#/streams'
          void act(async () => { await json(s(name), { method: 'DELETE' }) }, `stream ${name} deleted`)
        }} />}
    </div>
  )
}

function EntryTable ({ entries }: { entries: Entry[] }): JSX.Element {
  return (
    <div class="scroll"><table class="entries">
      <thead><tr><th>offset</th><th>time</th><th>topic / key</th><th>payload</th></tr></thead>
      <tbody>{entries.map(e => <tr key={e.offset} data-offset={e.offset}>
        <td>{e.offset}</td><td>{fmtTime(e.timestamp)}</td>
        <td class="mono">{e.topic ?? ''}{e.key !== undefined && <div class="muted">key {e.key}</div>}</td>
        <td><Payload payload={e.payload} encoding={e.encoding} /></td>
      </tr>)}</tbody>
    </table></div>
  )
}

function Browse ({ name }: { name: string }): JSX.Element {
  const [by, setBy] = useState<'offset' | 'time'>('offset')
  const [from, setFrom] = useState('start')
  const [time, setTime] = useState('')
  const [page, setPage] = useState<{ messages: Entry[], next: number, truncated: boolean } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const read = async (query: string): Promise<void> => {
    try {
      setPage(await json(`${s(name)}/messages?${query}&limit=50`))
      setError(null)
    } catch (err) { setError(errorText(err)) }
  }
  return (
    <Card title="Browse" class="browse">
      <form class="inline" onSubmit={e => { e.preventDefault(); void read(by === 'offset' ? `from=${encodeURIComponent(from)}` : `time=${encodeURIComponent(timeParam(time))}`) }}>
        <select name="by" value={by} onChange={e => { setBy((e.target as HTMLSelectElement).value as 'offset' | 'time') }}>
          <option value="offset">from offset</option><option value="time">from time</option>
        </select>
        {by === 'offset'
          ? <input name="from" value={from} size={10} onInput={e => { setFrom((e.target as HTMLInputElement).value) }} placeholder="start, end or an offset" />
          : <input name="time" value={time} size={24} onInput={e => { setTime((e.target as HTMLInputElement).value) }} placeholder="2026-01-31T12:00:00Z or epoch ms" />}
        <button type="submit">Read</button>
        {page !== null && page.messages.length > 0 && <button type="button" onClick={() => { void read(`from=${page.next}`) }}>Next page</button>}
      </form>
      <ErrorLine error={error} />
      {page !== null && page.truncated && <p class="muted">The offset asked for is no longer retained: reading from the first one.</p>}
      {page !== null && (page.messages.length === 0 ? <p class="muted">No message there.</p> : <EntryTable entries={page.messages} />)}
    </Card>
  )
}

function Tail ({ name }: { name: string }): JSX.Element {
  const [on, setOn] = useState(false)
  const [entries, setEntries] = useState<Entry[]>([])
  const [state, setState] = useState('')
  useEffect(() => {
    if (!on) return
    setEntries([])
    return live(`${s(name)}/tail`, 'from=end', {
      onEvent: (_event, data) => { const e = JSON.parse(data) as Entry; setEntries(list => [e, ...list].slice(0, 100)) },
      onState: (st, detail) => { setState(st === 'open' ? 'following' : `${st}${detail !== undefined ? ': ' + detail : ''}`) },
      resume: id => `lastEventId=${encodeURIComponent(id)}`
    })
  }, [on, name])
  return (
    <Card title="Live tail" actions={<button onClick={() => { setOn(!on) }}>{on ? 'Stop' : 'Follow'}</button>}>
      {on && <p class="muted">{state}; newest first, the last 100</p>}
      {on && entries.length > 0 && <EntryTable entries={entries} />}
    </Card>
  )
}

function Groups ({ name, tick, admin }: { name: string, tick: number, admin: boolean }): JSX.Element {
  const act = useAction()
  const { data, error, reload } = useLoad(async () => (await json<{ groups: Group[] }>(`${s(name)}/groups`)).groups, [name, tick])
  const [seeking, setSeeking] = useState<string | null>(null)
  const [newGroup, setNewGroup] = useState('')
  return (
    <Card title="Consumer groups" actions={admin && <form class="inline" onSubmit={e => {
      e.preventDefault()
      void act(async () => { await json(`${s(name)}/groups/${pathOf(newGroup)}`, { method: 'PUT', body: { from: 'start' } }) }, `group ${newGroup} created`).then(() => { setNewGroup(''); reload() })
    }}><input name="new-group" placeholder="new group" value={newGroup} onInput={e => { setNewGroup((e.target as HTMLInputElement).value) }} required /><button type="submit">Create</button></form>}>
      <ErrorLine error={error} />
      {data !== undefined && data.length === 0 && <p class="muted">No consumer group.</p>}
      {data !== undefined && data.length > 0 && <div class="scroll"><table class="groups">
        <thead><tr><th>group</th><th>committed</th><th>delivered up to</th><th>pending</th><th>lag</th><th>dead</th><th>readers</th>{admin && <th />}</tr></thead>
        <tbody>{data.map(g => <tr key={g.name} data-group={g.name}>
          <td>{g.name}</td><td data-col="committed">{g.committed}</td><td>{g.delivered}</td><td>{g.pending}</td>
          <td class={g.lag >= 1000 ? 'warn' : ''} data-col="lag">{fmtNumber(g.lag)}</td><td>{g.dead}</td>
          <td>{g.readers.map(r => r.consumer).join(', ')}</td>
          {admin && <td class="row">
            <button onClick={() => { setSeeking(g.name) }}>Seek</button>
            <button class="danger" onClick={() => { void act(async () => { await json(`${s(name)}/groups/${pathOf(g.name)}`, { method: 'DELETE' }) }, `group ${g.name} deleted`).then(reload) }}>Delete</button>
          </td>}
        </tr>)}</tbody>
      </table></div>}
      {seeking !== null && data !== undefined && <Seek stream={name} group={data.find(g => g.name === seeking) as Group} onDone={() => { setSeeking(null); reload() }} />}
    </Card>
  )
}

/**
 * Moves a group to an offset or a time. Forward is a plain update (PUT with from/time: everything before is
 * acknowledged). The committed offset never moves back, so going back re-creates the group, with its
 * settings, after a confirmation: its pending messages and dead letters go with the old one.
 */
function Seek ({ stream, group, onDone }: { stream: string, group: Group, onDone: () => void }): JSX.Element {
  const act = useAction()
  const [by, setBy] = useState<'offset' | 'time'>('offset')
  const [value, setValue] = useState('')
  const [back, setBack] = useState<Record<string, unknown> | null>(null)
  const url = `${s(stream)}/groups/${pathOf(group.name)}`
  const position = (): Record<string, unknown> => by === 'offset' ? { from: /^\d+$/.test(value) ? Number(value) : value } : { time: /^\d+$/.test(value) ? Number(value) : new Date(value).toISOString() }
  return (
    <form class="card seek" onSubmit={e => {
      e.preventDefault()
      const pos = position()
      void act(async () => {
        try {
          await json(url, { method: 'PUT', body: pos })
        } catch (err) {
          if (err instanceof ApiError && err.status === 409) { setBack(pos); return }
          throw err
        }
        onDone()
      }, undefined)
    }}>
      <b>Seek group {group.name}</b> (committed {group.committed})
      <div class="inline">
        <select name="seek-by" value={by} onChange={e => { setBy((e.target as HTMLSelectElement).value as 'offset' | 'time') }}>
          <option value="offset">to offset</option><option value="time">to time</option>
        </select>
        <input name="seek-to" value={value} onInput={e => { setValue((e.target as HTMLInputElement).value) }} placeholder={by === 'offset' ? 'start, end or an offset' : 'ISO time or epoch ms'} required />
        <button type="submit">Seek</button>
        <button type="button" onClick={onDone}>Cancel</button>
      </div>
      {back !== null && <Confirm text={`That is before the group's committed offset ${group.committed}, which never moves back: the group ${group.name} is deleted and created again there, with the same settings. Its ${group.pending} pending messages and ${group.dead} dead letters are dropped.`}
        name={group.name} action="Re-create the group there" onCancel={() => { setBack(null) }}
        onConfirm={() => {
          const pos = back
          setBack(null)
          void act(async () => {
            await json(url, { method: 'DELETE' })
            await json(url, { method: 'PUT', body: { ...pos, ackWait: group.ackWait, maxDeliveries: group.maxDeliveries, maxPending: group.maxPending } })
            onDone()
          }, `group ${group.name} moved back`)
        }} />}
    </form>
  )
}

function StreamSettingsForm (props: { name: string, settings: StreamSettings, onSaved: () => void }): JSX.Element {
  const x = props.settings
  const [form, setForm] = useState({ maxAge: x.maxAge?.toString() ?? '', maxBytes: x.maxBytes?.toString() ?? '', maxCount: x.maxCount?.toString() ?? '', capture: x.capture.join(', '), dedupWindow: String(x.dedupWindow) })
  const set = (k: keyof typeof form) => (v: string) => { setForm(f => ({ ...f, [k]: v })) }
  const act = useAction()
  return (
    <Card title="Settings">
      <form class="settings" onSubmit={e => {
        e.preventDefault()
        const body: Record<string, unknown> = { capture: form.capture.split(',').map(c => c.trim()).filter(c => c !== ''), dedupWindow: Number(form.dedupWindow) }
        if (form.maxAge !== '') body.maxAge = Number(form.maxAge)
        if (form.maxBytes !== '') body.maxBytes = Number(form.maxBytes)
        if (form.maxCount !== '') body.maxCount = Number(form.maxCount)
        void act(async () => { await json(s(props.name), { method: 'PUT', body }) }, 'settings saved').then(props.onSaved)
      }}>
        <Field label="Max age (s, empty: none)" name="maxAge" value={form.maxAge} onInput={set('maxAge')} type="number" />
        <Field label="Max bytes (empty: none)" name="maxBytes" value={form.maxBytes} onInput={set('maxBytes')} type="number" />
        <Field label="Max messages (empty: none)" name="maxCount" value={form.maxCount} onInput={set('maxCount')} type="number" />
        <Field label="Capture MQTT filters (comma-separated)" name="capture" value={form.capture} onInput={set('capture')} />
        <Field label="Dedup window (s)" name="dedupWindow" value={form.dedupWindow} onInput={set('dedupWindow')} type="number" />
        <button type="submit">Save settings</button>
      </form>
    </Card>
  )
}
