import { hashPassword } from '../../engines/auth/hash.js'
import { CommandError, parseArgs, readAuthFile, section, undefinedRoles, writeAuthFile } from './authfile.js'
import type { CommandIO } from './io.js'

export const PASSWD_USAGE = 'tetra passwd FILE USER [--role R]...'

/**
 * `tetra passwd FILE USER [--role R]...`: adds USER with a salted scrypt hash of the password read from
 * standard input (or asked twice on a terminal), or changes the password of an existing user, keeping its
 * roles unless --role is given. Like mosquitto_passwd, but the file keeps roles too.
 */
export async function passwd (args: string[], io: CommandIO): Promise<number> {
  const { positional, roles } = parseArgs('passwd', args, [])
  if (positional.length !== 2) throw new CommandError(`usage: ${PASSWD_USAGE}`, 2)
  const [path, name] = positional
  const file = readAuthFile(path)
  const tokens = (file.json.tokens ?? []) as Array<{ name?: unknown }>
  if (tokens.some(t => t.name === name)) {
    throw new CommandError(`tetra passwd: ${JSON.stringify(name)} is the name of a token in ${path}; users and tokens share one namespace (an MQTT user name may be a token's name)`)
  }
  const password = await io.readPassword()
  if (password === '') throw new CommandError('tetra passwd: the password is empty; nothing was changed')
  const hash = await hashPassword(password)
  const users = section(file, 'users')
  const existing = users.find(u => u.name === name)
  let finalRoles: string[]
  if (existing !== undefined) {
    existing.password = hash
    if (roles !== undefined) existing.roles = roles
    finalRoles = (existing.roles ?? []) as string[]
  } else {
    finalRoles = roles ?? []
    users.push({ name, password: hash, roles: finalRoles })
  }
  for (const role of undefinedRoles(file, finalRoles)) {
    io.stderr(`tetra passwd: warning: role ${JSON.stringify(role)} is not defined in the roles of ${path}; it grants nothing until it is\n`)
  }
  writeAuthFile(file)
  const what = existing !== undefined ? (roles !== undefined ? 'password and roles changed' : 'password changed') : 'added'
  io.stderr(`tetra passwd: user ${JSON.stringify(name)} ${what} in ${path}${finalRoles.length > 0 ? ` (roles: ${finalRoles.join(', ')})` : ' (no roles: it may do nothing yet)'}\n`)
  return 0
}
