import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, startTestBroker, waitFor, type TestBroker } from '../helpers.js'
import { Tetra } from '../../src/client/index.js'

let broker: TestBroker
let tetra: Tetra

interface Run { code: number | string, stdout: string, stderr: string, lines: () => unknown[] }

/** `tetra ARGS` as a child process (stdout piped: JSON lines), with stdin text; bounded. */
async function tetraCli (args: string[], options: { stdin?: string, env?: NodeJS.ProcessEnv, onStdout?: (text: string) => void } = {}): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, TETRA_URL: broker.url, TETRA_TOKEN: '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); options.onStdout?.(stdout) })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdin.end(options.stdin ?? '')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  const code = await new Promise<number | string>(resolve => { child.on('exit', (c, signal) => { resolve(c ?? signal ?? 'unknown') }) })
  clearTimeout(timer)
  return { code, stdout, stderr, lines: () => stdout.trim().split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown) }
}

beforeAll(async () => {
  broker = await startTestBroker()
  tetra = new Tetra({ url: broker.url })
})
afterAll(async () => { await broker?.stop() })

describe('tetra CLI: store commands', () => {
  it('set, get, incr, keys, del with JSON lines when piped; exit 1 when missing', async () => {
    let r = await tetraCli(['set', 'cli/a', '{"n":1}', '--ttl', '100'])
    expect(r.code).toBe(0)
    expect(r.lines()[0]).toMatchObject({ key: 'cli/a', etag: expect.stringMatching(/^"\d+"$/) })
    r = await tetraCli(['get', 'cli/a'])
    expect(r.code).toBe(0)
    expect(r.lines()[0]).toMatchObject({ key: 'cli/a', value: { n: 1 }, contentType: 'application/json' })
    r = await tetraCli(['set', 'cli/a', 'x', '--nx'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/exists/)
    r = await tetraCli(['set', 'cli/bin', '-'], { stdin: 'raw\u0000bytes' })
    expect(r.code).toBe(0)
    expect(await tetra.store.get('cli/bin')).toEqual(new Uint8Array(Buffer.from('raw\u0000bytes')))
    r = await tetraCli(['incr', 'cli/n', '--by', '5'])
    expect(r.lines()[0]).toEqual({ key: 'cli/n', value: 5 })
    r = await tetraCli(['keys', 'cli/'])
    expect(r.lines().map(l => (l as { key: string }).key)).toEqual(['cli/a', 'cli/bin', 'cli/n'])
    r = await tetraCli(['del', 'cli/a'])
    expect(r.code).toBe(0)
    r = await tetraCli(['del', 'cli/a'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/not found/)
    r = await tetraCli(['get', 'cli/a'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/tetra get: key "cli\/a" not found/)
  })

  it('an error answer: its detail on stderr and exit 1; bad usage exits 2 with the usage', async () => {
    let r = await tetraCli(['set', 'cli/x', '1', '--ttl', '-5'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/tetra set: .*ttl.*\(400 Bad Request\)/)
    r = await tetraCli(['incr'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/usage: tetra incr KEY/)
    r = await tetraCli(['get', 'k', '--bogus'])
    expect(r.code).toBe(2)
    r = await tetraCli(['get', 'k'], { env: { TETRA_URL: 'http://127.0.0.1:1' } })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot reach/)
  })

  it('--help of every command shows its usage and an example', async () => {
    for (const command of ['pub', 'sub', 'get', 'set', 'del', 'incr', 'keys', 'push', 'pop', 'dlq', 'append', 'read', 'tail', 'stats']) {
      const r = await tetraCli([command, '--help'])
      expect(r.code, command).toBe(0)
      expect(r.stdout, command).toMatch(new RegExp(`usage: tetra ${command}`))
      expect(r.stdout, command).toMatch(/example:\n {2}.*tetra /)
    }
  }, 120_000)
})

describe('tetra CLI: pub/sub, queues, streams, stats', () => {
  it('pub reaches sub; sub --count exits; tail FILTER follows a topic', async () => {
    let subOut = ''
    const sub = tetraCli(['sub', 'cli/+/t', '--count', '2'], { onStdout: text => { subOut = text } })
    const tail = tetraCli(['tail', 'cli/+/t', '--count', '1'])
    // the subscriber is ready once a message comes back: publish until then (bounded)
    for (let i = 0; i < 100 && subOut === ''; i++) {
      const r = await tetraCli(['pub', 'cli/a/t', 'hello', '-q', '1'])
      expect(r.code).toBe(0)
    }
    await tetraCli(['pub', 'cli/b/t', '{"x":1}', '-r', '--user-property', 'k=v'])
    const s = await sub
    expect(s.code).toBe(0)
    const got = s.lines() as Array<{ topic: string, payload: unknown }>
    expect(got).toHaveLength(2)
    expect(got[0]).toMatchObject({ topic: 'cli/a/t', payload: 'hello' })
    await tetraCli(['pub', 'cli/c/t', 'more'])
    const t = await tail
    expect(t.code).toBe(0)
    expect(t.lines()).toHaveLength(1)
  }, 120_000)

  it('push - batches stdin lines; pop --ack; dlq and --redrive', async () => {
    const lines = Array.from({ length: 2500 }, (_, i) => String(i)).join('\n') + '\n'
    let r = await tetraCli(['push', 'cli-q', '-'], { stdin: lines, env: { TETRA_PROGRESS: '1' } })
    expect(r.code).toBe(0)
    expect(r.lines()).toEqual([{ queue: 'cli-q', pushed: 2500 }])
    // the progress line (on a terminal, or with TETRA_PROGRESS=1), rewritten in place
    expect(r.stderr).toMatch(/\r\x1b\[Kpushed 1,000 lines \([\d,]+\/s\)/)
    expect((await tetra.queue('cli-q').info()).stats.ready).toBe(2500)
    r = await tetraCli(['pop', 'cli-q', '--ack'])
    expect(r.code).toBe(0)
    expect(r.lines()[0]).toMatchObject({ payload: 0, acked: true })
    r = await tetraCli(['pop', 'cli-q'])
    expect(r.lines()[0]).toMatchObject({ payload: 1, receipt: expect.any(String) })
    r = await tetraCli(['push', 'cli-q2', '{"job":1}'])
    expect(r.lines()[0]).toMatchObject({ queue: 'cli-q2', id: expect.any(String) })
    const [m] = await tetra.queue('cli-q2').receive()
    await tetra.queue('cli-q2').nack(m.receipt, { dead: true, reason: 'broken' })
    r = await tetraCli(['dlq', 'cli-q2'])
    expect(r.lines()[0]).toMatchObject({ payload: { job: 1 } })
    r = await tetraCli(['dlq', 'cli-q2', '--redrive'])
    expect(r.lines()[0]).toEqual({ queue: 'cli-q2', redriven: 1 })
    r = await tetraCli(['pop', 'cli-empty'])
    expect(r.code).toBe(1)
  }, 60_000)

  it('append, append -, read --from/--time, tail STREAM', async () => {
    let r = await tetraCli(['append', 'cli-s', '{"id":1}', '--key', 'k'])
    expect(r.lines()[0]).toEqual({ stream: 'cli-s', offset: 0 })
    r = await tetraCli(['append', 'cli-s', '-'], { stdin: 'a\nb\nc\n' })
    expect(r.lines()[0]).toEqual({ stream: 'cli-s', appended: 3 })
    r = await tetraCli(['read', 'cli-s'])
    expect((r.lines() as Array<{ payload: unknown }>).map(m => m.payload)).toEqual([{ id: 1 }, 'a', 'b', 'c'])
    r = await tetraCli(['read', 'cli-s', '--from', '2', '--limit', '1'])
    expect(r.lines()).toEqual([expect.objectContaining({ offset: 2, payload: 'b' })])
    r = await tetraCli(['read', 'cli-s', '--time', '0'])
    expect(r.lines()).toHaveLength(4)
    r = await tetraCli(['tail', 'cli-s', '--from', 'start', '--count', '4'])
    expect(r.code).toBe(0)
    expect(r.lines()).toHaveLength(4)
    r = await tetraCli(['read', 'cli-s', '--from', 'x'])
    expect(r.code).toBe(2)
  }, 60_000)

  it('stats as JSON', async () => {
    const r = await tetraCli(['stats'])
    expect(r.code).toBe(0)
    expect(typeof r.lines()[0]).toBe('object')
  })
})

describe.skipIf(!existsSync('/usr/bin/script'))('tetra CLI on a terminal', () => {
  it('prints readable lines, not JSON (util-linux script gives it a pseudo-terminal)', async () => {
    await tetra.store.set('tty/a', { n: 1 })
    await tetra.store.set('tty/b', 'text')
    const run = async (args: string): Promise<string> => {
      const r = await new Promise<string>((resolve) => {
        const child = spawn('/usr/bin/script', ['-qec', `${process.execPath} --import tsx ${join(ROOT, 'src/cli.ts')} ${args}`, '/dev/null'], { cwd: ROOT, env: { ...process.env, TETRA_URL: broker.url, TETRA_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        child.stdout.on('data', (d: Buffer) => { out += d.toString() })
        const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
        child.on('exit', () => { clearTimeout(timer); resolve(out.replace(/\r/g, '')) })
      })
      return r
    }
    expect(await run('get tty/b')).toBe('text\n')
    expect(await run('get tty/a')).toBe('{"n":1}\n')
    expect(await run('keys tty/')).toMatch(/^tty\/a\t7 B\tapplication\/json\ntty\/b\t4 B\ttext\/plain; charset=utf-8\n$/)
  }, 60_000)
})

describe('tetra serve', () => {
  it('starts the broker as the flags alone do', async () => {
    let ready = false
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'serve', '--mqtt-port', '0', '--http-port', '0', '--data-dir', join(broker.dataDir, 'serve')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('Tetra listening')) ready = true })
    await waitFor(() => ready, 20_000, 'the broker listening')
    child.kill('SIGTERM')
    const code = await new Promise(resolve => { child.on('exit', c => { resolve(c) }) })
    expect(code).toBe(0)
  }, 30_000)
})
