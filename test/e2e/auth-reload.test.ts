import { afterEach, describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, spawnBroker, tempDir, waitFor, type ChildBroker } from '../helpers.js'

/**
 * The auth file in the real process: a malformed file stops the start (exit 2, the place named), SIGHUP
 * reloads it, a malformed reload is logged and the previous file stays in force, and the process lives on.
 */

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const c of cleanups.splice(0)) await c() })

const GOOD = { roles: { r: [{ resource: 'topic', pattern: 'a/#', actions: ['publish'] }] }, anonymous: ['r'] }

interface LogLine { level: number, msg: string, [key: string]: unknown }
const logs = (broker: ChildBroker): LogLine[] => broker.output.flatMap(l => { try { return [JSON.parse(l) as LogLine] } catch { return [] } })

describe('auth file in the broker process', () => {
  it('refuses to start on a malformed file: exit 2 and a message naming the place', () => {
    const tmp = tempDir()
    cleanups.push(tmp.remove)
    const file = join(tmp.dir, 'auth.json')
    writeFileSync(file, JSON.stringify({ roles: { device: [GOOD.roles.r[0], { resource: 'topic', pattern: 'x', actions: ['pubish'] }] } }))
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), '--auth-file', file, '--data-dir', join(tmp.dir, 'data'), '--mqtt-port', '0', '--http-port', '0', '--log-level', 'silent'],
      { encoding: 'utf8', timeout: 30_000, cwd: ROOT })
    expect(r.status).toBe(2)
    expect(r.stderr).toBe(`tetra: invalid auth file: ${file}: roles.device[1].actions[0]: "pubish" is not an action of topic; use publish or subscribe\n`)
    const missing = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), '--auth-file', join(tmp.dir, 'none.json'), '--data-dir', join(tmp.dir, 'data'), '--log-level', 'silent'],
      { encoding: 'utf8', timeout: 30_000, cwd: ROOT })
    expect(missing.status).toBe(2)
    expect(missing.stderr).toMatch(/^tetra: invalid auth file: .*none\.json: cannot be read/)
  })

  it('reloads on SIGHUP; a malformed file is logged and the previous one stays in force', async () => {
    const tmp = tempDir()
    const file = join(tmp.dir, 'auth.json')
    writeFileSync(file, JSON.stringify(GOOD))
    const broker = await spawnBroker(['--data-dir', join(tmp.dir, 'data'), '--auth-file', file])
    cleanups.push(async () => {
      broker.child.kill('SIGTERM')
      await broker.exited
      tmp.remove()
    })
    expect(logs(broker).some(l => l.msg === 'auth file loaded' && l.file === file)).toBe(true)

    writeFileSync(file, '{"roles": {"r": [}')
    broker.child.kill('SIGHUP')
    await waitFor(() => logs(broker).some(l => /^reload failed, the previous auth file stays in force: auth file .*: not valid JSON at line 1, column 18/.test(l.msg)), 10_000, 'the failed reload logged')
    expect(broker.child.exitCode).toBeNull()

    writeFileSync(file, JSON.stringify({ ...GOOD, anonymous: [] }))
    broker.child.kill('SIGHUP')
    await waitFor(() => logs(broker).some(l => l.msg === 'reloaded' && typeof l.authGeneration === 'number' && l.authGeneration >= 2), 10_000, 'the reload logged')
    expect(logs(broker).some(l => l.msg === 'auth file reloaded' && l.component === 'auth')).toBe(true)
  })
})
