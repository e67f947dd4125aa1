import { describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../../src/config.js'
import { tempDir } from '../helpers.js'

describe('stream settings', () => {
  it('has defaults and reads flags, env and the config file', () => {
    const { config } = loadConfig([], {})
    expect(config).toMatchObject({ streamAutocreate: true, streamMaxMessageBytes: 1024 * 1024, streamDedupWindowMs: 120_000 })
    expect(loadConfig(['--stream-autocreate', 'false', '--stream-max-message-size', '64kb'], {}).config).toMatchObject({ streamAutocreate: false, streamMaxMessageBytes: 65536 })
    expect(loadConfig([], { TETRA_STREAM_AUTOCREATE: 'no', TETRA_STREAM_DEDUP_WINDOW: '0' }).config).toMatchObject({ streamAutocreate: false, streamDedupWindowMs: 0 })
    const tmp = tempDir()
    try {
      const file = join(tmp.dir, 'c.json')
      writeFileSync(file, JSON.stringify({ streamAutocreate: false }))
      expect(loadConfig(['--config', file], {}).config.streamAutocreate).toBe(false)
    } finally {
      tmp.remove()
    }
  })

  it('rejects bad values with a clear message', () => {
    expect(() => loadConfig(['--stream-autocreate', 'maybe'], {})).toThrow(ConfigError)
    expect(() => loadConfig(['--stream-autocreate', 'maybe'], {})).toThrow(/use true or false/)
    expect(() => loadConfig(['--stream-max-message-size', 'huge'], {})).toThrow(ConfigError)
    expect(() => loadConfig(['--stream-dedup-window', '-5'], {})).toThrow(ConfigError)
  })
})
