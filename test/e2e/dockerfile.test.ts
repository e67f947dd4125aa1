import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SETTINGS } from '../../src/config.js'
import { V8_FLAGS } from '../../src/v8-flags.js'
import { tlsFixtures } from '../fixtures/tls.js'
import { ROOT, runCli, spawnBroker, startTestBroker, tempDir, type TestBroker } from '../helpers.js'

/**
 * The Dockerfile cannot be built here (no Docker engine), so it is read with a small parser of Dockerfile
 * instructions and checked for the parts the image promises (README "Run in production"): multi-stage, a
 * non-root user, the /data volume, 0.0.0.0 with the ports exposed, a HEALTHCHECK on /healthz, SIGTERM reaching
 * `node dist/src/cli.js` (exec form), production dependencies only in the final stage, a Node base image that
 * package.json's engines allows, env names that are real settings. Every check is also run on a table of
 * mutated copies of the Dockerfile, each of which must make that check fail.
 */

interface Instruction { keyword: string, args: string, line: number }
interface Stage { image: string, name?: string, instructions: Instruction[] }

/** Instructions of a Dockerfile: `\` continuations (comment lines inside them are dropped), comments, blank lines. */
export function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split(/\r?\n/)
  let buf: string | undefined
  let start = 0
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const trimmed = raw.trim()
    if (buf === undefined && (trimmed === '' || trimmed.startsWith('#'))) continue
    if (buf !== undefined && trimmed.startsWith('#')) continue
    if (buf === undefined) { buf = ''; start = i + 1 }
    if (trimmed.endsWith('\\')) {
      buf += trimmed.slice(0, -1) + ' '
      continue
    }
    buf += trimmed
    const m = /^(\S+)\s*(.*)$/s.exec(buf.trim())!
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start })
    buf = undefined
  }
  if (buf !== undefined && buf.trim() !== '') {
    const m = /^(\S+)\s*(.*)$/s.exec(buf.trim())!
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start })
  }
  return out
}

export function stages (instructions: Instruction[]): Stage[] {
  const out: Stage[] = []
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter(w => !w.startsWith('--'))
      const as = words.findIndex(w => w.toUpperCase() === 'AS')
      out.push({ image: words[0]!, ...(as >= 0 ? { name: words[as + 1] } : {}), instructions: [] })
    } else if (out.length > 0) {
      out[out.length - 1]!.instructions.push(ins)
    }
  }
  return out
}

/** Exec form (a JSON array of strings) or undefined for shell form. */
function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  try {
    const v: unknown = JSON.parse(args)
    return Array.isArray(v) && v.every(x => typeof x === 'string') ? v : undefined
  } catch { return undefined }
}

/** Words of a shell-like string, honouring single and double quotes. */
function words (s: string): string[] {
  const out: string[] = []
  for (const m of s.matchAll(/(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"']+)+/g)) {
    out.push(m[0].replace(/"((?:[^"\\]|\\.)*)"|'([^']*)'/g, (_all, dq?: string, sq?: string) => dq !== undefined ? dq.replace(/\\(.)/g, '$1') : sq!))
  }
  return out
}

/** ENV key=value pairs (and the legacy `ENV key value`). */
function envPairs (args: string): Array<[string, string]> {
  const w = words(args)
  if (w.length > 0 && !w[0]!.includes('=')) return [[w[0]!, w.slice(1).join(' ')]]
  return w.map(p => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)] as [string, string] })
}

/** Options (`--from=x`, `--chown=...`) and sources + destination of COPY/ADD. */
function copyParts (args: string): { from?: string, sources: string[], dest: string } {
  const exec = execForm(args)
  const all = exec ?? words(args)
  const opts = all.filter(w => w.startsWith('--'))
  const rest = all.filter(w => !w.startsWith('--'))
  const from = opts.find(o => o.startsWith('--from='))?.slice('--from='.length)
  return { ...(from !== undefined ? { from } : {}), sources: rest.slice(0, -1), dest: rest[rest.length - 1] ?? '' }
}

