import { readFileSync } from 'node:fs'

/** Tetra's version from its package.json (found from src/ and from dist/src/), or 'unknown'. */
export function packageVersion (): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'tetra' && pkg.version !== undefined) return pkg.version
    } catch { /* try the next place */ }
  }
  return 'unknown'
}
