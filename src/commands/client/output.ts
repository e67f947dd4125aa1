import { bytesToBase64 } from '../../client/index.js'

/** Where a command writes: readable lines on a terminal, one JSON object per line otherwise. */
export interface Output {
  json: boolean
  /** A result line: the readable text on a terminal, the object as JSON otherwise. */
  line: (readable: string, object: unknown) => void
  /** A note on stderr (only on a terminal). */
  note: (text: string) => void
  /** A progress line rewritten in place on stderr when it is a terminal. */
  progress: (text: string) => void
  endProgress: () => void
}

/** A value as JSON can carry it: bytes become {payload, encoding: base64} in the caller's object. */
export function wirePayload (payload: unknown): { payload: unknown, encoding?: 'base64' } {
  return payload instanceof Uint8Array ? { payload: bytesToBase64(payload), encoding: 'base64' } : { payload }
}

/** A payload for a person: text as it is, JSON as compact JSON, bytes as hex. */
export function readable (payload: unknown): string {
  if (typeof payload === 'string') return payload
  if (payload instanceof Uint8Array) return `<${payload.length} bytes: ${Array.from(payload.subarray(0, 64), b => b.toString(16).padStart(2, '0')).join(' ')}${payload.length > 64 ? ' ...' : ''}>`
  return JSON.stringify(payload)
}

export function createOutput (forceJson: boolean): Output {
  const json = forceJson || process.stdout.isTTY !== true
  // TETRA_PROGRESS=1 shows the progress line when stderr is not a terminal too (a log, a test)
  const errTty = process.stderr.isTTY === true || process.env.TETRA_PROGRESS === '1'
  let progressShown = false
  return {
    json,
    line: (text, object) => { process.stdout.write((json ? JSON.stringify(object) : text) + '\n') },
    note: text => { if (!json) process.stderr.write(text + '\n') },
    progress: text => {
      if (!errTty) return
      process.stderr.write('\r\x1b[K' + text)
      progressShown = true
    },
    endProgress: () => {
      if (progressShown) process.stderr.write('\n')
      progressShown = false
    }
  }
}
