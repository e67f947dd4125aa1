import { useEffect, useState } from 'preact/hooks'
import { ApiError, json, live, pathOf, request } from '../api.js'
import { Card, Confirm, ErrorLine, Field, errorText, fmtBytes, hexdump, useAction, useLoad, useSession } from '../ui.js'

interface KeyInfo { key: string, size: number, contentType: string, etag: string, ttl: number | null }
interface Value { key: string, contentType: string, etag: string, ttl: number | null, text: string, kind: 'json' | 'text' | 'hex' }
interface Index { name: string, prefix: string, field: string, ready: boolean, indexedKeys: number, distinctValues: number }
interface Change { type: string, key: string, revision: number }

const k = (key: string): string => `/v1/store/keys/${pathOf(key)}`

async function readValue (key: string): Promise<Value> {
  const res = await request(k(key))
  const contentType = res.headers.get('content-type') ?? 'application/octet-stream'
  const etag = res.headers.get('etag') ?? ''
  const ttlHeader = res.headers.get('tetra-ttl')
  const bytes = new Uint8Array(await res.arrayBuffer())
  const base = { key, contentType, etag, ttl: ttlHeader === null ? null : Number(ttlHeader) }
  if (contentType.startsWith('application/json')) {
    const text = new TextDecoder().decode(bytes)
    try { return { ...base, text: JSON.stringify(JSON.parse(text), null, 2), kind: 'json' } } catch { return { ...base, text, kind: 'text' } }
  }
  if (contentType.startsWith('text/')) return { ...base, text: new TextDecoder().decode(bytes), kind: 'text' }
  try {
    return { ...base, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), kind: 'text' }
  } catch {
    return { ...base, text: hexdump(bytes), kind: 'hex' }
  }
}

