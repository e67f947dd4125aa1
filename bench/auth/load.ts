import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { Auth } from '../../engines/auth/auth.js'
import { hashPassword, hashToken, newToken } from '../../engines/auth/hash.js'
import type { Principal } from '../../engines/auth/types.js'
import { median } from '../lib/stats.js'
import { renderTable } from '../lib/table.js'
import type { BenchContext, BenchRow, Scenario } from '../lib/types.js'

/**
 * The auth engine in-process (issue 11: "an auth file of 1,000 users and 10,000 rules loads in under 1 s"):
 * generates such a file, times Auth.open() on it (read, JSON, validation of every hash and pattern), and
 * times Principal.can() per call, uncached (a new topic each call) and cached (topics already decided).
 * Runs alone with `npx tsx bench/auth/load.ts`, or as `npm run bench -- auth-file-load`.
 */

const USERS = 1000
const ROLES = 100
const RULES_PER_ROLE = 100
const TOKENS = 100
const LOAD_TARGET_MS = 1000

/** 100 roles of 100 rules: topic rules with %u and %c, deny rules inside them, store/queue/stream prefixes. */
function makeRoles (): Record<string, unknown[]> {
  const roles: Record<string, unknown[]> = {}
  for (let r = 0; r < ROLES; r++) {
    const rules: unknown[] = []
    for (let k = 0; k < RULES_PER_ROLE; k++) {
      switch (k % 10) {
        case 0: rules.push({ resource: 'topic', pattern: `site-${r}/sensors/%u/${k}/#`, actions: ['publish'] }); break
        case 1: rules.push({ resource: 'topic', pattern: `site-${r}/commands/%c/${k}/+`, actions: ['subscribe'] }); break
        case 2: rules.push({ resource: 'topic', pattern: `site-${r}/+/status/${k}`, actions: ['publish', 'subscribe'] }); break
        case 3: rules.push({ resource: 'topic', pattern: `site-${r}/secret/${k}/#`, actions: ['subscribe'], effect: 'deny' }); break
        case 4: rules.push({ resource: 'store', pattern: `cache/${r}/${k}/*`, actions: ['read', 'write'] }); break
        case 5: rules.push({ resource: 'queue', pattern: `jobs-${r}-${k}`, actions: ['push', 'receive'] }); break
        case 6: rules.push({ resource: 'stream', pattern: `events-${r}-${k}*`, actions: ['append', 'read'] }); break
        case 7: rules.push({ resource: 'store', pattern: `cache/${r}/${k}/private/*`, actions: ['read'], effect: 'deny' }); break
        case 8: rules.push({ resource: 'topic', pattern: `fleet/${r}/${k}/+/telemetry`, actions: ['subscribe'] }); break
        default: rules.push({ resource: 'system', pattern: 'metrics', actions: ['metrics'] })
      }
    }
    roles[`role-${r}`] = rules
  }
  return roles
}

export interface GeneratedAuthFile { file: string, users: number, rules: number, bytes: number, remove: () => void }

