import { afterEach, describe, expect, it } from 'vitest'
import { appendFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Auth } from '../../engines/auth/auth.js'
import { hashToken, newToken } from '../../engines/auth/hash.js'
import { tempDir } from '../helpers.js'

/**
 * Reload from a real file in a temp dir, through the watcher the broker runs (fs.watch on the directory and
 * stat polling): the issue asks that a change takes effect within 1 s. Tests wait for the change event with
 * a bounded timeout instead of asserting the time.
 */

const cleanups: Array<() => void> = []
afterEach(() => { for (const c of cleanups.splice(0)) c() })

interface Fixture { auth: Auth, file: string, logs: string[], write: (json: unknown) => void }

async function open (json: unknown): Promise<Fixture> {
  const tmp = tempDir('tetra-auth-reload-')
  const file = join(tmp.dir, 'auth.json')
  writeFileSync(file, JSON.stringify(json))
  const logs: string[] = []
  const auth = await Auth.open({ file, log: (level, message) => { logs.push(`${level}: ${message}`) } })
  cleanups.push(() => { auth.close(); tmp.remove() })
  return { auth, file, logs, write: j => { writeFileSync(file, JSON.stringify(j)) } }
}

/** Resolves at the next onChange; rejects after `ms` (a bound, not a measurement). */
function nextChange (auth: Auth, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { remove(); reject(new Error(`no auth change within ${ms} ms`)) }, ms)
    const remove = auth.onChange(() => { clearTimeout(timer); remove(); resolve() })
  })
}

function waitForLog (logs: string[], pattern: RegExp, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (logs.some(l => pattern.test(l))) resolve()
      else if (Date.now() > deadline) reject(new Error(`no log matching ${String(pattern)}: ${logs.join(' | ')}`))
      else setTimeout(poll, 10)
    }
    poll()
  })
}

const tokenFile = (token: string, roles: string[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  tokens: [{ name: 'svc', hash: hashToken(token), roles, expiresAt: null }],
  roles: { pub: [{ resource: 'topic', pattern: 'a/#', actions: ['publish'] }], both: [{ resource: 'topic', pattern: '#', actions: ['publish', 'subscribe'] }] },
  ...extra
})

describe('auth file reload', () => {
  it('picks up a file written in place', async () => {
    const token = newToken()
    const { auth, write } = await open(tokenFile(token, ['pub']))
    const before = auth.token(token)
    expect(before.ok && before.principal.can('topic', 'b', 'publish')).toBe(false)
    const changed = nextChange(auth)
    write(tokenFile(token, ['both']))
    await changed
    const after = auth.token(token)
    expect(after.ok && after.principal.can('topic', 'b', 'publish')).toBe(true)
    expect(before.ok && auth.refresh(before.principal)?.can('topic', 'b', 'publish')).toBe(true)
  })

  it('picks up a file replaced by rename, as editors and tetra passwd save', async () => {
    const token = newToken()
    const { auth, file } = await open(tokenFile(token, ['pub']))
    const changed = nextChange(auth)
    const temp = file + '.tmp'
    writeFileSync(temp, JSON.stringify(tokenFile(token, ['pub'], { anonymous: ['pub'] })))
    renameSync(temp, file)
    await changed
    expect(auth.anonymous().ok).toBe(true)
    // and again: the watch survives the first rename
    const again = nextChange(auth)
    writeFileSync(temp, JSON.stringify(tokenFile(token, ['pub'])))
    renameSync(temp, file)
    await again
    expect(auth.anonymous()).toEqual({ ok: false, failure: 'missing' })
  })

  it('picks up a Kubernetes Secret or ConfigMap update: the file is a symlink whose target directory is swapped', async () => {
    const token = newToken()
    const tmp = tempDir('tetra-auth-k8s-')
    for (const v of ['v1', 'v2']) mkdirSync(join(tmp.dir, v))
    writeFileSync(join(tmp.dir, 'v1', 'auth.json'), JSON.stringify(tokenFile(token, ['pub'])))
    writeFileSync(join(tmp.dir, 'v2', 'auth.json'), JSON.stringify(tokenFile(token, ['both'])))
    symlinkSync('v1', join(tmp.dir, '..data'))
    symlinkSync('..data/auth.json', join(tmp.dir, 'auth.json'))
    const auth = await Auth.open({ file: join(tmp.dir, 'auth.json') })
    cleanups.push(() => { auth.close(); tmp.remove() })
    const changed = nextChange(auth)
    // what the kubelet does: a new ..data link renamed over the old one
    symlinkSync('v2', join(tmp.dir, '..data_tmp'))
    renameSync(join(tmp.dir, '..data_tmp'), join(tmp.dir, '..data'))
    await changed
    const r = auth.token(token)
    expect(r.ok && r.principal.can('topic', 'b', 'publish')).toBe(true)
  })

  it('picks up a change while a neighbour file in the same directory is written without pause', async () => {
    const token = newToken()
    const { auth, file, write } = await open(tokenFile(token, ['pub']))
    const neighbour = join(file, '..', 'busy.log')
    // a write every 20 ms until the change is seen (bounded: 5 s at most, as nextChange's own bound)
    const noise = setInterval(() => { appendFileSync(neighbour, 'x') }, 20)
    try {
      await new Promise(resolve => { setTimeout(resolve, 200) })
      const changed = nextChange(auth)
      write(tokenFile(token, ['both']))
      await changed
    } finally {
      clearInterval(noise)
    }
    const r = auth.token(token)
    expect(r.ok && r.principal.can('topic', 'b', 'publish')).toBe(true)
  })

  it('keeps the old model on a malformed file, logs why, and takes the next good one', async () => {
    const token = newToken()
    const { auth, file, logs, write } = await open(tokenFile(token, ['pub']))
    const g = auth.generation
    writeFileSync(file, '{"tokens": [')
    await waitForLog(logs, /^error: auth file not reloaded, the previous one stays in force: auth file .*: not valid JSON at line 1/)
    expect(auth.generation).toBe(g)
    expect(auth.token(token).ok).toBe(true)
    const changed = nextChange(auth)
    write(tokenFile(token, ['both']))
    await changed
    expect(auth.generation).toBe(g + 1)
  })

  it('revokes a token when it expires, without a file change', async () => {
    const token = newToken()
    const expiresAt = new Date(Date.now() + 300).toISOString()
    const { auth } = await open({ tokens: [{ name: 'short', hash: hashToken(token), roles: [], expiresAt }] })
    const r = auth.token(token)
    expect(r.ok).toBe(true)
    await nextChange(auth)
    expect(auth.token(token)).toEqual({ ok: false, failure: 'expired' })
    expect(r.ok && auth.refresh(r.principal)).toBeNull()
  })

  it('stops watching at close()', async () => {
    const token = newToken()
    const { auth, write } = await open(tokenFile(token, ['pub']))
    let changes = 0
    auth.onChange(() => { changes++ })
    auth.close()
    write(tokenFile(token, ['both']))
    await auth.reload() // a no-op once closed
    expect(changes).toBe(0)
  })
})
