import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from '../lib/process.js'
import type { Credentials } from '../mqtt/client.js'

/**
 * The auth file the benchmarks run under: the realistic roles of a deployment (devices that publish under
 * their own name, a backend token that reads every sensor but not a quarantined or secret subtree, store
 * and queue prefixes), at the size the issue asks a file to load at (1,000 users, 10,000 rules: filler
 * users and roles nobody of the benchmark uses). Passwords and the token are written by the real
 * `tetra passwd` / `tetra token` commands (from dist/), so the file holds exactly what users' files hold.
 */

/** One rule of the auth file, as the issue spells it. */
interface Rule { resource: string, pattern: string, actions: string[], effect?: 'allow' | 'deny' }
interface UserEntry { name: string, password: string, roles: string[] }
interface AuthFileJson { users?: UserEntry[], tokens?: unknown[], roles?: Record<string, Rule[]>, anonymous?: string[] }

export interface BenchAuthSpec {
  /** Device users sensor-0 .. sensor-(n-1), role `device`. */
  devices: number
  /** Users nobody logs in as (their hash is a copy of a device's): the file's size. */
  fillerUsers: number
  /** Rules of filler roles (100 rules each) that no benchmark client has. */
  fillerRules: number
}

export interface BenchAuth {
  file: string
  devices: Credentials[]
  /** A user whose role `prober` gains `publish probe/<k>` at the k-th rewrite (the reload scenario). */
  prober: Credentials
  /** The `backend` token: MQTT username = its name, password = the token; HTTP `Authorization: Bearer`. */
  backend: Credentials
  /** Total users and rules in the file as written first. */
  users: number
  rules: number
  /**
   * Writes the k-th variant of the file (k >= 1) by rename, as editors and `tetra passwd` do: one more
   * filler user and a rule more in every role a connected client has (so their principals are rebuilt),
   * nothing any of them loses. Returns the topic the prober may publish to from then on.
   */
  rewrite: (k: number) => string
  cleanup: () => void
}

/** Store keys and the queue the HTTP load uses (the backend role's `cache/*` and `jobs-*`). */
export const KEY_PREFIX = 'cache/bench-'
export const QUEUE = 'jobs-bench'
export const DEVICE_PASSWORD = 'bench-device-password'
const CLI = (): string => join(ROOT, 'dist/src/cli.js')

/** The roles of the file; `%u` is the device's user name. */
export function benchRoles (k = 0): Record<string, Rule[]> {
  const extra = (pattern: string): Rule[] => k === 0 ? [] : [{ resource: 'topic', pattern, actions: ['subscribe'] }]
  return {
    device: [
      { resource: 'topic', pattern: 'sensors/%u/#', actions: ['publish'] },
      // a deny inside the device's own allowed subtree
      { resource: 'topic', pattern: 'sensors/%u/firmware/#', actions: ['publish'], effect: 'deny' },
      { resource: 'topic', pattern: 'commands/%u/#', actions: ['subscribe'] },
      { resource: 'topic', pattern: 'status/%c', actions: ['publish'] },
      { resource: 'store', pattern: 'devices/*', actions: ['read'] },
      ...extra(`commands/%u/reload-${k}`)
    ],
    backend: [
      { resource: 'store', pattern: 'cache/*', actions: ['read', 'write'] },
      { resource: 'queue', pattern: 'jobs-*', actions: ['push', 'receive', 'admin'] },
      { resource: 'stream', pattern: '*', actions: ['append', 'read', 'admin'] },
      { resource: 'topic', pattern: 'sensors/#', actions: ['subscribe'] },
      { resource: 'topic', pattern: 'probe/#', actions: ['subscribe'] },
      { resource: 'topic', pattern: 'commands/#', actions: ['publish'] },
      // denies inside an allowed wildcard: `sensors/+/in` then needs a check at every delivery
      { resource: 'topic', pattern: 'sensors/quarantine/#', actions: ['subscribe'], effect: 'deny' },
      { resource: 'topic', pattern: 'secret/#', actions: ['subscribe'], effect: 'deny' },
      { resource: 'store', pattern: 'cache/private/*', actions: ['read', 'write'], effect: 'deny' },
      { resource: 'system', pattern: '*', actions: ['metrics', 'dashboard'] },
      ...extra(`commands/reload-${k}/#`)
    ],
    prober: Array.from({ length: k }, (_, i) => ({ resource: 'topic', pattern: `probe/${i + 1}`, actions: ['publish'] })),
    ops: [
      { resource: 'system', pattern: '*', actions: ['metrics', 'dashboard'] },
      { resource: 'queue', pattern: '*', actions: ['admin'] },
      { resource: 'topic', pattern: '$SYS/#', actions: ['subscribe'] }
    ]
  }
}

