import { afterEach, describe, expect, it } from 'vitest'
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Auth } from '../../engines/auth/auth.js'
import { ROOT, tempDir } from '../helpers.js'

/** `tetra passwd` and `tetra token` through the real CLI in a child process (sources run through tsx). */

const cli = (args: string[], input?: string): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], { input, encoding: 'utf8', timeout: 30_000, cwd: ROOT })

const cleanups: Array<() => void> = []
afterEach(() => { for (const c of cleanups.splice(0)) c() })
function dir (): string {
  const tmp = tempDir('tetra-auth-cli-')
  cleanups.push(tmp.remove)
  return tmp.dir
}
async function load (file: string): Promise<Auth> {
  const auth = await Auth.open({ file, watch: false })
  cleanups.push(() => { auth.close() })
  return auth
}

describe('tetra passwd', () => {
  it('creates the file (mode 0600) and a user whose password authenticates at the broker', async () => {
    const file = join(dir(), 'auth.json')
    const r = cli(['passwd', file, 'sensor-1', '--role', 'device', '--role=viewer'], 's3cret pass\n')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/warning: role "device" is not defined/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const json = JSON.parse(readFileSync(file, 'utf8'))
    expect(json.users).toHaveLength(1)
    expect(json.users[0]).toMatchObject({ name: 'sensor-1', roles: ['device', 'viewer'] })
    expect(json.users[0].password).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/)
    const auth = await load(file)
    expect(await auth.password('sensor-1', 's3cret pass')).toMatchObject({ ok: true }) // one trailing newline stripped
    expect(await auth.password('sensor-1', 's3cret pass\n')).toEqual({ ok: false, failure: 'invalid' })
  })

  it('updates a user, keeping its roles (unless --role) and everything else in the file as it was', async () => {
    const file = join(dir(), 'auth.json')
    const original = {
      anonymous: ['public'],
      roles: { public: [{ resource: 'topic', pattern: 'public/#', actions: ['subscribe'] }], device: [] },
      users: [{ name: 'other', password: '$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', roles: ['public'] }]
    }
    writeFileSync(file, JSON.stringify(original), { mode: 0o640 })
    expect(cli(['passwd', file, 'alice', '--role', 'device'], 'one').status).toBe(0)
    expect(cli(['passwd', file, 'alice'], 'two\r\n').status).toBe(0)
    const json = JSON.parse(readFileSync(file, 'utf8'))
    expect(Object.keys(json)).toEqual(['anonymous', 'roles', 'users']) // key order kept
    expect(json.roles).toEqual(original.roles)
    expect(json.users[0]).toEqual(original.users[0])
    expect(json.users[1]).toMatchObject({ name: 'alice', roles: ['device'] })
    expect(statSync(file).mode & 0o777).toBe(0o640) // an existing file keeps its mode
    const auth = await load(file)
    expect((await auth.password('alice', 'one')).ok).toBe(false)
    expect((await auth.password('alice', 'two')).ok).toBe(true)
    expect(cli(['passwd', file, 'alice', '--role', 'public'], 'two').status).toBe(0)
    expect(JSON.parse(readFileSync(file, 'utf8')).users[1].roles).toEqual(['public'])
  })

  it('refuses bad usage (exit 2), a token\'s name, an empty password and a broken file (exit 1)', () => {
    const d = dir()
    const file = join(d, 'auth.json')
    expect(cli(['passwd', file], 'x')).toMatchObject({ status: 2, stderr: expect.stringMatching(/usage: tetra passwd FILE USER/) })
    expect(cli(['passwd', file, 'u', '--colour', 'red'], 'x')).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown option --colour/) })
    expect(cli(['passwd', file, 'u', '--role'], 'x')).toMatchObject({ status: 2, stderr: expect.stringMatching(/--role needs a value/) })
    expect(cli(['passwd', file, 'u'], '\n')).toMatchObject({ status: 1, stderr: expect.stringMatching(/password is empty/) })
    expect(cli(['token', file, 'svc']).status).toBe(0)
    expect(cli(['passwd', file, 'svc'], 'x')).toMatchObject({ status: 1, stderr: expect.stringMatching(/"svc" is the name of a token/) })
    const broken = join(d, 'broken.json')
    writeFileSync(broken, '{"users": [{"name": "a", "password": "plain"}]}')
    const r = cli(['passwd', broken, 'b'], 'x')
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/users\[0\]\.password: is not a password hash.*\nfix the file first; it was not changed/)
    expect(readFileSync(broken, 'utf8')).toBe('{"users": [{"name": "a", "password": "plain"}]}')
  })
})