/** An `npm ci` / `npm install` of a RUN that would install dev dependencies. */
function installsDevDependencies (run: string): boolean {
  for (const cmd of run.split(/&&|;|\|\|/)) {
    const w = words(cmd.trim())
    if (w[0] !== 'npm' || !['ci', 'install', 'i', 'clean-install'].includes(w[1] ?? '')) continue
    const prodOnly = w.includes('--omit=dev') || w.includes('--production') || w.includes('--only=production') ||
      (w.includes('--omit') && w[w.indexOf('--omit') + 1] === 'dev')
    if (!prodOnly) return true
  }
  return false
}

function prunesDevDependencies (run: string): boolean {
  return run.split(/&&|;/).some(cmd => {
    const w = words(cmd.trim())
    return w[0] === 'npm' && w[1] === 'prune' && (w.includes('--omit=dev') || w.includes('--production'))
  })
}

/** Whether a stage's node_modules, as left at its end, holds dev dependencies (following COPY --from chains). */
function stageHasDevDependencies (all: Stage[], index: number, seen = new Set<number>()): boolean {
  if (seen.has(index)) return true
  seen.add(index)
  const stage = all[index]!
  let dev = false
  for (const ins of stage.instructions) {
    if (ins.keyword === 'RUN') {
      if (installsDevDependencies(ins.args)) dev = true
      if (prunesDevDependencies(ins.args)) dev = false
    }
    if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      const { from, sources } = copyParts(ins.args)
      const copiesModules = sources.some(s => /(^|\/)node_modules(\/|$)/.test(s) || s === '/app' || s === '.' || s === '/')
      if (from !== undefined && copiesModules) {
        const src = all.findIndex((s, i) => i < index && (s.name === from || String(i) === from))
        if (src < 0 || stageHasDevDependencies(all, src, seen)) dev = true
      }
    }
  }
  return dev
}

function minNodeMajor (engines: string): number {
  const m = />=\s*(\d+)(?:\.(\d+))?/.exec(engines)
  if (m === null) throw new Error(`cannot read engines.node ${engines}`)
  return Number(m[1])
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }, bin: Record<string, string> }
const SETTING_ENVS = new Set(SETTINGS.map(s => s.env))

type Check = (dockerfile: string, dockerignore: string) => string | undefined

