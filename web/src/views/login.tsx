import { useState } from 'preact/hooks'
import { json, setCredentials, type Credentials } from '../api.js'
import { ErrorLine, errorText } from '../ui.js'

/** Sign in with a user and its password, or with a token (kept in this tab only). */
export function Login (props: { error?: string, onSignedIn: () => void }): JSX.Element {
  const [mode, setMode] = useState<'password' | 'token'>('password')
  const [user, setUser] = useState('')
  const [secret, setSecret] = useState('')
  const [error, setError] = useState<string | null>(props.error ?? null)
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault()
    const c: Credentials = mode === 'token' ? { kind: 'bearer', secret } : { kind: 'basic', user, secret }
    setCredentials(c)
    try {
      await json('/v1/auth/whoami')
      props.onSignedIn()
    } catch (err) {
      setCredentials(null)
      setError(errorText(err))
    }
  }
  return (
    <form class="card login" onSubmit={e => { void submit(e) }}>
      <h1>Sign in to Tetra</h1>
      <p class="muted">This broker has an auth file. Sign in with a user of it, or with a token.</p>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={mode === 'password'} onClick={() => { setMode('password') }}>User and password</button>
        <button type="button" role="tab" aria-selected={mode === 'token'} onClick={() => { setMode('token') }}>Token</button>
      </div>
      {mode === 'password' && <label>User <input name="user" autocomplete="username" value={user} onInput={e => { setUser((e.target as HTMLInputElement).value) }} required /></label>}
      <label>{mode === 'password' ? 'Password' : 'Token'}
        <input name={mode === 'password' ? 'password' : 'token'} type="password" autocomplete={mode === 'password' ? 'current-password' : 'off'} value={secret} onInput={e => { setSecret((e.target as HTMLInputElement).value) }} required />
      </label>
      <ErrorLine error={error} />
      <button type="submit" class="primary">Sign in</button>
    </form>
  )
}