/** Filler roles of 100 rules each, `total` rules in all: team-j's rules cover teams/j/... only. */
function fillerRoles (total: number): Record<string, Rule[]> {
  const roles: Record<string, Rule[]> = {}
  for (let r = 0; r * 100 < total; r++) {
    roles[`team-${r}`] = Array.from({ length: Math.min(100, total - r * 100) }, (_, i) => i % 10 === 9
      ? { resource: 'topic', pattern: `teams/${r}/zone-${i}/#`, actions: ['subscribe'], effect: 'deny' as const }
      : i % 3 === 0
        ? { resource: 'store', pattern: `teams/${r}/k${i}/*`, actions: ['read', 'write'] }
        : { resource: 'topic', pattern: `teams/${r}/zone-${i}/%u/#`, actions: ['publish', 'subscribe'] })
  }
  return roles
}

function cli (args: string[], input?: string): string {
  return execFileSync(process.execPath, [CLI(), ...args], { cwd: ROOT, input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 })
}

/** Writes JSON by rename, so a watcher never reads half a file. */
function writeAtomically (file: string, json: AuthFileJson): void {
  const tmp = `${file}.tmp`
  writeFileSync(tmp, JSON.stringify(json, null, 1))
  renameSync(tmp, file)
}

/**
 * Creates the bench auth file in a fresh temporary directory. `tetra passwd` hashes sensor-0's and the
 * prober's password and `tetra token` makes the backend token; the other devices and the filler users
 * get a copy of sensor-0's hash (a salted hash does not name its user, and scrypt once per user would
 * take minutes for 1,000 users).
 */
export function createBenchAuth (spec: BenchAuthSpec): BenchAuth {
  const dir = mkdtempSync(join(tmpdir(), 'tetra-bench-auth-'))
  const file = join(dir, 'auth.json')
  cli(['passwd', file, 'sensor-0', '--role', 'device'], DEVICE_PASSWORD + '\n')
  cli(['passwd', file, 'prober', '--role', 'prober'], DEVICE_PASSWORD + '\n')
  const token = cli(['token', file, 'backend-service', '--role', 'backend']).trim()
  if (!/^\S+$/.test(token)) throw new Error(`tetra token printed ${JSON.stringify(token)}, not one token`)
  const written = JSON.parse(readFileSync(file, 'utf8')) as AuthFileJson
  const users = written.users ?? []
  const sensor0 = users.find(u => u.name === 'sensor-0')
  if (sensor0 === undefined) throw new Error(`tetra passwd did not write sensor-0 to ${file}`)
  const devices = Array.from({ length: spec.devices }, (_, i) => ({ name: `sensor-${i}`, password: sensor0.password, roles: ['device'] }))
  const filler = fillerRoles(spec.fillerRules)
  const fillerNames = Object.keys(filler)
  const fillerUsers = (n: number): UserEntry[] => Array.from({ length: n }, (_, i) => ({ name: `member-${i}`, password: sensor0.password, roles: [fillerNames[i % fillerNames.length] ?? 'ops'] }))
  const fileFor = (k: number): AuthFileJson => ({
    ...written,
    users: [...users.filter(u => u.name !== 'sensor-0'), ...devices, ...fillerUsers(spec.fillerUsers + k)],
    roles: { ...benchRoles(k), ...filler }
  })
  const first = fileFor(0)
  writeAtomically(file, first)
  const ruleCount = Object.values(first.roles ?? {}).reduce((a, rs) => a + rs.length, 0)
  return {
    file,
    devices: devices.map(d => ({ username: d.name, password: DEVICE_PASSWORD })),
    prober: { username: 'prober', password: DEVICE_PASSWORD },
    backend: { username: 'backend-service', password: token },
    users: first.users?.length ?? 0,
    rules: ruleCount,
    rewrite: k => {
      writeAtomically(file, fileFor(k))
      return `probe/${k}`
    },
    cleanup: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
