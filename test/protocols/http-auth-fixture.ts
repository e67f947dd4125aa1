import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hashPassword, hashToken, newToken } from '../../engines/auth/hash.js'
import type { ResourceKind } from '../../engines/auth/types.js'
import { openSse } from '../helpers.js'

/** Cheap scrypt parameters for tests (the file accepts ln from 1): a verification takes well under 1 ms. */
const TEST_SCRYPT = { ln: 4, r: 8, p: 1 }

export interface RuleSpec { resource: ResourceKind, pattern: string, actions: string[], effect?: 'allow' | 'deny' }
export interface AuthSpec {
  users?: Array<{ name: string, password: string, roles: string[] }>
  /** Tokens by name; their secrets are made here (or given) and returned; expiresAt in ms since the epoch. */
  tokens?: Array<{ name: string, roles: string[], token?: string, expiresAt?: number | null }>
  roles: Record<string, RuleSpec[]>
  anonymous?: string[]
}

export interface WrittenAuthFile {
  file: string
  /** The bearer token of each token name. */
  tokens: Record<string, string>
}

/** Writes an auth file of the issue's shape (hashes by the engine's own helpers), atomically by rename. */
export async function writeAuthFile (dir: string, spec: AuthSpec, name = 'auth.json'): Promise<WrittenAuthFile> {
  const tokens: Record<string, string> = {}
  const body = {
    users: await Promise.all((spec.users ?? []).map(async u => ({ name: u.name, password: await hashPassword(u.password, TEST_SCRYPT), roles: u.roles }))),
    tokens: (spec.tokens ?? []).map(t => {
      const secret = t.token ?? newToken()
      tokens[t.name] = secret
      return { name: t.name, hash: hashToken(secret), roles: t.roles, expiresAt: t.expiresAt == null ? null : new Date(t.expiresAt).toISOString() }
    }),
    roles: spec.roles,
    ...(spec.anonymous !== undefined ? { anonymous: spec.anonymous } : {})
  }
  const file = join(dir, name)
  writeFileSync(file + '.tmp', JSON.stringify(body, null, 2))
  renameSync(file + '.tmp', file)
  return { file, tokens }
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
export const basic = (name: string, password: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}` })

export interface SseClient {
  /** The answer's status and headers, once they arrive. */
  response: Promise<Response>
  events: Array<{ event?: string, data: string }>
  /** Resolves when the server ends the stream (or it is closed here). */
  ended: Promise<void>
  close: () => void
}

/** An SSE reader (test/helpers.ts's openSse) that also tells when the server ends the stream. */
export function sse (url: string, headers: Record<string, string> = {}): SseClient {
  const { opened, events, ended, close } = openSse(url, headers)
  return { response: opened, events, ended, close }
}

/** Resolves with `promise`, or rejects after `ms` naming what was awaited (a bound, not a timing assertion). */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms waiting for ${what}`)) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
