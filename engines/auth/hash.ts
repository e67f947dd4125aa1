import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

/**
 * Password hashes: salted scrypt in a PHC-like string, `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64 without
 * padding). ln=15, r=8 is N=32768: 32 MiB and about 0.1 s per verification, OWASP's scrypt minimum; the
 * auth engine caches a successful verification until the next reload so HTTP Basic does not pay it per request.
 *
 * Tokens: 32 random bytes, base64url, prefixed `tetra_` so a leaked one is recognisable (secret scanners);
 * stored as `sha256:<hex>`. A 256-bit random secret needs no slow hash, and a fast one lets a bearer token be
 * found by a synchronous Map lookup of its digest.
 */

export interface ScryptParams { ln: number, r: number, p: number }

export const DEFAULT_SCRYPT: ScryptParams = { ln: 15, r: 8, p: 1 }
/** Bounds accepted in a file: ln=20, r=8 is already 1 GiB per verification. */
const LIMITS = { ln: [1, 20], r: [1, 32], p: [1, 16] } as const
const SALT_BYTES = 16
const KEY_BYTES = 32
export const TOKEN_PREFIX = 'tetra_'

const PASSWORD_HASH = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{11,}={0,2})\$([A-Za-z0-9+/]{22,}={0,2})$/
const TOKEN_HASH = /^sha256:[0-9a-f]{64}$/

export interface ParsedPasswordHash { params: ScryptParams, salt: Buffer, key: Buffer }

/** The parts of a password hash, or a sentence saying what is wrong with it. */
export function parsePasswordHash (hash: string): ParsedPasswordHash | string {
  const m = PASSWORD_HASH.exec(hash)
  if (m === null) return 'is not a password hash written by tetra passwd ($scrypt$ln=N,r=N,p=N$<salt>$<hash>)'
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  for (const k of ['ln', 'r', 'p'] as const) {
    const [lo, hi] = LIMITS[k]
    if (params[k] < lo || params[k] > hi) return `has ${k}=${params[k]}; it must be ${lo} to ${hi}`
  }
  const salt = Buffer.from(m[4], 'base64')
  const key = Buffer.from(m[5], 'base64')
  if (salt.length < 8) return 'has a salt shorter than 8 bytes'
  if (key.length < 16) return 'has a hash shorter than 16 bytes'
  return { params, salt, key }
}

export function isTokenHash (hash: string): boolean { return TOKEN_HASH.test(hash) }

function scryptAsync (password: Buffer, salt: Buffer, keylen: number, { ln, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** ln
  // node refuses N*r*128 above maxmem (32 MiB by default, exactly ln=15,r=8): give it room
  const maxmem = 128 * N * r * (p + 1) + 1024 * 1024
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, { N, r, p, maxmem }, (err, key) => { if (err !== null) reject(err); else resolve(key) })
  })
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '')

/** A new salted hash of a password (async: scrypt runs on the thread pool, not the event loop). */
export async function hashPassword (password: string | Buffer, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await scryptAsync(Buffer.from(password), salt, KEY_BYTES, params)
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`
}

/** Whether the password matches the parsed hash, compared in constant time. */
export async function verifyPassword (password: string | Buffer, hash: ParsedPasswordHash): Promise<boolean> {
  const key = await scryptAsync(Buffer.from(password), hash.salt, hash.key.length, hash.params)
  return timingSafeEqual(key, hash.key)
}

/** A new bearer token: `tetra_` + 32 random bytes in base64url (43 characters). */
export function newToken (): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url')
}

/** The stored form of a token: `sha256:<hex>`. */
export function hashToken (token: string | Buffer): string {
  return 'sha256:' + createHash('sha256').update(token).digest('hex')
}

/** Constant-time equality of two strings of the same kind (different lengths are simply unequal). */
export function safeEqual (a: string, b: string): boolean {
  const ba = Buffer.from(a)
  const bb = Buffer.from(b)
  return ba.length === bb.length && timingSafeEqual(ba, bb)
}
