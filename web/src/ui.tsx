import { createContext, type ComponentChildren } from 'preact'
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks'
import { ApiError, Permissions, type DashboardInfo, type WhoAmI } from './api.js'

export interface Session { info: DashboardInfo, who: WhoAmI | null, perms: Permissions }
export const SessionContext = createContext<Session>(null as unknown as Session)
export const useSession = (): Session => useContext(SessionContext)

/** A message an action left: shown at the top of the page until dismissed or replaced. */
export interface Notice { kind: 'ok' | 'error', text: string }
export const NoticeContext = createContext<(n: Notice | null) => void>(() => {})
export const useNotice = (): ((n: Notice | null) => void) => useContext(NoticeContext)

export function errorText (err: unknown): string {
  if (err instanceof ApiError) return err.text
  return err instanceof Error ? err.message : String(err)
}

/** Runs an action, reporting its failure (or success text) as a notice; returns whether it succeeded. */
export function useAction (): (what: () => Promise<unknown>, ok?: string) => Promise<boolean> {
  const notify = useNotice()
  return useCallback(async (what, ok) => {
    try {
      await what()
      notify(ok === undefined ? null : { kind: 'ok', text: ok })
      return true
    } catch (err) {
      notify({ kind: 'error', text: errorText(err) })
      return false
    }
  }, [notify])
}

/** Loads data and reloads it on `deps` change or on `reload()`; keeps the last data while reloading. */
export function useLoad<T> (load: () => Promise<T>, deps: unknown[]): { data: T | undefined, error: string | null, reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined)
  const [error, setError] = useState<string | null>(null)
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let stale = false
    load().then(d => { if (!stale) { setData(d); setError(null) } }, err => { if (!stale) setError(errorText(err)) })
    return () => { stale = true }
  }, [...deps, tick])
  return { data, error, reload: useCallback(() => { setTick(t => t + 1) }, []) }
}

/** Calls fn every ms while the component is shown and the tab visible. */
export function useEvery (ms: number, fn: () => void): void {
  const ref = useRef(fn)
  ref.current = fn
  useEffect(() => {
    const t = setInterval(() => { if (document.visibilityState === 'visible') ref.current() }, ms)
    return () => { clearInterval(t) }
  }, [ms])
}

export function Card (props: { title?: ComponentChildren, actions?: ComponentChildren, children: ComponentChildren, class?: string }): JSX.Element {
  return (
    <section class={`card ${props.class ?? ''}`}>
      {(props.title !== undefined || props.actions !== undefined) && <header><h2>{props.title}</h2><div class="actions">{props.actions}</div></header>}
      {props.children}
    </section>
  )
}

export function ErrorLine ({ error }: { error: string | null | undefined }): JSX.Element | null {
  return error === null || error === undefined ? null : <p class="error" role="alert">{error}</p>
}

/**
 * A confirmation that names what it destroys: the button stays disabled until the name is typed
 * (RabbitMQ and GitHub ask the same for a delete).
 */
export function Confirm (props: { text: string, name: string, action: string, onConfirm: () => void, onCancel: () => void }): JSX.Element {
  const [typed, setTyped] = useState('')
  return (
    <div class="modal" role="dialog" aria-modal="true">
      <form class="card" onSubmit={e => { e.preventDefault(); if (typed === props.name) props.onConfirm() }}>
        <p>{props.text}</p>
        <label>Type <b>{props.name}</b> to confirm <input name="confirm" value={typed} onInput={e => { setTyped((e.target as HTMLInputElement).value) }} autoFocus /></label>
        <div class="row">
          <button type="submit" class="danger" disabled={typed !== props.name}>{props.action}</button>
          <button type="button" onClick={props.onCancel}>Cancel</button>
        </div>
      </form>
    </div>
  )
}

// ---- formats ------------------------------------------------------------------------------------------

export function fmtNumber (n: number): string {
  if (!Number.isFinite(n)) return '–'
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M'
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k'
  return Number.isInteger(n) ? String(n) : n.toFixed(1)
}

export function fmtBytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`
}

export function fmtDuration (seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`
}

export function fmtTime (ms: number): string {
  const d = new Date(ms)
  return d.toISOString().replace('T', ' ').replace('Z', '')
}

/** A payload as the API gives it ({payload, encoding?}) shown as JSON, text or hex. */
export function payloadBytes (payload: unknown, encoding?: string): { text: string, kind: 'json' | 'text' | 'hex' } {
  if (encoding === 'base64' && typeof payload === 'string') {
    const bin = atob(payload)
    const bytes = Uint8Array.from(bin, c => c.charCodeAt(0))
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), kind: 'text' }
    } catch {
      return { text: hexdump(bytes), kind: 'hex' }
    }
  }
  if (typeof payload === 'string') return { text: payload, kind: 'text' }
  return { text: JSON.stringify(payload, null, 2), kind: 'json' }
}

export function hexdump (bytes: Uint8Array): string {
  const lines: string[] = []
  for (let i = 0; i < bytes.length && i < 4096; i += 16) {
    const row = bytes.subarray(i, i + 16)
    const hex = Array.from(row, b => b.toString(16).padStart(2, '0')).join(' ')
    const ascii = Array.from(row, b => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')
    lines.push(`${i.toString(16).padStart(6, '0')}  ${hex.padEnd(47)}  ${ascii}`)
  }
  if (bytes.length > 4096) lines.push(`… ${bytes.length - 4096} more bytes`)
  return lines.join('\n')
}

export function Payload (props: { payload: unknown, encoding?: string }): JSX.Element {
  const { text, kind } = payloadBytes(props.payload, props.encoding)
  return <pre class={`payload ${kind}`} title={kind}>{text}</pre>
}

/** `<input>` that reports its value; a small helper for the many forms. */
export function Field (props: { label: string, name: string, value: string, onInput: (v: string) => void, placeholder?: string, type?: 'text' | 'number', required?: boolean, size?: number }): JSX.Element {
  return (
    <label>{props.label}
      <input name={props.name} {...({ type: props.type ?? 'text' } as Record<string, string>)} value={props.value} placeholder={props.placeholder} required={props.required} size={props.size}
        onInput={e => { props.onInput((e.target as HTMLInputElement).value) }} />
    </label>
  )
}