/** Writes the file. One real scrypt hash is copied to every user: loading checks a hash's form, not its password. */
export async function generateAuthFile (): Promise<GeneratedAuthFile> {
  const dir = mkdtempSync(join(tmpdir(), 'tetra-bench-auth-'))
  const file = join(dir, 'auth.json')
  const password = await hashPassword('bench-password')
  const users = Array.from({ length: USERS }, (_, i) => ({ name: `user-${i}`, password, roles: [`role-${i % ROLES}`, `role-${(i * 7 + 3) % ROLES}`, `role-${(i * 13 + 5) % ROLES}`] }))
  const tokens = Array.from({ length: TOKENS }, (_, i) => ({ name: `service-${i}`, hash: hashToken(newToken()), roles: [`role-${i % ROLES}`], expiresAt: i % 2 === 0 ? null : '2099-01-01T00:00:00Z' }))
  const text = JSON.stringify({ users, tokens, roles: makeRoles(), anonymous: ['role-0'] }, null, 2)
  writeFileSync(file, text)
  return { file, users: USERS, rules: ROLES * RULES_PER_ROLE, bytes: Buffer.byteLength(text), remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

/** Nanoseconds per call of fn over `calls` calls (after a warm-up of a tenth of them). */
function nsPerCall (calls: number, fn: (i: number) => void): number {
  for (let i = 0; i < calls / 10; i++) fn(i)
  const started = performance.now()
  for (let i = 0; i < calls; i++) fn(i)
  return (performance.now() - started) * 1e6 / calls
}

export async function measureAuthFileLoad (ctx: BenchContext): Promise<BenchRow[]> {
  const generated = await generateAuthFile()
  try {
    ctx.progress(`auth file: ${generated.users} users, ${generated.rules} rules, ${(generated.bytes / 1e6).toFixed(1)} MB`)
    const rounds = ctx.quick ? 3 : 7
    const loads: number[] = []
    let auth: Auth | undefined
    for (let i = 0; i < rounds; i++) {
      auth?.close()
      const started = performance.now()
      auth = await Auth.open({ file: generated.file, watch: false })
      loads.push(performance.now() - started)
    }
    const loadMs = median(loads)
    ctx.progress(`load: median ${loadMs.toFixed(0)} ms over ${rounds} (${loads.map(l => l.toFixed(0)).join(', ')})`)

    // a user with 3 roles = 300 rules; certificate() builds its principal without a password check
    const result = auth!.certificate('user-42', 'client-42')
    if (!result.ok) throw new Error('user-42 did not authenticate')
    const p: Principal = result.principal
    const calls = ctx.quick ? 20_000 : 100_000
    // uncached: each topic is new (the per-principal cache is cleared at 10,000 decisions, so it stays cold)
    const uncachedNs = nsPerCall(calls, i => { p.can('topic', `site-42/sensors/user-42/${i % 97}/x/${i}`, 'publish') })
    const hot = Array.from({ length: 100 }, (_, i) => `site-42/sensors/user-42/${i % 97}/x/${i}`)
    const cachedNs = nsPerCall(calls * 10, i => { p.can('topic', hot[i % 100], 'publish') })
    const subscribeNs = nsPerCall(calls / 10, i => { p.canSubscribe(`site-42/commands/client-42/${i % 100}/+`) })
    auth!.close()
    const allowed = hot.filter(t => p.can('topic', t, 'publish')).length
    return [
      {
        group: 'auth',
        scenario: `auth-file load (${generated.users} users, ${generated.rules} rules)`,
        target: 'engine (in-process)',
        p50Ms: loadMs,
        note: `median of ${rounds} loads, ${(generated.bytes / 1e6).toFixed(1)} MB; target < ${LOAD_TARGET_MS} ms: ${loadMs < LOAD_TARGET_MS ? 'met' : 'MISSED'}`
      },
      { group: 'auth', scenario: 'can() uncached, 300 rules', target: 'engine (in-process)', rate: 1e9 / uncachedNs, unit: 'calls', note: `${uncachedNs.toFixed(0)} ns/call` },
      { group: 'auth', scenario: 'can() cached', target: 'engine (in-process)', rate: 1e9 / cachedNs, unit: 'calls', note: `${cachedNs.toFixed(0)} ns/call; ${allowed}/100 sampled topics allowed` },
      { group: 'auth', scenario: 'canSubscribe(), 300 rules', target: 'engine (in-process)', rate: 1e9 / subscribeNs, unit: 'calls', note: `${subscribeNs.toFixed(0)} ns/call` }
    ]
  } finally {
    generated.remove()
  }
}

export const authFileLoadScenario: Scenario = { name: 'auth-file-load', group: 'auth', run: measureAuthFileLoad }

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ctx: BenchContext = { progress: m => { process.stderr.write(`auth-file-load: ${m}\n`) }, quick: process.argv.includes('--quick') }
  measureAuthFileLoad(ctx).then(rows => { process.stdout.write(renderTable(rows) + '\n') }, (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