/** Runs `tetra passwd` on a pseudo-terminal (util-linux `script`), typing each answer when its prompt appears. */
function onTerminal (args: string[], answers: string[]): Promise<{ code: number | null, output: string }> {
  const command = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args].map(a => `'${a}'`).join(' ')
  const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  let prompts = 0
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString()
    const seen = output.split(/Password(?: again)?: /).length - 1
    while (prompts < seen && prompts < answers.length) child.stdin.write(answers[prompts++] + '\r')
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no exit within 20 s: ${JSON.stringify(output)}`)) }, 20_000)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, output }) })
  })
}
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0

describe.skipIf(!hasScript)('tetra passwd on a terminal', () => {
  it('asks twice without echo, and refuses two different answers', async () => {
    const file = join(dir(), 'auth.json')
    const typed = await onTerminal(['passwd', file, 'tty-user'], ['s3cret-typed', 's3cret-typed'])
    expect(typed.code, typed.output).toBe(0)
    expect(typed.output).toMatch(/Password: [\s\S]*Password again: /)
    expect(typed.output).not.toContain('s3cret-typed') // no echo
    const auth = await load(file)
    expect((await auth.password('tty-user', 's3cret-typed')).ok).toBe(true)
    const differ = await onTerminal(['passwd', file, 'tty-user'], ['one', 'two'])
    expect(differ.code).toBe(1)
    expect(differ.output).toMatch(/the passwords differ; nothing was changed/)
  })
})

describe('tetra token', () => {
  it('prints the token alone on stdout and stores only its hash; the token authenticates', async () => {
    const file = join(dir(), 'auth.json')
    writeFileSync(file, JSON.stringify({ roles: { backend: [{ resource: 'store', pattern: '*', actions: ['read'] }] } }))
    const r = cli(['token', file, 'billing', '--role', 'backend'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^tetra_[A-Za-z0-9_-]{43}\n$/)
    expect(r.stderr).not.toMatch(/warning/)
    const token = r.stdout.trim()
    const text = readFileSync(file, 'utf8')
    expect(text).not.toContain(token)
    expect(JSON.parse(text).tokens).toEqual([{ name: 'billing', hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), roles: ['backend'], expiresAt: null }])
    const auth = await load(file)
    const bearer = auth.token(token)
    expect(bearer.ok && bearer.principal.can('store', 'k', 'read')).toBe(true)
    expect((await auth.password('billing', token)).ok).toBe(true)
    // a new token of the same name replaces the old one and keeps its roles
    const again = cli(['token', file, 'billing'])
    expect(again.status).toBe(0)
    await auth.reload()
    expect(auth.token(token)).toEqual({ ok: false, failure: 'invalid' })
    const second = auth.token(again.stdout.trim())
    expect(second.ok && second.principal.roles).toEqual(['backend'])
  })

  it('takes --expires as a duration or an ISO date', () => {
    const file = join(dir(), 'auth.json')
    const before = Date.now()
    expect(cli(['token', file, 'a', '--expires', '30d']).status).toBe(0)
    expect(cli(['token', file, 'b', '--expires=90m']).status).toBe(0)
    expect(cli(['token', file, 'c', '--expires', '2099-01-31']).status).toBe(0)
    const tokens = JSON.parse(readFileSync(file, 'utf8')).tokens as Array<{ expiresAt: string }>
    const a = Date.parse(tokens[0].expiresAt) - before
    expect(a).toBeGreaterThanOrEqual(30 * 86_400_000)
    expect(a).toBeLessThan(30 * 86_400_000 + 60_000)
    expect(Date.parse(tokens[1].expiresAt) - before).toBeGreaterThanOrEqual(90 * 60_000)
    expect(tokens[2].expiresAt).toBe('2099-01-31T00:00:00.000Z')
    expect(cli(['token', file, 'd', '--expires', 'soon'])).toMatchObject({ status: 2, stdout: '', stderr: expect.stringMatching(/--expires "soon" is neither a duration/) })
    expect(cli(['token', file, 'd', '--expires', '2001-01-01'])).toMatchObject({ status: 2, stderr: expect.stringMatching(/not in the future/) })
  })

  it('refuses a user\'s name, and is listed in tetra --help', () => {
    const file = join(dir(), 'auth.json')
    expect(cli(['passwd', file, 'alice'], 'pw').status).toBe(0)
    expect(cli(['token', file, 'alice'])).toMatchObject({ status: 1, stdout: '', stderr: expect.stringMatching(/"alice" is the name of a user/) })
    const help = cli(['--help'])
    expect(help.stdout).toContain('tetra passwd FILE USER [--role R]...')
    expect(help.stdout).toContain('tetra token FILE NAME [--role R]...')
    expect(cli(['token', '--help'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: tetra token/) })
  })
})
