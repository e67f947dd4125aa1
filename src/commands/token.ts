import { hashToken, newToken } from '../../engines/auth/hash.js'
import { parseIsoDate } from '../../engines/auth/file.js'
import { CommandError, parseArgs, readAuthFile, section, undefinedRoles, writeAuthFile } from './authfile.js'
import type { CommandIO } from './io.js'

export const TOKEN_USAGE = 'tetra token FILE NAME [--role R]... [--expires 30d|12h|90m|2030-01-31T00:00:00Z]'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }

/** The expiry time in ms since the epoch of `30d`, `12h`, `90m`, `45s`, `2w` or an ISO 8601 date. */
export function parseExpires (text: string, now: number): number {
  const m = /^(\d+)([smhdw])$/.exec(text)
  const at = m !== null ? now + Number(m[1]) * UNITS[m[2]] : parseIsoDate(text)
  if (at === null || !Number.isFinite(at)) {
    throw new CommandError(`tetra token: --expires ${JSON.stringify(text)} is neither a duration (30d, 12h, 90m, 45s, 2w) nor an ISO 8601 date (2030-01-31 or 2030-01-31T12:00:00Z)`, 2)
  }
  if (at <= now) throw new CommandError(`tetra token: --expires ${text} is not in the future`, 2)
  return at
}

/**
 * `tetra token FILE NAME [--role R]... [--expires D]`: makes a new random bearer token, prints it once,
 * alone on standard output (so `TOKEN=$(tetra token ...)` captures it), and stores only its hash. An
 * existing token of that name is replaced (rotation): the old one stops working at the broker's reload;
 * its roles stay unless --role is given.
 */
export async function token (args: string[], io: CommandIO): Promise<number> {
  const { positional, roles, values } = parseArgs('token', args, ['--expires'])
  if (positional.length !== 2) throw new CommandError(`usage: ${TOKEN_USAGE}`, 2)
  const [path, name] = positional
  const expires = values.get('--expires')
  const expiresAt = expires === undefined ? null : parseExpires(expires, Date.now())
  const file = readAuthFile(path)
  const users = (file.json.users ?? []) as Array<{ name?: unknown }>
  if (users.some(u => u.name === name)) {
    throw new CommandError(`tetra token: ${JSON.stringify(name)} is the name of a user in ${path}; users and tokens share one namespace (an MQTT user name may be a token's name)`)
  }
  const secret = newToken()
  const tokens = section(file, 'tokens')
  const existing = tokens.find(t => t.name === name)
  const expiresIso = expiresAt === null ? null : new Date(expiresAt).toISOString()
  let finalRoles: string[]
  if (existing !== undefined) {
    existing.hash = hashToken(secret)
    if (roles !== undefined) existing.roles = roles
    existing.expiresAt = expiresIso
    finalRoles = (existing.roles ?? []) as string[]
  } else {
    finalRoles = roles ?? []
    tokens.push({ name, hash: hashToken(secret), roles: finalRoles, expiresAt: expiresIso })
  }
  for (const role of undefinedRoles(file, finalRoles)) {
    io.stderr(`tetra token: warning: role ${JSON.stringify(role)} is not defined in the roles of ${path}; it grants nothing until it is\n`)
  }
  writeAuthFile(file)
  io.stdout(secret + '\n')
  io.stderr(`tetra token: token ${JSON.stringify(name)} ${existing !== undefined ? 'replaced' : 'added'} in ${path}` +
    `${finalRoles.length > 0 ? ` (roles: ${finalRoles.join(', ')})` : ' (no roles: it may do nothing yet)'}` +
    `${expiresIso !== null ? `, expires ${expiresIso}` : ', does not expire'}; it is shown only this once\n`)
  return 0
}
