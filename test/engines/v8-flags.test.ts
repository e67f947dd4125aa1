import { describe, it, expect } from 'vitest'
import { hasV8Flag, V8_FLAGS } from '../../src/v8-flags.js'

describe('V8 flags of the broker', () => {
  it('asks for the larger young generation', () => {
    expect(V8_FLAGS).toContain('--max-semi-space-size=32')
  })

  it('sees the flag on the command line or in NODE_OPTIONS, with any value and either spelling', () => {
    const flag = '--max-semi-space-size=32'
    expect(hasV8Flag(flag, [], undefined)).toBe(false)
    expect(hasV8Flag(flag, ['--import', 'tsx'], '--enable-source-maps')).toBe(false)
    expect(hasV8Flag(flag, ['--max-semi-space-size=32'], undefined)).toBe(true)
    expect(hasV8Flag(flag, ['--max-semi-space-size=64'], undefined)).toBe(true)
    expect(hasV8Flag(flag, [], '--enable-source-maps --max-semi-space-size=16')).toBe(true)
    expect(hasV8Flag(flag, ['--max_semi_space_size=32'], undefined)).toBe(true)
    expect(hasV8Flag(flag, ['--max-semi-space-size-other=1'], undefined)).toBe(false)
  })
})
