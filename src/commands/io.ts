import { promptHidden, readAllStdin } from './input.js'
import { CommandError } from './authfile.js'

/** What a command reads and writes, so it can run in a test without a terminal. */
export interface CommandIO {
  stdout (text: string): void
  stderr (text: string): void
  /** The new password: all of stdin, or asked twice on a terminal. */
  readPassword (): Promise<string>
}

export const processIO: CommandIO = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) },
  async readPassword () {
    if (process.stdin.isTTY !== true) return await readAllStdin()
    const first = await promptHidden('Password: ')
    const second = await promptHidden('Password again: ')
    if (first !== second) throw new CommandError('tetra passwd: the passwords differ; nothing was changed')
    return first
  }
}
