import { describe, expect, it, afterEach } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../../engines/clock.js'
import { Auth } from '../../engines/auth/auth.js'
import { AuthFileError } from '../../engines/auth/errors.js'
import { parseAuthFile } from '../../engines/auth/file.js'
import { hashPassword, hashToken, newToken, parsePasswordHash, verifyPassword } from '../../engines/auth/hash.js'
import { covers, splitTopic } from '../../engines/auth/patterns.js'
import { RulePrincipal, substitute } from '../../engines/auth/principal.js'
import type { RuleSpec } from '../../engines/auth/file.js'
import type { Principal } from '../../engines/auth/types.js'
import { ROOT, tempDir } from '../helpers.js'

/** A cheap scrypt cost for tests (the commands write ln=15). */
const FAST = { ln: 4, r: 8, p: 1 }
const HASH = '$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const TOKEN_HASH = 'sha256:' + 'ab'.repeat(32)

const base = (): Record<string, unknown> => ({
  users: [{ name: 'sensor-1', password: HASH, roles: ['device'] }],
  tokens: [{ name: 'billing', hash: TOKEN_HASH, roles: ['backend'], expiresAt: null }],
  roles: {
    device: [
      { resource: 'topic', pattern: 'sensors/%u/#', actions: ['publish'] },
      { resource: 'topic', pattern: 'commands/%u/#', actions: ['subscribe'] }
    ],
    backend: [{ resource: 'store', pattern: 'cache/*', actions: ['read', 'write'] }]
  },
  anonymous: ['backend']
})

const parse = (json: unknown): ReturnType<typeof parseAuthFile> => parseAuthFile(JSON.stringify(json), '/p/auth.json')
/** The message of the AuthFileError thrown for a file changed by `mutate`. */
function problem (mutate: (f: Record<string, any>) => void): string {
  const f = base() as Record<string, any>
  mutate(f)
  try {
    parse(f)
  } catch (err) {
    expect(err).toBeInstanceOf(AuthFileError)
    return (err as Error).message
  }
  throw new Error('no error for a malformed file')
}

const rule = (pattern: string, actions: string[], effect: 'allow' | 'deny' = 'allow', resource: RuleSpec['resource'] = 'topic'): RuleSpec =>
  ({ resource, pattern, actions, effect })
const principal = (rules: RuleSpec[], name: string | null = 'alice', clientId?: string): RulePrincipal =>
  new RulePrincipal({ name, kind: name === null ? 'anonymous' : 'user', roles: ['r'], clientId, expiresAt: null }, rules)

