import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { ApiError, Permissions, getCredentials, json, live, onCredentialsRejected, onReachability, setCredentials, type DashboardInfo, type WhoAmI } from './api.js'
import { NoticeContext, SessionContext, errorText, type Notice, type Session } from './ui.js'
import { StatsContext, emptyStats, type StatsState, type StatsMessage, type SampleMessage } from './stats.js'
import { Overview } from './views/overview.js'
import { PubSubView } from './views/pubsub.js'
import { StoreView } from './views/store.js'
import { QueuesView } from './views/queues.js'
import { StreamsView } from './views/streams.js'
import { Login } from './views/login.js'
import './style.css'

/** `#/queues/orders` -> ['queues', 'orders']; '' and '#/' are the overview. */
function parseHash (): string[] {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(p => p !== '').map(decodeURIComponent)
  return parts.length === 0 ? ['overview'] : parts
}

function useRoute (): string[] {
  const [route, setRoute] = useState(parseHash)
  useEffect(() => {
    const on = (): void => { setRoute(parseHash()) }
    addEventListener('hashchange', on)
    return () => { removeEventListener('hashchange', on) }
  }, [])
  return route
}

const VIEWS: Array<[string, string]> = [['overview', 'Overview'], ['pubsub', 'Pub/Sub'], ['store', 'Store'], ['queues', 'Queues'], ['streams', 'Streams']]

type Phase = { kind: 'loading' } | { kind: 'login', error?: string } | { kind: 'forbidden', detail: string } | { kind: 'ready', session: Session } | { kind: 'error', detail: string }

function App (): JSX.Element {
  const route = useRoute()
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' })
  const [notice, setNotice] = useState<Notice | null>(null)
  const [link, setLink] = useState<'up' | 'down' | 'back'>('up')
  const [stats, setStats] = useState<StatsState>(emptyStats)

  const start = async (): Promise<void> => {
    try {
      const info = await json<DashboardInfo>('/v1/dashboard')
      const who = await json<WhoAmI>('/v1/auth/whoami')
      setPhase({ kind: 'ready', session: { info, who, perms: new Permissions(who, info.mode === 'readonly') } })
    } catch (err) {
      const e = err as ApiError
      if (e.status === 401) {
        const had = getCredentials() !== null
        setCredentials(null)
        setPhase({ kind: 'login', ...(had ? { error: `Signed out: ${e.text}` } : {}) })
      } else if (e.status === 403) setPhase({ kind: 'forbidden', detail: e.text })
      else if (e.status === 404) setPhase({ kind: 'error', detail: 'the dashboard is off on this broker (--dashboard off)' })
      else {
        setPhase({ kind: 'error', detail: errorText(err) })
        setTimeout(() => { void start() }, 2000)
      }
    }
  }
  useEffect(() => { void start() }, [])

  // credentials the broker stopped accepting (a token revoked or expired): back to the sign-in form
  useEffect(() => onCredentialsRejected(detail => {
    setCredentials(null)
    setPhase({ kind: 'login', error: `Signed out: ${detail}` })
  }), [])

  // the broker going away and coming back (a restart): said at the top of the page
  useEffect(() => onReachability(up => {
    setLink(up ? 'back' : 'down')
    if (up) setTimeout(() => { setLink(l => (l === 'back' ? 'up' : l)) }, 5000)
  }), [])

  // the one stream of counters: the overview's charts, and the tick on which the lists refresh
  // a new session (each sign-in, each check after the stream was ended) opens the stream anew
  const current = phase.kind === 'ready' ? phase.session : null
  useEffect(() => {
    if (current === null) return
    return live('/v1/stats/stream', '', {
      events: ['history', 'sample'],
      onEvent: (event, data) => {
        if (event === 'history') {
          const m = JSON.parse(data) as StatsMessage
          setStats({ info: m, samples: [...m.history, m.now], warnings: m.warnings, tick: 0, live: true })
        } else if (event === 'sample') {
          const m = JSON.parse(data) as SampleMessage
          setStats(s => ({ ...s, samples: [...s.samples.slice(-450), m.sample], warnings: m.warnings, tick: s.tick + 1 }))
        }
      },
      onState: state => {
        if (state === 'open') setLink(l => (l === 'down' ? 'back' : l))
        if (state === 'reconnecting') { setLink('down'); setStats(s => ({ ...s, live: false })) }
        // ended by the broker (credentials revoked, rules changed): ask again who we are
        if (state === 'closed') { setStats(s => ({ ...s, live: false })); void start() }
      }
    })
  }, [current])

  const signOut = (): void => { setCredentials(null); setPhase({ kind: 'loading' }); void start() }

  let body: JSX.Element
  if (phase.kind === 'loading') body = <p class="muted">Loading…</p>
  else if (phase.kind === 'login') body = <Login error={phase.error} onSignedIn={() => { void start() }} />
  else if (phase.kind === 'forbidden') body = <div class="card"><p class="error">{phase.detail}</p><p>This principal may not use the dashboard (it needs <code>system</code> <code>dashboard</code>).</p><button onClick={() => { setCredentials(null); setPhase({ kind: 'login' }) }}>Sign in as someone else</button></div>
  else if (phase.kind === 'error') body = <p class="error" role="alert">{phase.detail}</p>
  else {
    const [view, name] = route
    body = view === 'pubsub' ? <PubSubView />
      : view === 'store' ? <StoreView />
        : view === 'queues' ? <QueuesView name={name} />
          : view === 'streams' ? <StreamsView name={name} />
            : <Overview />
  }
  const session = phase.kind === 'ready' ? phase.session : null
  return (
    <NoticeContext.Provider value={setNotice}>
      <header class="top">
        <a class="brand" href="#/overview">Tetra</a>
        <nav>
          {VIEWS.map(([id, label]) => <a key={id} href={`#/${id}`} class={route[0] === id ? 'active' : ''}>{label}</a>)}
        </nav>
        <div class="who">
          {session?.info.mode === 'readonly' && <span class="badge">read-only</span>}
          {session !== null && session.who !== null && session.who.kind === 'anonymous' && <>
            <span>anonymous</span>
            <button class="link" onClick={() => { setPhase({ kind: 'login' }) }}>Sign in</button>
          </>}
          {session !== null && session.who !== null && session.who.kind !== 'open' && session.who.kind !== 'anonymous' && <>
            <span>{session.who.name ?? session.who.kind}</span>
            <button class="link" onClick={signOut}>Sign out</button>
          </>}
        </div>
      </header>
      {link === 'down' && <div class="banner down" role="status">The broker cannot be reached: reconnecting…</div>}
      {link === 'back' && <div class="banner back" role="status">Reconnected to the broker.</div>}
      {notice !== null && <div class={`banner ${notice.kind}`} role={notice.kind === 'error' ? 'alert' : 'status'}>
        <span>{notice.text}</span><button class="link" onClick={() => { setNotice(null) }} aria-label="dismiss">×</button>
      </div>}
      <main>
        {session === null ? body : <SessionContext.Provider value={session}><StatsContext.Provider value={stats}>{body}</StatsContext.Provider></SessionContext.Provider>}
      </main>
    </NoticeContext.Provider>
  )
}

render(<App />, document.getElementById('app') as HTMLElement)
