import { describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseBytes, SETTINGS } from '../../src/config.js'
import { ROOT, tempDir } from '../helpers.js'

describe('config', () => {
  it('has the documented defaults', () => {
    const { config } = loadConfig([], {})
    expect(config).toMatchObject({ host: '127.0.0.1', mqttPort: 1883, httpPort: 8080, dataDir: './data', logLevel: 'info', fsync: 'interval', fsyncIntervalMs: 100 })
  })

  it('takes flags over env over file over defaults', () => {
    const tmp = tempDir()
    const file = join(tmp.dir, 'tetra.json')
    writeFileSync(file, JSON.stringify({ mqttPort: 1000, httpPort: 1001, dataDir: '/from-file', fsync: 'never' }))
    const { config } = loadConfig(['--config', file, '--mqtt-port', '3000'], { TETRA_MQTT_PORT: '2000', TETRA_HTTP_PORT: '2001' })
    expect(config.mqttPort).toBe(3000)
    expect(config.httpPort).toBe(2001)
    expect(config.dataDir).toBe('/from-file')
    expect(config.fsync).toBe('never')
    expect(loadConfig(['--fsync=always'], {}).config.fsync).toBe('always')
    tmp.remove()
  })

  it('names the setting and the allowed values when a value is bad', () => {
    expect(() => loadConfig(['--fsync', 'sometimes'], {})).toThrow(/--fsync.*"sometimes".*always, interval, never/)
    expect(() => loadConfig([], { TETRA_MQTT_PORT: '70000' })).toThrow(/--mqtt-port \(env TETRA_MQTT_PORT\).*0 to 65535/)
    expect(() => loadConfig(['--log-level', 'loud'], {})).toThrow(ConfigError)
    expect(() => loadConfig(['--nope', '1'], {})).toThrow(/unknown option --nope/)
    expect(() => loadConfig(['--http-port'], {})).toThrow(/needs a value/)
  })

  it('rejects unknown keys and broken JSON in the config file', () => {
    const tmp = tempDir()
    const bad = join(tmp.dir, 'bad.json')
    writeFileSync(bad, '{"mqttPort": 1, "colour": "red"}')
    expect(() => loadConfig(['--config', bad], {})).toThrow(/unknown setting "colour"/)
    writeFileSync(bad, '{ not json')
    expect(() => loadConfig(['--config', bad], {})).toThrow(/not valid JSON/)
    tmp.remove()
  })

  it('parses byte sizes', () => {
    expect(parseBytes('1024')).toBe(1024)
    expect(parseBytes('512kb')).toBe(512 * 1024)
    expect(parseBytes('1.5GB')).toBe(1.5 * 1024 ** 3)
    expect(parseBytes('lots')).toBeUndefined()
  })

  it('every setting has a flag and an env name that follow one pattern', () => {
    for (const s of SETTINGS) {
      expect(s.env).toBe('TETRA_' + s.flag.slice(2).toUpperCase().replace(/-/g, '_'))
    }
  })
})

describe('tetra CLI', () => {
  const cli = (args: string[], env: Record<string, string> = {}): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 })

  it('prints help and version', () => {
    const help = cli(['--help'])
    expect(help.status).toBe(0)
    for (const s of SETTINGS) expect(help.stdout).toContain(s.flag)
    const version = cli(['--version'])
    expect(version.status).toBe(0)
    expect(version.stdout).toMatch(/^tetra \d+\.\d+\.\d+/)
  })

  it('exits with code 2 and a clear message on a bad value', () => {
    const bad = cli(['--fsync', 'sometimes'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/invalid configuration: --fsync/)
    const badEnv = cli([], { TETRA_HTTP_PORT: 'eighty' })
    expect(badEnv.status).toBe(2)
    expect(badEnv.stderr).toMatch(/TETRA_HTTP_PORT/)
  })
})

describe('README', () => {
  it('documents every setting with its flag, env variable and default', async () => {
    const { readFileSync } = await import('node:fs')
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const s of SETTINGS) {
      const row = readme.split('\n').find(line => line.startsWith(`| \`${s.flag}\` | \`${s.env}\` | \`${s.key}\` |`))
      expect(row, `README configuration row for ${s.flag}`).toBeDefined()
    }
  })
})