describe('auth file validation: each mistake names its place', () => {
  it('accepts the documented shape, every section optional', () => {
    const { model, warnings } = parse(base())
    expect(model.users.get('sensor-1')?.roles).toEqual(['device'])
    expect(model.tokens.get('billing')?.expiresAt).toBeNull()
    expect(model.tokensByHash.get(TOKEN_HASH)?.name).toBe('billing')
    expect(model.anonymous).toEqual(['backend'])
    expect(warnings).toEqual([])
    expect(parse({}).model.anonymous).toBeNull()
    expect(parseAuthFile('\uFEFF{"anonymous": []}', '/p/auth.json').model.anonymous).toEqual([]) // a BOM is fine
  })

  it('names the action and lists the right ones', () => {
    expect(problem(f => { f.roles.device[1].actions = ['pubish'] }))
      .toBe('auth file /p/auth.json: roles.device[1].actions[0]: "pubish" is not an action of topic; use publish or subscribe')
    expect(problem(f => { f.roles.backend[0].actions = ['read', 'push'] }))
      .toBe('auth file /p/auth.json: roles.backend[0].actions[1]: "push" is not an action of store; use read or write')
    expect(problem(f => { f.roles.backend[0].actions = [] })).toMatch(/roles\.backend\[0\]\.actions: must be a non-empty array/)
  })

  it('reports JSON syntax errors with line and column', () => {
    expect(() => parseAuthFile('{\n  "users": [,]\n}', '/p/auth.json')).toThrow(/^auth file \/p\/auth\.json: not valid JSON at line 2, column 13/)
    expect(() => parseAuthFile('{\n  "users": [,]\n}', '/p/auth.json')).toThrow('unexpected ","; expected a value')
    expect(() => parseAuthFile('{"users": [', '/p/auth.json')).toThrow(/not valid JSON at line 1, column 12: the text ends/)
    expect(() => parseAuthFile('{\n"a": 1,\n}', '/p/auth.json')).toThrow(/line 3, column 1: unexpected "}"; expected a property name/)
    expect(() => parseAuthFile('{"a": "x\ny"}', '/p/auth.json')).toThrow(/line 1, column 9: a control character/)
    expect(() => parseAuthFile('{} {}', '/p/auth.json')).toThrow(/line 1, column 4: unexpected "\{" after the end/)
    expect(() => parseAuthFile('[]', '/p/auth.json')).toThrow(/must be a JSON object.*not an array/)
  })

  it('refuses unknown keys at every level', () => {
    expect(problem(f => { f.user = [] })).toMatch(/auth\.json: user: unknown key; the file may have users, tokens, roles or anonymous/)
    expect(problem(f => { f.users[0].role = 'x' })).toMatch(/users\[0\]\.role: unknown key/)
    expect(problem(f => { f.tokens[0].expires = null })).toMatch(/tokens\[0\]\.expires: unknown key/)
    expect(problem(f => { f.roles.device[0].action = ['publish'] })).toMatch(/roles\.device\[0\]\.action: unknown key/)
  })

  it('refuses bad users, tokens and hashes', () => {
    expect(problem(f => { delete f.users[0].name })).toMatch(/users\[0\]\.name: must be a non-empty string/)
    expect(problem(f => { f.users[0].password = 'hunter2' })).toMatch(/users\[0\]\.password: is not a password hash written by tetra passwd/)
    expect(problem(f => { f.users[0].password = HASH.replace('ln=4', 'ln=30') })).toMatch(/users\[0\]\.password: has ln=30/)
    expect(problem(f => { f.tokens[0].hash = 'sha256:xyz' })).toMatch(/tokens\[0\]\.hash: is not a token hash/)
    expect(problem(f => { f.tokens[0].expiresAt = 'tomorrow' })).toMatch(/tokens\[0\]\.expiresAt: "tomorrow" is not an ISO 8601 date/)
    expect(problem(f => { f.tokens[0].expiresAt = '2030-01-01T10:00' })).toMatch(/tokens\[0\]\.expiresAt/) // a time needs a zone
    expect(problem(f => { f.users[0].roles = 'device' })).toMatch(/users\[0\]\.roles: must be an array, not a string/)
    expect(problem(f => { f.users = {} })).toMatch(/users: must be an array/)
  })

  it('refuses duplicate names: users and tokens share one namespace', () => {
    expect(problem(f => { f.users.push({ ...f.users[0] }) })).toMatch(/users\[1\]\.name: "sensor-1" is already the name of users\[0\]/)
    expect(problem(f => { f.tokens[0].name = 'sensor-1' })).toMatch(/tokens\[0\]\.name: "sensor-1" is already the name of users\[0\]; users and tokens share one namespace/)
    expect(problem(f => { f.tokens.push({ name: 'other', hash: TOKEN_HASH }) })).toMatch(/tokens\[1\]\.hash: is the same as the hash of token "billing"/)
  })

  it('refuses bad rules: resource, pattern, effect', () => {
    expect(problem(f => { f.roles.device[0].resource = 'topics' })).toMatch(/roles\.device\[0\]\.resource: "topics" is not a resource; use topic, store, queue, stream or system/)
    expect(problem(f => { f.roles.device[0].pattern = 'a/#/b' })).toMatch(/roles\.device\[0\]\.pattern: "a\/#\/b" is not a valid MQTT topic filter: # must be/)
    expect(problem(f => { f.roles.device[0].pattern = 'a/b+' })).toMatch(/roles\.device\[0\]\.pattern: "a\/b\+" is not a valid MQTT topic filter: \+ must be a whole level/)
    expect(problem(f => { f.roles.device[0].pattern = '' })).toMatch(/roles\.device\[0\]\.pattern: "" is empty/)
    expect(problem(f => { f.roles.backend[0].pattern = 'ca*che' })).toMatch(/roles\.backend\[0\]\.pattern: "ca\*che" has a \* that is not at the end/)
    expect(problem(f => { f.roles.device[1].effect = 'maybe' })).toMatch(/roles\.device\[1\]\.effect: "maybe" is not an effect; use allow or deny/)
    expect(problem(f => { f.roles.device = {} })).toMatch(/roles\.device: must be an array/)
    expect(problem(f => { f.roles = [] })).toMatch(/roles: must be an object/)
    expect(problem(f => { f.anonymous = 'public' })).toMatch(/anonymous: must be an array, not a string/)
    expect(problem(f => { f.anonymous = [''] })).toMatch(/anonymous\[0\]: must be a non-empty string/)
  })

  it('warns (does not fail) about roles referenced but not defined', () => {
    const f = base() as Record<string, any>
    f.users[0].roles.push('ghost')
    f.anonymous = ['public']
    const { warnings } = parse(f)
    expect(warnings).toEqual([
      'auth file /p/auth.json: users[0].roles[1]: role "ghost" is not defined in roles; it grants nothing',
      'auth file /p/auth.json: anonymous[0]: role "public" is not defined in roles; it grants nothing'
    ])
  })
})

describe('topic pattern coverage', () => {
  const c = (pattern: string, filter: string): boolean => covers(splitTopic(pattern), splitTopic(filter))
  it('matches topic names as MQTT filters do', () => {
    expect(c('a/+/c', 'a/b/c')).toBe(true)
    expect(c('a/+/c', 'a/b/d')).toBe(false)
    expect(c('a/#', 'a')).toBe(true) // MQTT-4.7.1.2: # includes the parent level
    expect(c('a/#', 'a/b/c')).toBe(true)
    expect(c('a/+', 'a')).toBe(false)
    expect(c('#', '$SYS/x')).toBe(false) // MQTT-4.7.2-1
    expect(c('+/x', '$SYS/x')).toBe(false)
    expect(c('$SYS/#', '$SYS/x')).toBe(true)
    expect(c('a//b', 'a//b')).toBe(true)
  })
  it('covers a filter only when it matches every topic of it', () => {
    expect(c('a/#', 'a/+/c')).toBe(true)
    expect(c('a/+/#', 'a/#')).toBe(false) // a/# matches a
    expect(c('a/+', 'a/+')).toBe(true)
    expect(c('a/b', 'a/+')).toBe(false)
    expect(c('a/+', 'a/#')).toBe(false)
    expect(c('#', '#')).toBe(true)
    expect(c('+/#', '#')).toBe(true)
    expect(c('+', '#')).toBe(false)
    expect(c('#', '$SYS/#')).toBe(false)
    expect(c('+/+', '+/+/+')).toBe(false)
  })
})

describe('principal decisions', () => {
  it('denies what no rule allows, and a deny wins over any allow', () => {
    const p = principal([rule('#', ['publish', 'subscribe']), rule('secret/#', ['subscribe'], 'deny')])
    expect(p.can('topic', 'a/b', 'publish')).toBe(true)
    expect(p.can('topic', 'secret/x', 'publish')).toBe(true)
    expect(p.can('topic', 'secret/x', 'subscribe')).toBe(false)
    expect(p.can('topic', 'secret', 'subscribe')).toBe(false)
    expect(p.can('store', 'x', 'read')).toBe(false)
    expect(p.can('topic', 'x', 'read' as never)).toBe(false) // not an action of topic
    expect(p.can('topic', 'x', 'toString' as never)).toBe(false)
    expect(p.can('constructor' as never, 'x', 'publish')).toBe(false)
    expect(p.canPrefix('store', 'x', 'hasOwnProperty' as never)).toBe(false)
    expect(principal([]).can('topic', 'a', 'publish')).toBe(false)
  })

  it('caches decisions without changing them', () => {
    const p = principal([rule('a/+', ['publish']), rule('a/x', ['publish'], 'deny')])
    for (let i = 0; i < 3; i++) {
      expect(p.can('topic', 'a/b', 'publish')).toBe(true)
      expect(p.can('topic', 'a/x', 'publish')).toBe(false)
    }
    for (let i = 0; i < 10_050; i++) p.can('topic', `a/${i}`, 'publish') // past the cache bound
    expect(p.can('topic', 'a/x', 'publish')).toBe(false)
    expect(p.can('topic', 'a/9999', 'publish')).toBe(true)
    const long = 'y'.repeat(60_000) // long topics fill the cache's character budget first
    for (let i = 0; i < 20; i++) expect(p.can('topic', `a/${long}${i}`, 'publish')).toBe(true)
    expect(p.can('topic', 'a/x', 'publish')).toBe(false)
  })

  it('replaces %u and %c, and such a rule does not apply without a name or client id', () => {
    const rules = [rule('sensors/%u/#', ['publish']), rule('clients/%c', ['subscribe']), rule('dev-%u/x', ['publish'])]
    const alice = principal(rules, 'alice', 'c1')
    expect(alice.can('topic', 'sensors/alice/t', 'publish')).toBe(true)
    expect(alice.can('topic', 'sensors/bob/t', 'publish')).toBe(false)
    expect(alice.can('topic', 'dev-alice/x', 'publish')).toBe(true)
    expect(alice.canSubscribe('clients/c1')).toBe(true)
    expect(alice.canSubscribe('clients/c2')).toBe(false)
    expect(principal(rules, 'alice').canSubscribe('clients/undefined')).toBe(false) // HTTP: no client id
    const anon = principal(rules, null, 'c1')
    expect(anon.can('topic', 'sensors/null/t', 'publish')).toBe(false)
    expect(anon.can('topic', 'sensors//t', 'publish')).toBe(false)
    expect(anon.summary().rules.map(r => r.pattern)).toEqual(['clients/c1'])
  })

  it('never lets a name or client id containing + # / widen an allow, nor escape a deny', () => {
    const rules = [rule('sensors/%u/#', ['publish', 'subscribe']), rule('c/%c', ['subscribe'])]
    for (const evil of ['+', '#', 'a/b', 'x+']) {
      const p = principal(rules, evil, evil)
      expect(p.can('topic', 'sensors/bob/t', 'publish')).toBe(false)
      expect(p.canSubscribe('sensors/+/#')).toBe(false)
      expect(p.canSubscribe('c/+')).toBe(false)
      expect(p.canSubscribe('c/x')).toBe(false)
    }
    expect(substitute('sensors/%u/#', '+', undefined, 'allow')).toBeNull()
    expect(substitute('sensors/%u/#', '+', undefined, 'deny')).toBe('sensors/+/#')
    const denied = principal([rule('#', ['publish']), rule('private/%u/#', ['publish'], 'deny')], 'a/b')
    expect(denied.can('topic', 'private/a/x', 'publish')).toBe(false)
  })

  it('grants a subscription only when one allow covers the whole filter and no deny covers it all', () => {
    const p = principal([
      rule('sensors/#', ['subscribe']),
      rule('sensors/secret/#', ['subscribe'], 'deny'),
      rule('cmd/+/in', ['subscribe']),
      rule('#', ['publish'])
    ])
    expect(p.canSubscribe('sensors/#')).toBe(true) // the deny inside is filtered at delivery
    expect(p.can('topic', 'sensors/secret/x', 'subscribe')).toBe(false)
    expect(p.canSubscribe('sensors/secret/#')).toBe(false)
    expect(p.canSubscribe('sensors/secret/+')).toBe(false)
    expect(p.canSubscribe('cmd/+/in')).toBe(true)
    expect(p.canSubscribe('cmd/#')).toBe(false)
    expect(p.canSubscribe('#')).toBe(false)
    expect(p.canSubscribe('$share/g/sensors/a')).toBe(true)
    expect(p.canSubscribe('$share/g/cmd/#')).toBe(false)
    expect(p.canSubscribe('sensors/#/x')).toBe(false) // not a valid filter
    const all = principal([rule('#', ['subscribe'])])
    expect(all.canSubscribe('#')).toBe(true)
    expect(all.canSubscribe('$SYS/#')).toBe(false) // MQTT-4.7.2-1: # does not reach $ topics
    expect(principal([rule('$SYS/#', ['subscribe'])]).canSubscribe('$SYS/broker/+')).toBe(true)
  })

  it('matches store, queue, stream and system names exactly, by prefix or all', () => {
    const p = principal([
      rule('cache/*', ['read', 'write'], 'allow', 'store'),
      rule('cache/private/*', ['read'], 'deny', 'store'),
      rule('jobs', ['push'], 'allow', 'queue'),
      rule('*', ['read'], 'allow', 'stream'),
      rule('metrics', ['metrics'], 'allow', 'system')
    ])
    expect(p.can('store', 'cache/a', 'read')).toBe(true)
    expect(p.can('store', 'cache/private/a', 'read')).toBe(false)
    expect(p.can('store', 'cache/private/a', 'write')).toBe(true)
    expect(p.can('store', 'cach', 'read')).toBe(false)
    expect(p.can('queue', 'jobs', 'push')).toBe(true)
    expect(p.can('queue', 'jobs2', 'push')).toBe(false)
    expect(p.can('queue', 'jobs', 'receive')).toBe(false)
    expect(p.can('stream', 'anything', 'read')).toBe(true)
    expect(p.can('system', 'metrics', 'metrics')).toBe(true)
    expect(p.can('system', 'metrics', 'dashboard')).toBe(false)
    expect(p.canPrefix('store', 'cache/', 'read')).toBe(true) // private/ filtered per key by can()
    expect(p.canPrefix('store', 'cache/private/', 'read')).toBe(false)
    expect(p.canPrefix('store', 'cac', 'read')).toBe(false)
    expect(p.canPrefix('queue', 'jobs', 'push')).toBe(false) // an exact name does not cover a prefix
    expect(p.canPrefix('stream', '', 'read')).toBe(true)
  })

  it('summarises itself for whoami', () => {
    const p = principal([rule('sensors/%u/#', ['publish']), rule('x', ['read'], 'deny', 'store')], 'alice', 'c1')
    expect(p.summary()).toEqual({
      name: 'alice',
      kind: 'user',
      roles: ['r'],
      rules: [
        { resource: 'topic', pattern: 'sensors/alice/#', actions: ['publish'], effect: 'allow' },
        { resource: 'store', pattern: 'x', actions: ['read'], effect: 'deny' }
      ],
      expiresAt: null
    })
  })
})

describe('hashes', () => {
  it('writes scrypt hashes that verify, in the documented format', async () => {
    const hash = await hashPassword('correct horse', FAST)
    expect(hash).toMatch(/^\$scrypt\$ln=4,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
    const parsed = parsePasswordHash(hash)
    if (typeof parsed === 'string') throw new Error(parsed)
    expect(await verifyPassword('correct horse', parsed)).toBe(true)
    expect(await verifyPassword('correct horsf', parsed)).toBe(false)
    expect(await hashPassword('correct horse', FAST)).not.toBe(hash) // salted
    expect((await hashPassword('x')).startsWith('$scrypt$ln=15,r=8,p=1$')).toBe(true)
  })
  it('makes recognisable tokens stored as sha256', () => {
    const t = newToken()
    expect(t).toMatch(/^tetra_[A-Za-z0-9_-]{43}$/)
    expect(newToken()).not.toBe(t)
    expect(hashToken(t)).toMatch(/^sha256:[0-9a-f]{64}$/)
  })
})

describe('Auth', () => {
  const opened: Auth[] = []
  const dirs: Array<() => void> = []
  afterEach(() => {
    for (const a of opened.splice(0)) a.close()
    for (const r of dirs.splice(0)) r()
  })
  async function setup (mutate: (f: Record<string, any>) => void = () => {}, clock = new ManualClock()): Promise<{ auth: Auth, file: string, token: string, write: (m: (f: Record<string, any>) => void) => Promise<void> }> {
    const tmp = tempDir('tetra-auth-')
    dirs.push(tmp.remove)
    const file = join(tmp.dir, 'auth.json')
    const token = newToken()
    const json = base() as Record<string, any>
    json.users[0].password = await hashPassword('pw1', FAST)
    json.users.push({ name: 'bob', password: await hashPassword('pw2', FAST), roles: ['device'] })
    json.tokens[0].hash = hashToken(token)
    mutate(json)
    writeFileSync(file, JSON.stringify(json))
    const auth = await Auth.open({ file, clock, watch: false })
    opened.push(auth)
    const write = async (m: (f: Record<string, any>) => void): Promise<void> => {
      m(json)
      writeFileSync(file, JSON.stringify(json))
      await auth.reload()
    }
    return { auth, file, token, write }
  }
  const principalOf = (r: { ok: boolean, principal?: Principal }): Principal => {
    if (!r.ok || r.principal === undefined) throw new Error('refused')
    return r.principal
  }

  it('authenticates users by password and tokens by name + token or bearer', async () => {
    const { auth, token } = await setup()
    expect(auth.enabled).toBe(true)
    const p = principalOf(await auth.password('sensor-1', 'pw1', 'c1'))
    expect(p).toMatchObject({ name: 'sensor-1', kind: 'user', clientId: 'c1', roles: ['device'] })
    expect(p.can('topic', 'sensors/sensor-1/t', 'publish')).toBe(true)
    expect(await auth.password('sensor-1', 'pw2')).toEqual({ ok: false, failure: 'invalid' })
    expect(await auth.password('nobody', 'pw1')).toEqual({ ok: false, failure: 'invalid' })
    expect(await auth.password('sensor-1', Buffer.from('pw1'))).toMatchObject({ ok: true })
    const t = principalOf(auth.token(token))
    expect(t).toMatchObject({ name: 'billing', kind: 'token' })
    expect(t.can('store', 'cache/x', 'write')).toBe(true)
    expect(principalOf(await auth.password('billing', token))).toBe(t) // MQTT: username = token name
    expect(await auth.password('billing', 'wrong')).toEqual({ ok: false, failure: 'invalid' })
    expect(auth.token(newToken())).toEqual({ ok: false, failure: 'invalid' })
    expect(principalOf(auth.certificate('bob'))).toMatchObject({ name: 'bob', kind: 'certificate' })
    expect(auth.certificate('mallory')).toEqual({ ok: false, failure: 'invalid' })
    expect(principalOf(auth.anonymous('c9'))).toMatchObject({ name: null, kind: 'anonymous', clientId: 'c9', roles: ['backend'] })
  })

  it('refuses anonymous clients when the file has no anonymous', async () => {
    const { auth } = await setup(f => { delete f.anonymous })
    expect(auth.anonymous()).toEqual({ ok: false, failure: 'missing' })
  })

  it('gives the same Principal object for the same credentials until a reload', async () => {
    const { auth, token, write } = await setup()
    const a = principalOf(await auth.password('sensor-1', 'pw1'))
    expect(principalOf(await auth.password('sensor-1', 'pw1'))).toBe(a)
    expect(principalOf(auth.token(token))).toBe(principalOf(auth.token(token)))
    expect(principalOf(await auth.password('sensor-1', 'pw1', 'c1'))).not.toBe(a) // another client id, another %c
    expect(principalOf(auth.anonymous())).toBe(principalOf(auth.anonymous()))
    // a burst of requests with credentials not verified yet: one object for all of them
    const burst = await Promise.all(Array.from({ length: 20 }, async () => principalOf(await auth.password('bob', 'pw2'))))
    expect(new Set(burst).size).toBe(1)
    expect((await Promise.all([auth.password('bob', 'pw2'), auth.password('bob', 'wrong')])).map(r => r.ok)).toEqual([true, false])
    // a reload that does not concern this user keeps its object
    await write(f => { f.roles.other = [] })
    expect(principalOf(await auth.password('sensor-1', 'pw1'))).toBe(a)
  })

  it('refresh: the same object when nothing changed, a new one when rules did, null when revoked', async () => {
    const { auth, token, write } = await setup()
    const user = principalOf(await auth.password('sensor-1', 'pw1'))
    const bob = principalOf(await auth.password('bob', 'pw2'))
    const tok = principalOf(auth.token(token))
    const anon = principalOf(auth.anonymous())
    const g0 = auth.generation
    let changes = 0
    auth.onChange(() => { changes++ })
    await write(f => { f.roles.device.push({ resource: 'topic', pattern: 'extra/#', actions: ['publish'] }) })
    expect(auth.generation).toBe(g0 + 1)
    expect(changes).toBe(1)
    expect(auth.refresh(tok)).toBe(tok) // backend unchanged
    const user2 = auth.refresh(user)!
    expect(user2).not.toBe(user)
    expect(user2.can('topic', 'extra/x', 'publish')).toBe(true)
    expect(user.can('topic', 'extra/x', 'publish')).toBe(false) // principals are immutable
    expect(auth.refresh(user2)).toBe(user2)
    expect(principalOf(await auth.password('sensor-1', 'pw1'))).toBe(user2)

    await write(f => { f.users = f.users.filter((u: { name: string }) => u.name !== 'sensor-1') })
    expect(auth.refresh(user2)).toBeNull() // user removed
    expect(await auth.password('sensor-1', 'pw1')).toEqual({ ok: false, failure: 'invalid' }) // the verification cache went with the reload
    const newHash = await hashPassword('pw3', FAST)
    await write(f => { f.users[0].password = newHash })
    expect(auth.refresh(bob)).toBeNull() // password changed
    expect(principalOf(await auth.password('bob', 'pw3')).name).toBe('bob')
    await write(f => { delete f.anonymous })
    expect(auth.refresh(anon)).toBeNull()
    await write(f => { f.tokens = [] })
    expect(auth.refresh(tok)).toBeNull()
    expect(auth.token(token)).toEqual({ ok: false, failure: 'invalid' })
    expect(auth.refresh({ ...tok })).toBeNull() // not one of ours
    expect(changes).toBe(5)
  })

  it('keeps the old model when a reload finds a malformed file', async () => {
    const { auth, file, token } = await setup()
    const g = auth.generation
    writeFileSync(file, '{"users": [}')
    await expect(auth.reload()).rejects.toThrow(/not valid JSON at line 1/)
    expect(auth.generation).toBe(g)
    expect(auth.token(token).ok).toBe(true)
    writeFileSync(file, JSON.stringify({ roles: { x: [{ resource: 'topic', pattern: 'a', actions: ['pubish'] }] } }))
    await expect(auth.reload()).rejects.toThrow(AuthFileError)
    expect(principalOf(await auth.password('sensor-1', 'pw1')).name).toBe('sensor-1')
  })

  it('expires tokens: failure "expired", generation moves, listeners run, refresh revokes', async () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'))
    const { auth, token } = await setup(f => {
      f.tokens[0].expiresAt = '2030-01-01T00:01:00Z'
      f.tokens.push({ name: 'old', hash: hashToken('tetra_old'), roles: [], expiresAt: '2029-12-31' })
    }, clock)
    expect(auth.token('tetra_old')).toEqual({ ok: false, failure: 'expired' })
    expect(await auth.password('old', 'tetra_old')).toEqual({ ok: false, failure: 'expired' })
    expect(await auth.password('old', 'tetra_wrong')).toEqual({ ok: false, failure: 'invalid' }) // expiry only to the holder
    const p = principalOf(auth.token(token))
    expect(p.expiresAt).toBe(Date.parse('2030-01-01T00:01:00Z'))
    const g = auth.generation
    let changes = 0
    auth.onChange(() => { changes++ })
    clock.advance(59_000)
    expect(changes).toBe(0)
    expect(auth.refresh(p)).toBe(p)
    clock.advance(1_000)
    expect(changes).toBe(1)
    expect(auth.generation).toBe(g + 1)
    expect(auth.refresh(p)).toBeNull()
    expect(auth.token(token)).toEqual({ ok: false, failure: 'expired' })
  })

  it('runs every listener even when one throws, and logs it', async () => {
    const logs: string[] = []
    const tmp = tempDir('tetra-auth-')
    dirs.push(tmp.remove)
    const file = join(tmp.dir, 'a.json')
    writeFileSync(file, JSON.stringify({ users: [{ name: 'u', password: HASH, roles: ['nope'] }] }))
    const auth = await Auth.open({ file, watch: false, log: (level, message) => { logs.push(`${level}: ${message}`) } })
    opened.push(auth)
    expect(logs[0]).toMatch(/^warn: auth file .*users\[0\]\.roles\[0\]: role "nope" is not defined/)
    expect(auth.warnings).toHaveLength(1)
    let ran = false
    const remove = auth.onChange(() => { throw new Error('boom') })
    auth.onChange(() => { ran = true })
    writeFileSync(file, JSON.stringify({}))
    await auth.reload()
    expect(ran).toBe(true)
    expect(logs.some(l => l.startsWith('error: an auth change listener failed: boom'))).toBe(true)
    remove()
    await auth.reload() // unchanged bytes: nothing happens
    expect(logs.filter(l => l.includes('reloaded'))).toHaveLength(1)
  })

  it('without a file is open: everyone is allowed everything', async () => {
    const auth = await Auth.open({})
    expect(auth.enabled).toBe(false)
    const p = principalOf(auth.anonymous())
    expect(p.kind).toBe('open')
    expect(p.can('queue', 'x', 'admin') && p.canSubscribe('#') && p.canPrefix('store', '', 'read')).toBe(true)
    expect(principalOf(await auth.password('any', 'thing')).kind).toBe('open')
    expect(principalOf(auth.token('x')).kind).toBe('open')
    expect(auth.refresh(p)).toBe(p)
    await auth.reload()
    auth.close()
  })

  it('refuses to start on a missing or malformed file, naming it', async () => {
    await expect(Auth.open({ file: '/nonexistent/auth.json' })).rejects.toThrow(/^auth file \/nonexistent\/auth\.json: cannot be read/)
    const tmp = tempDir('tetra-auth-')
    dirs.push(tmp.remove)
    const file = join(tmp.dir, 'auth.json')
    writeFileSync(file, '{"roles": {"r": [{"resource": "topic", "pattern": "a/#/b", "actions": ["publish"]}]}}')
    await expect(Auth.open({ file })).rejects.toThrow(`auth file ${file}: roles.r[0].pattern: "a/#/b" is not a valid MQTT topic filter`)
  })
})

describe('README', () => {
  it('its example auth file is valid as written', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('<!-- security:auth-file -->'), readme.indexOf('<!-- /security:auth-file -->'))
    const example = /```json\n([\s\S]*?)\n```/.exec(section)
    expect(example).not.toBeNull()
    const { model, warnings } = parseAuthFile(example![1], 'README.md')
    expect(warnings).toEqual([])
    expect([...model.users.keys(), ...model.tokens.keys()]).toEqual(['sensor-1', 'billing', 'ci'])
    const p = new RulePrincipal({ name: 'billing', kind: 'token', roles: ['backend'], clientId: undefined, expiresAt: null }, model.roles.get('backend')!)
    expect(p.canSubscribe('#')).toBe(true)
    expect(p.can('topic', 'secret/x', 'subscribe')).toBe(false)
  })
})
