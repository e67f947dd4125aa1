import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodePayload, encodePayload } from '../../protocols/http/payload.js'

describe('payload encoding', () => {
  it('round-trips any bytes exactly', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
      const buf = Buffer.from(bytes)
      const { payload, encoding } = encodePayload(buf)
      const back = decodePayload(JSON.parse(JSON.stringify(payload)), encoding)
      expect(back.equals(buf)).toBe(true)
    }), { numRuns: 2000 })
  })

  it('round-trips any text and any JSON value', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), text => {
      const buf = Buffer.from(text)
      const { payload, encoding } = encodePayload(buf)
      expect(decodePayload(payload, encoding).equals(buf)).toBe(true)
    }), { numRuns: 2000 })
  })

  it('carries compact JSON as JSON, other text as utf8, binary as base64', () => {
    expect(encodePayload(Buffer.from('{"a":1}'))).toEqual({ payload: { a: 1 } })
    expect(encodePayload(Buffer.from('{"a": 1}'))).toEqual({ payload: '{"a": 1}', encoding: 'utf8' })
    expect(encodePayload(Buffer.from('21.5'))).toEqual({ payload: 21.5 })
    expect(encodePayload(Buffer.from('on'))).toEqual({ payload: 'on', encoding: 'utf8' })
    expect(encodePayload(Buffer.from([0xff, 0, 1]))).toEqual({ payload: '/wAB', encoding: 'base64' })
  })
})
