import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { AuthFileError } from '../../engines/auth/errors.js'
import { parseAuthFile } from '../../engines/auth/file.js'

/**
 * Editing an auth file for `tetra passwd` and `tetra token`: read it as plain JSON (so every key stays in
 * its order and every other entry as it was), change one entry, check the result the way the broker will
 * load it, and write it back atomically (a new file renamed over the old one: the broker never reads half
 * a file, and its watcher sees the rename). A new file is created with mode 0600: it holds password hashes.
 */

/** A usage or data error of a command; `code` is the exit status (2 = bad usage). */
export class CommandError extends Error {
  readonly code: number
  constructor (message: string, code = 1) {
    super(message)
    this.name = 'CommandError'
    this.code = code
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

export interface EditableAuthFile {
  path: string
  /** The file's content; {} when it does not exist yet. */
  json: JsonObject
  existed: boolean
  /** The mode to write with: the file's own, or 0600 for a new one. */
  mode: number
}

export function readAuthFile (path: string): EditableAuthFile {
  let text: string
  let mode = 0o600
  try {
    text = readFileSync(path, 'utf8')
    mode = statSync(path).mode & 0o777
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { path, json: {}, existed: false, mode }
    throw new CommandError(`cannot read ${path}: ${(err as Error).message}`)
  }
  // the broker's own validation: a broken file is not edited further (that would hide the mistake)
  try {
    parseAuthFile(text, path)
  } catch (err) {
    if (err instanceof AuthFileError) throw new CommandError(`${err.message}\nfix the file first; it was not changed`)
    throw err
  }
  return { path, json: JSON.parse(text.replace(/^\uFEFF/, '')) as JsonObject, existed: true, mode }
}

/** Validates the edited content as the broker will and writes it atomically; returns the file's warnings. */
export function writeAuthFile (file: EditableAuthFile): string[] {
  const text = JSON.stringify(file.json, null, 2) + '\n'
  const { warnings } = parseAuthFile(text, file.path)
  const temp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.tmp`)
  try {
    const fd = openSync(temp, 'w', file.mode)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    chmodSync(temp, file.mode) // openSync's mode is filtered by the umask
    renameSync(temp, file.path)
  } catch (err) {
    try { unlinkSync(temp) } catch {}
    throw new CommandError(`cannot write ${file.path}: ${(err as Error).message}`)
  }
  return warnings
}

/** The entries of `users` or `tokens`, created when missing; refuses a section that is not an array. */
export function section (file: EditableAuthFile, key: 'users' | 'tokens'): JsonObject[] {
  const value = file.json[key]
  if (value === undefined) {
    const fresh: JsonObject[] = []
    file.json[key] = fresh
    return fresh
  }
  return value as JsonObject[] // the file passed validation: an array of objects
}

/** Role names referenced that the file does not define. */
export function undefinedRoles (file: EditableAuthFile, roles: string[]): string[] {
  const defined = file.json.roles
  return roles.filter(r => defined === undefined || defined === null || typeof defined !== 'object' || !Object.hasOwn(defined, r))
}

/** Parses `FILE NAME [--role R]... [--flag V]...`: the positionals, the roles, and the other flags asked for. */
export function parseArgs (command: string, args: string[], valueFlags: string[]): { positional: string[], roles: string[] | undefined, values: Map<string, string> } {
  const positional: string[] = []
  const values = new Map<string, string>()
  let roles: string[] | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') { positional.push(...args.slice(i + 1)); break }
    if (!arg.startsWith('--')) { positional.push(arg); continue }
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    if (flag !== '--role' && !valueFlags.includes(flag)) throw new CommandError(`tetra ${command}: unknown option ${flag}`, 2)
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1)
    if (value === undefined || value === '') throw new CommandError(`tetra ${command}: ${flag} needs a value`, 2)
    if (flag === '--role') (roles ??= []).push(value)
    else values.set(flag, value)
  }
  return { positional, roles, values }
}