/** Each check returns a problem, or undefined when the Dockerfile has that part. */
const CHECKS: Record<string, Check> = {
  'multi-stage': (d) => stages(parseDockerfile(d)).length >= 2 ? undefined : 'a single stage',
  'non-root user': (d) => {
    const user = final(d).instructions.filter(i => i.keyword === 'USER').pop()?.args.split(':')[0]
    return user === undefined || user === 'root' || user === '0' ? `final stage user: ${user ?? 'root (no USER)'}` : undefined
  },
  'healthcheck on /healthz': (d) => {
    const hc = final(d).instructions.filter(i => i.keyword === 'HEALTHCHECK').pop()
    if (hc === undefined) return 'no HEALTHCHECK'
    if (/^NONE$/i.test(hc.args)) return 'HEALTHCHECK NONE'
    const cmd = healthcheckCommand(hc.args)
    if (cmd === undefined) return 'HEALTHCHECK without CMD'
    if (!cmd.join(' ').includes('/healthz')) return 'HEALTHCHECK does not ask /healthz'
    if (!cmd.join(' ').includes('TETRA_HTTP_PORT')) return 'HEALTHCHECK ignores TETRA_HTTP_PORT'
    return undefined
  },
  'ports exposed': (d) => {
    const ports = new Set(final(d).instructions.filter(i => i.keyword === 'EXPOSE').flatMap(i => i.args.split(/\s+/)).map(p => p.replace(/\/tcp$/, '')))
    const missing = ['1883', '8883', '8080'].filter(p => !ports.has(p))
    return missing.length > 0 ? `not exposed: ${missing.join(' ')}` : undefined
  },
  'data volume': (d) => {
    const vols = final(d).instructions.filter(i => i.keyword === 'VOLUME').flatMap(i => execForm(i.args) ?? i.args.split(/\s+/))
    return vols.includes('/data') ? undefined : 'no VOLUME /data'
  },
  'data dir owned by the user': (d) => {
    const f = final(d)
    const user = f.instructions.filter(i => i.keyword === 'USER').pop()?.args.split(':')[0] ?? 'root'
    const owned = f.instructions.some(i => i.keyword === 'RUN' && new RegExp(`chown\\s+(-R\\s+)?${user}(:\\S+)?\\s+(\\S+\\s+)*/data(\\s|$)`).test(i.args))
    return owned ? undefined : `/data is not chowned to ${user}`
  },
  'env: 0.0.0.0 and /data': (d) => {
    const env = finalEnv(d)
    if (env.get('TETRA_HOST') !== '0.0.0.0') return `TETRA_HOST=${env.get('TETRA_HOST')}`
    if (env.get('TETRA_DATA_DIR') !== '/data') return `TETRA_DATA_DIR=${env.get('TETRA_DATA_DIR')}`
    return undefined
  },
  'env names are settings': (d) => {
    const unknown = stages(parseDockerfile(d)).flatMap(s => s.instructions).filter(i => i.keyword === 'ENV')
      .flatMap(i => envPairs(i.args)).map(([k]) => k).filter(k => k.startsWith('TETRA_') && !SETTING_ENVS.has(k))
    return unknown.length > 0 ? `not a setting: ${unknown.join(' ')}` : undefined
  },
  'V8 flag in NODE_OPTIONS': (d) => {
    const v = finalEnv(d).get('NODE_OPTIONS') ?? ''
    return V8_FLAGS.every(f => v.split(/\s+/).includes(f)) ? undefined : `NODE_OPTIONS=${v} lacks ${V8_FLAGS.join(' ')}`
  },
  'no anonymous default': (d) => {
    const v = finalEnv(d).get('TETRA_ALLOW_ANONYMOUS')
    return v !== undefined && v !== 'false' ? `TETRA_ALLOW_ANONYMOUS=${v}` : undefined
  },
  'entry: exec form node dist/src/cli.js': (d) => {
    const f = final(d)
    const ep = f.instructions.filter(i => i.keyword === 'ENTRYPOINT').pop()
    const cmd = f.instructions.filter(i => i.keyword === 'CMD').pop()
    const epArgs = ep === undefined ? [] : execForm(ep.args)
    const cmdArgs = cmd === undefined ? [] : execForm(cmd.args)
    if (epArgs === undefined || cmdArgs === undefined) return 'shell form entry (SIGTERM would go to /bin/sh)'
    const argv = [...epArgs, ...cmdArgs]
    if (argv[0] !== 'node' || argv[argv.length - 1] !== pkg.bin.tetra || argv.length !== 2) return `entry runs ${JSON.stringify(argv)}`
    const workdir = f.instructions.filter(i => i.keyword === 'WORKDIR').pop()?.args
    const distCopied = f.instructions.some(i => i.keyword === 'COPY' && copyParts(i.args).sources.some(s => /(^|\/)dist\/?$/.test(s)) &&
      (copyParts(i.args).dest.replace(/\/$/, '') === './dist' || copyParts(i.args).dest.replace(/\/$/, '') === `${workdir}/dist`))
    return workdir !== undefined && distCopied ? undefined : 'dist/ is not in the WORKDIR the entry runs from'
  },
  'the broker\'s files are in the final stage': (d) => {
    const copied = final(d).instructions.filter(i => i.keyword === 'COPY').flatMap(i => copyParts(i.args).sources.map(src => src.replace(/^\/app\//, '').replace(/\/$/, '')))
    const missing = ['dist', 'web', 'package.json', 'LICENSE'].filter(f => !copied.includes(f))
    return missing.length > 0 ? `not copied: ${missing.join(' ')}` : undefined
  },
  'stop signal SIGTERM': (d) => {
    const s = final(d).instructions.filter(i => i.keyword === 'STOPSIGNAL').pop()?.args
    return s === undefined || s === 'SIGTERM' || s === '15' ? undefined : `STOPSIGNAL ${s}`
  },
  'production dependencies only': (d) => {
    const all = stages(parseDockerfile(d))
    if (all.length === 0) return 'no stage'
    const last = all.length - 1
    return stageHasDevDependencies(all, last) ? 'the final stage has dev dependencies' : undefined
  },
  'node_modules installed in the final stage': (d) => {
    const f = final(d)
    const has = f.instructions.some(i => (i.keyword === 'COPY' && copyParts(i.args).from !== undefined && copyParts(i.args).sources.some(s => s.includes('node_modules'))) ||
      (i.keyword === 'RUN' && /npm (ci|install)/.test(i.args)))
    return has ? undefined : 'the final stage has no node_modules'
  },
  'node version meets engines': (d) => {
    const min = minNodeMajor(pkg.engines.node)
    for (const s of stages(parseDockerfile(d))) {
      const m = /^(?:docker\.io\/)?(?:library\/)?node:(\d+)(?:[.-]|$)/.exec(s.image)
      if (m === null) return `base image ${s.image} has no Node major version tag`
      // a major above the minimum's major satisfies >=X.Y; the minimum's own major must be a current
      // release line (its latest minor is above the minimum: node:20 is 20.19+, engines says >=20.10)
      if (Number(m[1]) < min) return `base image ${s.image} below engines ${pkg.engines.node}`
      if (Number(m[1]) % 2 === 1) return `base image ${s.image} is not an LTS line`
    }
    return undefined
  },
  'copied files exist and are in the context': (d, ignore) => {
    const ignored = ignore.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    for (const s of stages(parseDockerfile(d))) {
      for (const i of s.instructions) {
        if (i.keyword !== 'COPY') continue
        const { from, sources } = copyParts(i.args)
        if (from !== undefined) continue
        for (const src of sources) {
          if (src === '.') continue
          if (!existsSync(join(ROOT, src))) return `COPY ${src}: not in the repository`
          if (ignored.some(p => p === src || p === `${src}/` || src.startsWith(`${p}/`))) return `COPY ${src}: excluded by .dockerignore`
        }
      }
    }
    return undefined
  },
  'dockerignore: node_modules, dist, data': (_d, ignore) => {
    const lines = new Set(ignore.split(/\r?\n/).map(l => l.trim().replace(/^\/|\/$/g, '')))
    const missing = ['node_modules', 'dist', 'data', '.git'].filter(p => !lines.has(p))
    return missing.length > 0 ? `.dockerignore does not exclude ${missing.join(' ')}` : undefined
  }
}

function final (d: string): Stage {
  const all = stages(parseDockerfile(d))
  return all[all.length - 1] ?? { image: '', instructions: [] }
}

function finalEnv (d: string): Map<string, string> {
  return new Map(final(d).instructions.filter(i => i.keyword === 'ENV').flatMap(i => envPairs(i.args)))
}

/** HEALTHCHECK [options] CMD <command>: the command as argv (exec form) or as `sh -c`. */
function healthcheckCommand (args: string): string[] | undefined {
  const m = /(?:^|\s)CMD\s+(.*)$/s.exec(args)
  if (m === null) return undefined
  return execForm(m[1]!.trim()) ?? ['/bin/sh', '-c', m[1]!.trim()]
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')

function problems (d: string, ignore: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, check] of Object.entries(CHECKS)) {
    const p = check(d, ignore)
    if (p !== undefined) out[name] = p
  }
  return out
}

/** Lines of the Dockerfile without the ones matching re (a whole instruction, continuations included). */
function dropInstruction (d: string, re: RegExp): string {
  const lines = d.split('\n')
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    if (re.test(lines[i]!)) {
      while (lines[i]!.trimEnd().endsWith('\\') && i + 1 < lines.length) i++
      continue
    }
    out.push(lines[i]!)
  }
  return out.join('\n')
}

/** A mutated copy of the Dockerfile (or .dockerignore) and the check it must make fail. */
const MUTATIONS: Array<{ what: string, check: string, dockerfile?: (d: string) => string, dockerignore?: (i: string) => string }> = [
  { what: 'one stage only', check: 'multi-stage', dockerfile: d => d.slice(d.lastIndexOf('\nFROM ') + 1).replace(/COPY --from=\S+ /g, 'COPY ') },
  { what: 'no USER', check: 'non-root user', dockerfile: d => dropInstruction(d, /^USER /) },
  { what: 'USER root', check: 'non-root user', dockerfile: d => d.replace(/^USER .*$/m, 'USER root') },
  { what: 'USER 0:0', check: 'non-root user', dockerfile: d => d.replace(/^USER .*$/m, 'USER 0:0') },
  { what: 'no HEALTHCHECK', check: 'healthcheck on /healthz', dockerfile: d => dropInstruction(d, /^HEALTHCHECK /) },
  { what: 'HEALTHCHECK NONE', check: 'healthcheck on /healthz', dockerfile: d => dropInstruction(d, /^HEALTHCHECK /) + '\nHEALTHCHECK NONE\n' },
  { what: 'HEALTHCHECK on /readyz', check: 'healthcheck on /healthz', dockerfile: d => d.replace(/\/healthz'/g, "/readyz'") },
  { what: 'HEALTHCHECK on a fixed port', check: 'healthcheck on /healthz', dockerfile: d => d.replace(/process\.env\.TETRA_HTTP_PORT \|\| 8080/, '8080') },
  { what: 'no 8883', check: 'ports exposed', dockerfile: d => d.replace(/^EXPOSE 1883 8883 8080$/m, 'EXPOSE 1883 8080') },
  { what: 'no EXPOSE', check: 'ports exposed', dockerfile: d => dropInstruction(d, /^EXPOSE /) },
  { what: 'no VOLUME', check: 'data volume', dockerfile: d => dropInstruction(d, /^VOLUME /) },
  { what: 'VOLUME elsewhere', check: 'data volume', dockerfile: d => d.replace(/^VOLUME .*$/m, 'VOLUME ["/var/lib/tetra"]') },
  { what: 'no chown of /data', check: 'data dir owned by the user', dockerfile: d => d.replace(/ && chown node:node \/data/, '') },
  { what: 'TETRA_HOST loopback', check: 'env: 0.0.0.0 and /data', dockerfile: d => d.replace('TETRA_HOST=0.0.0.0', 'TETRA_HOST=127.0.0.1') },
  { what: 'no TETRA_DATA_DIR', check: 'env: 0.0.0.0 and /data', dockerfile: d => d.replace(/^\s*TETRA_DATA_DIR=\/data \\\n/m, '') },
  { what: 'a misspelt setting', check: 'env names are settings', dockerfile: d => d.replace('TETRA_MQTTS_PORT=', 'TETRA_MQTT_TLS_PORT=') },
  { what: 'no NODE_OPTIONS', check: 'V8 flag in NODE_OPTIONS', dockerfile: d => dropInstruction(d, /^ENV NODE_OPTIONS=/) },
  { what: 'anonymous by default', check: 'no anonymous default', dockerfile: d => d.replace('ENV TETRA_HOST=0.0.0.0 \\', 'ENV TETRA_HOST=0.0.0.0 TETRA_ALLOW_ANONYMOUS=true \\') },
  { what: 'shell-form CMD', check: 'entry: exec form node dist/src/cli.js', dockerfile: d => d.replace(/^CMD .*$/m, 'CMD node dist/src/cli.js') },
  { what: 'npm start', check: 'entry: exec form node dist/src/cli.js', dockerfile: d => d.replace(/^CMD .*$/m, 'CMD ["npm", "start"]') },
  { what: 'shell-form ENTRYPOINT', check: 'entry: exec form node dist/src/cli.js', dockerfile: d => d.replace(/^CMD .*$/m, 'ENTRYPOINT node dist/src/cli.js') },
  { what: 'tsx on the sources', check: 'entry: exec form node dist/src/cli.js', dockerfile: d => d.replace(/^CMD .*$/m, 'CMD ["npx", "tsx", "src/cli.ts"]') },
  { what: 'dist elsewhere', check: 'entry: exec form node dist/src/cli.js', dockerfile: d => d.replace('COPY --from=build /app/dist ./dist', 'COPY --from=build /app/dist /opt/dist') },
  { what: 'no dashboard', check: 'the broker\'s files are in the final stage', dockerfile: d => dropInstruction(d, /^COPY --from=build \/app\/web /) },
  { what: 'no LICENSE', check: 'the broker\'s files are in the final stage', dockerfile: d => d.replace('COPY package.json LICENSE ./', 'COPY package.json ./') },
  { what: 'STOPSIGNAL SIGKILL', check: 'stop signal SIGTERM', dockerfile: d => d.replace(/^STOPSIGNAL .*$/m, 'STOPSIGNAL SIGKILL') },
  { what: 'deps stage installs dev dependencies', check: 'production dependencies only', dockerfile: d => d.replace('npm ci --omit=dev', 'npm ci') },
  { what: 'node_modules from the build stage', check: 'production dependencies only', dockerfile: d => d.replace('COPY --from=deps /app/node_modules', 'COPY --from=build /app/node_modules') },
  { what: 'npm install in the final stage', check: 'production dependencies only', dockerfile: d => d.replace('COPY package.json LICENSE ./', 'COPY package.json LICENSE ./\nRUN npm install --no-audit') },
  { what: 'no node_modules in the final stage', check: 'node_modules installed in the final stage', dockerfile: d => dropInstruction(d, /^COPY --from=deps /) },
  { what: 'Node 18', check: 'node version meets engines', dockerfile: d => d.replace(/node:20-bookworm-slim/g, 'node:18-bookworm-slim') },
  { what: 'Node 21 (not LTS)', check: 'node version meets engines', dockerfile: d => d.replace(/node:20-bookworm-slim/g, 'node:21-bookworm-slim') },
  { what: 'node:latest', check: 'node version meets engines', dockerfile: d => d.replace(/node:20-bookworm-slim/, 'node:latest') },
  { what: 'COPY of a missing file', check: 'copied files exist and are in the context', dockerfile: d => d.replace('COPY package.json LICENSE ./', 'COPY package.json LICENSE NOTICE ./') },
  { what: 'COPY of an ignored path', check: 'copied files exist and are in the context', dockerfile: d => d.replace('COPY package.json LICENSE ./', 'COPY package.json LICENSE ./\nCOPY test ./test') },
  { what: 'node_modules in the context', check: 'dockerignore: node_modules, dist, data', dockerignore: i => i.replace(/^node_modules$/m, '') },
  { what: 'dist in the context', check: 'dockerignore: node_modules, dist, data', dockerignore: i => i.replace(/^dist$/m, '') },
  { what: 'data in the context', check: 'dockerignore: node_modules, dist, data', dockerignore: i => i.replace(/^data$/m, '') }
]

/** Runs the Dockerfile's HEALTHCHECK command with `env` (and PATH); resolves with its exit code. */
function runHealthcheck (env: NodeJS.ProcessEnv): Promise<number | null> {
  const hc = final(dockerfile).instructions.filter(i => i.keyword === 'HEALTHCHECK').pop()!
  const argv = healthcheckCommand(hc.args)!
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
    child.on('error', reject)
    child.on('exit', code => { clearTimeout(timer); resolve(code) })
  })
}

describe('Dockerfile parser', () => {
  it('joins continuation lines, drops comments, splits stages by FROM ... AS', () => {
    const ins = parseDockerfile('# syntax=docker/dockerfile:1\nFROM node:20 AS build\nRUN a \\\n  # inside\n  && b\n\nFROM --platform=linux/amd64 node:20-slim\nENV A=1 \\\n    B="two words"\nCMD ["node", "x.js"]\n')
    expect(ins.map(i => i.keyword)).toEqual(['FROM', 'RUN', 'FROM', 'ENV', 'CMD'])
    expect(ins[1]!.args).toBe('a  && b')
    const s = stages(ins)
    expect(s.map(x => [x.image, x.name])).toEqual([['node:20', 'build'], ['node:20-slim', undefined]])
    expect(envPairs(s[1]!.instructions[0]!.args)).toEqual([['A', '1'], ['B', 'two words']])
    expect(execForm(s[1]!.instructions[1]!.args)).toEqual(['node', 'x.js'])
  })
})

describe('Dockerfile', () => {
  it('has every part the image promises', () => {
    expect(problems(dockerfile, dockerignore)).toEqual({})
  })

  for (const m of MUTATIONS) {
    it(`a check fails when the Dockerfile is broken: ${m.what} -> ${m.check}`, () => {
      expect(CHECKS[m.check], m.check).toBeDefined()
      const d = m.dockerfile?.(dockerfile) ?? dockerfile
      const i = m.dockerignore?.(dockerignore) ?? dockerignore
      expect(d !== dockerfile || i !== dockerignore, 'the mutation changed nothing').toBe(true)
      expect(problems(d, i)[m.check]).toBeDefined()
    })
  }

  it('every check has a mutation that makes it fail', () => {
    const covered = new Set(MUTATIONS.map(m => m.check))
    expect(Object.keys(CHECKS).filter(c => !covered.has(c))).toEqual([])
  })

  it('runs `node dist/src/cli.js`, the bin the package tests start', () => {
    expect(pkg.bin.tetra).toBe('dist/src/cli.js')
  })
})

describe('the HEALTHCHECK command', () => {
  let broker: TestBroker
  beforeAll(async () => { broker = await startTestBroker() })
  afterAll(async () => { await broker.stop() })

  const run = runHealthcheck

  async function closedPort (): Promise<number> {
    const srv = createServer()
    await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
    const port = (srv.address() as { port: number }).port
    await new Promise<void>(resolve => srv.close(() => { resolve() }))
    return port
  }

  it('succeeds against a running broker on TETRA_HTTP_PORT', async () => {
    expect(await run({ TETRA_HTTP_PORT: String(broker.httpAddress.port) })).toBe(0)
  })

  it('fails when nothing answers on TETRA_HTTP_PORT', async () => {
    expect(await run({ TETRA_HTTP_PORT: String(await closedPort()) })).not.toBe(0)
  })

  it('fails on a port that answers /healthz with an error', async () => {
    // the broker's MQTT port speaks no HTTP: the request errors
    expect(await run({ TETRA_HTTP_PORT: String(broker.mqtt.port) })).not.toBe(0)
  })
})

describe('the HEALTHCHECK command with TLS on (HTTPS on the HTTP port, client certificates asked for)', () => {
  let fx: ReturnType<typeof tlsFixtures>
  let broker: TestBroker
  beforeAll(async () => {
    fx = tlsFixtures()
    const server = fx.ca.server()
    broker = await startTestBroker({ tlsCert: server.cert, tlsKey: server.key, tlsCa: fx.ca.files.cert, mqttsPort: 0 })
  })
  afterAll(async () => {
    await broker.stop()
    fx.remove()
  })

  it('asks over HTTPS when TETRA_TLS_CERT is set, and succeeds', async () => {
    const port = String(broker.httpAddress.port)
    expect(await runHealthcheck({ TETRA_HTTP_PORT: port, TETRA_TLS_CERT: broker.config.tlsCert })).toBe(0)
    // plain HTTP to the HTTPS port fails: the TLS branch is what makes it pass
    expect(await runHealthcheck({ TETRA_HTTP_PORT: port })).not.toBe(0)
  })
})

describe('the broker started with the image\'s environment', () => {
  // the final stage's ENV, on ephemeral ports (command-line flags win over env) and a temp data dir
  const imageEnv = Object.fromEntries(finalEnv(dockerfile))

  it('refuses to start on 0.0.0.0 without an auth file (exit 2): the container needs TETRA_AUTH_FILE', async () => {
    const tmp = tempDir()
    try {
      const res = await runCli(['--data-dir', join(tmp.dir, 'data')], imageEnv)
      expect(res.code).toBe(2)
    } finally { tmp.remove() }
  })

  it('with TETRA_ALLOW_ANONYMOUS=true: listens, passes the HEALTHCHECK, drains on SIGTERM', async () => {
    const tmp = tempDir()
    try {
      const broker = await spawnBroker(['--data-dir', join(tmp.dir, 'data')], { ...imageEnv, TETRA_ALLOW_ANONYMOUS: 'true' })
      try {
        const res = await fetch(`${broker.url}/readyz`)
        expect(res.status).toBe(200)
        expect(await runHealthcheck({ ...imageEnv, TETRA_HTTP_PORT: String(broker.httpPort) })).toBe(0)
      } finally {
        broker.child.kill('SIGTERM')
      }
      expect(await broker.exited).toBe(0)
    } finally { tmp.remove() }
  })
})

describe('README "Container image"', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('<!-- production:image -->')
  const section = readme.slice(start, readme.indexOf('<!-- /production:image -->'))

  it('names only real settings, and the image\'s own env values', () => {
    expect(start).toBeGreaterThanOrEqual(0)
    const names = [...section.matchAll(/\bTETRA_[A-Z_]+/g)].map(m => m[0])
    expect(names.filter(n => !SETTING_ENVS.has(n))).toEqual([])
    for (const [k, v] of finalEnv(dockerfile)) expect(section, `README states ${k}=${v}`).toContain(`${k}=${v}`)
  })

  it('builds and runs the image with the Dockerfile\'s command', () => {
    expect(section).toContain('docker build -t tetra .')
    expect(section).toContain('-v tetra-data:/data')
    expect(section).toContain(`\`${execForm(final(dockerfile).instructions.filter(i => i.keyword === 'CMD').pop()!.args)!.join(' ')}\``)
  })
})
