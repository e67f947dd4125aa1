import { BlockList, isIP } from 'node:net'
import type { Config } from './config.js'

/**
 * Mosquitto 2's safe default: without an auth file the broker is open to anyone who reaches it, so it
 * only listens where nobody else can, on loopback, unless --allow-anonymous says the operator means it.
 */

const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/**
 * Whether binding `host` keeps every listener on loopback: 127.0.0.0/8, ::1 (also as an IPv4-mapped
 * ::ffff:127.x.y.z) and the name localhost. Any other name may resolve anywhere, so it is not loopback.
 */
export function isLoopbackHost (host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost' || h === 'localhost.') return true
  const family = isIP(h)
  if (family === 4) return loopback.check(h, 'ipv4')
  if (family === 6) return loopback.check(h, 'ipv6')
  return false
}

export type SafeDefaultsVerdict =
  | { start: false, message: string }
  | { start: true, warning?: string }

/** Whether the settings may start, and the warning to log when anonymous access is on. */
export function checkSafeDefaults (config: Pick<Config, 'host' | 'authFile' | 'allowAnonymous'>): SafeDefaultsVerdict {
  if (config.authFile !== '') return { start: true }
  if (isLoopbackHost(config.host)) {
    return { start: true, warning: `no --auth-file: anonymous clients may do everything, on loopback (${config.host}) only` }
  }
  if (config.allowAnonymous) {
    return { start: true, warning: `no --auth-file and --allow-anonymous: anyone who reaches ${config.host} may do everything (publish, subscribe, read and write every store key, queue and stream)` }
  }
  return {
    start: false,
    message: `--host ${config.host} is not a loopback address and no --auth-file is set: anyone on the network could do everything. ` +
      'Set --auth-file (users, tokens and rules; see `tetra passwd`), or --allow-anonymous to allow anonymous access there anyway, or bind --host 127.0.0.1.'
  }
}
