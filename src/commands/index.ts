import { CommandError } from './authfile.js'
import { processIO, type CommandIO } from './io.js'
import { passwd, PASSWD_USAGE } from './passwd.js'
import { token, TOKEN_USAGE } from './token.js'

/** The user commands of `tetra` besides serving: they edit the auth file and exit. */
const COMMANDS = { passwd, token } as const
export type CommandName = keyof typeof COMMANDS

export function isCommand (word: string | undefined): word is CommandName {
  return word === 'passwd' || word === 'token'
}

export const COMMANDS_HELP = [
  'Commands (they edit an auth file; the broker reloads it when it changes):',
  `  ${PASSWD_USAGE}`,
  '      Add a user or change its password (read from stdin, or asked on a terminal); salted scrypt hash.',
  '      Roles are kept unless --role is given.',
  `  ${TOKEN_USAGE}`,
  '      Make a new bearer token, print it once alone on stdout, store only its hash.'
].join('\n')

/** Runs a command; returns the exit status (0 ok, 1 refused, 2 bad usage). Errors are written to stderr. */
export async function runCommand (name: CommandName, args: string[], io: CommandIO = processIO): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(`usage: ${name === 'passwd' ? PASSWD_USAGE : TOKEN_USAGE}\n`)
    return 0
  }
  try {
    return await COMMANDS[name](args, io)
  } catch (err) {
    if (err instanceof CommandError) {
      io.stderr(err.message + '\n')
      return err.code
    }
    io.stderr(`tetra ${name}: ${(err as Error).message}\n`)
    return 1
  }
}
