/**
 * A malformed auth file. The message names the file and the place in it, e.g.
 * `auth file /etc/tetra/auth.json: roles.device[1].actions[0]: "pubish" is not an action of topic; use publish or subscribe`.
 */
export class AuthFileError extends Error {
  readonly file: string
  /** The place in the file (`roles.device[1].actions[0]`), or '' for the file as a whole. */
  readonly where: string

  constructor (file: string, where: string, problem: string) {
    super(`auth file ${file}: ${where === '' ? '' : where + ': '}${problem}`)
    this.name = 'AuthFileError'
    this.file = file
    this.where = where
  }
}