export function StoreView (): JSX.Element {
  const [prefix, setPrefix] = useState('')
  const [applied, setApplied] = useState('')
  const [cursors, setCursors] = useState<string[]>([''])
  const [selected, setSelected] = useState<string | null>(null)
  const [creating, setCreating] = useState(false)
  const cursor = cursors[cursors.length - 1]
  const { perms } = useSession()
  const page = useLoad(async () => await json<{ keys: KeyInfo[], cursor: string | null }>(`/v1/store/keys?prefix=${encodeURIComponent(applied)}&limit=50${cursor !== '' ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), [applied, cursor])
  return (
    <div class="view store">
      <div class="grid2">
        <Card title="Keys" actions={perms.write('store', 'write') && <button onClick={() => { setCreating(true); setSelected(null) }}>New key</button>}>
          <form class="inline" onSubmit={e => { e.preventDefault(); setApplied(prefix); setCursors(['']) }}>
            <input name="prefix" placeholder="prefix, e.g. user/" value={prefix} onInput={e => { setPrefix((e.target as HTMLInputElement).value) }} />
            <button type="submit">List</button>
          </form>
          <ErrorLine error={page.error} />
          {page.data !== undefined && page.data.keys.length === 0 && <p class="muted">No key{applied !== '' ? ` under ${applied}` : ''}.</p>}
          {page.data !== undefined && page.data.keys.length > 0 && <div class="scroll"><table class="keys">
            <thead><tr><th>key</th><th>type</th><th>size</th><th>TTL</th></tr></thead>
            <tbody>{page.data.keys.map(x => <tr key={x.key} data-key={x.key} class={selected === x.key ? 'selected' : ''}>
              <td><a href="#/store" onClick={e => { e.preventDefault(); setSelected(x.key); setCreating(false) }}>{x.key}</a></td>
              <td>{x.contentType}</td><td>{fmtBytes(x.size)}</td><td>{x.ttl === null ? '–' : `${Math.round(x.ttl)} s`}</td>
            </tr>)}</tbody>
          </table></div>}
          <div class="row">
            {cursors.length > 1 && <button onClick={() => { setCursors(cursors.slice(0, -1)) }}>Previous page</button>}
            {page.data?.cursor != null && <button onClick={() => { setCursors([...cursors, page.data?.cursor as string]) }}>Next page</button>}
          </div>
        </Card>
        {creating ? <CreateKey onDone={key => { setCreating(false); page.reload(); if (key !== null) setSelected(key) }} />
          : selected !== null ? <KeyEditor key={selected} name={selected} onGone={() => { setSelected(null); page.reload() }} onChanged={page.reload} />
            : <Card title="Value"><p class="muted">Choose a key.</p></Card>}
      </div>
      <div class="grid2">
        <Watch />
        <Indexes />
      </div>
    </div>
  )
}

function KeyEditor ({ name, onGone, onChanged }: { name: string, onGone: () => void, onChanged: () => void }): JSX.Element {
  const { perms } = useSession()
  const act = useAction()
  const [value, setValue] = useState<Value | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [draft, setDraft] = useState('')
  const [conflict, setConflict] = useState<string | null>(null)
  const [ttl, setTtl] = useState('')
  const [confirm, setConfirm] = useState(false)
  const load = async (): Promise<void> => {
    try {
      const v = await readValue(name)
      setValue(v)
      setDraft(v.kind === 'hex' ? '' : v.text)
      setError(null)
      setConflict(null)
    } catch (err) { setError(errorText(err)); setValue(null) }
  }
  useEffect(() => { void load() }, [name])
  const writable = perms.write('store', 'write', name)
  const save = async (): Promise<void> => {
    if (value === null) return
    let body = draft
    if (value.contentType.startsWith('application/json')) {
      try { body = JSON.stringify(JSON.parse(draft)) } catch { setError('the value is not valid JSON'); return }
    }
    try {
      await request(k(name), { method: 'PUT', raw: { body, type: value.contentType }, headers: { 'if-match': value.etag } })
      onChanged()
      await load()
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) setConflict('This key changed since you opened it (its ETag no longer matches), so your edit was not saved. Reload to see the new value, then edit again.')
      else setError(errorText(err))
    }
  }
  return (
    <Card title={<>Key <span class="name">{name}</span></>} class="editor" actions={writable && value !== null && <button class="danger" onClick={() => { setConfirm(true) }}>Delete</button>}>
      <ErrorLine error={error} />
      {value !== null && <>
        <dl class="meta">
          <dt>type</dt><dd>{value.contentType}</dd>
          <dt>ETag</dt><dd class="mono" data-etag>{value.etag}</dd>
          <dt>TTL</dt><dd data-ttl>{value.ttl === null ? 'none' : `${value.ttl.toFixed(1)} s left`}</dd>
        </dl>
        {value.kind === 'hex' || !writable
          ? <pre class={`payload ${value.kind}`}>{value.text}</pre>
          : <textarea name="value" class="value" rows={10} value={draft} onInput={e => { setDraft((e.target as HTMLTextAreaElement).value) }} />}
        {conflict !== null && <div class="conflict error" role="alert">{conflict} <button onClick={() => { void load() }}>Reload</button></div>}
        {writable && <div class="row">
          {value.kind !== 'hex' && <button class="primary" onClick={() => { void save() }}>Save</button>}
          <button onClick={() => { void load() }}>Reload</button>
          <form class="inline" onSubmit={e => {
            e.preventDefault()
            void act(async () => { await json(`${k(name)}/ttl`, { method: 'POST', body: { ttl: Number(ttl) } }) }, 'TTL set').then(load)
          }}><input name="ttl" type="number" min="0" step="any" placeholder="TTL (s)" size={8} value={ttl} onInput={e => { setTtl((e.target as HTMLInputElement).value) }} required /><button type="submit">Set TTL</button></form>
          {value.ttl !== null && <button onClick={() => { void act(async () => { await json(`${k(name)}/ttl`, { method: 'POST', body: { ttl: null } }) }, 'TTL removed').then(load) }}>Remove TTL</button>}
        </div>}
      </>}
      {confirm && <Confirm text={`Delete key ${name}?`} name={name} action="Delete key" onCancel={() => { setConfirm(false) }}
        onConfirm={() => { setConfirm(false); void act(async () => { await request(k(name), { method: 'DELETE' }) }, `key ${name} deleted`).then(ok => { if (ok) onGone() }) }} />}
    </Card>
  )
}

function CreateKey ({ onDone }: { onDone: (key: string | null) => void }): JSX.Element {
  const [key, setKey] = useState('')
  const [value, setValue] = useState('')
  const [type, setType] = useState('application/json')
  const [ttl, setTtl] = useState('')
  const [error, setError] = useState<string | null>(null)
  return (
    <Card title="New key">
      <form class="settings" onSubmit={e => {
        e.preventDefault()
        if (type === 'application/json') { try { JSON.parse(value) } catch { setError('the value is not valid JSON (or choose text)'); return } }
        request(`${k(key)}${ttl !== '' ? `?ttl=${encodeURIComponent(ttl)}` : ''}`, { method: 'PUT', raw: { body: value, type }, headers: { 'if-none-match': '*' } })
          .then(() => { onDone(key) }, err => { setError(err instanceof ApiError && err.status === 412 ? `key ${key} exists already` : errorText(err)) })
      }}>
        <Field label="Key" name="key" value={key} onInput={setKey} required />
        <label>Type <select name="type" value={type} onChange={e => { setType((e.target as HTMLSelectElement).value) }}><option value="application/json">JSON</option><option value="text/plain">text</option></select></label>
        <label>Value <textarea name="value" rows={6} value={value} onInput={e => { setValue((e.target as HTMLTextAreaElement).value) }} /></label>
        <Field label="TTL (s, empty: none)" name="ttl" value={ttl} onInput={setTtl} type="number" />
        <ErrorLine error={error} />
        <div class="row"><button type="submit" class="primary">Create</button><button type="button" onClick={() => { onDone(null) }}>Cancel</button></div>
      </form>
    </Card>
  )
}

function Watch (): JSX.Element {
  const [prefix, setPrefix] = useState('')
  const [on, setOn] = useState<string | null>(null)
  const [events, setEvents] = useState<Change[]>([])
  const [state, setState] = useState('')
  useEffect(() => {
    if (on === null) return
    setEvents([])
    return live('/v1/store/watch', `prefix=${encodeURIComponent(on)}`, {
      events: ['set', 'delete', 'expire', 'ttl'],
      onEvent: (_e, data) => { setEvents(list => [JSON.parse(data) as Change, ...list].slice(0, 100)) },
      onState: (st, detail) => { setState(st === 'open' ? 'watching' : `${st}${detail !== undefined ? ': ' + detail : ''}`) },
      resume: id => `lastEventId=${encodeURIComponent(id)}`
    })
  }, [on])
  return (
    <Card title="Watch a prefix">
      <form class="inline" onSubmit={e => { e.preventDefault(); setOn(on === null ? prefix : null) }}>
        <input name="watch-prefix" placeholder="prefix (empty: every key)" value={prefix} onInput={e => { setPrefix((e.target as HTMLInputElement).value) }} disabled={on !== null} />
        <button type="submit">{on === null ? 'Watch' : 'Stop'}</button>
      </form>
      {on !== null && <p class="muted">{state}</p>}
      {events.length > 0 && <div class="scroll"><table class="changes"><tbody>{events.map(ev => <tr key={ev.revision}><td>{ev.type}</td><td class="mono">{ev.key}</td></tr>)}</tbody></table></div>}
    </Card>
  )
}

function Indexes (): JSX.Element {
  const { perms } = useSession()
  const act = useAction()
  const list = useLoad(async () => (await json<{ indexes: Index[] }>('/v1/store/indexes')).indexes, [])
  const [form, setForm] = useState({ name: '', prefix: '', field: '' })
  const [query, setQuery] = useState<{ index: string, value: string } | null>(null)
  const [found, setFound] = useState<KeyInfo[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  return (
    <Card title="JSON-field indexes">
      <ErrorLine error={list.error} />
      {list.data !== undefined && list.data.length === 0 && <p class="muted">No index.</p>}
      {list.data !== undefined && list.data.length > 0 && <div class="scroll"><table>
        <thead><tr><th>name</th><th>prefix</th><th>field</th><th>keys</th><th>values</th><th /></tr></thead>
        <tbody>{list.data.map(i => <tr key={i.name}>
          <td>{i.name}</td><td class="mono">{i.prefix}</td><td class="mono">{i.field}</td><td>{i.indexedKeys}</td><td>{i.distinctValues}</td>
          <td class="row"><button onClick={() => { setQuery({ index: i.name, value: '' }); setFound(null) }}>Query</button>
            {perms.write('store', 'write', i.prefix) && <button class="danger" onClick={() => { void act(async () => { await json(`/v1/store/indexes/${encodeURIComponent(i.name)}`, { method: 'DELETE' }) }, `index ${i.name} deleted`).then(list.reload) }}>Delete</button>}</td>
        </tr>)}</tbody>
      </table></div>}
      {query !== null && <form class="inline" onSubmit={e => {
        e.preventDefault()
        json<{ keys: KeyInfo[] }>(`/v1/store/keys?index=${encodeURIComponent(query.index)}&value=${encodeURIComponent(query.value)}&limit=100`)
          .then(r => { setFound(r.keys); setError(null) }, err => { setError(errorText(err)) })
      }}>
        <span>{query.index} =</span>
        <input name="index-value" value={query.value} onInput={e => { setQuery({ ...query, value: (e.target as HTMLInputElement).value }) }} placeholder="value" />
        <button type="submit">Find</button>
      </form>}
      <ErrorLine error={error} />
      {found !== null && (found.length === 0 ? <p class="muted">No key.</p> : <ul class="mono">{found.map(f => <li key={f.key}>{f.key}</li>)}</ul>)}
      {perms.write('store', 'write') && <form class="inline" onSubmit={e => {
        e.preventDefault()
        void act(async () => { await json(`/v1/store/indexes/${encodeURIComponent(form.name)}`, { method: 'PUT', body: { prefix: form.prefix, field: form.field } }) }, `index ${form.name} created`).then(list.reload)
      }}>
        <input name="index-name" placeholder="name" value={form.name} onInput={e => { setForm({ ...form, name: (e.target as HTMLInputElement).value }) }} required size={10} />
        <input name="index-prefix" placeholder="key prefix" value={form.prefix} onInput={e => { setForm({ ...form, prefix: (e.target as HTMLInputElement).value }) }} size={10} />
        <input name="index-field" placeholder="JSON field" value={form.field} onInput={e => { setForm({ ...form, field: (e.target as HTMLInputElement).value }) }} required size={10} />
        <button type="submit">Create index</button>
      </form>}
    </Card>
  )
}
