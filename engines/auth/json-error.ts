/**
 * Where a JSON text stops being JSON. JSON.parse's messages do not always carry a position (node 20 says
 * `Unexpected token ',', "..." is not valid JSON` for some mistakes), and an operator editing a file wants a
 * line and a column: this scanner finds the first offending character. Only called after JSON.parse failed.
 */
export interface JsonSyntaxError { offset: number, problem: string }

export function findJsonError (text: string): JsonSyntaxError {
  let i = 0
  const err = (problem: string, at = i): JsonSyntaxError => ({ offset: at, problem })
  class Stop { constructor (readonly e: JsonSyntaxError) {} }
  const stop = (problem: string, at = i): never => { throw new Stop(err(problem, at)) }
  const describe = (): string => i >= text.length ? 'the text ends' : `unexpected ${JSON.stringify(text[i])}`
  const ws = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++ }
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length
    else stop(`${describe()}; expected a value`)
  }
  const string = (): void => {
    i++ // the opening quote
    for (;;) {
      if (i >= text.length) stop('the text ends inside a string')
      const c = text.charCodeAt(i)
      if (c === 0x22) { i++; return }
      if (c < 0x20) stop('a control character (such as a line break) inside a string')
      if (c === 0x5c) {
        const e = text[i + 1]
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) stop('a bad \\u escape in a string')
          i += 6
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2
        } else {
          stop('a bad escape in a string')
        }
        continue
      }
      i++
    }
  }
  const number = (): void => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400))
    if (m === null || m[0] === '-' || m[0] === '') stop(`${describe()}; expected a value`)
    i += m![0].length
  }
  const value = (depth: number): void => {
    ws()
    if (depth > 1000) stop('nested too deeply')
    const c = text[i]
    if (c === '{') {
      i++
      ws()
      if (text[i] === '}') { i++; return }
      for (;;) {
        ws()
        if (text[i] !== '"') stop(`${describe()}; expected a property name in double quotes`)
        string()
        ws()
        if (text[i] !== ':') stop(`${describe()}; expected ':' after a property name`)
        i++
        value(depth + 1)
        ws()
        if (text[i] === ',') { i++; continue }
        if (text[i] === '}') { i++; return }
        stop(`${describe()}; expected ',' or '}'`)
      }
    }
    if (c === '[') {
      i++
      ws()
      if (text[i] === ']') { i++; return }
      for (;;) {
        value(depth + 1)
        ws()
        if (text[i] === ',') { i++; continue }
        if (text[i] === ']') { i++; return }
        stop(`${describe()}; expected ',' or ']'`)
      }
    }
    if (c === '"') { string(); return }
    if (c === 't') { literal('true'); return }
    if (c === 'f') { literal('false'); return }
    if (c === 'n') { literal('null'); return }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) { number(); return }
    stop(`${describe()}; expected a value`)
  }
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1 // a BOM: JSON.parse refuses it too
    value(0)
    ws()
    if (i < text.length) stop(`${describe()} after the end of the JSON value`)
    return err('not valid JSON', 0)
  } catch (e) {
    if (e instanceof Stop) return e.e
    throw e
  }
}
